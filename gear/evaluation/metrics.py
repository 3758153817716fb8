"""Evaluation metrics (SPEC 7) and the bootstrap that puts an interval on each of them.

Every function returns one value per query (a float array), so that results carry per-query
scores, the mean is the reported number, and confidence intervals and paired tests resample
queries. All metrics are fractions in [0, 1].

Ranking (retrieval and localization)
    ``Recall@k = |relevant in top k| / |relevant|`` and ``MRR@k = 1 / rank of the first relevant
    item within the top k``, else 0. For retrieval the relevant set is the gold document; for
    localization the relevant units of the gold document (several may be relevant: recall counts
    each, MRR takes the first).

    Ties (the suite's choice; SPEC 7 is silent): items are ranked by decreasing score, and an
    item tied in score with others is ranked **pessimistically**: irrelevant items come before
    relevant ones of the same score, and among tied items of equal relevance the lower index comes
    first. So a model earns nothing from a tie: a scorer that gives every unit the same score
    (say, a cross-attention that did not learn) gets Recall@1 = 0 rather than the share of
    queries whose relevant unit happens to be the first sentence. Units a model could not see
    (GeAR scores a unit cut off by truncation ``-inf``) tie with each other in the same way.

Generation
    QA: exact match and token F1 after the official SQuAD v1.1 answer normalisation (lower case;
    ASCII punctuation, i.e. ``string.punctuation``, removed; the articles a / an / the removed as
    whole words; white space, Unicode included, collapsed), maximum over the gold answers. As in
    the official v1.1 script, F1 is 0 when prediction and answer share no token, which includes
    two empty strings (whose exact match is 1). Non-ASCII punctuation (curly quotes, dashes) is
    kept, as the official script keeps it.
    RIR: ROUGE-1 and ROUGE-L F-measure of ``rouge_score`` (``RougeScorer(use_stemmer=True)``)
    against the target sentence. Its tokenizer keeps only ASCII letters and digits.

Bootstrap
    :func:`bootstrap_indices` draws the resamples of query positions from ``(n, resamples, seed)``
    alone, so every model evaluated on the same queries of a data set is resampled identically and
    paired comparisons (:func:`paired_bootstrap_pvalue`) line up.

Example:
    >>> import numpy as np
    >>> m = localization_metrics([np.array([0.1, 0.7, 0.2])], [[1]], k=1)
    >>> float(m["R@1"][0]), float(m["M@1"][0])
    (1.0, 1.0)
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

# --------------------------------------------------------------------------------------------
# Ranking metrics
# --------------------------------------------------------------------------------------------


def rank_relevance(scores: np.ndarray, relevant: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Relevance of each item in rank order, with the pessimistic tie rule of the module docstring.

    Args:
        scores: ``(n, m)`` float scores, higher is better (``-inf`` allowed, NaN not).
        relevant: ``(n, m)`` bool, whether item ``j`` is relevant to query ``i``.
        valid: ``(n, m)`` bool, False for padding (ranked after every real item, never relevant);
            default all True.

    Returns:
        ``(n, m)`` bool: ``out[i, r]`` is True when the item at rank ``r + 1`` is relevant.
    """
    scores = np.asarray(scores, dtype=np.float64)
    relevant = np.asarray(relevant, dtype=bool)
    if scores.shape != relevant.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and relevant {relevant.shape} must be the same (n, m) shape")
    valid = np.ones_like(relevant) if valid is None else np.asarray(valid, dtype=bool)
    if np.isnan(scores[valid]).any():
        raise ValueError("scores contain NaN: a model produced an undefined score")
    relevant = relevant & valid
    # np.lexsort sorts by the last key first: padding last, then by decreasing score, then
    # irrelevant before relevant (pessimistic ties), then by index.
    index = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    neg = np.where(valid, -scores, np.inf)
    order = np.lexsort((index, relevant, neg, ~valid), axis=-1)
    return np.take_along_axis(relevant, order, axis=1)


def ranking_metrics(ranked_relevance: np.ndarray, n_relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Recall@k and MRR@k per query from relevance in rank order.

    Args:
        ranked_relevance: ``(n, m)`` bool, relevance of the item at each rank (``m`` may be smaller
            than ``k``, or 0: an empty top-k scores 0).
        n_relevant: ``(n,)`` number of relevant items of each query in the whole collection (not
            only those ranked), each at least 1.
        k: cut-off.

    Returns:
        ``{"R@k": (n,) float64, "M@k": (n,) float64}``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    ranked_relevance = np.asarray(ranked_relevance, dtype=bool)
    n_relevant = np.asarray(n_relevant, dtype=np.float64)
    if ranked_relevance.ndim != 2 or n_relevant.shape != (ranked_relevance.shape[0],):
        raise ValueError(
            f"ranked_relevance {ranked_relevance.shape} and n_relevant {n_relevant.shape} do not match"
        )
    if (n_relevant < 1).any():
        bad = int(np.flatnonzero(n_relevant < 1)[0])
        raise ValueError(f"query at position {bad} has no relevant item: skip such queries before scoring")
    top = ranked_relevance[:, :k]
    hits = top.sum(axis=1)
    if (hits > n_relevant).any():
        raise ValueError("more relevant items ranked than n_relevant says exist")
    recall = hits / n_relevant
    found = top.any(axis=1)
    first = np.argmax(top, axis=1) if top.shape[1] else np.zeros(len(top), dtype=np.int64)
    mrr = np.where(found, 1.0 / (first + 1.0), 0.0)
    return {f"R@{k}": recall, f"M@{k}": mrr}


def retrieval_metrics(
    retrieved: np.ndarray, scores: np.ndarray, gold: Sequence[Sequence[int]], k: int
) -> dict[str, np.ndarray]:
    """Recall@k and MRR@k of a retrieval run.

    Args:
        retrieved: ``(n, depth)`` int corpus positions in rank order; ``-1`` marks an empty slot
            (FAISS's answer when the corpus has fewer than ``depth`` documents).
        scores: ``(n, depth)`` scores of ``retrieved`` (ties re-ranked by the pessimistic rule).
        gold: for each query, the corpus positions of its relevant documents (at least one).
        k: cut-off.

    Returns:
        ``{"R@k": (n,), "M@k": (n,)}``.
    """
    retrieved = np.asarray(retrieved, dtype=np.int64)
    if len(gold) != len(retrieved):
        raise ValueError(f"{len(gold)} gold sets for {len(retrieved)} queries")
    valid = retrieved >= 0
    width = max((len(g) for g in gold), default=0)
    gold_matrix = np.full((len(gold), max(width, 1)), -2, dtype=np.int64)  # -2 matches no slot
    for i, positions in enumerate(gold):
        gold_matrix[i, : len(positions)] = list(positions)
    relevant = (retrieved[:, :, None] == gold_matrix[:, None, :]).any(axis=2) & valid
    n_relevant = np.array([len(set(g)) for g in gold], dtype=np.float64)
    return ranking_metrics(rank_relevance(scores, relevant, valid), n_relevant, k)


def localization_metrics(
    unit_scores: Sequence[np.ndarray], relevant_units: Sequence[Sequence[int]], k: int
) -> dict[str, np.ndarray]:
    """Recall@k and MRR@k of unit rankings inside each query's gold document.

    Args:
        unit_scores: per query, a ``(units,)`` float array of scores (one per unit of its gold
            document; lengths may differ between queries).
        relevant_units: per query, the indices of its relevant units (non-empty; queries without
            one are skipped by the caller and counted).
        k: cut-off (config ``evaluate.localization.k_qa`` / ``k_rir``).

    Returns:
        ``{"R@k": (n,), "M@k": (n,)}``.
    """
    if len(unit_scores) != len(relevant_units):
        raise ValueError(f"{len(unit_scores)} score arrays for {len(relevant_units)} queries")
    n = len(unit_scores)
    width = max((len(s) for s in unit_scores), default=0)
    scores = np.zeros((n, width), dtype=np.float64)
    valid = np.zeros((n, width), dtype=bool)
    relevant = np.zeros((n, width), dtype=bool)
    n_relevant = np.zeros(n, dtype=np.float64)
    for i, (row, units) in enumerate(zip(unit_scores, relevant_units, strict=True)):
        row = np.asarray(row, dtype=np.float64).reshape(-1)
        units = sorted(set(int(u) for u in units))
        if units and (units[0] < 0 or units[-1] >= len(row)):
            raise ValueError(f"query at position {i}: relevant units {units} outside its {len(row)} units")
        scores[i, : len(row)] = row
        valid[i, : len(row)] = True
        relevant[i, units] = True
        n_relevant[i] = len(units)
    return ranking_metrics(rank_relevance(scores, relevant, valid), n_relevant, k)


def break_ties_at_random(scores: Sequence[np.ndarray], seed: int) -> list[np.ndarray]:
    """``scores`` with ties broken by a seeded random order, every strict order kept.

    For the unit-length reference: ranking units by token count with ties broken pessimistically
    (the rule for every model, SPEC 7) ranks a gold unit last among equally long units, a floor
    that any slightly non-uniform attention clears by chance. The reference a localizer must beat
    is uniform attention with an arbitrary tie order, which this gives (the suite's choice).
    Non-finite scores (units cut off by truncation) stay as they are.
    """
    rng = np.random.default_rng(seed)
    out = []
    for row in scores:
        row = np.asarray(row, dtype=np.float64)
        finite = np.isfinite(row)
        values = np.unique(row[finite])
        gap = float(np.min(np.diff(values))) if len(values) > 1 else 1.0
        jitter = np.where(finite, rng.random(len(row)) * 0.5 * gap, 0.0)
        out.append(row + jitter)
    return out


def random_unit_scores(unit_counts: Sequence[int], seed: int) -> list[np.ndarray]:
    """A seeded random ranking of every query's units (the chance reference of localization):
    per query, ``unit_counts[i]`` scores drawn uniformly from [0, 1) (ties have probability 0)."""
    rng = np.random.default_rng(seed)
    return [rng.random(int(count)) for count in unit_counts]


def other_queries_scores(
    unit_scores: Sequence[np.ndarray], documents: Sequence[str]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The query-independent reference of a localizer: each query's document ranked by the mean
    unit scores of the *other* queries on the same document.

    A cross-attention that has learned where in a document answers tend to be (a salience of the
    document's own tokens) but not what this query asks ranks units as well with its siblings'
    attention as with its own; one that reads the query beats this reference.

    Args:
        unit_scores: per query, its ``(units,)`` scores.
        documents: per query, its document (text or id); queries with equal documents are siblings.

    Returns:
        (indices of the queries that have at least one sibling, their reference scores).

    Example:
        >>> idx, ref = other_queries_scores([np.array([1.0, 0]), np.array([0, 1.0]), np.array([3.0])], ["a", "a", "b"])
        >>> idx.tolist(), [r.tolist() for r in ref]
        ([0, 1], [[0.0, 1.0], [1.0, 0.0]])
    """
    if len(unit_scores) != len(documents):
        raise ValueError(f"{len(unit_scores)} score arrays for {len(documents)} documents")
    by_document: dict[str, list[int]] = {}
    for i, document in enumerate(documents):
        by_document.setdefault(document, []).append(i)
    indices, reference = [], []
    for i, document in enumerate(documents):
        siblings = [j for j in by_document[document] if j != i]
        if siblings:
            indices.append(i)
            reference.append(
                np.mean([np.asarray(unit_scores[j], dtype=np.float64) for j in siblings], axis=0)
            )
    return np.asarray(indices, dtype=np.int64), reference


# --------------------------------------------------------------------------------------------
# Generation metrics
# --------------------------------------------------------------------------------------------

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's official answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer, else 0.0."""
    if not answers:
        raise ValueError("exact_match needs at least one gold answer")
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(answer) for answer in answers))


def _token_f1(prediction_tokens: list[str], answer_tokens: list[str]) -> float:
    common = Counter(prediction_tokens) & Counter(answer_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(prediction_tokens)
    recall = same / len(answer_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """SQuAD token F1 of the normalised prediction, maximum over the gold answers."""
    if not answers:
        raise ValueError("token_f1 needs at least one gold answer")
    tokens = normalize_answer(prediction).split()
    return max(_token_f1(tokens, normalize_answer(answer).split()) for answer in answers)


def qa_generation_metrics(
    predictions: Sequence[str], answers: Sequence[Sequence[str]]
) -> dict[str, np.ndarray]:
    """Per-query ``EM`` and ``F1`` (fractions) of generated answers against gold answer lists."""
    if len(predictions) != len(answers):
        raise ValueError(f"{len(predictions)} predictions for {len(answers)} answer lists")
    em = np.array([exact_match(p, a) for p, a in zip(predictions, answers, strict=True)], dtype=np.float64)
    f1 = np.array([token_f1(p, a) for p, a in zip(predictions, answers, strict=True)], dtype=np.float64)
    return {"EM": em, "F1": f1}


def rouge_metrics(predictions: Sequence[str], targets: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-query ``ROUGE-1`` and ``ROUGE-L`` F-measure (rouge_score, stemming on) against targets."""
    from rouge_score.rouge_scorer import RougeScorer

    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
    scorer = RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    r1, rl = np.empty(len(targets)), np.empty(len(targets))
    for i, (prediction, target) in enumerate(zip(predictions, targets, strict=True)):
        scores = scorer.score(target, prediction)
        r1[i], rl[i] = scores["rouge1"].fmeasure, scores["rougeL"].fmeasure
    return {"ROUGE-1": r1, "ROUGE-L": rl}


# --------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------

# Resamples are averaged this many at a time, so 1,000 resamples of 145k RIR queries never hold
# a 1,000 x 145k float matrix.
_BOOTSTRAP_CHUNK = 64


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """Query positions of each bootstrap resample, drawn with replacement.

    Depends on ``(n, resamples, seed)`` only, so all models of a data set share the resamples.

    Returns:
        ``(resamples, n)`` int32 (int64 past 2**31 queries) positions in ``[0, n)``.
    """
    if n < 1 or resamples < 1:
        raise ValueError(f"bootstrap needs n >= 1 and resamples >= 1, got n={n}, resamples={resamples}")
    dtype = np.int32 if n < 2**31 else np.int64
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n), dtype=dtype)


def bootstrap_means(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over each resample: ``(resamples,)`` float64."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if indices.ndim != 2 or (indices.size and int(indices.max()) >= len(values)):
        raise ValueError(f"indices {indices.shape} do not resample {len(values)} values")
    means = np.empty(len(indices))
    for start in range(0, len(indices), _BOOTSTRAP_CHUNK):
        means[start : start + _BOOTSTRAP_CHUNK] = values[indices[start : start + _BOOTSTRAP_CHUNK]].mean(
            axis=1
        )
    return means


def bootstrap_ci(values: np.ndarray, indices: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of per-query ``values``.

    Args:
        values: ``(n,)`` per-query metric values.
        indices: ``(resamples, n)`` from :func:`bootstrap_indices`.
        confidence: e.g. 0.95 for the 2.5th and 97.5th percentiles of the resampled means.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    means = bootstrap_means(values, indices)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_bootstrap_pvalue(a: np.ndarray, b: np.ndarray, indices: np.ndarray) -> float:
    """Two-sided paired bootstrap p-value for "models a and b have the same mean" (same queries).

    The per-query differences ``d = a - b`` are resampled with ``indices``; the resampled means,
    centred on the observed mean ``delta`` (the null hypothesis shifted into the bootstrap
    distribution), are compared with ``delta``: ``p = (1 + #{|mean* - delta| >= |delta|}) /
    (1 + resamples)``. The +1 keeps the p-value valid (never 0 from finite resamples). A model
    against itself gets ``p = 1``.

    Args:
        a, b: ``(n,)`` per-query values of two models, aligned by query.
        indices: ``(resamples, n)`` from :func:`bootstrap_indices`.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in length: {a.shape[0]} and {b.shape[0]}")
    diff = a - b
    delta = diff.mean()
    means = bootstrap_means(diff, indices)
    # A small tolerance so that float round-off in the means does not count as "less extreme".
    extreme = np.abs(means - delta) >= abs(delta) - 1e-12
    return float((1 + extreme.sum()) / (1 + len(means)))


def summarize(
    per_query: dict[str, np.ndarray], resamples: int, seed: int, confidence: float
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Mean and bootstrap interval of each per-query metric (one set of resamples for all).

    Returns:
        ``(metrics, ci)``: ``{name: mean}`` and ``{name: [low, high]}``.
    """
    lengths = {len(v) for v in per_query.values()}
    if len(lengths) != 1:
        raise ValueError(f"per-query metrics differ in length: { {k: len(v) for k, v in per_query.items()} }")
    n = lengths.pop()
    indices = bootstrap_indices(n, resamples, seed)
    metrics = {name: float(np.mean(values)) for name, values in per_query.items()}
    ci = {name: list(bootstrap_ci(values, indices, confidence)) for name, values in per_query.items()}
    return metrics, ci

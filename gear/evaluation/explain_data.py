"""Data of the explanation pages: a seeded sample of queries run through a trained GeAR.

:func:`explain_data` runs the model and writes ``P/data/explain_{dataset}.json``; the page is drawn
from that JSON alone by :func:`gear.report.explain.render_explain_page` (what the page shows and
the sampling choices: that module's docstring).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from data_prep.normalized import load_queries
from gear.config import dataclass_from_mapping
from gear.evaluation.figure3_data import read_documents
from gear.inference import LocalizationConfig, generate, load_gear, localize_units, token_weights
from gear.io import DataFormatError, iter_text_lines, write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExplainSettings:
    """The config's ``reports.explain`` section."""

    queries_per_dataset: int  # queries shown per data set
    top_documents: int  # retrieved documents listed per query


def sample_queries(queries: Sequence, n: int, seed: int) -> list:
    """A seeded sample of ``n`` queries, preferring those localization is scored on.

    Returns:
        The sampled queries, sorted by query id.
    """
    ordered = sorted(queries, key=lambda q: q.query_id)
    preferred = [q for q in ordered if q.fine_grained and q.relevant_units]
    others = [q for q in ordered if not (q.fine_grained and q.relevant_units)]
    rng = random.Random(seed)
    chosen = rng.sample(preferred, min(n, len(preferred)))
    if len(chosen) < n:
        chosen += rng.sample(others, min(n - len(chosen), len(others)))
    return sorted(chosen, key=lambda q: q.query_id)


def read_run(path: str | os.PathLike, query_ids: set[str]) -> dict[str, list[tuple[str, int, float]]]:
    """The ranked documents of some queries from a TREC run file (``qid Q0 docid rank score tag``).

    Returns:
        query id -> ``[(doc_id, rank, score), ...]`` by rank (every line of the file for it).

    Raises:
        DataFormatError: a line without six fields or with a non-numeric rank or score.
    """
    ranked: dict[str, list[tuple[str, int, float]]] = {qid: [] for qid in query_ids}
    for number, line in iter_text_lines(path):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 6:
            raise DataFormatError(
                f"{path}:{number}: expected 6 fields 'qid Q0 docid rank score tag', got {len(fields)}"
            )
        if fields[0] not in ranked:
            continue
        try:
            ranked[fields[0]].append((fields[2], int(fields[3]), float(fields[4])))
        except ValueError as err:
            raise DataFormatError(f"{path}:{number}: rank and score must be numbers ({err})") from err
    return {qid: sorted(rows, key=lambda row: row[1]) for qid, rows in ranked.items()}


def _finite_or_none(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


def _sample_with_documents(
    corpus_path: str | os.PathLike,
    queries_path: str | os.PathLike,
    run_path: str | os.PathLike,
    settings: ExplainSettings,
    seed: int,
) -> tuple[list, dict[str, list[tuple[str, int, float]]], dict[str, dict]]:
    """The seeded sample of queries, their rankings in the run file, and every document the page
    shows (gold documents and the top ``settings.top_documents`` retrieved)."""
    sample = sample_queries(load_queries(queries_path), settings.queries_per_dataset, seed)
    if not sample:
        raise DataFormatError(f"{queries_path}: no queries to explain")
    runs = read_run(run_path, {q.query_id for q in sample})
    missing = [q.query_id for q in sample if not runs[q.query_id]]
    if missing:
        raise DataFormatError(f"{run_path}: no ranked documents for query/queries {missing[:5]}")
    needed = {q.doc_id for q in sample} | {
        doc for q in sample for doc, _, _ in runs[q.query_id][: settings.top_documents]
    }
    return sample, runs, read_documents(corpus_path, needed)


def _generate_and_localize(
    model, tokenizer, sample: Sequence, golds: Sequence[dict], loc, generation: Mapping
):
    """GeAR's generation for each query from its gold document, and its unit scores there at the
    configured layer (``gear.inference.UnitScores``)."""
    generated = generate(
        model,
        tokenizer,
        [q.text for q in sample],
        [d["text"] for d in golds],
        max_new_tokens=int(generation["max_new_tokens"]),
        num_beams=int(generation["num_beams"]),
        batch_size=int(generation.get("batch_size", 16)),
    )
    found = localize_units(
        model,
        tokenizer,
        [q.text for q in sample],
        [d["text"] for d in golds],
        [[tuple(u) for u in d["units"]] for d in golds],
        layers=[loc.layer],
        localization=loc,
    )
    return generated, found


def _retrieved(
    ranking: Sequence[tuple[str, int, float]], documents: Mapping[str, dict], gold_id: str, top: int
) -> list[dict]:
    """The top ``top`` documents of a query's ranking, with their text and whether each is the gold one."""
    return [
        {
            "rank": rank,
            "doc_id": doc,
            "score": score,
            "title": documents[doc]["title"],
            "text": documents[doc]["text"],
            "gold": doc == gold_id,
        }
        for doc, rank, score in ranking[:top]
    ]


def _query_record(
    query,
    gold: dict,
    generated: str,
    ranking: Sequence[tuple[str, int, float]],
    retrieved: list[dict],
    weights,
    unit_scores: np.ndarray,
    length_scores: np.ndarray,
    entropy: float,
) -> dict:
    """Everything the page shows for one query (the ``queries`` items of :func:`explain_data`)."""
    gold_rank = next((rank for doc, rank, _ in ranking if doc == query.doc_id), None)
    return {
        "query_id": query.query_id,
        "text": query.text,
        "answers": list(query.answers),
        "target": query.target,
        "relevant_units": list(query.relevant_units),
        "generated": generated,
        "retrieved": retrieved,
        "gold_rank": gold_rank,
        "run_depth": len(ranking),
        "gold_document": {k: gold[k] for k in ("doc_id", "title", "text", "units")},
        "token_weights": {
            "offsets": [[int(s), int(e)] for s, e in weights.offsets],
            "weights": _finite_or_none(weights.weights),
        },
        "unit_scores": _finite_or_none(unit_scores),
        "length_scores": _finite_or_none(length_scores),
        "attention_entropy": float(entropy),
    }


def explain_data(
    model_dir: str | os.PathLike,
    dataset: str,
    corpus_path: str | os.PathLike,
    queries_path: str | os.PathLike,
    run_path: str | os.PathLike,
    settings: ExplainSettings | Mapping,
    localization: Mapping,
    top_tokens: int,
    generation: Mapping,
    seed: int,
    out_json: str | os.PathLike,
    model_name: str = "GeAR",
    device: str | None = None,
) -> dict:
    """Run GeAR on a sample of queries and write everything the page shows as JSON.

    Args:
        model_dir: the GeAR model folder (``Layout.final_model(variant, scenario)``).
        dataset: the data set's name.
        corpus_path, queries_path: its normalised ``corpus.jsonl`` and ``queries.jsonl``.
        run_path: GeAR's TREC run file on it.
        settings: ``reports.explain`` (:class:`ExplainSettings` or the mapping).
        localization: the config's ``gear.localization`` section.
        top_tokens: tokens in bold per query (``reports.figure3.top_tokens``).
        generation: the config's ``evaluate.generation`` section.
        seed: the run's seed (draws the sample).
        out_json: where to write.

    Returns:
        ``{"dataset", "model", "layer", "top_documents", "top_tokens", "queries": [...]}``; each
        query holds ``retrieved`` (rank, doc_id, score, title, text, gold), ``gold_rank``,
        ``gold_document`` (doc_id, title, text, units), ``token_weights`` (offsets, weights),
        ``unit_scores`` (one per unit, None where the document was truncated), ``length_scores``
        (what uniform attention would give the same units: the unit-length reference),
        ``attention_entropy`` (mean normalised entropy, 1 = uniform), ``relevant_units``
        and ``generated``.
    """
    started = time.time()
    if not isinstance(settings, ExplainSettings):
        settings = dataclass_from_mapping(ExplainSettings, dict(settings), "reports.explain")
    loc = dataclass_from_mapping(LocalizationConfig, dict(localization), "gear.localization")
    sample, runs, documents = _sample_with_documents(corpus_path, queries_path, run_path, settings, seed)

    model, tokenizer = load_gear(model_dir, device=device)
    golds = [documents[q.doc_id] for q in sample]
    generated, found = _generate_and_localize(model, tokenizer, sample, golds, loc, generation)
    scores, entropies = found.by_layer[loc.layer], found.entropy[loc.layer]

    out_queries = []
    for i, (query, gold, text, unit_score) in enumerate(zip(sample, golds, generated, scores, strict=True)):
        weights = token_weights(model, tokenizer, query.text, gold["text"], loc)
        ranking = runs[query.query_id]
        retrieved = _retrieved(ranking, documents, query.doc_id, settings.top_documents)
        out_queries.append(
            _query_record(
                query, gold, text, ranking, retrieved, weights, unit_score, found.uniform[i], entropies[i]
            )
        )
    data = {
        "dataset": dataset,
        "model": model_name,
        "model_dir": str(model_dir),
        "layer": loc.layer,
        "top_documents": settings.top_documents,
        "top_tokens": top_tokens,
        "queries": out_queries,
        "wall_time_s": round(time.time() - started, 3),
    }
    write_json(out_json, data)
    return data


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

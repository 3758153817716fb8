"""The data of Figure 3 / 5, computed from a trained GeAR model.

One document of ``reports.figure3.dataset`` and two of its queries; for each query GeAR's
cross-attention weight on every document token (``gear.inference.token_weights`` at layer
``gear.localization.layer``, reduced as configured) and its generated text
(``gear.inference.generate``, decoding as ``evaluate.generation``). The
``reports.figure3.top_tokens`` highest-weight tokens of each query are kept with their
character spans into the document; :func:`gear.report.figures.draw_figure3` draws them.

Choices the paper leaves open, made here:
- The example is picked deterministically: among documents with at least two queries whose
  texts and targets differ (two questions about different things, as in the paper's Figure 3),
  preferring documents of at most :data:`PREFERRED_MAX_CHARS` characters (the paper shows a
  paragraph; a long document would make an unreadable figure), one document is drawn with
  ``random.Random(seed)`` from the sorted ids; its first two such queries in file order are used.
  Fine-grained queries with a relevant unit are preferred, so the highlighted tokens can be
  checked against the answer's sentence.
- Special tokens (empty character span) are never highlighted.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_prep.normalized import load_queries
from gear.config import dataclass_from_mapping
from gear.inference import LocalizationConfig, generate, load_gear, token_weights
from gear.io import DataFormatError, iter_jsonl, require_fields, write_json

log = logging.getLogger(__name__)

PREFERRED_MAX_CHARS = 1500


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def choose_example(queries: Sequence, seed: int) -> tuple[str, list]:
    """Pick the Figure 3 document and its two queries (see the module docstring for the rule).

    Args:
        queries: ``data_prep.normalized.Query`` objects of the data set, in file order.
        seed: the run's seed.

    Returns:
        ``(doc_id, [query_1, query_2])``.

    Raises:
        ValueError: no document has two distinct queries.
    """
    by_doc: dict[str, list] = {}
    for query in queries:
        by_doc.setdefault(query.doc_id, []).append(query)

    def distinct_pair(group: list) -> list | None:
        ordered = sorted(group, key=lambda q: not (q.fine_grained and q.relevant_units))  # stable
        first = ordered[0]
        for other in ordered[1:]:
            if _normal(other.text) != _normal(first.text) and _normal(other.target) != _normal(first.target):
                return sorted([first, other], key=group.index)
        return None

    pairs = {
        doc_id: pair for doc_id, group in by_doc.items() if len(group) >= 2 and (pair := distinct_pair(group))
    }
    if not pairs:
        raise ValueError(
            "Figure 3 needs a document with two queries about different things; this data set has none"
        )
    eligible = sorted(pairs)
    doc_id = random.Random(seed).choice(eligible)
    return doc_id, pairs[doc_id]


def read_documents(corpus_path: str | os.PathLike, doc_ids: set[str] | Sequence[str]) -> dict[str, dict]:
    """The named documents of a ``corpus.jsonl``, streamed (a corpus of millions is not loaded whole).

    Raises:
        DataFormatError: a needed document is missing, or its line is malformed.
    """
    wanted = set(doc_ids)
    found: dict[str, dict] = {}
    for line, obj in tqdm(
        iter_jsonl(corpus_path), desc=f"reading {Path(corpus_path).name}", unit=" docs", mininterval=30
    ):
        doc_id = obj.get("doc_id")
        if doc_id in wanted and doc_id not in found:
            require_fields(
                obj, {"doc_id": str, "title": str, "text": str, "units": list}, f"{corpus_path}:{line}"
            )
            found[doc_id] = obj
            if len(found) == len(wanted):
                break
    missing = wanted - set(found)
    if missing:
        raise DataFormatError(f"{corpus_path}: document(s) {sorted(missing)[:5]} not found")
    return found


def top_token_spans(weights, document: str, k: int) -> list[dict]:
    """The ``k`` document tokens with the highest weight, as character spans.

    Args:
        weights: a ``gear.inference.TokenWeights``: ``tokens`` (n), ``offsets`` (n spans into
            ``document``), ``weights`` ``(n,)``.
        document: the text the offsets index into.
        k: how many tokens to keep.

    Returns:
        Up to ``k`` dicts ``{"rank", "token", "start", "end", "text", "weight"}``, by weight,
        highest first; tokens with an empty span (special tokens) are never chosen.
    """
    offsets = np.asarray(weights.offsets, dtype=np.int64).reshape(-1, 2)
    values = np.asarray(weights.weights, dtype=np.float64).reshape(-1)
    if len(offsets) != len(values) or len(weights.tokens) != len(values):
        raise ValueError(
            f"token_weights: {len(weights.tokens)} tokens, {len(offsets)} offsets, {len(values)} weights"
        )
    if len(offsets) and (offsets.min() < 0 or offsets.max() > len(document)):
        raise ValueError("token_weights: an offset lies outside the document")
    real = offsets[:, 1] > offsets[:, 0]
    candidates = np.flatnonzero(real & np.isfinite(values))
    order = candidates[np.argsort(-values[candidates], kind="stable")][:k]
    return [
        {
            "rank": rank + 1,
            "token": str(weights.tokens[i]),
            "start": int(offsets[i, 0]),
            "end": int(offsets[i, 1]),
            "text": document[offsets[i, 0] : offsets[i, 1]],
            "weight": float(values[i]),
        }
        for rank, i in enumerate(order)
    ]


def figure3_data(
    model_dir: str | os.PathLike,
    dataset: str,
    corpus_path: str | os.PathLike,
    queries_path: str | os.PathLike,
    localization: Mapping,
    top_tokens: int,
    generation: Mapping,
    seed: int,
    out_json: str | os.PathLike,
    device: str | None = None,
) -> dict:
    """Compute the Figure 3 data with a trained GeAR model and write it as JSON.

    Args:
        model_dir: the GeAR model folder (``Layout.final_model(variant, scenario)``).
        dataset: the data set's name (``reports.figure3.dataset``).
        corpus_path, queries_path: its normalised ``corpus.jsonl`` and ``queries.jsonl``.
        localization: the config's ``gear.localization`` section (layer and reductions).
        top_tokens: tokens highlighted per query (``reports.figure3.top_tokens``).
        generation: the config's ``evaluate.generation`` section (``max_new_tokens``, ``num_beams``).
        seed: the run's seed (picks the example).
        out_json: where to write.
        device: torch device; default: CUDA when available.

    Returns:
        ``{"dataset", "model_dir", "layer", "localization", "top_tokens", "document": {doc_id,
        title, text}, "queries": [{query_id, text, target, answers, relevant_units, generated,
        top: [...]}, ...], "wall_time_s"}``.
    """
    started = time.time()
    queries = load_queries(queries_path)
    doc_id, pair = choose_example(_prefer_short(queries, corpus_path), seed)
    document = read_documents(corpus_path, {doc_id})[doc_id]
    log.info("Figure 3 example: %s document %s, queries %s", dataset, doc_id, [q.query_id for q in pair])

    loc = dataclass_from_mapping(LocalizationConfig, dict(localization), "gear.localization")
    model, tokenizer = load_gear(model_dir, device=device)
    generated = generate(
        model,
        tokenizer,
        [q.text for q in pair],
        [document["text"]] * len(pair),
        max_new_tokens=int(generation["max_new_tokens"]),
        num_beams=int(generation["num_beams"]),
        batch_size=int(generation.get("batch_size", 16)),
    )
    out_queries = []
    for query, text in zip(pair, generated, strict=True):
        weights = token_weights(model, tokenizer, query.text, document["text"], loc)
        out_queries.append(
            {
                "query_id": query.query_id,
                "text": query.text,
                "target": query.target,
                "answers": list(query.answers),
                "relevant_units": list(query.relevant_units),
                "generated": text,
                "top": top_token_spans(weights, document["text"], top_tokens),
            }
        )
    data = {
        "dataset": dataset,
        "model_dir": str(model_dir),
        "layer": loc.layer,
        "localization": dict(localization),
        "top_tokens": top_tokens,
        "document": {
            "doc_id": doc_id,
            "title": document["title"],
            "text": document["text"],
            "units": document["units"],
        },
        "queries": out_queries,
        "wall_time_s": round(time.time() - started, 3),
    }
    write_json(out_json, data)
    return data


def _prefer_short(queries: Sequence, corpus_path: str | os.PathLike) -> list:
    """The queries whose documents have at most PREFERRED_MAX_CHARS characters, if any of those
    documents has two queries; all queries otherwise."""
    counts: dict[str, int] = {}
    for query in queries:
        counts[query.doc_id] = counts.get(query.doc_id, 0) + 1
    multi = {doc_id for doc_id, n in counts.items() if n >= 2}
    if not multi:
        return list(queries)
    short = set()
    for _, obj in tqdm(iter_jsonl(corpus_path), desc="document lengths", unit=" docs", mininterval=30):
        if obj.get("doc_id") in multi and len(obj.get("text", "")) <= PREFERRED_MAX_CHARS:
            short.add(obj["doc_id"])
    kept = [q for q in queries if q.doc_id in short]
    try:
        choose_example(kept, 0)
    except ValueError:
        return list(queries)
    return kept

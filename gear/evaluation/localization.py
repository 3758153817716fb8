"""The localization evaluator: units scored by GeAR's cross-attention or a bi-encoder, R@k and M@k."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from gear.encoding import TextEncoder
from gear.evaluation.dataset import EvalDataset, localization_sample
from gear.evaluation.embeddings import encode_texts
from gear.evaluation.metrics import (
    break_ties_at_random,
    localization_metrics,
    random_unit_scores,
    summarize,
)
from gear.evaluation.results import build_result, format_metrics, result_provenance
from gear.evaluation.settings import EvaluateSettings
from gear.inference import localize_units
from gear.io import write_json

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Localization
# --------------------------------------------------------------------------------------------


class UnitScorer(Protocol):
    """Scores each unit of a document for a query (higher: more likely the relevant unit)."""

    name: str

    def score_units(
        self, queries: Sequence[str], documents: Sequence[str], units: Sequence[Sequence[tuple[int, int]]]
    ) -> list[np.ndarray]:
        """One float array per (query, document) pair, one score per unit of the document."""


class BiEncoderUnitScorer:
    """Localization by a bi-encoder (paper section 4.2): each unit (``text[start:end]``) embedded
    with ``encode_documents``, the query with ``encode_queries``, scored by inner product.

    Identical unit texts are encoded once; with ``cache_root`` the unit vectors go through the
    embedding cache like a corpus.
    """

    def __init__(self, encoder: TextEncoder, batch_size: int = 32, cache_root: str | Path | None = None):
        self.encoder = encoder
        self.name = encoder.name
        self.batch_size = batch_size
        self.cache_root = cache_root

    def score_units(
        self, queries: Sequence[str], documents: Sequence[str], units: Sequence[Sequence[tuple[int, int]]]
    ) -> list[np.ndarray]:
        slot: dict[str, int] = {}
        rows = []
        for document, spans in zip(documents, units, strict=True):
            rows.append(
                np.array([slot.setdefault(document[s:e], len(slot)) for s, e in spans], dtype=np.int64)
            )
        vectors = encode_texts(self.encoder, list(slot), self.cache_root, batch_size=self.batch_size)
        vectors = vectors.to_array() if not isinstance(vectors, np.ndarray) else vectors
        query_vectors = encode_texts(
            self.encoder, list(queries), None, kind="queries", batch_size=self.batch_size
        )
        return [vectors[row] @ q for row, q in zip(rows, query_vectors, strict=True)]


class GearUnitScorer:
    """Localization by GeAR's fusion-encoder cross-attention (``gear.inference.unit_scores``).

    Args:
        model, tokenizer: from ``gear.inference.load_gear``.
        localization: ``gear.inference.LocalizationConfig`` (layer and reductions, config
            ``gear.localization``).
        batch_size: (query, document) pairs per forward pass.
        name: model name in results.
    """

    def __init__(self, model, tokenizer, localization, batch_size: int = 16, name: str = "GeAR"):
        self.model = model
        self.tokenizer = tokenizer
        self.localization = localization
        self.batch_size = batch_size
        self.name = name

    def localize(
        self,
        queries: Sequence[str],
        documents: Sequence[str],
        units: Sequence[Sequence[tuple[int, int]]],
        layers: Sequence[int] | None = None,
    ):
        """``gear.inference.UnitScores`` at each of ``layers`` (default: the configured layer),
        with the uniform-attention scores and attention entropies, from one pass per batch."""
        return localize_units(
            self.model,
            self.tokenizer,
            list(queries),
            list(documents),
            [list(u) for u in units],
            layers=list(layers or [self.localization.layer]),
            localization=self.localization,
            batch_size=self.batch_size,
        )

    def score_layers(
        self,
        queries: Sequence[str],
        documents: Sequence[str],
        units: Sequence[Sequence[tuple[int, int]]],
        layers: Sequence[int],
    ) -> dict[int, list[np.ndarray]]:
        """Unit scores at each of ``layers`` (1-based), from one forward pass per batch."""
        return self.localize(queries, documents, units, layers).by_layer

    def score_units(
        self, queries: Sequence[str], documents: Sequence[str], units: Sequence[Sequence[tuple[int, int]]]
    ) -> list[np.ndarray]:
        layer = self.localization.layer
        return self.score_layers(queries, documents, units, [layer])[layer]


def localization_inputs(data: EvalDataset) -> tuple[list, dict[str, int], list[str], list[str], list[list]]:
    queries, skipped = localization_sample(data)
    documents = [data.gold(q) for q in queries]
    return (
        queries,
        skipped,
        [q.text for q in queries],
        [d.text for d in documents],
        [d.units for d in documents],
    )


def evaluate_localization(
    scorer: UnitScorer,
    data: EvalDataset,
    settings: EvaluateSettings,
    *,
    out_json: str | Path,
    provenance_config: dict | None = None,
    model_name: str | None = None,
) -> dict:
    """Rank the units of each query's gold document and write ``R@k`` / ``M@k`` with intervals.

    Args:
        scorer: :class:`BiEncoderUnitScorer`, :class:`GearUnitScorer`, or any :class:`UnitScorer`
            (``baselines.lexical.BM25Retriever`` scores units by BM25).
        data: the test set.
        settings: the ``evaluate`` section (k per scenario, bootstrap).
        out_json: result path (``Layout.eval_json(model, dataset, "localization")``).
        provenance_config: the config the result is computed under.
        model_name: name in the result (default ``scorer.name``).
    """
    started = time.time()
    name = model_name or scorer.name
    queries, skipped, query_texts, doc_texts, units = localization_inputs(data)
    k = settings.localization_k(data.name)
    relevant = [q.relevant_units for q in queries]
    attention = None
    if hasattr(scorer, "localize") and queries:  # GeAR: scores, uniform attention, entropy in one pass
        attention = scorer.localize(query_texts, doc_texts, units)
        scores = attention.by_layer[scorer.localization.layer]
    else:
        scores = scorer.score_units(query_texts, doc_texts, units) if queries else []
    check_unit_scores(scores, units, name)
    per_query = localization_metrics(scores, relevant, k)
    references = {
        "random": localization_metrics(
            random_unit_scores([len(u) for u in units], settings.bootstrap.seed), relevant, k
        )
    }
    if attention is not None:
        references["unit_length"] = localization_metrics(
            break_ties_at_random(attention.uniform, settings.bootstrap.seed), relevant, k
        )
    result = build_result(
        model=name,
        dataset=data.name,
        task="localization",
        query_ids=[q.query_id for q in queries],
        per_query=per_query,
        skipped=skipped,
        bootstrap=settings.bootstrap,
        provenance_block=result_provenance(
            provenance_config, settings, started, scorer=type(scorer).__name__
        ),
    )
    result["references"] = {
        ref: dict(zip(("metrics", "ci"), summarize(values, *bootstrap_args(settings)), strict=True))
        for ref, values in references.items()
    }
    if attention is not None:
        layer = scorer.localization.layer
        result["attention_entropy"] = {"layer": int(layer), "mean": float(attention.entropy[layer].mean())}
        result["per_query"]["attention_entropy"] = [float(v) for v in attention.entropy[layer]]
    write_json(out_json, result)
    log.info(
        "%s on %s localization: %s; references %s (skipped %s)",
        name,
        data.name,
        format_metrics(result["metrics"]),
        {ref: format_metrics(r["metrics"]) for ref, r in result["references"].items()},
        skipped,
    )
    return result


def bootstrap_args(settings: EvaluateSettings) -> tuple[int, int, float]:
    return settings.bootstrap.resamples, settings.bootstrap.seed, settings.bootstrap.confidence


def check_unit_scores(scores: Sequence[np.ndarray], units: Sequence[Sequence], name: str) -> None:
    if len(scores) != len(units):
        raise ValueError(f"{name}: {len(scores)} unit score arrays for {len(units)} queries")
    for i, (row, spans) in enumerate(zip(scores, units, strict=True)):
        if len(row) != len(spans):
            raise ValueError(
                f"{name}: query {i} got {len(row)} unit scores for a document of {len(spans)} units"
            )

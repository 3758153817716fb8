"""Evaluating every model: retrieval, unit localization, generation, and GeAR's layer and epoch analyses.

Each ``evaluate_*`` / ``*_analysis`` function reads one normalised test set (:class:`EvalDataset`),
computes per-query metrics with :mod:`gear.evaluation.metrics`, a 95% percentile bootstrap interval for each
(config ``evaluate.bootstrap``), and writes one JSON atomically in the layout of ARCHITECTURE.md
"Evaluation results":

- :func:`evaluate_retrieval` (any :class:`~gear.encoding.TextEncoder`): the corpus is encoded
  once through the embedding cache of :mod:`gear.evaluation.search`, searched exactly by inner product; the
  top ``evaluate.retrieval.depth`` go to a TREC run file; ``R@k`` / ``M@k`` with
  ``k = evaluate.retrieval.k``.
- :func:`evaluate_localization`: units of the gold document ranked by a :class:`UnitScorer`:
  :class:`BiEncoderUnitScorer` (each unit embedded as a document, ranked by inner product with
  the query; paper section 4.2) or :class:`GearUnitScorer` (GeAR's cross-attention,
  ``gear.inference.unit_scores``). ``k = evaluate.localization.k_qa`` for QA sets, ``k_rir`` for
  RIR. Queries that are not ``fine_grained`` or have no relevant unit are skipped and counted.
  Ties are ranked pessimistically (see :mod:`gear.evaluation.metrics`).
- :func:`evaluate_generation` (GeAR): greedy or beam decoding for the ``fine_grained`` queries;
  QA exact match / token F1 over the gold answers, RIR ROUGE-1 / ROUGE-L against the target.
- :func:`layer_analysis` (Figure 4c): localization at every cross-attention layer, all from one
  forward pass per batch.
- :func:`epoch_analysis` (Figure 4a/b): localization and generation for every saved epoch.

Choices the paper leaves open (SPEC is silent), made here:
- Documents are encoded for retrieval as their ``text`` alone (not title + text): ``text`` is
  what the units index into, what GeAR localizes and generates from, and what the training
  triples' ``document`` holds.
- Per-query arrays keep the order of ``queries.jsonl`` (after skipping), so two models' arrays
  of one data set line up for paired tests; the bootstrap resamples depend on (n, resamples,
  seed) only.

The Snakemake rules (``workflow/rules/evaluate.smk``) get their inputs, params and wildcard
patterns from ``gear.workflow.evaluation_plan`` (which also lists every output of a run) and call
the ``run_*`` job functions at the end of this module, which build the encoder from the registry
entry. Adding a model to evaluate is one
registry entry (``config/baselines.yaml``); adding a data set is a builder in ``data_prep/`` and
its name in ``gear.layout``: nothing here changes.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from baselines.registry import ModelEntry, build_encoder, trained_model_dir
from data_prep.normalized import load_corpus, load_queries
from gear.config import ConfigError, dataclass_from_mapping
from gear.encoding import TextEncoder
from gear.evaluation.metrics import (
    break_ties_at_random,
    localization_metrics,
    qa_generation_metrics,
    random_unit_scores,
    retrieval_metrics,
    rouge_metrics,
    summarize,
)
from gear.evaluation.search import SearchSettings, encode_texts, search, write_run
from gear.inference import LocalizationConfig, generate, load_gear, localize_units
from gear.io import DataFormatError, write_json
from gear.layout import Layout, scenario_of
from gear.provenance import provenance

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Settings: the config's `evaluate` section as typed dataclasses
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrievalSettings:
    depth: int  # results kept per query (run file)
    k: int  # cut-off of R@k / M@k (paper: 5)


@dataclass(frozen=True)
class LocalizationSettings:
    k_qa: int  # cut-off for QA data sets (paper: 1)
    k_rir: int  # cut-off for RIR (paper: 3)


@dataclass(frozen=True)
class GenerationSettings:
    num_beams: int  # 1 = greedy (the paper's default)
    max_new_tokens: int
    batch_size: int


@dataclass(frozen=True)
class BootstrapSettings:
    resamples: int  # 1,000 (SPEC 7)
    seed: int
    confidence: float  # 0.95


@dataclass(frozen=True)
class EvaluateSettings:
    """The config's ``evaluate`` section (see ``config/paper.yaml`` for each key's meaning)."""

    batch_size: int
    retrieval: RetrievalSettings
    localization: LocalizationSettings
    generation: GenerationSettings
    bootstrap: BootstrapSettings
    models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    epoch_analysis: dict = field(default_factory=dict)
    layer_analysis: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.retrieval.depth < self.retrieval.k:
            raise ConfigError(
                f"evaluate.retrieval.depth {self.retrieval.depth} is below evaluate.retrieval.k "
                f"{self.retrieval.k}: R@k needs at least k results per query"
            )

    @classmethod
    def from_config(cls, section: dict) -> EvaluateSettings:
        """Build from the ``evaluate`` mapping; unknown or missing keys fail naming the key."""
        return dataclass_from_mapping(cls, section, "evaluate")

    def localization_k(self, dataset: str) -> int:
        return self.localization.k_qa if scenario_of(dataset) == "qar" else self.localization.k_rir


# --------------------------------------------------------------------------------------------
# The test set
# --------------------------------------------------------------------------------------------


@dataclass
class EvalDataset:
    """One normalised test set in memory (``data_prep.normalized`` format).

    Attributes:
        name: data set name (``squad``, ``rir``, ...), which fixes the scenario.
        documents: the corpus, in file order.
        queries: the queries, in file order.
        position: doc_id -> position in ``documents``.
    """

    name: str
    documents: list
    queries: list
    position: dict[str, int]

    @property
    def scenario(self) -> str:
        return scenario_of(self.name)

    def gold(self, query) -> Any:
        return self.documents[self.position[query.doc_id]]

    @classmethod
    def load(cls, name: str, corpus_path: str | Path, queries_path: str | Path) -> EvalDataset:
        """Read ``corpus.jsonl`` and ``queries.jsonl``; a query naming an unknown document, or a
        relevant unit outside its document, fails with the file and query id."""
        scenario_of(name)  # fails early on an unknown data set name
        documents = load_corpus(corpus_path)
        queries = load_queries(queries_path)
        position: dict[str, int] = {}
        for i, doc in enumerate(documents):
            if doc.doc_id in position:
                raise DataFormatError(f"{corpus_path}: document id {doc.doc_id!r} appears twice")
            position[doc.doc_id] = i
        for query in queries:
            if query.doc_id not in position:
                raise DataFormatError(
                    f"{queries_path}: query {query.query_id!r} names document {query.doc_id!r}, "
                    f"which is not in {corpus_path}"
                )
            n_units = len(documents[position[query.doc_id]].units)
            bad = [u for u in query.relevant_units if not 0 <= u < n_units]
            if bad:
                raise DataFormatError(
                    f"{queries_path}: query {query.query_id!r} has relevant units {bad} but its document "
                    f"{query.doc_id!r} has {n_units} units"
                )
        if not queries:
            raise DataFormatError(f"{queries_path}: no queries")
        return cls(name, documents, queries, position)


def unit_texts(document) -> list[str]:
    """The text of each unit of a document (``text[start:end]``)."""
    return [document.text[start:end] for start, end in document.units]


def localization_sample(data: EvalDataset) -> tuple[list, dict[str, int]]:
    """The queries localization is scored on, and the counts of those skipped (by reason).

    A query is skipped when it is not ``fine_grained`` (RIR keeps a sample) or, among the
    fine-grained ones, when it has no relevant unit (QA: no unit contains an answer).
    """
    kept, skipped = [], {"not_fine_grained": 0, "no_relevant_unit": 0}
    for query in data.queries:
        if not query.fine_grained:
            skipped["not_fine_grained"] += 1
        elif not query.relevant_units:
            skipped["no_relevant_unit"] += 1
        else:
            kept.append(query)
    return kept, skipped


def generation_sample(data: EvalDataset) -> tuple[list, dict[str, int]]:
    """The ``fine_grained`` queries generation is scored on (a query without relevant unit is
    kept: SPEC 2), and the count of the others."""
    kept = [q for q in data.queries if q.fine_grained]
    return kept, {"not_fine_grained": len(data.queries) - len(kept)}


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


def build_result(
    *,
    model: str,
    dataset: str,
    task: str,
    query_ids: Sequence[str],
    per_query: dict[str, np.ndarray],
    skipped: dict[str, int],
    bootstrap: BootstrapSettings,
    provenance_block: dict,
    extra_per_query: dict[str, list] | None = None,
) -> dict:
    """A result JSON object (ARCHITECTURE.md "Evaluation results") from per-query metrics."""
    if not query_ids:
        raise ValueError(f"{model} on {dataset} ({task}): no query left to evaluate (skipped: {skipped})")
    metrics, ci = summarize(per_query, bootstrap.resamples, bootstrap.seed, bootstrap.confidence)
    rows: dict[str, list] = {"query_id": list(query_ids)}
    rows.update({name: [float(v) for v in values] for name, values in per_query.items()})
    rows.update(extra_per_query or {})
    return {
        "model": model,
        "dataset": dataset,
        "task": task,
        "scenario": scenario_of(dataset),
        "metrics": metrics,
        "ci": ci,
        "per_query": rows,
        "n_queries": len(query_ids),
        "skipped": dict(skipped),
        "bootstrap": dataclasses.asdict(bootstrap),
        "provenance": provenance_block,
    }


def _provenance(config: dict | None, settings: EvaluateSettings, started: float, **extra) -> dict:
    return provenance(config or {}, settings.bootstrap.seed, started, **extra)


# --------------------------------------------------------------------------------------------
# Retrieval
# --------------------------------------------------------------------------------------------


def evaluate_retrieval(
    encoder: TextEncoder,
    data: EvalDataset,
    settings: EvaluateSettings,
    *,
    out_json: str | Path,
    run_file: str | Path | None = None,
    cache_root: str | Path | None = None,
    search_settings: SearchSettings | None = None,
    provenance_config: dict | None = None,
    model_name: str | None = None,
) -> dict:
    """Retrieve for every query of ``data`` and write ``R@k`` / ``M@k`` with intervals.

    Args:
        encoder: the model.
        data: the test set; each query's relevant document is its ``doc_id``.
        settings: the ``evaluate`` section (depth, k, batch size, bootstrap).
        out_json: result path (``Layout.eval_json(model, dataset, "retrieval")``).
        run_file: TREC run path (``Layout.run_file``), written when given.
        cache_root: embedding cache folder (``Layout.embedding_cache()``); None encodes in memory.
        search_settings: shard size, RAM budget, GPU choice.
        provenance_config: the config the result is computed under (hashed into provenance).
        model_name: name in the result (default ``encoder.name``).

    Returns:
        the result object written to ``out_json``.
    """
    started = time.time()
    search_settings = search_settings or SearchSettings()
    name = model_name or encoder.name
    texts = [doc.text for doc in data.documents]
    store = encode_texts(
        encoder, texts, cache_root, batch_size=settings.batch_size, shard_size=search_settings.shard_size
    )
    query_vectors = encode_texts(
        encoder, [q.text for q in data.queries], None, kind="queries", batch_size=settings.batch_size
    )
    scores, ids = search(store, query_vectors, settings.retrieval.depth, search_settings)
    if run_file is not None:
        write_run(
            run_file,
            [q.query_id for q in data.queries],
            [d.doc_id for d in data.documents],
            ids,
            scores,
            name,
        )
    gold = [[data.position[q.doc_id]] for q in data.queries]
    per_query = retrieval_metrics(ids, scores, gold, settings.retrieval.k)
    result = build_result(
        model=name,
        dataset=data.name,
        task="retrieval",
        query_ids=[q.query_id for q in data.queries],
        per_query=per_query,
        skipped={},
        bootstrap=settings.bootstrap,
        provenance_block=_provenance(
            provenance_config,
            settings,
            started,
            encoder_fingerprint=encoder.fingerprint(),
            documents=len(texts),
            depth=settings.retrieval.depth,
        ),
    )
    write_json(out_json, result)
    log.info("%s on %s retrieval: %s", name, data.name, _format(result["metrics"]))
    return result


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


def _localization_inputs(data: EvalDataset) -> tuple[list, dict[str, int], list[str], list[str], list[list]]:
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
        scorer: :class:`BiEncoderUnitScorer` or :class:`GearUnitScorer`.
        data: the test set.
        settings: the ``evaluate`` section (k per scenario, bootstrap).
        out_json: result path (``Layout.eval_json(model, dataset, "localization")``).
        provenance_config: the config the result is computed under.
        model_name: name in the result (default ``scorer.name``).
    """
    started = time.time()
    name = model_name or scorer.name
    queries, skipped, query_texts, doc_texts, units = _localization_inputs(data)
    k = settings.localization_k(data.name)
    relevant = [q.relevant_units for q in queries]
    attention = None
    if hasattr(scorer, "localize") and queries:  # GeAR: scores, uniform attention, entropy in one pass
        attention = scorer.localize(query_texts, doc_texts, units)
        scores = attention.by_layer[scorer.localization.layer]
    else:
        scores = scorer.score_units(query_texts, doc_texts, units) if queries else []
    _check_unit_scores(scores, units, name)
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
        provenance_block=_provenance(provenance_config, settings, started, scorer=type(scorer).__name__),
    )
    result["references"] = {
        ref: dict(zip(("metrics", "ci"), summarize(values, *_bootstrap_args(settings)), strict=True))
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
        _format(result["metrics"]),
        {ref: _format(r["metrics"]) for ref, r in result["references"].items()},
        skipped,
    )
    return result


def _bootstrap_args(settings: EvaluateSettings) -> tuple[int, int, float]:
    return settings.bootstrap.resamples, settings.bootstrap.seed, settings.bootstrap.confidence


def _check_unit_scores(scores: Sequence[np.ndarray], units: Sequence[Sequence], name: str) -> None:
    if len(scores) != len(units):
        raise ValueError(f"{name}: {len(scores)} unit score arrays for {len(units)} queries")
    for i, (row, spans) in enumerate(zip(scores, units, strict=True)):
        if len(row) != len(spans):
            raise ValueError(
                f"{name}: query {i} got {len(row)} unit scores for a document of {len(spans)} units"
            )


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------

Generator = Callable[[Sequence[str], Sequence[str]], list[str]]


class GearGenerator:
    """GeAR's decoder (``gear.inference.generate``) with the config's decoding settings."""

    def __init__(self, model, tokenizer, generation: GenerationSettings):
        self.model = model
        self.tokenizer = tokenizer
        self.generation = generation

    def __call__(self, queries: Sequence[str], documents: Sequence[str]) -> list[str]:
        return generate(
            self.model,
            self.tokenizer,
            list(queries),
            list(documents),
            max_new_tokens=self.generation.max_new_tokens,
            num_beams=self.generation.num_beams,
            batch_size=self.generation.batch_size,
        )


def generation_metrics(dataset: str, predictions: Sequence[str], queries: Sequence) -> dict[str, np.ndarray]:
    """QA: ``EM`` / ``F1`` over each query's ``answers``; RIR: ``ROUGE-1`` / ``ROUGE-L`` against ``target``."""
    if scenario_of(dataset) == "qar":
        empty = [q.query_id for q in queries if not q.answers]
        if empty:
            raise DataFormatError(
                f"{dataset}: queries without gold answers cannot score generation: {empty[:5]}"
            )
        return qa_generation_metrics(predictions, [q.answers for q in queries])
    return rouge_metrics(predictions, [q.target for q in queries])


def evaluate_generation(
    generator: Generator,
    data: EvalDataset,
    settings: EvaluateSettings,
    *,
    out_json: str | Path,
    model_name: str = "GeAR",
    provenance_config: dict | None = None,
) -> dict:
    """Generate for the ``fine_grained`` queries and write EM / F1 (QA) or ROUGE (RIR) with intervals.

    Args:
        generator: ``(queries, documents) -> texts``, e.g. :class:`GearGenerator`.
        data: the test set (each query is given its gold document).
        settings: the ``evaluate`` section.
        out_json: result path (``Layout.eval_json(model, dataset, "generation")``); the
            predictions go into ``per_query.prediction``.
    """
    started = time.time()
    queries, skipped = generation_sample(data)
    predictions = (
        generator([q.text for q in queries], [data.gold(q).text for q in queries]) if queries else []
    )
    if len(predictions) != len(queries):
        raise ValueError(f"{model_name}: {len(predictions)} generations for {len(queries)} queries")
    per_query = generation_metrics(data.name, predictions, queries)
    result = build_result(
        model=model_name,
        dataset=data.name,
        task="generation",
        query_ids=[q.query_id for q in queries],
        per_query=per_query,
        skipped=skipped,
        bootstrap=settings.bootstrap,
        provenance_block=_provenance(
            provenance_config, settings, started, generation=dataclasses.asdict(settings.generation)
        ),
        extra_per_query={"prediction": list(predictions)},
    )
    write_json(out_json, result)
    log.info("%s on %s generation: %s", model_name, data.name, _format(result["metrics"]))
    return result


# --------------------------------------------------------------------------------------------
# Layer analysis (Figure 4c) and epoch analysis (Figure 4a/b)
# --------------------------------------------------------------------------------------------


def layer_analysis(
    scorer: GearUnitScorer,
    data: EvalDataset,
    settings: EvaluateSettings,
    layers: Sequence[int],
    *,
    out_json: str | Path,
    provenance_config: dict | None = None,
    model_name: str | None = None,
) -> dict:
    """Localization at each cross-attention layer (1-based), from one forward pass per batch.

    Writes ``{"model", "dataset", "layers": [...], "metrics": {"R@k": [...], "M@k": [...]},
    "ci": {"R@k": [[low, high], ...], ...}, "chosen_layer", "n_queries", "skipped", "provenance"}``
    (``Layout.layers_json``); ``chosen_layer`` is the configured ``gear.localization.layer``.
    """
    started = time.time()
    name = model_name or scorer.name
    layers = sorted(set(int(layer) for layer in layers))
    if not layers or layers[0] < 1:
        raise ValueError(f"layers must be 1-based and non-empty, got {layers}")
    queries, skipped, query_texts, doc_texts, units = _localization_inputs(data)
    if not queries:
        raise ValueError(f"{name} on {data.name}: no query left for localization (skipped: {skipped})")
    k = settings.localization_k(data.name)
    attention = scorer.localize(query_texts, doc_texts, units, layers)
    by_layer = attention.by_layer
    metrics: dict[str, list[float]] = {}
    ci: dict[str, list[list[float]]] = {}
    for layer in layers:
        if layer not in by_layer:
            raise ValueError(f"{name}: unit_scores returned no scores for layer {layer}")
        _check_unit_scores(by_layer[layer], units, name)
        means, intervals = summarize(
            localization_metrics(by_layer[layer], [q.relevant_units for q in queries], k),
            settings.bootstrap.resamples,
            settings.bootstrap.seed,
            settings.bootstrap.confidence,
        )
        for metric, value in means.items():
            metrics.setdefault(metric, []).append(value)
            ci.setdefault(metric, []).append(intervals[metric])
    result = {
        "model": name,
        "dataset": data.name,
        "scenario": data.scenario,
        "layers": layers,
        "metrics": metrics,
        "ci": ci,
        "chosen_layer": int(scorer.localization.layer),
        # What uniform attention gives on the same queries, and how far each layer is from it.
        "references": {
            "unit_length": dict(
                zip(
                    ("metrics", "ci"),
                    summarize(
                        localization_metrics(
                            break_ties_at_random(attention.uniform, settings.bootstrap.seed),
                            [q.relevant_units for q in queries],
                            k,
                        ),
                        *_bootstrap_args(settings),
                    ),
                    strict=True,
                )
            )
        },
        "attention_entropy": [float(attention.entropy[layer].mean()) for layer in layers],
        "n_queries": len(queries),
        "skipped": skipped,
        "provenance": _provenance(provenance_config, settings, started),
    }
    write_json(out_json, result)
    log.info("%s on %s by layer: %s", name, data.name, metrics)
    return result


def epoch_dirs(epochs_root: str | Path) -> list[tuple[int, Path]]:
    """``(epoch, folder)`` of every ``epoch_{e}`` folder under ``epochs_root``, by epoch number."""
    epochs_root = Path(epochs_root)
    if not epochs_root.is_dir():
        raise FileNotFoundError(f"{epochs_root}: no such folder of epoch checkpoints (train GeAR first)")
    found = []
    for child in epochs_root.iterdir():
        match = re.fullmatch(r"epoch_(\d+)", child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    if not found:
        raise FileNotFoundError(f"{epochs_root}: no epoch_{{e}} checkpoint folders")
    return sorted(found)


def epoch_analysis(
    epochs_root: str | Path,
    data: EvalDataset,
    settings: EvaluateSettings,
    localization,
    *,
    out_json: str | Path,
    model_name: str = "GeAR",
    device: str | None = None,
    provenance_config: dict | None = None,
) -> dict:
    """Localization and generation of every epoch checkpoint (Figure 4a/b).

    Args:
        epochs_root: ``Layout.model_root(variant, scenario) / "epochs"``.
        data: the scenario's test set (config ``evaluate.epoch_analysis``).
        settings: the ``evaluate`` section.
        localization: ``gear.inference.LocalizationConfig``.
        out_json: ``Layout.epochs_json(model, scenario)``.

    Writes ``{"model", "scenario", "dataset", "epochs": [1..E], "localization": {"R@k": [...],
    "M@k": [...]}, "generation": {"EM": [...], "F1": [...]} (or ROUGE), "ci": {"localization":
    {...}, "generation": {...}}, "n_queries": {...}, "provenance"}``.
    """
    started = time.time()
    checkpoints = epoch_dirs(epochs_root)
    loc_queries, loc_skipped, query_texts, doc_texts, units = _localization_inputs(data)
    gen_queries, gen_skipped = generation_sample(data)
    if not loc_queries or not gen_queries:
        raise ValueError(f"{data.name}: no query left for localization or generation")
    k = settings.localization_k(data.name)
    b = settings.bootstrap
    out: dict[str, dict[str, list]] = {"localization": {}, "generation": {}}
    ci: dict[str, dict[str, list]] = {"localization": {}, "generation": {}}
    for epoch, folder in checkpoints:
        log.info("epoch %d: %s", epoch, folder)
        model, tokenizer = load_gear(folder, device=device)
        scorer = GearUnitScorer(model, tokenizer, localization, settings.batch_size, model_name)
        scores = scorer.score_units(query_texts, doc_texts, units)
        _check_unit_scores(scores, units, f"{model_name} epoch {epoch}")
        loc = localization_metrics(scores, [q.relevant_units for q in loc_queries], k)
        predictions = GearGenerator(model, tokenizer, settings.generation)(
            [q.text for q in gen_queries], [data.gold(q).text for q in gen_queries]
        )
        gen = generation_metrics(data.name, predictions, gen_queries)
        for task, per_query in (("localization", loc), ("generation", gen)):
            means, intervals = summarize(per_query, b.resamples, b.seed, b.confidence)
            for metric, value in means.items():
                out[task].setdefault(metric, []).append(value)
                ci[task].setdefault(metric, []).append(intervals[metric])
        del model, tokenizer, scorer
    result = {
        "model": model_name,
        "scenario": data.scenario,
        "dataset": data.name,
        "epochs": [epoch for epoch, _ in checkpoints],
        "localization": out["localization"],
        "generation": out["generation"],
        "ci": ci,
        "n_queries": {"localization": len(loc_queries), "generation": len(gen_queries)},
        "skipped": {"localization": loc_skipped, "generation": gen_skipped},
        "provenance": _provenance(
            provenance_config, settings, started, checkpoints=[str(p) for _, p in checkpoints]
        ),
    }
    write_json(out_json, result)
    return result


def _format(metrics: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())


# --------------------------------------------------------------------------------------------
# One workflow job: a model on the data sets of a scenario
# --------------------------------------------------------------------------------------------


def gear_layer_count(model) -> int:
    """Number of cross-attention layers of a GeAR model: the fusion encoder is the query encoder,
    with one cross-attention block in each of its ``num_hidden_layers`` layers."""
    return int(model.config.num_hidden_layers)


def _entry(entry):
    """A registry entry from the dict a Snakemake rule passes (``dataclasses.asdict``)."""
    if isinstance(entry, ModelEntry):
        return entry
    entry = dict(entry)
    entry["tasks"] = tuple(entry["tasks"])
    return ModelEntry(**entry)


def _layout(cfg: dict) -> Layout:
    return Layout.from_config(cfg)


def _gear_localization(cfg: dict):
    return dataclass_from_mapping(LocalizationConfig, cfg["gear"]["localization"], "gear.localization")


class _LayerScores:
    """A scorer that hands out unit scores computed beforehand for every layer, so that a GeAR job
    runs its fusion encoder once per batch for both the localization result (the configured
    layer) and the layer analysis (all layers)."""

    def __init__(self, scores, localization, name: str):
        self.scores = scores  # gear.inference.UnitScores of every layer
        self.localization = localization
        self.name = name

    def localize(self, queries, documents, units, layers=None):
        return self.scores

    def score_layers(self, queries, documents, units, layers) -> dict[int, list[np.ndarray]]:
        return {layer: self.scores.by_layer[layer] for layer in layers}

    def score_units(self, queries, documents, units) -> list[np.ndarray]:
        return self.scores.by_layer[self.localization.layer]


def run_model(
    entry, cfg: dict, scenario: str, datasets: dict[str, tuple[str, str]], outputs: dict[str, str]
) -> None:
    """One evaluation job: every task of one model on every data set of one scenario.

    The model is loaded once and the Python start-up and imports are paid once per job, which is
    most of the cost on small test sets; each (data set, task) still gets its own result file.
    For GeAR, one pass of the fusion encoder per batch gives both the localization result at the
    configured layer and the layer analysis (Figure 4c).

    Args:
        entry: the registry entry (or its dict, as a Snakemake param passes it).
        cfg: the config sections the job reads (``gear.workflow.evaluation_plan.job_config``).
        scenario: ``qar`` or ``rir``; trained models are the ones trained on it.
        datasets: data set -> (corpus path, queries path).
        outputs: ``gear.workflow.evaluation_plan.model_job_outputs`` keys -> paths.
    """
    entry = _entry(entry)
    layout = _layout(cfg)
    settings = EvaluateSettings.from_config(cfg["evaluate"])
    encoder = (
        build_encoder(entry, cfg, scenario, layout)
        if "retrieval" in entry.tasks or entry.kind != "gear"
        else None
    )
    gear_model = None
    if entry.kind == "gear" and {"localization", "generation"} & set(entry.tasks):
        gear_model = load_gear(trained_model_dir(entry, scenario, layout))
    for dataset, (corpus, queries) in datasets.items():
        data = EvalDataset.load(dataset, corpus, queries)
        common = {"provenance_config": cfg, "model_name": entry.name}
        if "retrieval" in entry.tasks:
            evaluate_retrieval(
                encoder,
                data,
                settings,
                out_json=outputs[f"{dataset}_retrieval"],
                run_file=outputs[f"{dataset}_run"],
                cache_root=layout.embedding_cache(),
                **common,
            )
        if "localization" in entry.tasks:
            if gear_model is not None:
                model, tokenizer = gear_model
                scorer = GearUnitScorer(
                    model, tokenizer, _gear_localization(cfg), settings.batch_size, entry.name
                )
                if f"{dataset}_layers" in outputs:
                    _, _, query_texts, doc_texts, units = _localization_inputs(data)
                    layers = range(1, gear_layer_count(model) + 1)
                    if query_texts:
                        scorer = _LayerScores(
                            scorer.localize(query_texts, doc_texts, units, layers),
                            scorer.localization,
                            entry.name,
                        )
                        layer_analysis(
                            scorer, data, settings, layers, out_json=outputs[f"{dataset}_layers"], **common
                        )
            else:
                scorer = BiEncoderUnitScorer(encoder, settings.batch_size, layout.embedding_cache())
            evaluate_localization(
                scorer, data, settings, out_json=outputs[f"{dataset}_localization"], **common
            )
        if "generation" in entry.tasks:
            if gear_model is None:
                raise ValueError(
                    f"{entry.name}: generation needs GeAR's decoder; kind {entry.kind!r} has none"
                )
            model, tokenizer = gear_model
            generator = GearGenerator(model, tokenizer, settings.generation)
            evaluate_generation(
                generator, data, settings, out_json=outputs[f"{dataset}_generation"], **common
            )


def run_epoch_analysis(
    entry, cfg: dict, scenario: str, epochs_root: str, corpus: str, queries: str, out_json: str
) -> dict:
    """The ``epoch_analysis`` rule: every epoch checkpoint of a GeAR variant on the scenario's data set."""
    entry = _entry(entry)
    settings = EvaluateSettings.from_config(cfg["evaluate"])
    dataset = cfg["evaluate"]["epoch_analysis"][scenario]
    data = EvalDataset.load(dataset, corpus, queries)
    return epoch_analysis(
        epochs_root,
        data,
        settings,
        _gear_localization(cfg),
        out_json=out_json,
        model_name=entry.name,
        provenance_config=cfg,
    )

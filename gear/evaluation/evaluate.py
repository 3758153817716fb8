"""Evaluating every model: retrieval, unit localization, generation, and GeAR's layer and epoch analyses.

Each ``evaluate_*`` / ``*_analysis`` function reads one normalised test set (:class:`EvalDataset`),
computes per-query metrics with :mod:`gear.evaluation.metrics`, a 95% percentile bootstrap interval for each
(config ``evaluate.bootstrap``), and writes one JSON atomically in the layout of ARCHITECTURE.md
"Evaluation results":

- :func:`evaluate_retrieval` (any :class:`~gear.encoding.TextEncoder`, or a lexical retriever such as
  BM25 that ranks the texts itself): the corpus is encoded
  once through the embedding cache of :mod:`gear.evaluation.search`, searched exactly by inner product; the
  top ``evaluate.retrieval.depth`` go to a TREC run file; ``R@k`` / ``M@k`` with
  ``k = evaluate.retrieval.k``.
- :func:`evaluate_localization`: units of the gold document ranked by a :class:`UnitScorer`:
  :class:`BiEncoderUnitScorer` (each unit embedded as a document, ranked by inner product with
  the query; paper section 4.2) or :class:`GearUnitScorer` (GeAR's cross-attention,
  ``gear.inference.unit_scores``) or, for a lexical registry entry, BM25
  (``baselines.lexical.BM25Retriever.score_units``). ``k = evaluate.localization.k_qa`` for QA sets, ``k_rir`` for
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

import logging

import numpy as np

from baselines.registry import ModelEntry, build_encoder, build_lexical, gear_model_dir
from gear.config import dataclass_from_mapping
from gear.evaluation.analyses import epoch_analysis, layer_analysis
from gear.evaluation.dataset import EvalDataset
from gear.evaluation.generation import GearGenerator, evaluate_generation
from gear.evaluation.localization import (
    BiEncoderUnitScorer,
    GearUnitScorer,
    evaluate_localization,
    localization_inputs,
)
from gear.evaluation.retrieval import evaluate_retrieval
from gear.evaluation.settings import EvaluateSettings
from gear.inference import LocalizationConfig, load_gear
from gear.layout import Layout, dataset_tasks

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# One workflow job: a model on the data sets of a scenario
# --------------------------------------------------------------------------------------------


def gear_layer_count(model) -> int:
    """Number of cross-attention layers of a GeAR model: the fusion encoder is the query encoder,
    with one cross-attention block in each of its ``num_hidden_layers`` layers."""
    return int(model.config.num_hidden_layers)


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
    entry: ModelEntry, cfg: dict, scenario: str, datasets: dict[str, tuple[str, str]], outputs: dict[str, str]
) -> None:
    """One evaluation job: every task of one model on every data set of one scenario.

    The model is loaded once and the Python start-up and imports are paid once per job, which is
    most of the cost on small test sets; each (data set, task) still gets its own result file.
    For GeAR, one pass of the fusion encoder per batch gives both the localization result at the
    configured layer and the layer analysis (Figure 4c).

    Args:
        entry: the registry entry (a Snakemake job loads it by name, ``baselines.registry.load_entry``).
        cfg: the config sections the job reads (``gear.workflow.evaluation_plan.job_config``).
        scenario: ``qar`` or ``rir``; trained models are the ones trained on it.
        datasets: data set -> (corpus path, queries path).
        outputs: ``gear.workflow.evaluation_plan.model_job_outputs`` keys -> paths.

    A data set gets the tasks of the entry it supports (:func:`gear.layout.dataset_tasks`): a
    BEIR set, having no answers or relevant sentences, gets retrieval only.
    """
    layout = _layout(cfg)
    settings = EvaluateSettings.from_config(cfg["evaluate"])
    if entry.lexical:  # BM25: ranks documents and the gold document's units from their text
        encoder = build_lexical(entry)
    elif "retrieval" in entry.tasks or not entry.is_gear:
        encoder = build_encoder(entry, cfg, scenario, layout)
    else:
        encoder = None
    gear_model = None
    if entry.is_gear and {"localization", "generation"} & set(entry.tasks):
        gear_model = load_gear(gear_model_dir(entry, scenario, layout))
    for dataset, (corpus, queries) in datasets.items():
        data = EvalDataset.load(dataset, corpus, queries)
        common = {"provenance_config": cfg, "model_name": entry.name}
        tasks = [task for task in entry.tasks if task in dataset_tasks(dataset)]
        if "retrieval" in tasks:
            evaluate_retrieval(
                encoder,
                data,
                settings,
                out_json=outputs[f"{dataset}_retrieval"],
                run_file=outputs[f"{dataset}_run"],
                qrels_file=outputs.get(f"{dataset}_qrels"),
                cache_root=layout.embedding_cache(),
                **common,
            )
        if "localization" in tasks:
            if gear_model is not None:
                model, tokenizer = gear_model
                scorer = GearUnitScorer(
                    model, tokenizer, _gear_localization(cfg), settings.batch_size, entry.name
                )
                if f"{dataset}_layers" in outputs:
                    _, _, query_texts, doc_texts, units = localization_inputs(data)
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
            elif entry.lexical:
                scorer = (
                    encoder  # score_units: each unit against the query, the document's units the collection
                )
            else:
                scorer = BiEncoderUnitScorer(encoder, settings.batch_size, layout.embedding_cache())
            evaluate_localization(
                scorer, data, settings, out_json=outputs[f"{dataset}_localization"], **common
            )
        if "generation" in tasks:
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
    entry: ModelEntry, cfg: dict, scenario: str, epochs_root: str, corpus: str, queries: str, out_json: str
) -> dict:
    """The ``epoch_analysis`` rule: every epoch checkpoint of a GeAR variant on the scenario's data set."""
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

"""The layer analysis (Figure 4c) and the epoch analysis (Figure 4a/b) of a GeAR variant."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path

from gear.evaluation.dataset import EvalDataset, generation_sample
from gear.evaluation.generation import GearGenerator, generation_metrics
from gear.evaluation.localization import (
    GearUnitScorer,
    bootstrap_args,
    check_unit_scores,
    localization_inputs,
)
from gear.evaluation.metrics import (
    break_ties_at_random,
    localization_metrics,
    summarize,
)
from gear.evaluation.results import result_provenance
from gear.evaluation.settings import EvaluateSettings
from gear.inference import load_gear
from gear.io import write_json

log = logging.getLogger(__name__)

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
    queries, skipped, query_texts, doc_texts, units = localization_inputs(data)
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
        check_unit_scores(by_layer[layer], units, name)
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
                        *bootstrap_args(settings),
                    ),
                    strict=True,
                )
            )
        },
        "attention_entropy": [float(attention.entropy[layer].mean()) for layer in layers],
        "n_queries": len(queries),
        "skipped": skipped,
        "provenance": result_provenance(provenance_config, settings, started),
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
    loc_queries, loc_skipped, query_texts, doc_texts, units = localization_inputs(data)
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
        check_unit_scores(scores, units, f"{model_name} epoch {epoch}")
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
        "provenance": result_provenance(
            provenance_config, settings, started, checkpoints=[str(p) for _, p in checkpoints]
        ),
    }
    write_json(out_json, result)
    return result

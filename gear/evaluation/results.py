"""One results JSON: metrics, bootstrap intervals, per-query arrays and provenance."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from gear.evaluation.metrics import (
    summarize,
)
from gear.evaluation.settings import BootstrapSettings, EvaluateSettings
from gear.layout import scenario_of
from gear.provenance import provenance

log = logging.getLogger(__name__)

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


def result_provenance(config: dict | None, settings: EvaluateSettings, started: float, **extra) -> dict:
    return provenance(config or {}, settings.bootstrap.seed, started, **extra)


def format_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())

"""The significance table: paired bootstrap p-values of GeAR against every other model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gear.evaluation.metrics import bootstrap_indices, paired_bootstrap_pvalue
from gear.io import DataFormatError
from gear.report.pages import DATASET_LABELS
from gear.report.tables.cells import Cell, Column, PValueCell, Row, Table
from gear.report.tables.results import ordered_datasets
from gear.report.tables.text import MINUS, NOT_RUN, TASK_LABELS

# --------------------------------------------------------------------------------------------
# Significance
# --------------------------------------------------------------------------------------------


def _per_query(result: dict, metric: str) -> tuple[list[str], list[float]]:
    source = result.get("_source", f"{result['model']}/{result['dataset']}")
    per_query = result.get("per_query")
    if not isinstance(per_query, dict) or "query_id" not in per_query or metric not in per_query:
        raise DataFormatError(
            f"{source}: per_query.query_id and per_query.{metric} are needed for paired tests"
        )
    ids, values = per_query["query_id"], per_query[metric]
    if len(ids) != len(values):
        raise DataFormatError(
            f"{source}: per_query.query_id has {len(ids)} entries, per_query.{metric} {len(values)}"
        )
    return list(ids), [float(v) for v in values]


def paired_arrays(reference: dict, other: dict, metric: str) -> tuple[Any, Any]:
    """The two models' per-query values of one metric, aligned on query id.

    Raises:
        DataFormatError: the two files do not hold the same set of queries (a paired test needs
            the same queries; evaluate both on the same test set).
    """
    import numpy as np

    ids_a, values_a = _per_query(reference, metric)
    ids_b, values_b = _per_query(other, metric)
    if len(set(ids_a)) != len(ids_a):
        raise DataFormatError(f"{reference.get('_source')}: per_query.query_id repeats ids")
    if set(ids_a) != set(ids_b) or len(ids_a) != len(ids_b):
        only_a, only_b = set(ids_a) - set(ids_b), set(ids_b) - set(ids_a)
        raise DataFormatError(
            f"{reference.get('_source')} and {other.get('_source')}: not the same queries "
            f"({len(only_a)} only in the first, {len(only_b)} only in the second, e.g. {sorted(only_a | only_b)[:3]})"
        )
    position = {qid: i for i, qid in enumerate(ids_b)}
    order = np.fromiter((position[qid] for qid in ids_a), dtype=np.int64, count=len(ids_a))
    return np.asarray(values_a, dtype=np.float64), np.asarray(values_b, dtype=np.float64)[order]


def build_significance_tables(
    results: Mapping[str, Mapping[tuple[str, str], dict]],
    metrics: Mapping[str, Mapping[str, Sequence[str]]],
    reference: str,
    models: Sequence[str],
    resamples: int,
    seed: int,
    confidence: float,
    dataset_labels: Mapping[str, str] | None = None,
) -> list[Table]:
    """Paired bootstrap p-values of ``reference`` (GeAR) against every other model, per task.

    The resamples are the evaluation's (``gear.evaluation.metrics.bootstrap_indices(n, resamples, seed)``
    with the config's ``evaluate.bootstrap``), so the p-values pair with the confidence intervals
    of the result JSONs. A difference counts as significant when p < 1 - confidence (0.05 at the
    configured 95%; the suite's choice, the paper reports no tests).

    Args:
        results: task -> ``(model, dataset)`` -> result JSON.
        metrics: task -> data set -> metric names.
        reference: the model compared against all others.
        models: the run's models, in row order.

    Returns:
        One table per task in which the reference and at least one other model were evaluated;
        each cell holds reference - other (fractions) and the p-value.
    """
    alpha = 1.0 - confidence
    labels = dict(dataset_labels or DATASET_LABELS)
    tables = []
    for task, task_results in results.items():
        others = [m for m in models if m != reference and any(k[0] == m for k in task_results)]
        ref_datasets = [d for d in metrics[task] if (reference, d) in task_results]
        if not others or not ref_datasets:
            continue
        columns = [
            Column(m, labels.get(d, d), (("dataset", d), ("metric", m)))
            for d in ordered_datasets(ref_datasets)
            for m in metrics[task][d]
        ]
        indices_cache: dict[int, Any] = {}
        rows = []
        for model in others:
            cells: list[Cell] = []
            for column in columns:
                dataset, metric = dict(column.keys)["dataset"], dict(column.keys)["metric"]
                other = task_results.get((model, dataset))
                if other is None:
                    cells.append(PValueCell(None, None, alpha))
                    continue
                a, b = paired_arrays(task_results[(reference, dataset)], other, metric)
                if len(a) == 0:
                    raise DataFormatError(f"{other.get('_source')}: per_query is empty; nothing to test")
                if len(a) not in indices_cache:
                    indices_cache[len(a)] = bootstrap_indices(len(a), resamples, seed)
                p = float(paired_bootstrap_pvalue(a, b, indices_cache[len(a)]))
                cells.append(PValueCell(float(a.mean() - b.mean()), p, alpha, len(a)))
            rows.append(Row(model, cells, None, (("model", model), ("reference", reference))))
        tables.append(
            Table(
                key=f"significance_{task}",
                title=f"Significance, {TASK_LABELS.get(task, task).lower()}: {reference} against each model",
                corner="Model",
                columns=columns,
                rows=rows,
                legend=(
                    f"Each cell: mean {reference} {MINUS} mean model over the same queries (fractions), and the "
                    f"paired bootstrap p-value ({resamples} resamples, seed {seed}); * p < {alpha:g}. "
                    f"'{NOT_RUN}': the model was not evaluated on that data set."
                ),
            )
        )
    return tables

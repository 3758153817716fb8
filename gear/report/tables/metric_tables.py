"""Tables 1-3: retrieval, localization and generation per data set, each number beside the paper's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gear.report.tables.cells import Cell, Column, MetricCell, Row, Table, footnote_marks, used_footnotes
from gear.report.tables.paper import PaperNumbers
from gear.report.tables.results import metric_ci, metric_value, ordered_datasets
from gear.report.tables.text import (
    AT_LENGTH,
    MARK_OUTSIDE,
    MARK_WITHIN,
    MINUS,
    NOT_IN_PAPER,
    NOT_RUN,
    REFERENCE_GROUP,
    REFERENCE_ROWS,
)

# --------------------------------------------------------------------------------------------
# Tables 1-3
# --------------------------------------------------------------------------------------------


def build_metric_table(
    table: str,
    paper: PaperNumbers,
    run_models: Sequence[tuple[str, str]],
    metrics: Mapping[str, Sequence[str]],
    results: Mapping[tuple[str, str], dict],
    tolerance: float,
    show_ci: bool = False,
) -> Table:
    """Table 1, 2 or 3: every reproduced value beside the paper's.

    Args:
        table: ``"table_1"`` (retrieval), ``"table_2"`` (localization) or ``"table_3"`` (generation).
        paper: the paper's numbers.
        run_models: ``(name, group)`` of the run's models that have this table's task, in the
            run's order (``group`` from the registry).
        metrics: data set -> metric names, for every data set the run evaluated (see
            :func:`task_metrics`).
        results: ``(model, dataset)`` -> result JSON (:func:`load_results`); a pair the run did not
            evaluate is absent and shown as "not run".
        tolerance: in display units: fractions for Tables 1-2, points for Table 3 (the config's
            ``reports.tolerance`` / ``reports.tolerance_generation``).
        show_ci: print each reproduced value's confidence interval.

    Returns:
        The table: rows in the paper's groups and order, then the run's other models in their
        group; columns data set x metric, the run's metrics first, then any the paper prints that
        the run did not compute (e.g. with another ``k``).
    """
    scale = paper.scale(table)
    digits = 1 if scale == 100 else 3
    notes = paper.notes_for(table)
    mark_of = footnote_marks(notes)
    used: set[str] = set()

    rows_spec: list[tuple[str, str]] = list(paper.models(table))
    paper_names = {name for name, _ in rows_spec}
    run_groups = dict(run_models)
    rows_spec = [(name, run_groups.get(name, group)) for name, group in rows_spec]
    rows_spec += [(name, group) for name, group in run_models if name not in paper_names]
    group_order = list(paper.group_labels) + [g for _, g in rows_spec if g not in paper.group_labels]
    rows_spec.sort(key=lambda item: group_order.index(item[1]))  # stable: keeps order within a group

    datasets = ordered_datasets(paper.datasets, metrics)
    columns: list[Column] = []
    for dataset in datasets:
        names = list(metrics.get(dataset, []))
        names += [m for m in paper.metrics(table, dataset) if m not in names]
        columns += [
            Column(m, paper.dataset_label(dataset), (("dataset", dataset), ("metric", m))) for m in names
        ]

    rows = []
    for name, group in rows_spec:
        cells: list[Cell] = []
        for column in columns:
            dataset, metric = dict(column.keys)["dataset"], dict(column.keys)["metric"]
            result = results.get((name, dataset))
            value = ci = None
            if result is not None and metric in metrics.get(dataset, ()):
                value = metric_value(result, metric) * scale
                found = metric_ci(result, metric)
                ci = None if found is None else (found[0] * scale, found[1] * scale)
            marks = [
                mark_of[n.id]
                for n in notes
                if (n.metric is not None or n.dataset is not None)
                and n.id in mark_of
                and n.matches(table, name, dataset, metric)
            ]
            used.update(marks)
            flag = ""
            length = _reference_value(result, "unit_length", metric) if result is not None else None
            if value is not None and length is not None and value <= length * scale + 1e-12:
                flag = AT_LENGTH
            cells.append(
                MetricCell(
                    value,
                    paper.value(table, name, dataset, metric),
                    tolerance,
                    digits,
                    ci,
                    show_ci,
                    marks,
                    flag,
                )
            )
        row_marks = [
            mark_of[n.id]
            for n in notes
            if n.metric is None and n.dataset is None and n.id in mark_of and n.matches(table, name)
        ]
        used.update(row_marks)
        rows.append(Row(name, cells, group, (("model", name),), row_marks))

    reference_rows = _reference_rows(rows_spec, columns, metrics, results, scale, digits, tolerance)
    if reference_rows:
        rows += reference_rows
        group_order.append(REFERENCE_GROUP)

    unit = "points (0-100)" if scale == 100 else "fractions (0-1)"
    legend = (
        f"Each cell: reproduced / paper (reproduced {MINUS} paper) and {MARK_WITHIN} when the difference is within "
        f"±{tolerance:g}, {MARK_OUTSIDE} outside; values in {unit}. '{NOT_RUN}': not evaluated by this run; "
        f"'{NOT_IN_PAPER}': not in the paper."
        + (" Brackets: the 95% bootstrap confidence interval." if show_ci else "")
        + (
            f" Reference rows: on the same queries as GeAR, the ranking uniform cross-attention gives "
            f"(units by their number of tokens) and a seeded random ranking; '[{AT_LENGTH}]' marks a "
            "GeAR value that does not beat the unit-length row (no localization shown)."
            if reference_rows
            else ""
        )
    )
    return Table(
        key=table,
        title=paper.title(table),
        corner="Model",
        columns=columns,
        rows=rows,
        group_labels={
            g: "Trivial references (same queries as GeAR)" if g == REFERENCE_GROUP else paper.group_label(g)
            for g in group_order
        },
        legend=legend,
        footnotes=used_footnotes(notes, mark_of, used),
    )


def _reference_value(result: dict, reference: str, metric: str) -> float | None:
    """A trivial reference's value in a localization result (``references``, gear.evaluation.evaluate)."""
    found = (result.get("references") or {}).get(reference)
    if not found or metric not in found.get("metrics", {}):
        return None
    return float(found["metrics"][metric])


def _reference_rows(
    rows_spec: Sequence[tuple[str, str]],
    columns: Sequence[Column],
    metrics: Mapping[str, Sequence[str]],
    results: Mapping[tuple[str, str], dict],
    scale: float,
    digits: int,
    tolerance: float,
) -> list[Row]:
    """Rows of the trivial references (SPEC 6), taken per data set from the first model in row order
    whose result carries them (GeAR's: the same queries, its tokenizer and truncation); none when
    no result carries a unit-length reference (tables other than Table 2)."""
    source: dict[str, dict] = {}
    for name, _ in rows_spec:
        for (model, dataset), result in results.items():
            if model == name and dataset not in source and _reference_has(result, "unit_length"):
                source[dataset] = result
    if not source:
        return []
    rows = []
    for reference, label in REFERENCE_ROWS.items():
        cells: list[Cell] = []
        for column in columns:
            dataset, metric = dict(column.keys)["dataset"], dict(column.keys)["metric"]
            result = source.get(dataset)
            value = None
            if result is not None and metric in metrics.get(dataset, ()):
                found = _reference_value(result, reference, metric)
                value = None if found is None else found * scale
            cells.append(MetricCell(value, None, tolerance, digits))
        rows.append(Row(label, cells, REFERENCE_GROUP, (("model", f"reference:{reference}"),)))
    return rows


def _reference_has(result: dict, reference: str) -> bool:
    return bool((result.get("references") or {}).get(reference))

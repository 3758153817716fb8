"""Tables 1-3: retrieval, localization and generation per data set, each number beside the paper's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gear.report.tables.cells import (
    Cell,
    Column,
    MetricCell,
    PaperValueCell,
    Row,
    Table,
    footnote_marks,
    used_footnotes,
)
from gear.report.tables.paper import PaperNumbers
from gear.report.tables.results import metric_ci, metric_value, ordered_datasets
from gear.report.tables.text import (
    AT_LENGTH,
    BEYOND_PAPER_MARK,
    BEYOND_PAPER_NOTE,
    MARK_OUTSIDE,
    MARK_WITHIN,
    MINUS,
    NOT_IN_PAPER,
    NOT_RUN,
    PAPER_ONLY_GROUP,
    PAPER_ONLY_LABEL,
    REFERENCE_GROUP,
    REFERENCE_ROWS,
    SUITE_GROUP_LABELS,
)

# --------------------------------------------------------------------------------------------
# Tables 1-3
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TableFrame:
    """What every cell of one metric table is built with: the paper's numbers and notes for the
    table, the display scale and digits, the tolerance and whether intervals are printed."""

    table: str
    paper: PaperNumbers
    notes: Sequence
    mark_of: Mapping[str, str]
    scale: float
    digits: int
    tolerance: float
    show_ci: bool

    def cell_marks(self, name: str, dataset: str, metric: str) -> list[str]:
        """Footnote marks of the notes on one cell (notes naming a metric or a data set)."""
        return [
            self.mark_of[n.id]
            for n in self.notes
            if (n.metric is not None or n.dataset is not None)
            and n.id in self.mark_of
            and n.matches(self.table, name, dataset, metric)
        ]

    def row_marks(self, name: str) -> list[str]:
        """Footnote marks of the notes on a whole row (notes naming neither metric nor data set)."""
        return [
            self.mark_of[n.id]
            for n in self.notes
            if n.metric is None and n.dataset is None and n.id in self.mark_of and n.matches(self.table, name)
        ]


def _row_order(
    paper: PaperNumbers, table: str, run_models: Sequence[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[str]]:
    """``(name, group)`` of every row, and the order of the groups: the paper's rows (in the run's
    group where the run has the model), then the run's other models, sorted by group (stably)."""
    rows_spec: list[tuple[str, str]] = list(paper.models(table))
    paper_names = {name for name, _ in rows_spec}
    run_groups = dict(run_models)
    rows_spec = [(name, run_groups.get(name, group)) for name, group in rows_spec]
    rows_spec += [(name, group) for name, group in run_models if name not in paper_names]
    group_order = list(paper.group_labels) + [g for _, g in rows_spec if g not in paper.group_labels]
    rows_spec.sort(key=lambda item: group_order.index(item[1]))  # stable: keeps order within a group
    return rows_spec, group_order


def _metric_columns(paper: PaperNumbers, table: str, metrics: Mapping[str, Sequence[str]]) -> list[Column]:
    """Data set x metric columns: the run's metrics first, then any others the paper prints."""
    columns: list[Column] = []
    for dataset in ordered_datasets(paper.datasets, metrics):
        names = list(metrics.get(dataset, []))
        names += [m for m in paper.metrics(table, dataset) if m not in names]
        columns += [
            Column(m, paper.dataset_label(dataset), (("dataset", dataset), ("metric", m))) for m in names
        ]
    return columns


def _model_cell(
    frame: _TableFrame,
    name: str,
    dataset: str,
    metric: str,
    result: dict | None,
    computed: Sequence[str],
) -> MetricCell:
    """One model's value of one metric on one data set beside the paper's; ``computed`` are the
    metrics the run evaluated on the data set (others show as not run)."""
    value = ci = None
    if result is not None and metric in computed:
        value = metric_value(result, metric) * frame.scale
        found = metric_ci(result, metric)
        ci = None if found is None else (found[0] * frame.scale, found[1] * frame.scale)
    flag = ""
    length = _reference_value(result, "unit_length", metric) if result is not None else None
    if value is not None and length is not None and value <= length * frame.scale + 1e-12:
        flag = AT_LENGTH
    return MetricCell(
        value,
        frame.paper.value(frame.table, name, dataset, metric),
        frame.tolerance,
        frame.digits,
        ci,
        frame.show_ci,
        frame.cell_marks(name, dataset, metric),
        flag,
    )


def _metric_legend(
    scale: float, tolerance: float, show_ci: bool, with_references: bool, with_paper_only: bool = False
) -> str:
    """The text under a metric table: how to read a cell, and the reference rows where present."""
    unit = "points (0-100)" if scale == 100 else "fractions (0-1)"
    return (
        f"Each cell: reproduced / paper (reproduced {MINUS} paper) and {MARK_WITHIN} when the difference is within "
        f"±{tolerance:g}, {MARK_OUTSIDE} outside; values in {unit}. '{NOT_RUN}': not evaluated by this run; "
        f"'{NOT_IN_PAPER}': not in the paper."
        + (
            " Paper only: the paper's models this run does not evaluate, with the paper's values alone."
            if with_paper_only
            else ""
        )
        + (" Brackets: the 95% bootstrap confidence interval." if show_ci else "")
        + (
            f" Reference rows: on the same queries as GeAR (the first GeAR row's tokenizer and document "
            f"truncation), the ranking uniform cross-attention gives (units by their number of tokens) "
            f"and a seeded random ranking; '[{AT_LENGTH}]' marks a GeAR value that does not beat the "
            "unit-length ranking of its own result (no localization shown), which differs from the row "
            "for a GeAR that reads fewer document tokens."
            if with_references
            else ""
        )
    )


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
        The table: the run's rows in the paper's groups and order, then the run's other models
        in their group, marked beyond the paper; the trivial references (Table 2); last, one
        "paper only" block of the paper's models the run does not evaluate, with the paper's
        values alone; columns data set x metric, the run's metrics first, then any the paper prints that
        the run did not compute (e.g. with another ``k``).
    """
    scale = paper.scale(table)
    digits = 1 if scale == 100 else 3
    notes = paper.notes_for(table)
    mark_of = footnote_marks(notes)
    frame = _TableFrame(table, paper, notes, mark_of, scale, digits, tolerance, show_ci)
    rows_spec, group_order = _row_order(paper, table, run_models)
    columns = _metric_columns(paper, table, metrics)

    run_names = {name for name, _ in run_models}
    paper_names = {name for name, _ in paper.models(table)}
    used: set[str] = set()
    rows = []
    for name, group in rows_spec:
        if name not in run_names:
            continue  # the paper's model this run does not evaluate: the paper-only block below
        cells: list[Cell] = []
        for column in columns:
            dataset, metric = dict(column.keys)["dataset"], dict(column.keys)["metric"]
            cell = _model_cell(
                frame, name, dataset, metric, results.get((name, dataset)), metrics.get(dataset, ())
            )
            used.update(cell.marks)
            cells.append(cell)
        row_marks = frame.row_marks(name)
        if name not in paper_names:
            row_marks = [*row_marks, BEYOND_PAPER_MARK]
        used.update(row_marks)
        rows.append(Row(name, cells, group, (("model", name),), row_marks))

    reference_rows = _reference_rows(rows_spec, columns, metrics, results, scale, digits, tolerance)
    if reference_rows:
        rows += reference_rows
        group_order.append(REFERENCE_GROUP)
    paper_only = _paper_only_rows(frame, [name for name, _ in rows_spec if name not in run_names], columns)
    for row in paper_only:
        used.update(row.marks)
        for cell in row.cells:
            used.update(cell.marks)
    if paper_only:
        rows += paper_only
        group_order.append(PAPER_ONLY_GROUP)
    footnotes = used_footnotes(notes, mark_of, used)
    if BEYOND_PAPER_MARK in used:
        footnotes.insert(0, (BEYOND_PAPER_MARK, BEYOND_PAPER_NOTE))

    return Table(
        key=table,
        title=paper.title(table),
        corner="Model",
        columns=columns,
        rows=rows,
        group_labels={g: _group_label(paper, g) for g in group_order},
        legend=_metric_legend(scale, tolerance, show_ci, bool(reference_rows), bool(paper_only)),
        footnotes=footnotes,
    )


def _group_label(paper: PaperNumbers, group: str) -> str:
    if group == REFERENCE_GROUP:
        return "Trivial references (same queries as GeAR)"
    if group == PAPER_ONLY_GROUP:
        return PAPER_ONLY_LABEL
    if group in paper.group_labels:
        return paper.group_label(group)
    return SUITE_GROUP_LABELS.get(group, paper.group_label(group))


def _paper_only_rows(frame: _TableFrame, names: Sequence[str], columns: Sequence[Column]) -> list[Row]:
    """The paper's models this run does not evaluate, in one block at the end: each with the
    paper's printed values alone (no "not run" beside each), so that they do not bury the run's rows."""
    rows = []
    for name in names:
        cells: list[Cell] = []
        for column in columns:
            dataset, metric = dict(column.keys)["dataset"], dict(column.keys)["metric"]
            value = frame.paper.value(frame.table, name, dataset, metric)
            cells.append(PaperValueCell(value, frame.digits, frame.cell_marks(name, dataset, metric)))
        rows.append(Row(name, cells, PAPER_ONLY_GROUP, (("model", name),), frame.row_marks(name)))
    return rows


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

"""The paper's tables, rebuilt from the run's results files, each number beside the paper's.

- Tables 1-3 (:func:`build_metric_table`): retrieval R@5 / M@5, localization R@1 / M@1 (QA) and
  R@3 / M@3 (RIR), generation EM / F1 (QA) and ROUGE-1 / ROUGE-L (RIR), per data set. Each cell
  holds the reproduced value, the paper's, their difference (reproduced - paper) and a mark:
  within the configured tolerance or outside it. Rows follow the paper: its row groups
  (pre-trained, retrained, GeAR), its models in its order, then the run's models that the paper
  does not have (e.g. MiniLM in the mini benchmark) in their registry group, with no paper value.
  A model or data set the run did not evaluate is shown as "not run", never filled in.
- Tables 5-7 (:func:`build_stats_tables`): training data, retrieval test sets, localization and
  generation test sets, from ``R/data/{dataset}/stats.json`` and the training triples files.
- The significance table (:func:`build_significance_tables`): paired bootstrap p-values of GeAR
  against every other model, per data set and metric, from the ``per_query`` arrays of the result
  JSONs with the evaluation's own resamples (:func:`gear.evaluation.metrics.bootstrap_indices`).

Every table is a :class:`Table` of typed cells, rendered by the same four writers: Markdown,
LaTeX (booktabs; needs ``\\usepackage{booktabs}``), CSV (one line per cell, machine-readable) and
HTML. The paper's numbers and their known oddities (SPEC 9) live in ``paper_numbers.yaml``;
oddities are rendered as footnotes. Adding a table: a builder returning a :class:`Table`.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gear.config import load_yaml
from gear.evaluation.metrics import bootstrap_indices, paired_bootstrap_pvalue
from gear.io import DataFormatError, atomic_open, read_json, require_fields
from gear.layout import DATASETS, QA_DATASETS
from gear.report.pages import DATASET_LABELS, esc, html_page

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.yaml")

MARK_WITHIN = "✓"
MARK_OUTSIDE = "✗"
LATEX_WITHIN = r"$\surd$"  # base LaTeX, no package needed
LATEX_OUTSIDE = r"$\times$"
NOT_RUN = "not run"
NOT_IN_PAPER = "—"
#: printed after a GeAR localization value that does not beat what uniform attention gives
AT_LENGTH = "≤ unit length"
#: row group of the trivial references of Table 2 (SPEC 6)
REFERENCE_GROUP = "reference"
REFERENCE_ROWS = {
    "unit_length": "unit length (uniform attention)",
    "random": "random ranking",
}
MINUS = "−"  # typographic minus for text and HTML; CSV keeps ASCII numbers

# Paper tables with results; their rows are models.
METRIC_TABLES = ("table_1", "table_2", "table_3")
TASK_OF_TABLE = {"table_1": "retrieval", "table_2": "localization", "table_3": "generation"}
SCENARIO_LABELS = {"qar": "QAR", "rir": "RIR"}
TASK_LABELS = {
    "retrieval": "Document retrieval",
    "localization": "Unit localization",
    "generation": "Generation",
}


# --------------------------------------------------------------------------------------------
# The paper's numbers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Note:
    """An annotated oddity of the printed numbers, rendered as a footnote.

    A note names its table(s) and, optionally, the model, data set and metric it concerns; it
    is marked on every cell (or row label) that matches all the keys it gives, or under the
    table alone when it gives none.
    """

    id: str
    text: str
    tables: tuple[str, ...]
    model: str | None = None
    dataset: str | None = None
    metric: str | None = None

    @property
    def is_table_level(self) -> bool:
        return self.model is None and self.dataset is None and self.metric is None

    def matches(
        self, table: str, model: str | None = None, dataset: str | None = None, metric: str | None = None
    ) -> bool:
        """Whether the note concerns this cell (keys the note leaves open match anything)."""
        if table not in self.tables or self.is_table_level:
            return False
        return all(
            mine is None or mine == theirs
            for mine, theirs in ((self.model, model), (self.dataset, dataset), (self.metric, metric))
        )


class PaperNumbers:
    """The printed numbers of Tables 1-3 and 5-7, and the notes on them (``paper_numbers.yaml``)."""

    def __init__(self, data: dict, source: str = str(PAPER_NUMBERS)):
        self.source = source
        for key in ("datasets", "dataset_labels", "groups", "tables", "notes"):
            if key not in data:
                raise DataFormatError(f"{source}: missing top-level key {key!r}")
        self.data = data
        self.datasets: list[str] = list(data["datasets"])
        self.dataset_labels: dict[str, str] = dict(data["dataset_labels"])
        self.group_labels: dict[str, str] = dict(data["groups"])
        self.notes = [self._note(raw, i) for i, raw in enumerate(data["notes"])]
        for key in METRIC_TABLES:
            self._check_metric_table(key)

    @classmethod
    def load(cls, path: str | os.PathLike = PAPER_NUMBERS) -> PaperNumbers:
        return cls(load_yaml(path), str(path))

    def _note(self, raw: dict, index: int) -> Note:
        where = f"{self.source}: notes[{index}]"
        if not isinstance(raw, dict) or "id" not in raw or "text" not in raw:
            raise DataFormatError(f"{where}: a note needs 'id' and 'text'")
        tables = raw.get("tables") or ([raw["table"]] if "table" in raw else None)
        if not tables:
            raise DataFormatError(f"{where} ({raw['id']}): give 'table' or 'tables'")
        unknown = set(raw) - {"id", "text", "table", "tables", "model", "dataset", "metric"}
        if unknown:
            raise DataFormatError(f"{where} ({raw['id']}): unknown key(s) {sorted(unknown)}")
        return Note(
            raw["id"],
            " ".join(str(raw["text"]).split()),
            tuple(tables),
            raw.get("model"),
            raw.get("dataset"),
            raw.get("metric"),
        )

    def _check_metric_table(self, key: str) -> None:
        table = self.data["tables"].get(key)
        if not isinstance(table, dict) or not isinstance(table.get("models"), dict):
            raise DataFormatError(f"{self.source}: tables.{key}.models missing")
        for model, spec in table["models"].items():
            if spec.get("group") not in self.group_labels:
                raise DataFormatError(
                    f"{self.source}: tables.{key}.models.{model}.group must be one of {sorted(self.group_labels)}"
                )
            for dataset, values in spec.items():
                if dataset == "group":
                    continue
                if dataset not in self.datasets or not isinstance(values, dict):
                    raise DataFormatError(
                        f"{self.source}: tables.{key}.models.{model}: unknown data set {dataset!r}"
                    )
                for metric, value in values.items():
                    if not isinstance(value, (int, float)) or isinstance(value, bool):
                        raise DataFormatError(
                            f"{self.source}: tables.{key}.models.{model}.{dataset}.{metric}: not a number"
                        )

    # metric tables
    def title(self, table: str) -> str:
        return self.data["tables"][table]["title"]

    def scale(self, table: str) -> float:
        return float(self.data["tables"][table].get("scale", 1))

    def models(self, table: str) -> list[tuple[str, str]]:
        """``(model, group)`` of the table's rows, in the paper's order."""
        return [(name, spec["group"]) for name, spec in self.data["tables"][table]["models"].items()]

    def metrics(self, table: str, dataset: str) -> list[str]:
        """The metric columns the paper prints for a data set (from its first row that has it)."""
        for spec in self.data["tables"][table]["models"].values():
            if dataset in spec:
                return list(spec[dataset])
        return []

    def value(self, table: str, model: str, dataset: str, metric: str) -> float | None:
        """The printed value, or None where the paper has none."""
        spec = self.data["tables"][table]
        if "models" in spec:
            return spec["models"].get(model, {}).get(dataset, {}).get(metric)
        return None

    def cells(self, table: str) -> list[tuple[str, str, str, float]]:
        """Every printed cell of a metric table: ``(model, dataset, metric, value)``."""
        out = []
        for model, spec in self.data["tables"][table]["models"].items():
            for dataset, values in spec.items():
                if dataset != "group":
                    out.extend((model, dataset, metric, value) for metric, value in values.items())
        return out

    # statistics tables
    def stat(self, table: str, quantity: str, key: str) -> int | None:
        return self.data["tables"][table].get(quantity, {}).get(key)

    def notes_for(self, table: str) -> list[Note]:
        return [note for note in self.notes if table in note.tables]

    def dataset_label(self, dataset: str) -> str:
        return self.dataset_labels.get(dataset, dataset)

    def group_label(self, group: str) -> str:
        return self.group_labels.get(group, group.capitalize())


# --------------------------------------------------------------------------------------------
# Cells and tables
# --------------------------------------------------------------------------------------------


def _signed(value: float, digits: int, minus: str = MINUS) -> str:
    text = f"{abs(value):,.{digits}f}"
    if round(value, digits) == 0:
        return f"±{text}" if minus == MINUS else text
    return ("+" if value > 0 else minus) + text


def _marks(marks: Sequence[str], style: str) -> str:
    if not marks:
        return ""
    joined = ",".join(marks)
    if style == "latex":
        return f"\\textsuperscript{{{joined}}}"
    if style == "html":
        return f"<sup>{esc(joined)}</sup>"
    return f"[{joined}]"


class Cell(Protocol):
    def text(self) -> str: ...
    def latex(self) -> str: ...
    def html(self) -> str: ...
    def record(self) -> dict[str, Any]: ...


@dataclass
class MetricCell:
    """One reproduced metric beside the paper's (display units: fractions, or points for generation).

    Attributes:
        value: the reproduced value, None when the run did not evaluate it.
        paper: the paper's printed value, None when the paper has none.
        tolerance: |value - paper| <= tolerance counts as within.
        digits: decimals printed.
        ci: the reproduced value's confidence interval, printed when ``show_ci``.
        marks: footnote marks on the paper value.
    """

    value: float | None
    paper: float | None
    tolerance: float
    digits: int = 3
    ci: tuple[float, float] | None = None
    show_ci: bool = False
    marks: list[str] = field(default_factory=list)
    flag: str = ""  # a warning printed after the value (e.g. AT_LENGTH)

    @property
    def difference(self) -> float | None:
        if self.value is None or self.paper is None:
            return None
        return self.value - self.paper

    @property
    def within(self) -> bool | None:
        """True within tolerance, False outside, None when there is nothing to compare."""
        diff = self.difference
        if diff is None:
            return None
        # A hair of slack so that a difference printed as exactly the tolerance counts as within.
        return abs(diff) <= self.tolerance + 1e-9

    def _value(self, style: str) -> str:
        if self.value is None:
            return NOT_RUN
        text = f"{self.value:.{self.digits}f}"
        if self.flag:
            text += {
                "html": f' <span class="flag">[{self.flag}]</span>',
                "latex": " [" + latex_escape(self.flag).replace("≤", "$\\le$") + "]",
            }.get(style, f" [{self.flag}]")
        if self.show_ci and self.ci is not None:
            lo, hi = (f"{b:.{self.digits}f}" for b in self.ci)
            text += {
                "latex": f" {{\\scriptsize[{lo}, {hi}]}}",
                "html": f' <span class="ci">[{lo}, {hi}]</span>',
            }.get(style, f" [{lo}, {hi}]")
        return text

    def _paper(self, style: str) -> str:
        if self.paper is None:
            return NOT_IN_PAPER if style != "latex" else "--"
        return f"{self.paper:.{self.digits}f}{_marks(self.marks, style)}"

    def text(self) -> str:
        out = f"{self._value('text')} / {self._paper('text')}"
        if self.difference is not None:
            out += (
                f" ({_signed(self.difference, self.digits)}) {MARK_WITHIN if self.within else MARK_OUTSIDE}"
            )
        return out

    def latex(self) -> str:
        value = NOT_RUN if self.value is None else self._value("latex")
        out = f"{value} / {self._paper('latex')}"
        if self.difference is not None:
            diff = _signed(self.difference, self.digits, minus="$-$")
            out += f" {{\\scriptsize({diff})}} {LATEX_WITHIN if self.within else LATEX_OUTSIDE}"
        return out

    def html(self) -> str:
        value = f'<span class="missing">{NOT_RUN}</span>' if self.value is None else self._value("html")
        paper = f'<span class="paper">{self._paper("html")}</span>'
        out = f"{value} / {paper}"
        if self.difference is not None:
            mark = (
                f'<span class="within" title="within tolerance">{MARK_WITHIN}</span>'
                if self.within
                else (f'<span class="outside" title="outside tolerance">{MARK_OUTSIDE}</span>')
            )
            out += f' <span class="diff">({_signed(self.difference, self.digits)})</span> {mark}'
        return out

    def record(self) -> dict[str, Any]:
        def num(x: float | None) -> str:
            return "" if x is None else f"{x:.6g}"

        return {
            "reproduced": num(self.value),
            "paper": num(self.paper),
            "difference": num(self.difference),
            "tolerance": f"{self.tolerance:g}",
            "within_tolerance": "" if self.within is None else str(self.within).lower(),
            "ci_low": num(self.ci[0]) if self.ci else "",
            "ci_high": num(self.ci[1]) if self.ci else "",
            "status": "not_run" if self.value is None else "ok",
            "notes": ";".join(self.marks),
            "flag": self.flag,
        }


@dataclass
class CountCell:
    """A data-set size beside the paper's; no tolerance (a mini run is meant to be smaller)."""

    value: int | None
    paper: int | None
    marks: list[str] = field(default_factory=list)

    @property
    def difference(self) -> int | None:
        return None if self.value is None or self.paper is None else self.value - self.paper

    def _parts(self, style: str) -> tuple[str, str, str]:
        value = NOT_RUN if self.value is None else f"{self.value:,}"
        paper = (
            (NOT_IN_PAPER if style != "latex" else "--")
            if self.paper is None
            else f"{self.paper:,}{_marks(self.marks, style)}"
        )
        diff = (
            ""
            if self.difference is None
            else _signed(self.difference, 0, minus="$-$" if style == "latex" else MINUS)
        )
        return value, paper, diff

    def text(self) -> str:
        value, paper, diff = self._parts("text")
        return f"{value} / {paper}" + (f" ({diff})" if diff else "")

    def latex(self) -> str:
        value, paper, diff = self._parts("latex")
        return f"{value} / {paper}" + (f" {{\\scriptsize({diff})}}" if diff else "")

    def html(self) -> str:
        value, paper, diff = self._parts("html")
        value = f'<span class="missing">{value}</span>' if self.value is None else value
        return f'{value} / <span class="paper">{paper}</span>' + (
            f' <span class="diff">({diff})</span>' if diff else ""
        )

    def record(self) -> dict[str, Any]:
        return {
            "reproduced": "" if self.value is None else str(self.value),
            "paper": "" if self.paper is None else str(self.paper),
            "difference": "" if self.difference is None else str(self.difference),
            "status": "not_run" if self.value is None else "ok",
            "notes": ";".join(self.marks),
        }


@dataclass
class PValueCell:
    """GeAR minus another model on one metric, with the paired bootstrap p-value."""

    difference: float | None
    p_value: float | None
    alpha: float
    n_queries: int = 0
    digits: int = 3

    @property
    def significant(self) -> bool | None:
        return None if self.p_value is None else self.p_value < self.alpha

    def _p(self) -> str:
        if self.p_value is None:
            return ""
        return f"{self.p_value:.{self.digits}f}"

    def text(self) -> str:
        if self.difference is None:
            return NOT_RUN
        return f"{_signed(self.difference, self.digits)} (p={self._p()}){' *' if self.significant else ''}"

    def latex(self) -> str:
        if self.difference is None:
            return NOT_RUN
        star = "$^{*}$" if self.significant else ""
        return f"{_signed(self.difference, self.digits, minus='$-$')} {{\\scriptsize($p$={self._p()})}}{star}"

    def html(self) -> str:
        if self.difference is None:
            return f'<span class="missing">{NOT_RUN}</span>'
        text = f'{_signed(self.difference, self.digits)} <span class="diff">(p={self._p()})</span>'
        return f'<span class="signif">{text} *</span>' if self.significant else text

    def record(self) -> dict[str, Any]:
        return {
            "difference": "" if self.difference is None else f"{self.difference:.6g}",
            "p_value": "" if self.p_value is None else f"{self.p_value:.6g}",
            "alpha": f"{self.alpha:g}",
            "significant": "" if self.significant is None else str(self.significant).lower(),
            "n_queries": str(self.n_queries) if self.difference is not None else "",
            "status": "not_run" if self.difference is None else "ok",
        }


@dataclass(frozen=True)
class Column:
    """A column: its header (``top`` spans the columns that share it) and its CSV keys."""

    label: str
    top: str | None = None
    keys: tuple[tuple[str, str], ...] = ()


@dataclass
class Row:
    """A row: its label, its row group, its cells (one per column) and its CSV keys."""

    label: str
    cells: list[Cell]
    group: str | None = None
    keys: tuple[tuple[str, str], ...] = ()
    marks: list[str] = field(default_factory=list)


@dataclass
class Table:
    """A rendered-agnostic table: the four writers below turn it into files."""

    key: str
    title: str
    corner: str
    columns: list[Column]
    rows: list[Row]
    group_labels: dict[str, str] = field(default_factory=dict)
    legend: str = ""
    footnotes: list[tuple[str, str]] = field(default_factory=list)  # (mark or "", text)

    def row(self, label: str) -> Row:
        for row in self.rows:
            if row.label == label:
                return row
        raise KeyError(f"{self.key}: no row {label!r}; rows: {[r.label for r in self.rows]}")

    def cell(self, row_label: str, column_label: str, top: str | None = None) -> Cell:
        row = self.row(row_label)
        for column, cell in zip(self.columns, row.cells, strict=True):
            if column.label == column_label and (top is None or column.top == top):
                return cell
        raise KeyError(f"{self.key}: no column {top or ''} {column_label!r}")


def _footnote_marks(notes: Sequence[Note]) -> dict[str, str]:
    """Letters a, b, c, ... for the notes that mark cells or rows (table-level notes get none)."""
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    return {note.id: next(letters) for note in notes if not note.is_table_level}


def _footnotes(notes: Sequence[Note], marks: Mapping[str, str], used: set[str]) -> list[tuple[str, str]]:
    out = [(marks[n.id], n.text) for n in notes if n.id in marks and marks[n.id] in used]
    out += [("", n.text) for n in notes if n.is_table_level]
    return out


# --------------------------------------------------------------------------------------------
# Results files
# --------------------------------------------------------------------------------------------


def task_metrics(task: str, dataset: str, evaluate_cfg: Mapping) -> list[str]:
    """The metric names a results JSON holds for a task and data set (ARCHITECTURE.md).

    Args:
        evaluate_cfg: the config's ``evaluate`` section (``retrieval.k``, ``localization.k_qa`` /
            ``k_rir``).
    """
    if task == "retrieval":
        k = evaluate_cfg["retrieval"]["k"]
        return [f"R@{k}", f"M@{k}"]
    if task == "localization":
        k = evaluate_cfg["localization"]["k_qa" if dataset in QA_DATASETS else "k_rir"]
        return [f"R@{k}", f"M@{k}"]
    if task == "generation":
        return ["EM", "F1"] if dataset in QA_DATASETS else ["ROUGE-1", "ROUGE-L"]
    raise ValueError(f"unknown task {task!r}")


def load_results(paths: Iterable[str | os.PathLike], task: str) -> dict[tuple[str, str], dict]:
    """Read result JSONs of one task, keyed by ``(model, dataset)`` as the files say.

    Raises:
        DataFormatError: a file lacks a field, belongs to another task, or repeats a key.
    """
    results: dict[tuple[str, str], dict] = {}
    sources: dict[tuple[str, str], str] = {}
    for path in paths:
        obj = read_json(path)
        if not isinstance(obj, dict):
            raise DataFormatError(f"{path}: expected a JSON object")
        require_fields(obj, {"model": str, "dataset": str, "task": str, "metrics": dict}, str(path))
        if obj["task"] != task:
            raise DataFormatError(f"{path}: task is {obj['task']!r}, expected {task!r}")
        key = (obj["model"], obj["dataset"])
        if key in results:
            raise DataFormatError(
                f"{path}: a second result for model {key[0]} on {key[1]} (first: {sources[key]})"
            )
        obj["_source"] = str(path)
        results[key] = obj
        sources[key] = str(path)
    return results


def _metric_value(result: dict, metric: str) -> float:
    source = result.get("_source", f"{result['model']}/{result['dataset']}")
    if metric not in result["metrics"]:
        raise DataFormatError(f"{source}: metric {metric!r} missing; it has {sorted(result['metrics'])}")
    value = result["metrics"][metric]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise DataFormatError(f"{source}: metrics.{metric} = {value!r} is not a fraction in [0, 1]")
    return float(value)


def _metric_ci(result: dict, metric: str) -> tuple[float, float] | None:
    ci = (result.get("ci") or {}).get(metric)
    if ci is None:
        return None
    if not (isinstance(ci, (list, tuple)) and len(ci) == 2):
        raise DataFormatError(f"{result.get('_source')}: ci.{metric} should be [low, high], got {ci!r}")
    return float(ci[0]), float(ci[1])


def _ordered_datasets(*collections: Iterable[str]) -> list[str]:
    wanted = {d for c in collections for d in c}
    return [d for d in DATASETS if d in wanted] + sorted(wanted - set(DATASETS))


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
    mark_of = _footnote_marks(notes)
    used: set[str] = set()

    rows_spec: list[tuple[str, str]] = list(paper.models(table))
    paper_names = {name for name, _ in rows_spec}
    run_groups = dict(run_models)
    rows_spec = [(name, run_groups.get(name, group)) for name, group in rows_spec]
    rows_spec += [(name, group) for name, group in run_models if name not in paper_names]
    group_order = list(paper.group_labels) + [g for _, g in rows_spec if g not in paper.group_labels]
    rows_spec.sort(key=lambda item: group_order.index(item[1]))  # stable: keeps order within a group

    datasets = _ordered_datasets(paper.datasets, metrics)
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
                value = _metric_value(result, metric) * scale
                found = _metric_ci(result, metric)
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
        footnotes=_footnotes(notes, mark_of, used),
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
            for d in _ordered_datasets(ref_datasets)
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


# --------------------------------------------------------------------------------------------
# Tables 5-7
# --------------------------------------------------------------------------------------------


_BLANK_LINE = re.compile(rb"\n[ \t\r\v\f]*(?=\n|\Z)")


def count_lines(path: str | os.PathLike, chunk: int = 1 << 22) -> int:
    """Number of records of a JSON Lines file: the lines with a non-white-space character (those
    :func:`gear.io.iter_jsonl` yields), read in binary chunks (a 30M-line file is fine)."""
    import numpy as np

    count, carry = 0, b""
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            block = carry + block
            cut = block.rfind(b"\n") + 1
            lines, carry = block[:cut], block[cut:]  # whole lines; the unfinished one waits
            if not lines:
                continue
            count += lines.count(b"\n")
            # A blank line starts with white space (or is empty); JSON records start with "{".
            data = np.frombuffer(lines, dtype=np.uint8)
            starts = np.concatenate([[0], np.flatnonzero(data == 10)[:-1] + 1])
            if (data[starts] <= 32).any():  # rare: look at those lines closely
                count -= len(_BLANK_LINE.findall(b"\n" + lines[:-1]))
    return count + (1 if carry.strip() else 0)


def load_stats(paths: Iterable[str | os.PathLike]) -> dict[str, dict]:
    """Read ``stats.json`` files, keyed by their ``dataset`` field."""
    stats = {}
    for path in paths:
        obj = read_json(path)
        require_fields(
            obj, {"dataset": str, "documents": int, "queries": int, "fine_grained_queries": int}, str(path)
        )
        obj["_source"] = str(path)
        stats[obj["dataset"]] = obj
    return stats


def build_stats_tables(
    stats: Mapping[str, dict], train_triples: Mapping[str, int], paper: PaperNumbers
) -> list[Table]:
    """Tables 5, 6 and 7: the run's data sizes beside the paper's.

    Args:
        stats: data set -> its ``stats.json`` (:func:`load_stats`).
        train_triples: scenario -> number of training triples (lines of ``R/data/train/{s}.jsonl``).
        paper: the paper's numbers.

    Returns:
        ``[table_5, table_6, table_7]``. Table 7 also shows how many of the localization queries
        have no relevant unit (skipped for localization, SPEC 2); the paper has no such column.
    """
    tables = []
    # Table 5: training data.
    notes = paper.notes_for("table_5")
    rows = [
        Row(
            SCENARIO_LABELS.get(s, s),
            [CountCell(train_triples.get(s), paper.stat("table_5", "train_triples", s))],
            None,
            (("scenario", s),),
        )
        for s in _ordered_scenarios(paper.data["tables"]["table_5"]["train_triples"], train_triples)
    ]
    tables.append(
        Table(
            "table_5",
            paper.title("table_5"),
            "Scenario",
            [Column("Training triples", None, (("quantity", "train_triples"),))],
            rows,
            legend=_count_legend(),
            footnotes=_footnotes(notes, {}, set()),
        )
    )

    datasets = _ordered_datasets(paper.datasets, stats)
    group_labels = {"qa": "QA", "rir": "RIR"}
    for key, quantities in (
        ("table_6", [("documents", "Documents"), ("queries", "Queries")]),
        (
            "table_7",
            [
                ("queries", "Localization / generation queries"),
                ("queries_without_relevant_unit", "of which without a relevant unit"),
            ],
        ),
    ):
        notes = paper.notes_for(key)
        mark_of = _footnote_marks(notes)
        used: set[str] = set()
        columns = [Column(label, None, (("quantity", q),)) for q, label in quantities]
        rows = []
        for dataset in datasets:
            record = stats.get(dataset)
            cells: list[Cell] = []
            for quantity, _ in quantities:
                field_name = "fine_grained_queries" if (key, quantity) == ("table_7", "queries") else quantity
                value = None if record is None else record.get(field_name)
                if record is not None and value is None:
                    raise DataFormatError(f"{record['_source']}: field {field_name!r} missing")
                marks = [
                    mark_of[n.id]
                    for n in notes
                    if n.metric is not None and n.id in mark_of and n.matches(key, None, dataset, quantity)
                ]
                used.update(marks)
                cells.append(CountCell(value, paper.stat(key, quantity, dataset), marks))
            row_marks = [
                mark_of[n.id]
                for n in notes
                if n.metric is None and n.id in mark_of and n.matches(key, None, dataset)
            ]
            used.update(row_marks)
            group = "qa" if dataset in QA_DATASETS else "rir"
            rows.append(Row(paper.dataset_label(dataset), cells, group, (("dataset", dataset),), row_marks))
        tables.append(
            Table(
                key,
                paper.title(key),
                "Data set",
                columns,
                rows,
                group_labels,
                _count_legend(),
                _footnotes(notes, mark_of, used),
            )
        )
    return tables


def _ordered_scenarios(*collections: Iterable[str]) -> list[str]:
    wanted = {s for c in collections for s in c}
    return [s for s in SCENARIO_LABELS if s in wanted] + sorted(wanted - set(SCENARIO_LABELS))


def _count_legend() -> str:
    return (
        f"Each cell: this run / paper (this run {MINUS} paper). '{NOT_RUN}': not built by this run; "
        f"'{NOT_IN_PAPER}': not in the paper. Sizes are compared, not marked: a mini run is smaller by design."
    )


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------


def _column_groups(columns: Sequence[Column]) -> list[tuple[str | None, int]]:
    groups: list[tuple[str | None, int]] = []
    for column in columns:
        if groups and groups[-1][0] == column.top and column.top is not None:
            groups[-1] = (column.top, groups[-1][1] + 1)
        else:
            groups.append((column.top, 1))
    return groups


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(table: Table) -> str:
    """GitHub-flavoured Markdown: a heading, the table with row-group lines, legend and footnotes."""
    headers = [table.corner] + [f"{c.top} {c.label}" if c.top else c.label for c in table.columns]
    lines = [
        f"### {table.title}",
        "",
        "| " + " | ".join(map(_md_escape, headers)) + " |",
        "|" + "---|" * len(headers),
    ]
    group = None
    for row in table.rows:
        if row.group is not None and row.group != group:
            group = row.group
            lines.append(
                f"| *{_md_escape(table.group_labels.get(group, group))}* |" + " |" * len(table.columns)
            )
        label = row.label + _marks(row.marks, "text")
        lines.append("| " + " | ".join(_md_escape(x) for x in [label, *(c.text() for c in row.cells)]) + " |")
    lines += ["", table.legend] if table.legend else []
    for mark, text in table.footnotes:
        lines += ["", f"[{mark}] {text}" if mark else f"Note: {text}"]
    return "\n".join(lines) + "\n"


LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "—": "--",
    "−": "$-$",
    "±": r"$\pm$",
    "✓": r"$\surd$",
    "✗": r"$\times$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (and the few Unicode signs the tables use)."""
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def to_latex(table: Table) -> str:
    """A ``table`` float with a booktabs ``tabular`` (two header rows when columns share a top label)."""
    n = len(table.columns)
    lines = [
        "% Generated by gear.report.tables from the run's results; needs \\usepackage{booktabs}.",
        "\\begin{table}[t]",
        "\\centering",
        "\\scriptsize",
        f"\\caption{{{latex_escape(table.title)}}}",
        f"\\label{{tab:{table.key.replace('_', '-')}}}",
        "\\begin{tabular}{l" + "r" * n + "}",
        "\\toprule",
    ]
    groups = _column_groups(table.columns)
    if any(top for top, _ in groups):
        tops, rules, start = [""], [], 2
        for top, span in groups:
            tops.append(
                f"\\multicolumn{{{span}}}{{c}}{{{latex_escape(top or '')}}}"
                if span > 1
                else latex_escape(top or "")
            )
            if top:
                rules.append(f"\\cmidrule(lr){{{start}-{start + span - 1}}}")
            start += span
        lines.append(" & ".join(tops) + " \\\\")
        lines.append(" ".join(rules))
    lines.append(
        " & ".join([latex_escape(table.corner)] + [latex_escape(c.label) for c in table.columns]) + " \\\\"
    )
    lines.append("\\midrule")
    group = None
    for row in table.rows:
        if row.group is not None and row.group != group:
            if group is not None:
                lines.append("\\midrule")
            group = row.group
            lines.append(
                f"\\multicolumn{{{n + 1}}}{{l}}{{\\textit{{{latex_escape(table.group_labels.get(group, group))}}}}} \\\\"
            )
        label = latex_escape(row.label) + _marks(row.marks, "latex")
        lines.append(" & ".join([label, *(c.latex() for c in row.cells)]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    notes = [latex_escape(table.legend)] if table.legend else []
    notes += [
        (f"\\textsuperscript{{{mark}}}~" if mark else "") + latex_escape(text)
        for mark, text in table.footnotes
    ]
    if notes:
        lines += ["\\par\\smallskip", "\\parbox{\\linewidth}{\\tiny " + " \\\\ ".join(notes) + "}"]
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def csv_records(table: Table) -> list[dict[str, str]]:
    """One record per cell: the table, the row's and column's keys, and the cell's fields."""
    records = []
    for row in table.rows:
        for column, cell in zip(table.columns, row.cells, strict=True):
            record = {"table": table.key, "row": row.label, "group": row.group or ""}
            record.update(dict(row.keys))
            record.update(dict(column.keys))
            record.update(cell.record())
            records.append(record)
    return records


def to_csv(tables: Table | Sequence[Table]) -> str:
    """CSV text of one or several tables (long form: one line per cell)."""
    tables = [tables] if isinstance(tables, Table) else list(tables)
    records = [r for t in tables for r in csv_records(t)]
    fields: list[str] = []
    for record in records:
        fields += [k for k in record if k not in fields]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def to_html(table: Table) -> str:
    """An HTML fragment: heading, ``<table class="gear">``, legend and footnotes (all escaped)."""
    parts = [f"<h2>{esc(table.title)}</h2>", '<table class="gear">', "<thead>"]
    groups = _column_groups(table.columns)
    if any(top for top, _ in groups):
        parts.append(
            "<tr><th></th>"
            + "".join(f'<th colspan="{span}">{esc(top or "")}</th>' for top, span in groups)
            + "</tr>"
        )
    parts.append(
        f"<tr><th>{esc(table.corner)}</th>"
        + "".join(f"<th>{esc(c.label)}</th>" for c in table.columns)
        + "</tr>"
    )
    parts.append("</thead><tbody>")
    group = None
    for row in table.rows:
        if row.group is not None and row.group != group:
            group = row.group
            parts.append(
                f'<tr class="group"><td colspan="{len(table.columns) + 1}">{esc(table.group_labels.get(group, group))}</td></tr>'
            )
        cells = "".join(f"<td>{c.html()}</td>" for c in row.cells)
        parts.append(f'<tr><td class="label">{esc(row.label)}{_marks(row.marks, "html")}</td>{cells}</tr>')
    parts.append("</tbody></table>")
    if table.legend:
        parts.append(f'<p class="legend">{esc(table.legend)}</p>')
    parts += [
        f'<p class="note">{f"<sup>{esc(m)}</sup> " if m else "Note: "}{esc(t)}</p>'
        for m, t in table.footnotes
    ]
    return "\n".join(parts)


def write_tables(
    tables: Table | Sequence[Table],
    outputs: Mapping[str, str | os.PathLike],
    page_title: str | None = None,
    empty_message: str | None = None,
) -> None:
    """Write one or several tables to the formats named in ``outputs`` (md, tex, csv, html), atomically.

    Several tables go one after the other in each file (one CSV with a ``table`` column). With no
    table and an ``empty_message``, each file says that message instead (e.g. nothing to compare).
    """
    tables = [tables] if isinstance(tables, Table) else list(tables)
    if not tables and not empty_message:
        raise ValueError("no table to write")
    title = page_title or (tables[0].title if tables else "Table")
    if not tables:
        # Nothing to compare (e.g. a run with GeAR alone): say so in every format.
        renderers = {
            "md": lambda: f"### {title}\n\n{empty_message}\n",
            "tex": lambda: f"% {title}: {empty_message}\n",
            "csv": lambda: "table,row,status\n",
            "html": lambda: html_page(title, f"<h2>{esc(title)}</h2><p>{esc(empty_message)}</p>"),
        }
    else:
        renderers = {
            "md": lambda: "\n".join(to_markdown(t) for t in tables),
            "tex": lambda: "\n".join(to_latex(t) for t in tables),
            "csv": lambda: to_csv(tables),
            "html": lambda: html_page(title, "\n".join(to_html(t) for t in tables)),
        }
    unknown = set(outputs) - set(renderers)
    if unknown:
        raise ValueError(f"unknown table format(s) {sorted(unknown)}; known: {sorted(renderers)}")
    for fmt, path in outputs.items():
        text = renderers[fmt]()
        with atomic_open(path) as handle:
            handle.write(text)


# --------------------------------------------------------------------------------------------
# Jobs: what the workflow's scripts call
# --------------------------------------------------------------------------------------------


def make_metric_table(
    table: str,
    result_paths: Iterable[str | os.PathLike],
    run_models: Sequence[Sequence[str]],
    metrics: Mapping[str, Sequence[str]],
    tolerance: float,
    show_ci: bool,
    outputs: Mapping[str, str | os.PathLike],
    paper_path: str | os.PathLike = PAPER_NUMBERS,
) -> Table:
    """Read the results of Table 1, 2 or 3's task, build the table, write it (see :func:`build_metric_table`).

    Args:
        result_paths: every result JSON of the task in the run.
        run_models: ``(name, group)`` of the run's models having the task.
        outputs: format (md, tex, csv, html) -> path.
    """
    paper = PaperNumbers.load(paper_path)
    results = load_results(result_paths, TASK_OF_TABLE[table])
    built = build_metric_table(
        table, paper, [tuple(m) for m in run_models], metrics, results, tolerance, show_ci
    )
    write_tables(built, outputs)
    return built


def make_stats_tables(
    stats_paths: Iterable[str | os.PathLike],
    train_paths: Mapping[str, str | os.PathLike],
    outputs: Mapping[str, Mapping[str, str | os.PathLike]],
    paper_path: str | os.PathLike = PAPER_NUMBERS,
) -> list[Table]:
    """Tables 5-7 from the ``stats.json`` files and the training triples files.

    Args:
        stats_paths: ``R/data/{dataset}/stats.json`` of every evaluated data set.
        train_paths: scenario -> ``R/data/train/{scenario}.jsonl`` (its lines are counted).
        outputs: ``"table_5"`` / ``"table_6"`` / ``"table_7"`` -> format -> path.
    """
    paper = PaperNumbers.load(paper_path)
    train = {scenario: count_lines(path) for scenario, path in train_paths.items()}
    tables = build_stats_tables(load_stats(stats_paths), train, paper)
    for table in tables:
        write_tables(table, outputs[table.key])
    return tables


def make_significance_tables(
    result_paths: Mapping[str, Iterable[str | os.PathLike]],
    metrics: Mapping[str, Mapping[str, Sequence[str]]],
    reference: str,
    models: Sequence[str],
    bootstrap: Mapping,
    outputs: Mapping[str, str | os.PathLike],
    paper_path: str | os.PathLike = PAPER_NUMBERS,
) -> list[Table]:
    """The significance tables of every task, written into one set of files.

    Args:
        result_paths: task -> its result JSONs.
        metrics: task -> data set -> metric names.
        reference: the model compared with all others (GeAR).
        models: the run's model names, in row order.
        bootstrap: the config's ``evaluate.bootstrap`` (``resamples``, ``seed``, ``confidence``).
        outputs: format -> path.
    """
    paper = PaperNumbers.load(paper_path)
    results = {task: load_results(paths, task) for task, paths in result_paths.items()}
    tables = build_significance_tables(
        results,
        metrics,
        reference,
        models,
        int(bootstrap["resamples"]),
        int(bootstrap["seed"]),
        float(bootstrap["confidence"]),
        paper.dataset_labels,
    )
    write_tables(
        tables,
        outputs,
        page_title=f"Significance: {reference} against each model",
        empty_message=f"No model besides {reference} was evaluated on the same task: nothing to compare.",
    )
    return tables


def task_inputs(task: str, models: Sequence, datasets: Sequence[str], layout) -> list[Path]:
    """Result JSONs a task's table reads: every model having the task, on every evaluated data set."""
    return [layout.eval_json(m.name, d, task) for m in models if task in m.tasks for d in datasets]


def task_models(task: str, models: Sequence) -> list[tuple[str, str]]:
    """``(name, group)`` of the models having a task, in the run's order."""
    return [(m.name, m.group) for m in models if task in m.tasks]


def task_metric_names(task: str, datasets: Sequence[str], evaluate_cfg: Mapping) -> dict[str, list[str]]:
    """Data set -> the metric names of a task (:func:`task_metrics`)."""
    return {d: task_metrics(task, d, evaluate_cfg) for d in datasets}

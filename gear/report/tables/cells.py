"""Typed cells, rows and tables: a reproduced value beside the paper's, counts, p-values, footnotes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gear.report.pages import esc
from gear.report.tables.paper import Note
from gear.report.tables.text import (
    LATEX_OUTSIDE,
    LATEX_WITHIN,
    MARK_OUTSIDE,
    MARK_WITHIN,
    MINUS,
    NOT_IN_PAPER,
    NOT_RUN,
    latex_escape,
)

# --------------------------------------------------------------------------------------------
# Cells and tables
# --------------------------------------------------------------------------------------------


def _signed(value: float, digits: int, minus: str = MINUS) -> str:
    text = f"{abs(value):,.{digits}f}"
    if round(value, digits) == 0:
        return f"±{text}" if minus == MINUS else text
    return ("+" if value > 0 else minus) + text


def render_marks(marks: Sequence[str], style: str) -> str:
    if not marks:
        return ""
    joined = ",".join(marks)
    if style == "latex":
        return f"\\textsuperscript{{{latex_escape(joined)}}}"
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
        return f"{self.paper:.{self.digits}f}{render_marks(self.marks, style)}"

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
class PaperValueCell:
    """The paper's printed value alone, for a model this run did not evaluate (the "paper only" rows)."""

    paper: float | None
    digits: int = 3
    marks: list[str] = field(default_factory=list)

    def _text(self, style: str) -> str:
        if self.paper is None:
            return NOT_IN_PAPER if style != "latex" else "--"
        return f"{self.paper:.{self.digits}f}{render_marks(self.marks, style)}"

    def text(self) -> str:
        return self._text("text")

    def latex(self) -> str:
        return self._text("latex")

    def html(self) -> str:
        return f'<span class="paper">{self._text("html")}</span>'

    def record(self) -> dict[str, Any]:
        return {
            "reproduced": "",
            "paper": "" if self.paper is None else f"{self.paper:.6g}",
            "status": "paper_only",
            "notes": ";".join(self.marks),
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
            else f"{self.paper:,}{render_marks(self.marks, style)}"
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


def footnote_marks(notes: Sequence[Note]) -> dict[str, str]:
    """Letters a, b, c, ... for the notes that mark cells or rows (table-level notes get none)."""
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    return {note.id: next(letters) for note in notes if not note.is_table_level}


def used_footnotes(notes: Sequence[Note], marks: Mapping[str, str], used: set[str]) -> list[tuple[str, str]]:
    out = [(marks[n.id], n.text) for n in notes if n.id in marks and marks[n.id] in used]
    out += [("", n.text) for n in notes if n.is_table_level]
    return out

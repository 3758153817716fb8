"""Tables 5-7: training data, retrieval test sets, localization and generation test sets."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from gear.io import DataFormatError, read_json, require_fields
from gear.layout import QA_DATASETS, dataset_tasks, is_beir
from gear.report.tables.cells import Cell, Column, CountCell, Row, Table, footnote_marks, used_footnotes
from gear.report.tables.paper import PaperNumbers
from gear.report.tables.results import ordered_datasets
from gear.report.tables.text import MINUS, NOT_IN_PAPER, NOT_RUN, SCENARIO_LABELS

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
            footnotes=used_footnotes(notes, {}, set()),
        )
    )

    datasets = ordered_datasets(paper.datasets, stats)
    group_labels = {"qa": "QA", "rir": "RIR", "beir": "BEIR (config data.beir; beyond the paper)"}
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
        mark_of = footnote_marks(notes)
        used: set[str] = set()
        columns = [Column(label, None, (("quantity", q),)) for q, label in quantities]
        rows = []
        for dataset in datasets:
            if key == "table_7" and "localization" not in dataset_tasks(dataset):
                continue  # a BEIR set has no localization or generation queries
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
            group = "qa" if dataset in QA_DATASETS else "beir" if is_beir(dataset) else "rir"
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
                used_footnotes(notes, mark_of, used),
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

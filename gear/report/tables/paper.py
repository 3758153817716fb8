"""The paper's printed numbers (``gear/report/paper_numbers.yaml``) and their known oddities (SPEC 9)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gear.config import load_yaml
from gear.io import DataFormatError
from gear.report.tables.text import METRIC_TABLES

PAPER_NUMBERS = Path(__file__).parent.parent / "paper_numbers.yaml"

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

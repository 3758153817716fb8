"""Model cards: the ``README.md`` every trained model folder of the suite carries.

A card is Hugging Face's format (YAML front matter, then Markdown) with what is known when the
model is saved: the base model, the training data (file names, counts, checksum), the key
hyperparameters, the run's own numbers (steps, final losses, wall time), how to load it, and a
"Not in this card" section: evaluation results do not exist at save time (the workflow writes
them later under ``R/eval/{model}/``), so a card never carries a metric it did not measure.

Written by ``gear.training.trainer`` (GeAR), ``baselines.retrain_bge`` (BGE_RT) and
``baselines.retrain_sbert`` (SBERT_RT) into the folder they write atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gear.hub import looks_like_a_path

#: the card's file name (the Hugging Face hub shows it as the model page)
CARD_NAME = "README.md"


@dataclass
class ModelCard:
    """What a card says; :meth:`render` gives the Markdown."""

    title: str  # e.g. "GeAR (qar)"
    summary: str  # one paragraph: what the model is and which pipeline trained it
    base_model: str  # checkpoint the training started from (hub id or path)
    training_data: Mapping[str, object]  # name -> count or description
    config: Mapping[str, object]  # key hyperparameters, name -> value
    metrics: Mapping[str, object]  # the run's own numbers at save time, name -> value
    usage: str  # Markdown: how to load it (code blocks)
    not_included: Sequence[str]  # what the card does not contain, and where it is
    tags: Sequence[str] = field(default_factory=list)
    library_name: str = "gear-repro"

    def render(self) -> str:
        front = {"library_name": self.library_name, "tags": list(self.tags)}
        if not looks_like_a_path(self.base_model):
            front["base_model"] = self.base_model
        lines = ["---", *(f"{k}: {json.dumps(v)}" for k, v in front.items()), "---", ""]
        lines += [f"# {self.title}", "", self.summary, "", f"**Base model:** `{self.base_model}`", ""]
        for heading, table in (
            ("Training data", self.training_data),
            ("Configuration", self.config),
            ("This run's numbers (at save time)", self.metrics),
        ):
            lines += [f"## {heading}", "", "| | |", "|---|---|"]
            lines += [f"| {name} | {_value(value)} |" for name, value in table.items()]
            lines.append("")
        lines += ["## Usage", "", self.usage.strip(), "", "## Not in this card", ""]
        lines += [f"- {item}" for item in self.not_included]
        return "\n".join(lines) + "\n"

    def write(self, folder: str | Path) -> Path:
        """Write ``folder/README.md`` (the caller's folder is written atomically as a whole)."""
        path = Path(folder) / CARD_NAME
        path.write_text(self.render(), encoding="utf-8")
        return path


def _value(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.6g}"
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|")

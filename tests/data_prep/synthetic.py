"""Synthetic Wikipedia-like articles for the RIR tests (written for this project)."""

from __future__ import annotations

import json
import random
from pathlib import Path

SUBJECTS = [
    "The old harbour",
    "The river Wend",
    "The northern railway",
    "The city council",
    "The stone bridge",
    "The royal library",
    "The coastal fort",
    "The glass factory",
    "The village school",
    "The copper mine",
    "The botanical garden",
    "The cathedral choir",
    "The market square",
    "The university press",
]
VERBS = [
    "was rebuilt",
    "was extended",
    "was opened",
    "was surveyed",
    "was restored",
    "was damaged",
    "was sold",
]
PLACES = ["Ardmore", "Bellhaven", "Corrin", "Dunmere", "Eastwick", "Falloway", "Glenbrook", "Harrowgate"]
PEOPLE = ["Anna Reyes", "Tomas Berg", "Lena Holt", "Marcus Ode", "Ines Varga", "Peter Lund", "Clara Moss"]


def make_sentence(rng: random.Random) -> str:
    """A sentence of about 10-16 bert tokens, first word not a pronoun."""
    return (
        f"{rng.choice(SUBJECTS)} of {rng.choice(PLACES)} {rng.choice(VERBS)} in "
        f"{rng.randint(1700, 1990)} by {rng.choice(PEOPLE)}."
    )


def make_article(rng: random.Random, sentences: int = 24, paragraphs: int = 4) -> str:
    """Prose paragraphs separated by blank lines, as in a WikiExtractor dump."""
    lines = [make_sentence(rng) for _ in range(sentences)]
    size = max(1, sentences // paragraphs)
    return "\n\n".join(" ".join(lines[i : i + size]) for i in range(0, sentences, size))


def write_wiki(path: Path, articles: list[dict]) -> Path:
    path.write_text("".join(json.dumps(a) + "\n" for a in articles), encoding="utf-8")
    return path

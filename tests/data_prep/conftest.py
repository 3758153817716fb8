"""Fixtures of the data-preparation tests: small inputs in the real native formats.

Every file is written by the test into ``tmp_path``; the tokenizer is the real bert-base-uncased
vocabulary shipped with the MiniLM package (``data.token_counter`` of config/mini.yaml).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.data_prep.synthetic import PEOPLE, PLACES, VERBS, make_article, write_wiki

REPO_ROOT = Path(__file__).resolve().parents[2]
MINI = REPO_ROOT / "data_prep" / "mini"


@pytest.fixture()
def wiki_dump(tmp_path) -> Path:
    """Eight articles that pass pre-processing and two that do not (too short; pronouns only)."""
    rng = random.Random(7)
    articles = [
        {
            "id": str(100 + i),
            "url": f"https://example.org/{i}",
            "title": f"Article {i}",
            "text": make_article(rng),
        }
        for i in range(8)
    ]
    articles.append({"id": "200", "url": "u", "title": "Stub", "text": "A stub. Too short to keep."})
    pronoun_text = " ".join(
        f"{p} {rng.choice(VERBS)} in {rng.randint(1700, 1990)} near {rng.choice(PLACES)} by {rng.choice(PEOPLE)}."
        for p in ["It", "They", "He", "She", "We", "This", "These", "It", "They", "He"] * 4
    )
    articles.append({"id": "201", "url": "u", "title": "Pronouns", "text": pronoun_text})
    return write_wiki(tmp_path / "wiki.jsonl", articles)


@pytest.fixture()
def data_cfg(mini_config) -> dict:
    """The mini config's ``data`` section (a fresh copy)."""
    return mini_config["data"]


@pytest.fixture(scope="session")
def mini_dir() -> Path:
    """The embedded mini data: part of the repository, so its absence is a failure, not a skip."""
    assert (MINI / "squad" / "mini-dev.json").is_file(), f"mini benchmark data missing from {MINI}"
    return MINI

"""Fixtures of the baselines tests: tiny training triples, a direct transformers reference, run configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.baselines.helpers import write_triples


@pytest.fixture()
def triples_file(tmp_path) -> Path:
    """16 training triples at tmp_path/data/train/qar.jsonl."""
    return write_triples(tmp_path / "data" / "train" / "qar.jsonl")


@pytest.fixture(scope="session")
def minilm_reference(minilm_path):
    """The MiniLM weights loaded with plain transformers: the reference the adapters must match."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    model = AutoModel.from_pretrained(minilm_path).eval()
    return tokenizer, model


@pytest.fixture()
def run_config(tmp_path, mini_config) -> dict:
    """config/mini.yaml with its results and reports under tmp_path."""
    mini_config["results_dir"] = str(tmp_path / "results")
    mini_config["reports_dir"] = str(tmp_path / "reports")
    return mini_config

"""The streaming pre-processing benchmark runs and reports its figures (at a tiny size here)."""

from __future__ import annotations

import json

import pytest

from data_prep.bench_preprocess import run, write_synthetic_dump
from tests.conftest import REPO_ROOT


def test_synthetic_dump_cycles_unique_articles(tmp_path, mini_dir):
    source = mini_dir / "wikipedia" / "enwiki-mini.jsonl"
    write_synthetic_dump(source, 60, tmp_path / "dump.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "dump.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and len({r["id"] for r in rows}) == 60 and len({r["title"] for r in rows}) == 60
    assert rows[0]["text"] == rows[26]["text"]


@pytest.mark.slow
def test_benchmark_reports_rate_and_memory(mini_dir):
    result = run(30, 1, REPO_ROOT / "config" / "mini.yaml", mini_dir / "wikipedia" / "enwiki-mini.jsonl")
    assert result["documents"] == 30 and result["articles_per_s"] > 0
    assert 0 < result["kept"] < 30 and sum(result["skipped"].values()) == 30 - result["kept"]
    assert result["peak_rss_mb"]["self"] > 0

"""RIR post-processing: keyword clean-up, the real MiniLM relevance filter, the document split."""

from __future__ import annotations

import json
import random

import pytest

from data_prep.normalized import load_corpus, load_queries
from data_prep.rir.pipeline import build_rir, work_paths
from data_prep.rir.postprocess import SimilarityFilter, clean_query, postprocess_rewrites
from gear.io import DataFormatError, read_jsonl
from tests.data_prep.synthetic import make_article, write_wiki


def test_clean_query():
    raw = ' "Eiffel Tower", paris , Paris.,\n1889\n, , eiffel tower, construction. '
    cleaned = clean_query(raw, seed=1, query_id="q")
    assert sorted(cleaned.split(", ")) == ["1889", "Eiffel Tower", "construction", "paris"]
    assert cleaned == clean_query(raw, seed=1, query_id="q")
    orders = {clean_query("a, b, c, d, e", seed=1, query_id=f"q{i}") for i in range(20)}
    assert len(orders) > 1  # shuffled, per query
    assert clean_query(" , ,\n ", 0, "q") == ""


@pytest.fixture(scope="module")
def similarity(minilm_path):
    return SimilarityFilter(str(minilm_path), batch_size=32, device="cpu")


@pytest.fixture(scope="module")
def rir_run(tmp_path_factory, similarity):
    """The offline pipeline on 12 articles, once for the module."""
    from gear.config import load_config
    from tests.conftest import REPO_ROOT

    cfg = load_config(REPO_ROOT / "config" / "mini.yaml")["data"]
    cfg["rir"]["filter"]["threshold"] = -1.0  # keep all: the split is what is tested here
    cfg["rir"]["split"].update(test_fraction=0.25, localization_queries=5)
    folder = tmp_path_factory.mktemp("rir")
    rng = random.Random(11)
    source = write_wiki(
        folder / "wiki.jsonl",
        [{"id": str(i), "url": "", "title": f"A{i}", "text": make_article(rng)} for i in range(12)],
    )
    stats = build_rir(
        source,
        folder / "work",
        folder / "rir",
        folder / "train" / "rir.jsonl",
        cfg,
        seed=42,
        similarity=similarity,
    )
    return folder, cfg, stats


@pytest.mark.slow
def test_split_by_document_and_outputs(rir_run):
    folder, _, stats = rir_run
    post = stats["postprocess"]
    corpus = {d.doc_id: d for d in load_corpus(folder / "rir" / "corpus.jsonl")}
    queries = load_queries(folder / "rir" / "queries.jsonl")
    triples = read_jsonl(folder / "train" / "rir.jsonl")
    assert post["documents_with_triples"] == 12 and post["test_documents"] == 3  # round(0.25 * 12)
    assert len(corpus) == 12  # test_corpus: all
    assert len(queries) == 9 and len(triples) == 27
    test_docs = {q.doc_id for q in queries}
    assert len(test_docs) == 3 and not test_docs & {t["doc_id"] for t in triples}
    assert sum(q.fine_grained for q in queries) == post["fine_grained_queries"] == 5
    for q in queries:
        document = corpus[q.doc_id]
        (unit,) = q.relevant_units
        start, end = document.units[unit]
        assert document.text[start:end] == q.target == q.answers[0]
        assert q.text and q.query_id == f"{q.doc_id}-u{unit}"
    for t in triples:
        assert t["document"] == corpus[t["doc_id"]].text and t["target"] in t["document"]
        assert set(t) == {"query_id", "query", "doc_id", "document", "target"}
    assert post["similarity"]["n"] == 36 and -1 <= post["similarity"]["p50"] <= 1


@pytest.mark.slow
def test_threshold_and_test_corpus(rir_run, similarity, tmp_path):
    folder, cfg, first = rir_run
    paths = work_paths(folder / "work")
    median = first["postprocess"]["similarity"]["p50"]
    split = {**cfg["rir"]["split"], "test_corpus": "test"}
    stats = postprocess_rewrites(
        paths["preprocessed"],
        paths["rewrites"],
        tmp_path / "rir",
        tmp_path / "rir.jsonl",
        {**cfg["rir"]["filter"], "threshold": median},
        split,
        42,
        512,
        similarity=similarity,
    )
    kept = stats["queries"] + stats["train"]["triples"]
    assert 0 < kept < 36 and stats["skipped"]["below_threshold"] == 36 - kept
    assert stats["documents"] == stats["test_documents"]  # test_corpus: test
    with pytest.raises(DataFormatError, match="no RIR triple survived the filter"):
        postprocess_rewrites(
            paths["preprocessed"],
            paths["rewrites"],
            tmp_path / "none",
            tmp_path / "none.jsonl",
            {**cfg["rir"]["filter"], "threshold": 1.0},
            split,
            42,
            512,
            similarity=similarity,
        )
    assert not (tmp_path / "none.jsonl").exists()
    assert not (tmp_path / "none").exists() or not any((tmp_path / "none").iterdir())


@pytest.mark.slow
def test_mismatched_rewrites_are_refused(rir_run, similarity, tmp_path):
    folder, cfg, _ = rir_run
    paths = work_paths(folder / "work")
    rows = paths["rewrites"].read_text().splitlines()
    shuffled = tmp_path / "rewrites.jsonl"
    shuffled.write_text("\n".join(rows[3:] + rows[:3]) + "\n")
    with pytest.raises(DataFormatError, match="does not follow the order"):
        postprocess_rewrites(
            paths["preprocessed"],
            shuffled,
            tmp_path / "rir",
            tmp_path / "rir.jsonl",
            cfg["rir"]["filter"],
            cfg["rir"]["split"],
            42,
            512,
            similarity=similarity,
        )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"doc_id": "rir-0", "unit": "zero", "sentence": "s", "rewrite": "r"}) + "\n")
    with pytest.raises(DataFormatError, match=r"bad.jsonl:1: field 'unit' should be int"):
        postprocess_rewrites(
            paths["preprocessed"],
            bad,
            tmp_path / "rir",
            tmp_path / "rir.jsonl",
            cfg["rir"]["filter"],
            cfg["rir"]["split"],
            42,
            512,
            similarity=similarity,
        )

"""mteb is an optional extra: without it, baselines.mteb_task names the extra to install."""

from __future__ import annotations

import sys

import pytest

from baselines import mteb_task

EXTRA = r"pip install -e '\.\[mteb\]'"


@pytest.fixture
def no_mteb(monkeypatch):
    """An interpreter where `import mteb` fails, as in the main install."""
    monkeypatch.setitem(sys.modules, "mteb", None)


def test_every_entry_point_names_the_extra_when_mteb_is_missing(no_mteb, tmp_path):
    with pytest.raises(ImportError, match=EXTRA):
        mteb_task.local_retrieval_task(tmp_path)
    with pytest.raises(ImportError, match=EXTRA):
        mteb_task.MtebEncoder(encoder=None)
    with pytest.raises(ImportError, match=EXTRA):
        mteb_task.evaluate_local(encoder=None, dataset_dir=tmp_path)


def test_reading_a_test_set_needs_no_mteb(no_mteb, tmp_path):
    (tmp_path / "corpus.jsonl").write_text('{"doc_id": "d0", "title": "T", "text": "Some text."}\n')
    (tmp_path / "queries.jsonl").write_text('{"query_id": "q0", "text": "Which text?", "doc_id": "d0"}\n')
    split = mteb_task.read_local_retrieval(tmp_path)
    assert split["relevant_docs"] == {"q0": {"d0": 1}}
    assert list(split["corpus"]["id"]) == ["d0"]

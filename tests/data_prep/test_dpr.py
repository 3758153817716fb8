"""NQ / TriviaQA builder on DPR's retriever JSON (plain and gzipped), and its bad inputs."""

from __future__ import annotations

import gzip
import json

import pytest

from data_prep.dpr import build_dpr
from data_prep.normalized import load_corpus, load_queries
from gear.io import DataFormatError


def ctx(pid, title, text):
    return {"title": title, "text": text, "score": 1.0, "title_score": 0, "passage_id": pid}


GG = ctx(
    "11",
    "Golden Gate Bridge",
    "The Golden Gate Bridge opened in 1937. Its chief engineer was Joseph Strauss.",
)
BB = ctx("12", "Brooklyn Bridge", "The Brooklyn Bridge opened in 1883. It was designed by John A. Roebling.")
TB = ctx("13", "Tower Bridge", "Tower Bridge crosses the Thames in London. It opened in 1894.")


def entries():
    return [
        {
            "dataset": "nq_dev_psgs_w100",
            "question": "who was the chief engineer of the golden gate bridge",
            "answers": ["Joseph Strauss"],
            "positive_ctxs": [GG],
            "negative_ctxs": [TB],
            "hard_negative_ctxs": [BB],
        },
        {
            "dataset": "nq_dev_psgs_w100",
            "question": "when did the brooklyn bridge open",
            "answers": ["1883", "May 24, 1883"],
            "positive_ctxs": [BB, TB],
            "negative_ctxs": [],
            "hard_negative_ctxs": [GG],
        },
        {
            "dataset": "nq_dev_psgs_w100",
            "question": "a question without a positive",
            "answers": ["x"],
            "positive_ctxs": [],
            "negative_ctxs": [ctx("14", "Extra", "A distractor passage.")],
            "hard_negative_ctxs": [],
        },
        {
            "dataset": "nq_dev_psgs_w100",
            "question": "where is tower bridge",
            "answers": ["Paris"],
            "positive_ctxs": [TB],
            "negative_ctxs": [ctx("15", "Empty", "  ")],
            "hard_negative_ctxs": [],
        },
    ]


def test_build_dpr_corpus_gold_and_counts(tmp_path, data_cfg):
    source = tmp_path / "nq-dev.json"
    source.write_text(json.dumps(entries()))
    stats = build_dpr(source, tmp_path / "out", data_cfg, "nq")
    docs = {d.doc_id: d for d in load_corpus(tmp_path / "out" / "corpus.jsonl")}
    queries = load_queries(tmp_path / "out" / "queries.jsonl")
    assert sorted(docs) == ["nq-11", "nq-12", "nq-13", "nq-14"]  # every context; repeats merged
    assert stats["queries"] == 3 and stats["skipped"] == {"empty_document": 1, "no_positive_ctx": 1}
    gold = {q.text: q for q in queries}
    assert gold["when did the brooklyn bridge open"].doc_id == "nq-12"  # the first positive
    assert gold["when did the brooklyn bridge open"].relevant_units == [0]
    assert gold["who was the chief engineer of the golden gate bridge"].relevant_units == [1]
    assert gold["where is tower bridge"].relevant_units == []
    assert stats["queries_without_relevant_unit"] == 1
    assert all(q.query_id.startswith("nq-") for q in queries)


def test_gzipped_source_and_triviaqa_prefix(tmp_path, data_cfg):
    source = tmp_path / "trivia-dev.json.gz"
    with gzip.open(source, "wt", encoding="utf-8") as handle:
        json.dump(entries(), handle)
    stats = build_dpr(source, tmp_path / "out", data_cfg, "triviaqa")
    assert stats["dataset"] == "triviaqa" and stats["documents"] == 4
    assert all(d.doc_id.startswith("triviaqa-") for d in load_corpus(tmp_path / "out" / "corpus.jsonl"))


def test_repeated_questions_and_conflicting_passage_ids(tmp_path, data_cfg):
    data = entries()
    data.append(dict(data[0]))  # exact repeat: counted
    data.append({**data[0], "answers": ["Strauss"]})  # same text, other answers: kept, longer id
    data[1]["hard_negative_ctxs"] = [ctx("11", "Golden Gate Bridge", "Another text under id 11.")]
    source = tmp_path / "nq.json"
    source.write_text(json.dumps(data))
    stats = build_dpr(source, tmp_path / "out", data_cfg, "nq")
    assert stats["skipped"]["duplicate_query"] == 1
    assert stats["repeated_question_text"] == 1 and stats["conflicting_source_ids"] == 1
    ids = [q.query_id for q in load_queries(tmp_path / "out" / "queries.jsonl")]
    assert len(ids) == len(set(ids)) == 4


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d[1].pop("question"), r"\[1\]: missing field 'question'"),
        (lambda d: d[0].update(answers="Joseph Strauss"), r"\[0\]: field 'answers' should be list"),
        (
            lambda d: d[0].update(positive_ctxs={"title": "x"}),
            r"\[0\]: field 'positive_ctxs' should be a list",
        ),
        (lambda d: d[0]["negative_ctxs"][0].pop("text"), r"\[0\].negative_ctxs\[0\]: missing field 'text'"),
    ],
)
def test_bad_dpr_input(tmp_path, data_cfg, mutate, message):
    data = entries()
    mutate(data)
    source = tmp_path / "nq.json"
    source.write_text(json.dumps(data))
    with pytest.raises(DataFormatError, match=message):
        build_dpr(source, tmp_path / "out", data_cfg, "nq")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_truncated_gzip_and_no_usable_question(tmp_path, data_cfg):
    source = tmp_path / "nq.json.gz"
    source.write_bytes(gzip.compress(json.dumps(entries()).encode())[:-20])
    with pytest.raises(DataFormatError, match="not a valid gzip file"):
        build_dpr(source, tmp_path / "out", data_cfg, "nq")
    plain = tmp_path / "none.json"
    plain.write_text(json.dumps([entries()[2]]))
    with pytest.raises(DataFormatError, match="no usable query"):
        build_dpr(plain, tmp_path / "out", data_cfg, "nq")
    assert not any((tmp_path / "out").iterdir())

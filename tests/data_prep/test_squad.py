"""SQuAD builder: construction, statistics, bad input, and the real dev set."""

from __future__ import annotations

import json
import time

import pytest

from data_prep.normalized import load_corpus, load_queries
from data_prep.squad import build_squad
from gear.io import DataFormatError

CONTEXT_A = "Normandy is a region in France. Its capital is Rouen. The Normans came from Scandinavia."
CONTEXT_B = "Tesla was born in Smiljan. He moved to the United States in 1884."


def squad_json(**overrides) -> dict:
    data = {
        "version": "1.1",
        "data": [
            {
                "title": "Normans",
                "paragraphs": [
                    {
                        "context": CONTEXT_A,
                        "qas": [
                            {
                                "id": "q1",
                                "question": "In what country is Normandy?",
                                "answers": [
                                    {"text": "France", "answer_start": 24},
                                    {"text": "France", "answer_start": 24},
                                    {"text": "france", "answer_start": 24},
                                ],
                            },
                            {
                                "id": "q2",
                                "question": "Where did the Normans come from?",
                                "answers": [{"text": "Scandinavia", "answer_start": 0}],
                            },
                            {
                                "id": "q3",
                                "question": "Who ruled?",
                                "answers": [{"text": "Rollo the Walker", "answer_start": 0}],
                            },
                        ],
                    },
                    # the same paragraph again: merged, its question remapped
                    {
                        "context": CONTEXT_A,
                        "qas": [
                            {
                                "id": "q4",
                                "question": "What is the capital?",
                                "answers": [{"text": "Rouen", "answer_start": 0}],
                            }
                        ],
                    },
                ],
            },
            {
                "title": "Nikola_Tesla",
                "paragraphs": [
                    {
                        "context": CONTEXT_B,
                        "qas": [
                            {
                                "id": "q5",
                                "question": "When did Tesla move?",
                                "answers": [{"text": "1884", "answer_start": 0}],
                            }
                        ],
                    },
                    {
                        "context": "   ",
                        "qas": [
                            {
                                "id": "q6",
                                "question": "Nothing?",
                                "answers": [{"text": "x", "answer_start": 0}],
                            }
                        ],
                    },
                ],
            },
        ],
    }
    data.update(overrides)
    return data


def write(path, obj):
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def test_build_squad_constructs_the_normalised_set(tmp_path, data_cfg):
    source = write(tmp_path / "dev.json", squad_json())
    stats = build_squad(source, tmp_path / "out", data_cfg)
    docs = load_corpus(tmp_path / "out" / "corpus.jsonl")
    queries = {q.query_id: q for q in load_queries(tmp_path / "out" / "queries.jsonl")}
    assert stats["documents"] == len(docs) == 2
    assert stats["queries"] == len(queries) == 5
    assert stats["units"] == 5
    assert stats["queries_without_relevant_unit"] == 1  # q3's answer is not in its paragraph
    assert stats["skipped"] == {"empty_document": 1, "query_on_empty_document": 1}
    assert stats["merged_identical_documents"] == 1
    assert docs[1].title == "Nikola Tesla"
    q1 = queries["squad-q1"]
    assert q1.answers == ["France", "france"] and q1.target == "France" and q1.relevant_units == [0]
    assert queries["squad-q2"].relevant_units == [2] and queries["squad-q3"].relevant_units == []
    assert queries["squad-q4"].doc_id == q1.doc_id and queries["squad-q4"].relevant_units == [1]
    assert all(q.fine_grained for q in queries.values())
    # ids are stable: a second run writes the same files
    first = (
        (tmp_path / "out" / "corpus.jsonl").read_bytes(),
        (tmp_path / "out" / "queries.jsonl").read_bytes(),
    )
    build_squad(source, tmp_path / "again", data_cfg)
    assert first == (
        (tmp_path / "again" / "corpus.jsonl").read_bytes(),
        (tmp_path / "again" / "queries.jsonl").read_bytes(),
    )


def test_squad_v2_unanswerable_and_extra_corpus(tmp_path, data_cfg):
    data = squad_json()
    data["data"][0]["paragraphs"][0]["qas"].append(
        {"id": "q7", "question": "Impossible?", "answers": [], "is_impossible": True}
    )
    source = write(tmp_path / "dev.json", data)
    extra = write(
        tmp_path / "train.json",
        {"data": [{"title": "Other", "paragraphs": [{"context": "A distractor paragraph.", "qas": []}]}]},
    )
    stats = build_squad(source, tmp_path / "out", data_cfg, extra_corpus=[extra])
    assert stats["skipped"]["unanswerable"] == 1
    assert stats["documents"] == 3 and stats["documents_with_questions"] == 2


def _assert_nothing_written(out_dir):
    assert not out_dir.exists() or not any(out_dir.iterdir())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["data"][0].pop("paragraphs"), r"data\[0\]: missing field 'paragraphs'"),
        (
            lambda d: d["data"][1]["paragraphs"][0].update(context=7),
            r"data\[1\].paragraphs\[0\]: field 'context' should be str",
        ),
        (
            lambda d: d["data"][0]["paragraphs"][0]["qas"][1].pop("question"),
            r"qas\[1\]: missing field 'question'",
        ),
        (
            lambda d: d["data"][0]["paragraphs"][0]["qas"][0].update(answers={"text": "x"}),
            r"qas\[0\]: field 'answers' should be a list",
        ),
        (lambda d: d["data"][1]["paragraphs"][0]["qas"][0].update(id="q1"), r"query id 'q1' already used"),
        (lambda d: d.update(data={"not": "a list"}), r"field 'data' should be a list"),
    ],
)
def test_bad_squad_input_is_a_clear_error_with_no_output(tmp_path, data_cfg, mutate, message):
    data = squad_json()
    mutate(data)
    with pytest.raises(DataFormatError, match=message):
        build_squad(write(tmp_path / "dev.json", data), tmp_path / "out", data_cfg)
    _assert_nothing_written(tmp_path / "out")


def test_malformed_json_and_bad_bytes_name_the_line(tmp_path, data_cfg):
    path = tmp_path / "dev.json"
    path.write_text('{"data": [\n  {"title": "x",\n   "paragraphs": [}\n]}')
    with pytest.raises(DataFormatError, match=r"dev.json:3:\d+: malformed JSON"):
        build_squad(path, tmp_path / "out", data_cfg)
    path.write_bytes(b'{"data": [\n{"title": "caf\xe9", "paragraphs": []}]}')
    with pytest.raises(DataFormatError, match=r"dev.json:2: not valid UTF-8"):
        build_squad(path, tmp_path / "out", data_cfg)
    _assert_nothing_written(tmp_path / "out")


def test_repeated_question_is_counted_and_empty_input_fails(tmp_path, data_cfg):
    data = squad_json()
    paragraph = data["data"][0]["paragraphs"][0]
    paragraph["qas"].append(dict(paragraph["qas"][0]))
    paragraph["qas"].append({"id": "q9", "question": "No answer?", "answers": []})
    stats = build_squad(write(tmp_path / "dev.json", data), tmp_path / "out", data_cfg)
    assert stats["skipped"]["duplicate_query"] == 1 and stats["skipped"]["no_answer"] == 1
    # a failed rebuild keeps the previous complete outputs untouched
    before = (tmp_path / "out" / "queries.jsonl").read_bytes()
    empty = {"data": [{"title": "E", "paragraphs": [{"context": "", "qas": []}]}]}
    with pytest.raises(DataFormatError, match="corpus is empty"):
        build_squad(write(tmp_path / "empty.json", empty), tmp_path / "out", data_cfg)
    assert (tmp_path / "out" / "queries.jsonl").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "beir",
        "corpus.jsonl",
        "queries.jsonl",
        "stats.json",
    ]


@pytest.mark.slow
def test_real_squad_dev_set(squad_dev_path, tmp_path, data_cfg):
    started = time.time()
    stats = build_squad(squad_dev_path, tmp_path / "squad", data_cfg)
    elapsed = time.time() - started
    print(f"\nSQuAD v1.1 dev: {json.dumps(stats)} in {elapsed:.1f}s")
    assert stats["documents"] == 2067
    assert stats["queries"] == 10570
    assert stats["units"] > stats["documents"]
    assert stats["queries_without_relevant_unit"] < 0.01 * stats["queries"]
    assert elapsed < 60

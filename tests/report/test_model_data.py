"""Figure 3's data and the explanation data computed with a real (tiny, untrained) GeAR model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gear.evaluation.explain_data import explain_data
from gear.evaluation.figure3_data import figure3_data
from gear.io import read_json, write_jsonl
from gear.report.explain import render_explain_page
from gear.report.figures import draw_figure3, render_figure3_html

DOCS = [
    (
        "d-normans",
        "Normans",
        "The Normans gave their name to Normandy, a region in France. They came in the 10th century.",
    ),
    ("d-oxygen", "Oxygen", "Oxygen is a chemical element with symbol O. Its atomic number is 8."),
    ("d-rhine", "Rhine", "The Rhine begins in Switzerland. It flows into the North Sea."),
]
QUERIES = [
    ("q1", "d-normans", "In what country is Normandy?", "France", [0]),
    ("q2", "d-normans", "When did the Normans come?", "10th century", [1]),
    ("q3", "d-oxygen", "What is the atomic number of oxygen?", "8", [1]),
    ("q4", "d-rhine", "Where does the Rhine flow?", "North Sea", [1]),
]
LOCALIZATION = {"layer": 2, "head_reduction": "mean", "query_reduction": "mean", "unit_reduction": "sum"}
GENERATION = {"num_beams": 1, "max_new_tokens": 4, "batch_size": 4}


@pytest.fixture(scope="module")
def tiny_gear(tmp_path_factory, tiny_bert_path) -> Path:
    from gear.model.modeling import build_from_bert

    folder = tmp_path_factory.mktemp("tiny_gear")
    model, tokenizer, _ = build_from_bert(
        tiny_bert_path, seed=0, max_query_tokens=16, max_document_tokens=64, max_target_tokens=8
    )
    model.save_pretrained(folder, tokenizer)
    return folder


@pytest.fixture()
def dataset(tmp_path) -> dict:
    corpus, queries, run = tmp_path / "corpus.jsonl", tmp_path / "queries.jsonl", tmp_path / "run.tsv"
    docs = []
    for doc_id, title, text in DOCS:
        cut = text.index(". ") + 1
        docs.append(
            {"doc_id": doc_id, "title": title, "text": text, "units": [[0, cut], [cut + 1, len(text)]]}
        )
    write_jsonl(corpus, docs)
    write_jsonl(
        queries,
        [
            {
                "query_id": q,
                "text": t,
                "doc_id": d,
                "answers": [a],
                "relevant_units": u,
                "target": a,
                "fine_grained": True,
            }
            for q, d, t, a, u in QUERIES
        ],
    )
    lines = []
    for qid, _gold, *_ in QUERIES:
        ranked = sorted(
            (doc_id for doc_id, _, _ in DOCS), key=lambda d: d != "d-oxygen"
        )  # oxygen first for all
        lines += [
            f"{qid} Q0 {doc} {rank} {1.0 - 0.1 * rank:.3f} GeAR" for rank, doc in enumerate(ranked, start=1)
        ]
    run.write_text("\n".join(lines) + "\n")
    return {"corpus": corpus, "queries": queries, "run": run}


@pytest.mark.slow
def test_figure3_data_from_a_model(tiny_gear, dataset, tmp_path):
    out = tmp_path / "figure_3.json"
    data = figure3_data(
        tiny_gear,
        "squad",
        dataset["corpus"],
        dataset["queries"],
        LOCALIZATION,
        5,
        GENERATION,
        42,
        out,
        device="cpu",
    )
    assert read_json(out) == json.loads(json.dumps(data))
    assert data["document"]["doc_id"] == "d-normans"  # the only document with two queries
    assert [q["query_id"] for q in data["queries"]] == ["q1", "q2"]
    text = data["document"]["text"]
    for query in data["queries"]:
        assert len(query["top"]) == 5 and isinstance(query["generated"], str)
        weights = [t["weight"] for t in query["top"]]
        assert weights == sorted(weights, reverse=True)
        for token in query["top"]:
            assert text[token["start"] : token["end"]] == token["text"] and token["end"] > token["start"]
    width, height = draw_figure3(data, [tmp_path / "f.png"], dpi=30)
    png = (tmp_path / "f.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"  # a PNG, written whole
    pixels = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert pixels == pytest.approx((width * 30, height * 30), abs=2)  # the figure drawn, at that dpi
    assert "Query 2" in render_figure3_html(data)


@pytest.mark.slow
def test_explain_data_from_a_model(tiny_gear, dataset, tmp_path):
    out = tmp_path / "explain.json"
    settings = {"queries_per_dataset": 3, "top_documents": 2}
    data = explain_data(
        tiny_gear,
        "squad",
        dataset["corpus"],
        dataset["queries"],
        dataset["run"],
        settings,
        LOCALIZATION,
        4,
        GENERATION,
        42,
        out,
        device="cpu",
    )
    assert len(data["queries"]) == 3 and read_json(out)["dataset"] == "squad"
    for query in data["queries"]:
        assert [d["rank"] for d in query["retrieved"]] == [1, 2]
        assert query["retrieved"][0]["doc_id"] == "d-oxygen"
        gold = query["gold_document"]
        assert len(query["unit_scores"]) == len(gold["units"]) == 2
        assert len(query["token_weights"]["offsets"]) == len(query["token_weights"]["weights"]) > 5
        expected_rank = 1 if gold["doc_id"] == "d-oxygen" else (2 if gold["doc_id"] == "d-normans" else 3)
        assert query["gold_rank"] == expected_rank
    html = render_explain_page(data)
    assert html.count("<section") == 3

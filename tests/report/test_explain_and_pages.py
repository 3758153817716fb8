"""The explanation page, Figure 3's data helpers and the index page, from fixtures."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest

from data_prep.normalized import Query
from gear.evaluation import explain_data as ED
from gear.evaluation import figure3_data as FD
from gear.io import DataFormatError, write_jsonl
from gear.report import explain as E
from gear.report import pages
from tests.report.conftest import explain_fixture


def test_explain_page_escapes_and_shows_everything(tmp_path):
    data = explain_fixture()
    path = tmp_path / "explain" / "squad.html"
    E.write_explain_page(data, path)
    html = path.read_text(encoding="utf-8")
    # every text from data escaped
    assert "What is the capital of &lt;France&gt;?" in html
    assert "paris &lt;b&gt;" in html and "&lt;many&gt; museums &amp; parks" in html
    assert "<France>" not in html and "<many>" not in html and "<b>Lyon" in html  # markup is ours only
    # retrieved documents, gold marked and its rank; units ranked with the gold unit first
    assert html.count("✓ gold") == 2
    units_table = html.split("Units ranked by GeAR")[1]
    first_unit = re.search(
        r"<td>1</td><td>([^<]*)</td><td>([^<]*)</td><td class=\"doccell\">([^<]*)</td>", units_table
    )
    assert first_unit.group(1) == "0.7000" and first_unit.group(3).startswith("Paris is the capital")
    assert first_unit.group(2) == "2"  # its rank by length: the second unit is longer
    # the trivial references beside GeAR's ranking
    assert "Attention entropy 0.800" in units_table and "also the longest" not in units_table
    assert "top unit is gold for 1.00 of them; ranking units by length gives 0.00" in html
    assert "truncated" in units_table  # the unit scored None
    # heat map: the strongest real token in bold; special tokens (empty spans) ignored
    assert '<span class="top" style="background: rgba(245,161,66,1.00)"' in html
    assert 'class="unit gold"' in html
    assert html.startswith("<!DOCTYPE html>") and "<link" not in html and "<script" not in html


def test_heat_html_reassembles_the_text():
    data = explain_fixture()["queries"][0]
    doc = data["gold_document"]
    html = E.heat_html(
        doc["text"], data["token_weights"]["offsets"], data["token_weights"]["weights"], doc["units"], {0}, 3
    )
    import html as html_lib

    assert html_lib.unescape(re.sub(r"<[^>]+>", "", html)) == doc["text"]
    with pytest.raises(DataFormatError, match="offsets but"):
        E.heat_html("abc", [[0, 1]], [0.1, 0.2], [], set(), 1)


def _q(qid, doc, text, target, fine=True, units=(0,)):
    return Query(qid, text, doc, [target], list(units), target, fine)


def test_sample_queries_is_seeded_and_prefers_localizable():
    queries = [_q(f"q{i}", "d", f"t{i}", "a", fine=i % 2 == 0) for i in range(20)]
    a = ED.sample_queries(queries, 4, seed=7)
    assert a == ED.sample_queries(list(reversed(queries)), 4, seed=7)
    assert all(q.fine_grained for q in a) and len(a) == 4
    assert len(ED.sample_queries(queries, 15, seed=7)) == 15  # topped up from the others


def test_read_run(tmp_path):
    path = tmp_path / "run.tsv"
    path.write_text("q1 Q0 d2 2 0.5 GeAR\nq1 Q0 d1 1 0.9 GeAR\nq2 Q0 d3 1 0.7 GeAR\n")
    assert ED.read_run(path, {"q1"}) == {"q1": [("d1", 1, 0.9), ("d2", 2, 0.5)]}
    path.write_text("q1 Q0 d2 2 0.5\n")
    with pytest.raises(DataFormatError, match=r"run\.tsv:1: expected 6 fields"):
        ED.read_run(path, {"q1"})


def test_figure3_example_choice_and_top_tokens(tmp_path):
    queries = [
        _q("a1", "docA", "Who?", "x"),
        _q("b1", "docB", "When was it?", "1066"),
        _q("b2", "docB", "when was  it?", "1066"),  # the same question again: not a pair
        _q("b3", "docB", "Where was it?", "France"),
        _q("c1", "docC", "What?", "y"),
        _q("c2", "docC", "Which?", "z", fine=False),
    ]
    doc_id, pair = FD.choose_example(queries, seed=3)
    assert (doc_id, pair) == FD.choose_example(queries, seed=3)
    assert doc_id in {"docB", "docC"}
    if doc_id == "docB":
        assert [q.query_id for q in pair] == ["b1", "b3"]
    with pytest.raises(ValueError, match="two queries"):
        FD.choose_example(queries[:1], seed=0)

    @dataclass
    class Weights:  # the fields of gear.inference.TokenWeights
        tokens: list
        offsets: list
        weights: np.ndarray

    text = "Normandy is in France"
    weights = Weights(
        ["[CLS]", "norman", "##dy", "is", "in", "france", "[SEP]"],
        [(0, 0), (0, 6), (6, 8), (9, 11), (12, 14), (15, 21), (0, 0)],
        np.array([9.0, 0.2, 0.1, 0.05, 0.3, 0.8, 7.0]),
    )
    top = FD.top_token_spans(weights, text, 3)
    assert [t["text"] for t in top] == ["France", "in", "Norman"]  # special tokens never chosen
    assert [t["rank"] for t in top] == [1, 2, 3]

    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, [{"doc_id": f"d{i}", "title": "", "text": "t", "units": [[0, 1]]} for i in range(5)])
    assert set(FD.read_documents(corpus, {"d1", "d3"})) == {"d1", "d3"}
    with pytest.raises(DataFormatError, match="not found"):
        FD.read_documents(corpus, {"d9"})


def test_index_links_every_artifact(tmp_path):
    reports = tmp_path / "reports"
    files = [
        reports / "table_1.md",
        reports / "figures" / "figure_4a.png",
        reports / "explain" / "squad.html",
    ]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    sections = {
        "Tables": [("Table 1", files[0])],
        "Figures": [("Figure 4a <&>", files[1])],
        "Pages": [("squad", files[2])],
    }
    pages.write_index(reports / "index.html", sections, "Run <mini>")
    html = (reports / "index.html").read_text()
    for link in ("table_1.md", "figures/figure_4a.png", "explain/squad.html"):
        assert f'href="{link}"' in html
    assert (
        '<img src="figures/figure_4a.png"' in html
        and "Figure 4a &lt;&amp;&gt;" in html
        and "Run &lt;mini&gt;" in html
    )
    with pytest.raises(FileNotFoundError, match="missing"):
        pages.write_index(reports / "index.html", {"Tables": [("Table 2", reports / "table_2.md")]}, "x")


def test_report_targets_of_the_mini_run(mini_config, registry, tmp_path):
    from baselines.registry import select_models

    models = select_models(registry, mini_config["evaluate"]["models"])
    targets = pages.report_targets(mini_config, models, tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in targets}
    assert (
        len(targets) == len(names) == 6 * 4 + 4 + 3 + 6 + 5 + 1
    )  # tables, significance, figures, pages, index
    assert {
        "table_1.md",
        "table_7.tex",
        "significance.csv",
        "figures/figure_3.html",
        "figures/figure_4c.pdf",
        "explain/rir.html",
        "index.html",
    } <= names
    # without a GeAR variant that generates, no figures or explanation pages (tables still)
    plain = pages.report_targets(mini_config, [registry["MiniLM"], registry["GeAR_CL"]], tmp_path)
    assert len(plain) == 6 * 4 + 4 + 1
    assert pages.report_gear(models).name == "GeAR"

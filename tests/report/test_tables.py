"""Tables 1-3, 5-7 and the significance table, built from fixture result JSONs and rendered."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest

from gear.evaluation.metrics import bootstrap_indices, paired_bootstrap_pvalue
from gear.io import DataFormatError, read_json, write_json
from gear.report.tables.jobs import make_significance_tables, make_stats_tables
from gear.report.tables.metric_tables import build_metric_table
from gear.report.tables.paper import PaperNumbers
from gear.report.tables.results import load_results, task_metrics
from gear.report.tables.significance import build_significance_tables, paired_arrays
from gear.report.tables.stats import count_lines
from gear.report.tables.text import (
    AT_LENGTH,
    BEYOND_PAPER_MARK,
    BEYOND_PAPER_NOTE,
    MARK_OUTSIDE,
    MARK_WITHIN,
    NOT_IN_PAPER,
    NOT_RUN,
    PAPER_ONLY_GROUP,
    PAPER_ONLY_LABEL,
    REFERENCE_ROWS,
)
from gear.report.tables.writers import to_markdown, write_tables
from tests.report.conftest import write_results, write_stats, write_train

RUN_DATASETS = ["squad", "nq", "rir"]  # triviaqa and paq not evaluated by this run
RUN_MODELS = ["MiniLM", "SBERT_RT", "GeAR", "GeAR_CL"]  # MiniLM is not in the paper
EVALUATE = {"retrieval": {"k": 5}, "localization": {"k_qa": 1, "k_rir": 3}}
MEANS = {
    # 53/60 = 0.8833 against the paper's 0.883: within 0.02
    ("GeAR", "squad", "retrieval"): {"R@5": 53 / 60, "M@5": 0.70},  # M@5 0.70 vs 0.762: outside
    ("SBERT_RT", "rir", "localization"): {"R@3": 0.90, "M@3": 0.88},  # against the 0.991 typo
    ("GeAR", "squad", "generation"): {
        "EM": 0.60,
        "F1": 0.70,
    },  # 60.0 vs 61.2 within 2 points; 70.0 vs 65.3 outside
}


@pytest.fixture()
def run(layout, registry):
    models = [registry[name] for name in RUN_MODELS]
    written = write_results(layout, models, RUN_DATASETS, skip={("GeAR", "nq", "retrieval")}, means=MEANS)
    return models, written


def _paths(layout, models, task):
    paths = [layout.eval_json(m.name, d, task) for m in models if task in m.tasks for d in RUN_DATASETS]
    return [p for p in paths if p.exists()]


def _table(layout, models, task, table, tolerance=0.02, show_ci=False):
    metrics = {d: task_metrics(task, d, EVALUATE) for d in RUN_DATASETS}
    results = load_results(_paths(layout, models, task), task)
    run_models = [(m.name, m.group) for m in models if task in m.tasks]
    return build_metric_table(table, PaperNumbers.load(), run_models, metrics, results, tolerance, show_ci)


def test_table_1_rows_columns_values_marks(layout, run):
    models, written = run
    table = _table(layout, models, "retrieval", "table_1")
    # Rows: the run's models in the paper's groups and order, the run's extra model (MiniLM) in
    # its registry group; then the paper's models the run lacks, in one "paper only" block.
    assert [r.label for r in table.rows] == [
        "MiniLM",
        "SBERT_RT",
        "GeAR",
        "GeAR_CL",
        "SBERT",
        "E5",
        "BGE",
        "GTE",
        "BGE_RT",
    ]
    assert [r.group for r in table.rows][:2] == ["pretrained", "retrained"]
    assert {r.group for r in table.rows[4:]} == {PAPER_ONLY_GROUP}
    # Columns: every data set of the paper, R@5 and M@5 each.
    assert [(c.top, c.label) for c in table.columns][:3] == [
        ("SQuAD", "R@5"),
        ("SQuAD", "M@5"),
        ("NQ", "R@5"),
    ]
    assert len(table.columns) == 10

    cell = table.cell("GeAR", "R@5", "SQuAD")
    assert cell.value == pytest.approx(written[("GeAR", "squad", "retrieval")]["metrics"]["R@5"])
    assert cell.paper == 0.883
    assert cell.difference == pytest.approx(53 / 60 - 0.883)
    assert cell.within is True and MARK_WITHIN in cell.text()
    off = table.cell("GeAR", "M@5", "SQuAD")
    assert off.within is False and MARK_OUTSIDE in off.text()
    assert "−0.062" in off.text()  # 0.700 - 0.762
    # The run's model the paper lacks: value, no paper value, no mark; its row is beyond the paper.
    mini = table.cell("MiniLM", "R@5", "SQuAD")
    assert mini.paper is None and mini.within is None and mini.text().endswith(NOT_IN_PAPER)
    assert table.row("MiniLM").marks == [BEYOND_PAPER_MARK] and not table.row("GeAR").marks
    assert (BEYOND_PAPER_MARK, BEYOND_PAPER_NOTE) in table.footnotes
    # Missing results are shown as such: a data set the run skipped, a result the run did not produce.
    for row, top in (("GeAR", "TriviaQA"), ("GeAR", "NQ")):
        missing = table.cell(row, "R@5", top)
        assert missing.value is None and missing.text().startswith(NOT_RUN)
        assert missing.paper is not None
    # A model the run lacks: the paper's value alone, no "not run" beside it.
    paper_only = table.cell("SBERT", "R@5", "SQuAD")
    assert paper_only.paper == PaperNumbers.load().value("table_1", "SBERT", "squad", "R@5")
    assert paper_only.text() == f"{paper_only.paper:.3f}"
    # GeAR_CL's row carries the note that the paper labels it "GeAR"; ACL note under the table.
    assert table.row("GeAR_CL").marks
    assert any("ACL 2025" in text for _, text in table.footnotes)


def test_table_2_typo_footnote_and_table_3_points(layout, run):
    models, written = run
    t2 = _table(layout, models, "localization", "table_2")
    assert "GeAR_CL" not in [r.label for r in t2.rows]  # no localization task: no row
    typo = t2.cell("SBERT_RT", "M@3", "RIR")
    assert typo.paper == 0.991 and typo.marks == ["a"]
    md = to_markdown(t2)
    assert "0.991[a]" in md and re.search(r"^\[a\] Printed as 0\.991", md, re.M)

    t3 = _table(layout, models, "generation", "table_3", tolerance=2.0)
    assert [r.label for r in t3.rows] == ["GeAR"]
    em, f1 = t3.cell("GeAR", "EM", "SQuAD"), t3.cell("GeAR", "F1", "SQuAD")
    assert em.value == pytest.approx(100 * written[("GeAR", "squad", "generation")]["metrics"]["EM"])
    assert em.paper == 61.2 and em.within is True and f1.within is False
    assert "60.0 / 61.2 (−1.2) ✓" in em.text()
    nq_em = t3.cell("GeAR", "EM", "NQ")
    assert nq_em.marks == ["a"] and nq_em.paper == 66.1
    assert [c.label for c in t3.columns][-2:] == ["ROUGE-1", "ROUGE-L"]


def test_show_ci_prints_the_interval(layout, run):
    models, written = run
    table = _table(layout, models, "retrieval", "table_1", show_ci=True)
    low, high = written[("GeAR", "squad", "retrieval")]["ci"]["R@5"]
    assert f"[{low:.3f}, {high:.3f}]" in table.cell("GeAR", "R@5", "SQuAD").text()
    assert "[" not in _table(layout, models, "retrieval", "table_1").cell("GeAR", "R@5", "SQuAD").text()


def test_renderings_latex_csv_html(layout, run, tmp_path):
    models, _written = run
    table = _table(layout, models, "retrieval", "table_1")
    outputs = {fmt: tmp_path / f"t1.{fmt}" for fmt in ("md", "tex", "csv", "html")}
    write_tables(table, outputs)

    tex = outputs["tex"].read_text()
    for rule in ("\\toprule", "\\midrule", "\\bottomrule", "\\cmidrule(lr){2-3}"):
        assert rule in tex
    assert tex.count("\\begin{tabular}") == tex.count("\\end{tabular}") == 1
    assert "SBERT\\_RT" in tex and "GeAR\\_CL" in tex
    assert not re.search(r"(?<!\\)_", re.sub(r"\\label\{[^}]*\}", "", tex)), "unescaped underscore"
    body = tex.split("\\midrule", 1)[1].split("\\bottomrule")[0]
    for line in body.splitlines():
        if line.endswith("\\\\") and not line.startswith("\\multicolumn"):
            assert line.count("&") == len(table.columns), line  # one cell per column
    assert "$\\surd$" in tex and "$\\times$" in tex

    rows = list(csv.DictReader(io.StringIO(outputs["csv"].read_text())))
    assert len(rows) == len(table.rows) * len(table.columns)
    gear = next(r for r in rows if (r["model"], r["dataset"], r["metric"]) == ("GeAR", "squad", "R@5"))
    assert float(gear["reproduced"]) == pytest.approx(53 / 60, abs=1e-6)
    assert float(gear["paper"]) == 0.883 and gear["within_tolerance"] == "true"
    assert float(gear["difference"]) == pytest.approx(53 / 60 - 0.883, abs=1e-6)
    missing = next(r for r in rows if (r["model"], r["dataset"]) == ("GeAR", "nq") and r["metric"] == "R@5")
    assert missing["status"] == "not_run" and missing["reproduced"] == ""
    sbert = next(r for r in rows if (r["model"], r["dataset"], r["metric"]) == ("SBERT", "squad", "R@5"))
    assert sbert["status"] == "paper_only" and sbert["group"] == PAPER_ONLY_GROUP and sbert["paper"]
    assert "\\dag{}" in tex  # MiniLM's row: beyond the paper

    html = outputs["html"].read_text()
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html and 'class="within"' in html
    md = outputs["md"].read_text()
    assert md.count("\n| ") >= len(table.rows)


def test_bad_results_fail_naming_the_file(layout, run):
    models, _ = run
    path = layout.eval_json("GeAR", "squad", "retrieval")
    obj = read_json(path)
    obj["metrics"].pop("M@5")
    write_json(path, obj)
    with pytest.raises(DataFormatError, match=r"retrieval.json: metric 'M@5' missing"):
        _table(layout, models, "retrieval", "table_1")
    obj["metrics"]["M@5"] = 76.2  # points instead of a fraction
    write_json(path, obj)
    with pytest.raises(DataFormatError, match="not a fraction"):
        _table(layout, models, "retrieval", "table_1")
    with pytest.raises(DataFormatError, match="expected 'localization'"):
        load_results([path], "localization")


def test_significance_matches_the_metrics_module(layout, run):
    models, written = run
    results = {
        task: load_results(_paths(layout, models, task), task)
        for task in ("retrieval", "localization", "generation")
    }
    metrics = {task: {d: task_metrics(task, d, EVALUATE) for d in RUN_DATASETS} for task in results}
    tables = build_significance_tables(results, metrics, "GeAR", RUN_MODELS, 200, 12345, 0.95)
    assert [t.key for t in tables] == [
        "significance_retrieval",
        "significance_localization",
    ]  # generation: GeAR alone
    retrieval = tables[0]
    assert [r.label for r in retrieval.rows] == ["MiniLM", "SBERT_RT", "GeAR_CL"]
    cell = retrieval.cell("SBERT_RT", "M@5", "SQuAD")
    a = np.asarray(written[("GeAR", "squad", "retrieval")]["per_query"]["M@5"])
    b = np.asarray(written[("SBERT_RT", "squad", "retrieval")]["per_query"]["M@5"])
    assert cell.p_value == pytest.approx(paired_bootstrap_pvalue(a, b, bootstrap_indices(len(a), 200, 12345)))
    assert cell.difference == pytest.approx(a.mean() - b.mean())
    assert cell.significant == (cell.p_value < 0.05)
    # GeAR has no NQ retrieval result in this run: that column is absent
    assert "NQ" not in {c.top for c in retrieval.columns}


def test_significance_aligns_queries_and_refuses_different_sets(layout, run):
    _models, _written = run
    path = layout.eval_json("SBERT_RT", "squad", "retrieval")
    obj = read_json(path)
    order = np.random.default_rng(1).permutation(len(obj["per_query"]["query_id"]))
    shuffled = {k: [v[i] for i in order] for k, v in obj["per_query"].items()}
    ref = load_results([layout.eval_json("GeAR", "squad", "retrieval")], "retrieval")[("GeAR", "squad")]
    _a1, b1 = paired_arrays(ref, obj, "R@5")
    _a2, b2 = paired_arrays(ref, {**obj, "per_query": shuffled}, "R@5")
    np.testing.assert_array_equal(b1, b2)
    obj["per_query"]["query_id"][0] = "another-query"
    with pytest.raises(DataFormatError, match="not the same queries"):
        paired_arrays(ref, obj, "R@5")


def test_significance_with_one_model_says_so(layout, registry, tmp_path):
    write_results(layout, [registry["GeAR"]], ["squad"])
    outputs = {fmt: tmp_path / f"s.{fmt}" for fmt in ("md", "tex", "csv", "html")}
    tables = make_significance_tables(
        {"retrieval": [layout.eval_json("GeAR", "squad", "retrieval")]},
        {"retrieval": {"squad": ["R@5", "M@5"]}},
        "GeAR",
        ["GeAR"],
        {"resamples": 50, "seed": 1, "confidence": 0.95},
        outputs,
    )
    assert tables == [] and "nothing to compare" in outputs["md"].read_text()


def test_stats_tables(layout, tmp_path):
    write_stats(layout, RUN_DATASETS)
    write_train(layout, "qar", 7)
    outputs = {f"table_{n}": {fmt: tmp_path / f"table_{n}.{fmt}" for fmt in ("md", "csv")} for n in (5, 6, 7)}
    t5, t6, t7 = make_stats_tables(
        [layout.stats(d) for d in RUN_DATASETS], {"qar": layout.train_triples("qar")}, outputs
    )
    assert t5.cell("QAR", "Training triples").value == 7
    assert t5.cell("QAR", "Training triples").paper == 30000000
    assert t5.cell("RIR", "Training triples").value is None  # no RIR training data in this run
    docs = t6.cell("SQuAD", "Documents")
    assert (docs.value, docs.paper, docs.difference) == (100, 20239, 100 - 20239)
    assert t6.cell("TriviaQA", "Queries").value is None
    assert t6.row("PAQ").cells[0].marks == ["a"] and t6.row("SQuAD").marks  # the 932,601 and 20,239 notes
    assert t7.cell("RIR", "Localization / generation queries").value == 32
    assert t7.cell("RIR", "Localization / generation queries").paper == 10000
    assert "20,239" in outputs["table_6"]["md"].read_text()
    rows = list(csv.DictReader(outputs["table_7"]["csv"].open()))
    assert {r["dataset"] for r in rows} == {"squad", "nq", "triviaqa", "paq", "rir"}


def test_count_lines(tmp_path):
    from gear.io import read_jsonl

    path = tmp_path / "x.jsonl"
    path.write_bytes(b'\n{"a": 1}\n\n\n  \n{"a": 2}\r\n{"a": 3}')
    assert count_lines(path) == 3 == len(read_jsonl(path))
    for chunk in (1, 2, 3, 5, 8):
        assert count_lines(path, chunk=chunk) == 3, chunk
    path.write_bytes(b"")
    assert count_lines(path) == 0
    path.write_bytes(b"\n".join(b'{"i": %d}' % i for i in range(1000)) + b"\n")
    assert count_lines(path, chunk=7) == 1000


def test_table_2_reference_rows_and_the_unit_length_flag(layout, run):
    """GeAR's localization results carry the unit-length and random references (gear.evaluation.evaluate):
    Table 2 prints them as rows, and a GeAR cell at or below unit length says so."""
    models, _ = run
    for dataset, length in (("squad", 0.99), ("rir", 0.10)):  # squad: GeAR below length; rir: above
        path = layout.eval_json("GeAR", dataset, "localization")
        obj = read_json(path)
        metrics = list(obj["metrics"])
        obj["references"] = {
            "unit_length": {"metrics": dict.fromkeys(metrics, length)},
            "random": {"metrics": dict.fromkeys(metrics, 0.25)},
        }
        write_json(path, obj)
    t2 = _table(layout, models, "localization", "table_2")
    assert [r.label for r in t2.rows if r.group == "reference"] == list(REFERENCE_ROWS.values())
    # The references follow the run's rows; the paper-only block comes last.
    groups = [r.group for r in t2.rows]
    assert groups.index("reference") < groups.index(PAPER_ONLY_GROUP) and groups[-1] == PAPER_ONLY_GROUP
    assert t2.cell(REFERENCE_ROWS["unit_length"], "R@1", "SQuAD").value == pytest.approx(0.99)
    assert t2.cell(REFERENCE_ROWS["random"], "R@3", "RIR").value == pytest.approx(0.25)
    assert t2.cell(REFERENCE_ROWS["random"], "R@1", "NQ").value is None  # GeAR's NQ result has none
    assert t2.cell("GeAR", "R@1", "SQuAD").flag == AT_LENGTH
    assert t2.cell("GeAR", "R@3", "RIR").flag == ""
    assert t2.cell("SBERT_RT", "R@1", "SQuAD").flag == ""  # only results that carry the reference
    md = to_markdown(t2)
    assert f"[{AT_LENGTH}]" in md and "Trivial references" in md


def test_bm25_rows_are_beyond_the_paper_and_unrun_paper_models_are_compact(layout, registry):
    """A run of GeAR and BM25: BM25's rows in Tables 1 and 2 sit in the lexical group, marked beyond
    the paper; the paper's models the run lacks come last, as their printed values only."""
    models = [registry["GeAR"], registry["BM25"]]
    write_results(layout, models, RUN_DATASETS)
    for task, table_key in (("retrieval", "table_1"), ("localization", "table_2")):
        table = _table(layout, models, task, table_key)
        labels = [r.label for r in table.rows]
        assert labels[:2] == ["GeAR", "BM25"] and table.row("BM25").group == "lexical"
        assert table.row("BM25").marks == [BEYOND_PAPER_MARK]
        assert table.cell("BM25", table.columns[0].label, "SQuAD").value is not None
        md = to_markdown(table)
        assert "| *Lexical retrieval (beyond the paper)* |" in md and f"| BM25[{BEYOND_PAPER_MARK}] |" in md
        assert f"| *{PAPER_ONLY_LABEL}* |" in md
        # The paper-only rows print no "not run": only the run's own missing cells do.
        paper_only = [line for line in md.splitlines() if line.startswith(("| SBERT |", "| GTE |"))]
        assert paper_only and all(NOT_RUN not in line for line in paper_only)

"""A BEIR folder as a test set: the reader, its errors, and the jobs a config adding one plans."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from baselines.mteb_task import read_local_retrieval
from baselines.registry import load_registry, select_models
from data_prep.beir import build_beir
from gear.config import REPO_ROOT, ConfigError, validate_config
from gear.evaluation.dataset import EvalDataset
from gear.io import DataFormatError, read_json
from gear.layout import Layout
from gear.report.pages import report_artifacts
from gear.report.tables.jobs import task_inputs, task_metric_names
from gear.report.tables.paper import PaperNumbers
from gear.report.tables.stats import build_stats_tables, load_stats
from gear.workflow.evaluation_plan import EvaluationPlan

NAME = "beir-tiny"
DOCUMENTS = [
    ("doc-eiffel", "Eiffel Tower", "The Eiffel Tower is in Paris. It was finished in 1889."),
    ("doc-louvre", "Louvre", "The Louvre is the world's most-visited museum. It holds the Mona Lisa."),
    ("doc-nile", "Nile", "The Nile is a river in Africa. It flows north into the Mediterranean Sea."),
    ("doc-amazon", "Amazon", "The Amazon rainforest covers much of the Amazon basin of South America."),
    ("doc-everest", "", "Mount Everest is Earth's highest mountain above sea level."),
    ("doc-sahara", "Sahara", "The Sahara is a desert spanning North Africa."),
]
QUERIES = [
    ("q-eiffel", "when was the eiffel tower built"),
    ("q-paris", "what to see in paris"),
    ("q-africa", "geography of africa"),
    ("q-train", "a query of the train split only"),
    ("q-unjudged", "highest mountain"),
]
# graded judgments; q-paris has two relevant documents, q-africa one relevant and one judged 0
QRELS = [
    ("q-eiffel", "doc-eiffel", 1),
    ("q-paris", "doc-louvre", 1),
    ("q-paris", "doc-eiffel", 2),
    ("q-africa", "doc-amazon", 0),
    ("q-africa", "doc-nile", 1),
    ("q-africa", "doc-sahara", 1),
]


def write_beir_folder(folder: Path, qrels=QRELS, gzip_corpus: bool = True) -> Path:
    """A tiny data set in BEIR's layout (corpus gzipped, as BEIR's downloads may be)."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    lines = "".join(
        json.dumps({"_id": i, "title": t, "text": x, "metadata": {}}) + "\n" for i, t, x in DOCUMENTS
    )
    if gzip_corpus:
        with gzip.open(folder / "corpus.jsonl", "wt", encoding="utf-8") as handle:
            handle.write(lines)
    else:
        (folder / "corpus.jsonl").write_text(lines, encoding="utf-8")
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES), encoding="utf-8"
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels), encoding="utf-8"
    )
    (folder / "qrels" / "train.tsv").write_text("q-train\tdoc-everest\t1\n", encoding="utf-8")
    return folder


def test_a_beir_folder_becomes_a_retrieval_test_set(tmp_path, data_cfg):
    source = write_beir_folder(tmp_path / "tiny")
    out = tmp_path / "data" / NAME
    stats = build_beir(source, out, data_cfg, NAME)
    data = EvalDataset.load(NAME, out / "corpus.jsonl", out / "queries.jsonl")
    assert [d.doc_id for d in data.documents] == [d[0] for d in DOCUMENTS]  # BEIR's ids, file order
    assert data.documents[0].title == "Eiffel Tower" and len(data.documents[0].units) == 2
    assert [q.query_id for q in data.queries] == ["q-eiffel", "q-paris", "q-africa"]
    paris = data.queries[1]
    assert paris.doc_id == "doc-eiffel" and paris.judgments() == {"doc-louvre": 1, "doc-eiffel": 2}
    assert data.queries[2].judgments() == {"doc-nile": 1, "doc-sahara": 1}
    assert not any(q.fine_grained or q.relevant_units or q.answers for q in data.queries)
    assert data.scenario == "qar"
    assert stats["skipped"] == {"non_relevant_judgment": 1, "not_in_split": 2}
    assert stats["source"]["format"] == "beir" and read_json(out / "stats.json") == stats
    # the BEIR export of the normalised set holds the relevant judgments with their grades
    qrels = (out / "beir" / "qrels" / "test.tsv").read_text().splitlines()
    assert qrels[0] == "query-id\tcorpus-id\tscore" and "q-paris\tdoc-eiffel\t2" in qrels
    assert len(qrels) == 1 + 5
    # the mteb adapter's local task sees the same judgments
    assert read_local_retrieval(out)["relevant_docs"]["q-paris"] == {"doc-louvre": 1, "doc-eiffel": 2}
    # a row of Table 6 (retrieval test sets), none of Table 7 (localization / generation)
    _, table_6, table_7 = build_stats_tables(load_stats([out / "stats.json"]), {}, PaperNumbers.load())
    assert [(r.group, r.keys) for r in table_6.rows if r.group == "beir"] == [("beir", (("dataset", NAME),))]
    assert not any(dict(r.keys).get("dataset") == NAME for r in table_7.rows)
    # another split is another test set
    train = build_beir(source, tmp_path / "train", data_cfg, NAME, split="train")
    assert train["queries"] == 1


def _broken(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / name
    path.write_text(path.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        (
            "corpus.jsonl",
            '"text": "The Louvre',
            '"body": "The Louvre',
            r"corpus\.jsonl:2: missing field 'text'",
        ),
        (
            "corpus.jsonl",
            '"_id": "doc-nile"',
            '"_id": "doc-eiffel"',
            r"corpus\.jsonl:3: duplicate _id 'doc-eiffel'",
        ),
        (
            "corpus.jsonl",
            '"_id": "doc-amazon"',
            '"_id": "doc amazon"',
            r"corpus\.jsonl:4: _id 'doc amazon' contains",
        ),
        ("queries.jsonl", '{"_id": "q-paris"', '{"_id": "q-paris",', r"queries\.jsonl:2:\d+: malformed JSON"),
        (
            "queries.jsonl",
            '"text": "geography',
            '"text": 3, "x": "',
            r"queries\.jsonl:3: field 'text' should be str",
        ),
        (
            "qrels/test.tsv",
            "q-paris\tdoc-louvre\t1",
            "q-paris\tdoc-louvre",
            r"test\.tsv:3: expected 3 tab-separated",
        ),
        (
            "qrels/test.tsv",
            "doc-louvre\t1",
            "doc-louvre\thigh",
            r"test\.tsv:3: score 'high' is not an integer",
        ),
        (
            "qrels/test.tsv",
            "q-paris\tdoc-louvre",
            "q-paris\tdoc-lost",
            r"test\.tsv:3: document 'doc-lost' is not in",
        ),
        (
            "qrels/test.tsv",
            "q-eiffel\tdoc-eiffel",
            "q-who\tdoc-eiffel",
            r"test\.tsv:2: query 'q-who' is not in",
        ),
        (
            "qrels/test.tsv",
            "q-africa\tdoc-sahara",
            "q-africa\tdoc-nile",
            r"test\.tsv:7: query 'q-africa' judges",
        ),
    ],
)
def test_bad_records_name_file_and_line(tmp_path, data_cfg, file, old, new, message):
    source = write_beir_folder(tmp_path / "tiny", gzip_corpus=False)
    _broken(source, file, old, new)
    with pytest.raises(DataFormatError, match=message):
        build_beir(source, tmp_path / "out", data_cfg, NAME)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.json*"))


def test_a_split_without_relevant_judgment_is_an_error(tmp_path, data_cfg):
    source = write_beir_folder(tmp_path / "tiny", qrels=[("q-eiffel", "doc-eiffel", 0)])
    with pytest.raises(DataFormatError, match=r"test\.tsv: no query .* has a relevant judgment"):
        build_beir(source, tmp_path / "out", data_cfg, NAME)
    with pytest.raises(
        FileNotFoundError, match=r"qrels/dev\.tsv: the BEIR qrels file of beir-tiny is missing"
    ):
        build_beir(source, tmp_path / "out", data_cfg, NAME, split="dev")


def beir_config(config: dict, folder: Path) -> dict:
    """The mini config with a BEIR set added, as a researcher's config file would add it."""
    config["data"]["beir"] = {NAME: {"path": str(folder)}}
    config["evaluate"]["datasets"] = [*config["evaluate"]["datasets"], NAME]
    return validate_config(config)


def test_a_config_adds_a_beir_set_to_the_evaluation_and_table_1(tmp_path, mini_config):
    cfg = beir_config(mini_config, tmp_path / "tiny")
    layout = Layout.from_config(cfg)
    models = select_models(load_registry(REPO_ROOT / cfg["registry"]), cfg["evaluate"]["models"])
    plan = EvaluationPlan(cfg, models, layout)
    assert plan.job_datasets("qar")[-1] == NAME
    assert plan.job_inputs("GeAR", "qar")[f"{NAME}_corpus"] == str(layout.corpus(NAME))
    outputs = plan.job_outputs("GeAR", "qar")
    assert {k for k in outputs if k.startswith(NAME)} == {f"{NAME}_retrieval", f"{NAME}_run", f"{NAME}_qrels"}
    assert str(layout.qrels_file("MiniLM", NAME)) in plan.targets()
    # Table 1 gets a column block; Tables 2 and 3 and the explanation pages leave the set out
    assert task_metric_names("retrieval", cfg["evaluate"]["datasets"], cfg["evaluate"])[NAME] == [
        "R@5",
        "M@5",
    ]
    assert NAME not in task_metric_names("localization", cfg["evaluate"]["datasets"], cfg["evaluate"])
    assert layout.eval_json("GeAR", NAME, "retrieval") in task_inputs("retrieval", models, [NAME], layout)
    assert task_inputs("generation", models, [NAME], layout) == []
    pages = [label for label, _ in report_artifacts(cfg, models, layout.reports)["Explanation pages"]]
    assert pages and not any(NAME in label for label in pages)


def test_config_errors_name_the_key(mini_config, tmp_path):
    cfg = beir_config(mini_config, tmp_path)
    del cfg["data"]["beir"]
    with pytest.raises(
        ConfigError, match=r"evaluate\.datasets: 'beir-tiny' is not declared under data\.beir"
    ):
        validate_config(cfg)
    cfg["data"]["beir"] = {"tiny": {"path": "x"}}
    with pytest.raises(ConfigError, match=r"data\.beir: 'tiny' does not match .*named beir-\{name\}"):
        validate_config(cfg)

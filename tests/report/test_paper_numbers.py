"""The paper's numbers file: every printed cell of Tables 1-3 and 5-7, and the annotated oddities."""

from __future__ import annotations

import pytest

from gear.io import DataFormatError
from gear.report.tables.paper import PaperNumbers

DATASETS = ["squad", "nq", "triviaqa", "paq", "rir"]


@pytest.fixture(scope="module")
def paper() -> PaperNumbers:
    return PaperNumbers.load()


def test_every_cell_of_tables_1_to_3(paper):
    # Table 1: 8 models x 5 data sets x 2 metrics; Table 2: 7 x 5 x 2; Table 3: GeAR x 5 x 2.
    assert len(paper.cells("table_1")) == 80
    assert len(paper.cells("table_2")) == 70
    assert len(paper.cells("table_3")) == 10
    assert [m for m, _ in paper.models("table_1")] == [
        "SBERT",
        "E5",
        "BGE",
        "GTE",
        "SBERT_RT",
        "BGE_RT",
        "GeAR",
        "GeAR_CL",
    ]
    assert [m for m, _ in paper.models("table_2")] == [
        "SBERT",
        "E5",
        "BGE",
        "GTE",
        "SBERT_RT",
        "BGE_RT",
        "GeAR",
    ]
    assert dict(paper.models("table_1"))["SBERT_RT"] == "retrained"
    assert dict(paper.models("table_1"))["GeAR_CL"] == "gear"
    for model, _ in paper.models("table_2"):
        for dataset in DATASETS:
            metrics = ["R@3", "M@3"] if dataset == "rir" else ["R@1", "M@1"]
            assert all(paper.value("table_2", model, dataset, m) is not None for m in metrics), (
                model,
                dataset,
            )
    for dataset in DATASETS:
        metrics = ["ROUGE-1", "ROUGE-L"] if dataset == "rir" else ["EM", "F1"]
        assert all(paper.value("table_3", "GeAR", dataset, m) is not None for m in metrics)


def test_spot_values_as_printed(paper):
    # Corners and rows checked by hand against ../shared/paper/gear-paper.txt.
    assert paper.value("table_1", "SBERT", "squad", "R@5") == 0.812
    assert paper.value("table_1", "GTE", "rir", "M@5") == 0.435
    assert paper.value("table_1", "BGE_RT", "paq", "M@5") == 0.802
    assert paper.value("table_1", "GeAR", "squad", "R@5") == 0.883  # first "GeAR" row
    assert paper.value("table_1", "GeAR_CL", "squad", "R@5") == 0.889  # last "GeAR" row: CL alone
    assert paper.value("table_1", "GeAR_CL", "rir", "M@5") == 0.907
    assert paper.value("table_2", "E5", "triviaqa", "M@1") == 0.613
    assert paper.value("table_2", "GeAR", "paq", "M@1") == 0.965
    assert paper.value("table_2", "BGE_RT", "squad", "R@1") == 0.455
    assert paper.value("table_3", "GeAR", "squad", "EM") == 61.2
    assert paper.value("table_3", "GeAR", "rir", "ROUGE-L") == 87.1
    assert paper.scale("table_3") == 100 and paper.scale("table_1") == 1
    assert paper.stat("table_5", "train_triples", "rir") == 5676877
    assert paper.stat("table_6", "documents", "paq") == 932601
    assert paper.stat("table_6", "queries", "rir") == 145562
    assert paper.stat("table_7", "queries", "rir") == 10000
    assert paper.value("table_1", "MiniLM", "squad", "R@5") is None


def test_oddities_are_annotated(paper):
    notes = {note.id: note for note in paper.notes}
    typo = notes["sbert_rt_rir_m3"]
    assert (typo.tables, typo.model, typo.dataset, typo.metric) == (("table_2",), "SBERT_RT", "rir", "M@3")
    assert paper.value("table_2", "SBERT_RT", "rir", "M@3") == 0.991  # shown as printed, not fixed
    em = notes["nq_em_above_f1"]
    assert (em.tables, em.model, em.dataset, em.metric) == (("table_3",), "GeAR", "nq", "EM")
    assert paper.value("table_3", "GeAR", "nq", "EM") > paper.value("table_3", "GeAR", "nq", "F1")
    assert set(notes["acl2025_version"].tables) == {"table_1", "table_2", "table_3"}
    assert notes["acl2025_version"].is_table_level
    assert "ACL 2025" in notes["acl2025_version"].text
    # every cell-level note points at a printed cell
    for note in paper.notes:
        if note.metric is not None and note.model is not None:
            assert paper.value(note.tables[0], note.model, note.dataset, note.metric) is not None, note.id


def test_malformed_file_names_the_key(tmp_path):
    with pytest.raises(DataFormatError, match=r"tables\.table_1\.models\.SBERT\.squad\.R@5: not a number"):
        data = PaperNumbers.load().data
        bad = {
            **data,
            "tables": {
                **data["tables"],
                "table_1": {
                    **data["tables"]["table_1"],
                    "models": {"SBERT": {"group": "pretrained", "squad": {"R@5": "x"}}},
                },
            },
        }
        PaperNumbers(bad, "bad.yaml")

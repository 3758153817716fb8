"""The real-text check (``python -m gear.squad_check``) end to end on a sliver of real SQuAD."""

from __future__ import annotations

import math

import pytest


@pytest.mark.slow
def test_squad_check_trains_and_reports_every_metric(squad_dev_path, tmp_path, capsys):
    from gear.squad_check import main

    main(
        [
            "--squad",
            str(squad_dev_path),
            "--out",
            str(tmp_path),
            "--train-articles",
            "2",
            "--test-articles",
            "1",
            "--max-train",
            "16",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--max-document-tokens",
            "64",
            "--generation-pairs",
            "8",
            "--max-new-tokens",
            "3",
            "--threads",
            "1",
            "--init",
            "scratch",
        ]
    )
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| 0 |") or line.startswith("| 1 |")]
    assert len(rows) == 2, table
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        recall, mrr = float(cells[3]), float(cells[4])
        loc_recall, loc_mrr = (float(x) for x in cells[5].split("/"))
        assert 0 <= recall <= 1 and 0 <= mrr <= recall + 1e-9
        assert 0 <= loc_recall <= 1 and not math.isnan(loc_mrr)
    assert (tmp_path / "gear" / "epochs" / "epoch_1").is_dir()

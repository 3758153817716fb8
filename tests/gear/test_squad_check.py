"""The real-text check (``python -m gear.squad_check``) end to end on a sliver of real SQuAD."""

from __future__ import annotations

import math
import re

import pytest


@pytest.mark.slow
def test_squad_check_trains_and_reports_every_metric(squad_dev_path, tmp_path, capsys):
    from gear.tools.squad_check import main

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
        length, random, entropy = float(cells[6]), float(cells[7]), float(cells[8])
        assert 0 <= recall <= 1 and 0 <= mrr <= recall + 1e-9
        assert 0 <= loc_recall <= 1 and not math.isnan(loc_mrr)
        assert 0 <= length <= 1 and 0 <= random <= 1
        assert 0 < entropy <= 1.0 + 1e-6
    # An untrained cross-attention is uniform.
    epoch_0 = [c.strip() for c in rows[0].strip("|").split("|")]
    assert float(epoch_0[8]) > 0.99
    summary = re.search(
        r"^squad_check summary: gear_loc_r1=(\d\.\d{3}) length_loc_r1=(\d\.\d{3}) "
        r"minilm_sentence_loc_r1=(\d\.\d{3}) em=(\d\.\d{3}) minutes=(\d+)$",
        table,
        re.MULTILINE,
    )
    assert summary, table
    last = [c.strip() for c in rows[1].strip("|").split("|")]
    assert summary.group(1) == last[5].split("/")[0].strip() and summary.group(2) == last[6], table
    assert summary.group(4) == last[9] and 0 <= float(summary.group(3)) <= 1, table
    assert (tmp_path / "gear" / "epochs" / "epoch_1").is_dir()

"""``python -m gear.tools.bench gpu-check --cpu``: every part of the prepared GPU script runs, at toy size.

One run (about a minute on 2 shared cores, most of it four interpreters starting and MiniLM
loading) on a small SQuAD file made from the tests' passages: the file names every part, holds
measured rows for training (both precisions), encoding and search, the gpu tests' pytest line,
squad_check's table and throughput, and no part left unrun.
"""

from __future__ import annotations

import json

import pytest

from gear.tools.bench.cli import main
from tests.gear.conftest import PASSAGES


def _squad_file(path):
    data = [
        {
            "title": f"article {i}",
            "paragraphs": [
                {
                    "context": text,
                    "qas": [
                        {
                            "id": f"{i}-{j}",
                            "question": q,
                            "answers": [{"text": a, "answer_start": text.find(a)}],
                        }
                        for j, (q, a) in enumerate(qas)
                    ],
                }
            ],
        }
        for i, (_, text, qas) in enumerate(PASSAGES)
    ]
    path.write_text(json.dumps({"version": "1.1", "data": data}))
    return path


@pytest.mark.slow
def test_cpu_form_runs_every_part_and_writes_one_file(tmp_path):
    squad = _squad_file(tmp_path / "squad.json")
    out = tmp_path / "gpu-check.md"
    main(["gpu-check", "--cpu", "--out", str(out), "--squad", str(squad), "--budget", "300"])
    text = out.read_text()
    assert "Not run" not in text
    for part in (
        "train (bf16 autocast on CUDA), encode, search",
        "train bf16-master",
        "gpu tests",
        "squad_check",
    ):
        assert f". {part}" in text and "exit 0" in text.split(f". {part}")[1].splitlines()[0]
    assert text.count("| train GeAR (tiny) |") == 4  # two lengths x (fp32, bf16-master)
    assert "| encode documents (tiny, end to end) |" in text and "| search exact (gear.search," in text
    assert "pytest: " in text and "skipped" in text  # no CUDA here: the gpu tests skip, saying so
    assert "training: " in text and "examples/s" in text and "squad_check summary:" in text
    assert "Loss curve" in text and "| step | epoch |" in text
    # squad_check's two tables stay apart (a blank line and its sentence between them)
    assert "\n\nLocalization R@1 by fusion layer" in text and "| epoch | queries | length R@1 |" in text

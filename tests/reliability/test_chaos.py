"""Point 9 of issue 16: a small workflow killed at random moments ends as an uninterrupted run.

The workflow is the real one (Snakefile, every rule) on the mini benchmark cut to one data set
(SQuAD) and one model (GeAR, trained from the tiny 2-layer BERT on the mini PAQ triples), with
``table_1`` as the target: data jobs (``build_qa``, ``build_paq``), one training
(``train_gear``), one evaluation (``evaluate_GeAR_qar``) and one table. It runs once without
interruption. Then, in a second folder, Snakemake and its jobs are killed together (SIGKILL to
the process group, as when a node dies) three times, each at a seeded random moment of one
stage: while the data are built, inside the training (a random delay after a random step
checkpoint: in a step or in a checkpoint write) and during the evaluation. After each kill the
lock is removed and the command rerun; the last run goes to the end.
The final weights (bit for bit), every results JSON (less its provenance: wall times), the run
file and Table 1 equal the uninterrupted run's, and no hidden temporary or half-written output
is left anywhere. ``GEAR_RELIABILITY_SEED`` chooses other kill moments; a failure names the seed.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.reliability.conftest import RELIABILITY_SEED, child_env, tiny_train_config, wait_for

pytestmark = pytest.mark.slow


def _workdir(root: Path, mini_config: dict, checkpoint: Path) -> Path:
    """A run folder: config.yaml (mini, cut to SQuAD and GeAR, tiny training) and data_prep linked."""
    root.mkdir()
    (root / "data_prep").symlink_to(REPO_ROOT / "data_prep")
    cfg = dict(mini_config)
    cfg.update(tiny_train_config(mini_config, checkpoint))
    cfg["registry"] = str(REPO_ROOT / "config" / "baselines.yaml")
    cfg["results_dir"] = str(root / "results")
    cfg["reports_dir"] = str(root / "reports")
    cfg["train"]["log_every_seconds"] = 60
    cfg["train"]["checkpoint_every_steps"] = 4
    cfg["evaluate"].update(
        models=["GeAR"], datasets=["squad"], layer_analysis=["squad"], epoch_analysis={"qar": "squad"}
    )
    (root / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return root


def _snakemake(root: Path, *args: str) -> list[str]:
    """One core: one job of one thread at a time. With two, the jobs' two torch threads beside the
    other pytest worker put three busy threads on two cores, and the test took 142-163 s; with one,
    78-86 s (BENCHMARKS.md, issue 19). Jobs then run one by one, build_paq first."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO_ROOT / "Snakefile"),
        "-d",
        str(root),
        "--configfile",
        str(root / "config.yaml"),
        "--cores",
        "1",
        *args,
    ]


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _snakemake(root, *args), capture_output=True, text=True, env=child_env(), cwd=root, timeout=600
    )


def _kill_when(root: Path, ready: Callable[[], bool], delay: float, what: str) -> None:
    """Run ``table_1``; once ``ready()`` holds, wait ``delay`` s more and SIGKILL the whole
    process group (Snakemake and its job). Fails if the run ends before that."""
    with open(root / "killed.log", "a") as sink:
        sink.write(f"\n=== kill {what} + {delay:.2f} s\n")
        sink.flush()
        process = subprocess.Popen(
            _snakemake(root, "table_1"),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=root,
            start_new_session=True,
        )
        try:
            wait_for(ready, 300, process, what)
            time.sleep(delay)
            assert process.poll() is None, f"seed {RELIABILITY_SEED}: the run ended before the kill {what}"
            os.killpg(process.pid, signal.SIGKILL)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
    unlock = _run(root, "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-2000:]


def _log_says(root: Path, *texts: str) -> Callable[[], bool]:
    """True once the newest attempt's output (after the last kill marker) contains one of ``texts``."""

    def check() -> bool:
        newest = (root / "killed.log").read_text(errors="replace").rsplit("=== kill", 1)[-1]
        return any(text in newest for text in texts)

    return check


def _step_checkpoint(root: Path, step: int) -> Callable[[], bool]:
    """True once GeAR's training state holds the whole step checkpoint ``step``."""
    state = root / "results" / "models" / "GeAR" / "qar" / "state"
    return lambda: (state / f"step_{step}" / "manifest.json").is_file()


def _outputs(root: Path) -> dict[str, bytes]:
    """What the run produced that must not depend on interruptions: the final GeAR's weights,
    every results JSON without its provenance, the run file, and Table 1 (every format)."""
    results, reports = root / "results", root / "reports"
    found: dict[str, bytes] = {}
    model = results / "models" / "GeAR" / "qar" / "model" / "model.safetensors"
    found["model.safetensors"] = model.read_bytes()
    for path in sorted((results / "eval").rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        data.pop("provenance", None)
        found[str(path.relative_to(results))] = json.dumps(data, sort_keys=True).encode()
    for path in sorted((results / "eval").rglob("*.tsv")):
        found[str(path.relative_to(results))] = path.read_bytes()
    for path in sorted(reports.glob("table_1.*")):
        found[str(path.relative_to(reports))] = path.read_bytes()
    return found


def _leftovers(root: Path) -> list[str]:
    """Hidden temporaries of killed writes (``.NAME.XXXX.tmp``, ``.NAME.XXXX/``, ``.building.XXXX/``)."""
    return [
        str(p.relative_to(root))
        for folder in (root / "results", root / "reports")
        if folder.exists()
        for p in folder.rglob(".*")
        if not p.name.startswith(".snakemake")
    ]


def test_killed_at_random_moments_the_workflow_ends_as_an_uninterrupted_run(
    tmp_path, mini_config, tiny_bert_path
):
    reference = _workdir(tmp_path / "reference", mini_config, tiny_bert_path)
    done = _run(reference, "table_1")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    ran = done.stdout + done.stderr
    for rule in ("build_qa", "build_paq", "train_gear", "evaluate_GeAR_qar", "table_1"):
        assert f"rule {rule}:" in ran or f"localrule {rule}:" in ran, rule
    expected = _outputs(reference)

    chaos = _workdir(tmp_path / "chaos", mini_config, tiny_bert_path)
    rng = random.Random(RELIABILITY_SEED)
    every = 4  # the config's train.checkpoint_every_steps
    # GeAR's steps in the reference run (its record: a finished training removes its resume states).
    last = json.loads(
        (reference / "results" / "models" / "GeAR" / "qar" / "model" / "train_config.json").read_text()
    )["steps"]
    # Three kills at seeded random moments: while a data set is built, inside GeAR's training
    # (some time after a random step checkpoint, so in a step or in a checkpoint write), and
    # while the model is evaluated. The tiny model trains about 17 steps a second on one thread:
    # the delay after the checkpoint stays under the 4 steps to the next one, so the kill lands
    # in the training and not after it (a kill after it leaves a finished run, trained afresh).
    plan = [
        (
            _log_says(chaos, "rule build_qa:", "rule build_paq:"),
            rng.uniform(0.0, 2.0),
            "while building the data",
        ),
        (
            _step_checkpoint(chaos, every * rng.randint(1, max(1, last // every - 1))),
            rng.uniform(0.0, 0.15),
            "during training",
        ),
        (_log_says(chaos, "rule evaluate_GeAR_qar:"), rng.uniform(0.5, 3.0), "during the evaluation"),
    ]
    for ready, delay, what in plan:
        _kill_when(chaos, ready, delay, what)
    killed = [f"{what} + {delay:.2f} s" for _, delay, what in plan]
    final = _run(chaos, "table_1")
    assert final.returncode == 0, (
        f"seed {RELIABILITY_SEED}, kills {killed}\n" + (final.stdout + final.stderr)[-4000:]
    )
    # The training was cut and resumed, not redone from the start or skipped.
    assert "resuming from" in (chaos / "results" / "logs" / "gear" / "train_GeAR_qar.log").read_text()

    got = _outputs(chaos)
    assert sorted(got) == sorted(expected), f"seed {RELIABILITY_SEED}, kills {killed}"
    differ = [name for name in expected if got[name] != expected[name]]
    assert not differ, f"seed {RELIABILITY_SEED}, kills {killed}: {differ} differ from the uninterrupted run"
    assert _leftovers(chaos) == [], f"seed {RELIABILITY_SEED}, kills {killed}"
    # Nothing left to do: the killed jobs' outputs were either whole or redone.
    plan = _run(chaos, "-n", "table_1")
    assert plan.returncode == 0 and "Nothing to be done" in plan.stdout + plan.stderr, plan.stdout[-2000:]

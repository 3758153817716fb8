"""Point 1: training survives a kill.

A real ``python -m gear.training.trainer`` process (tiny BERT, 12 optimizer steps, a state checkpoint every
2) is killed with SIGKILL, as a pre-empted or failed node kills it, and the same command is run
again. It must resume from the newest whole checkpoint and end with exactly the weights, the
per-step losses and the retrieval metrics of a run that never stopped (CPU, bitwise).

- :func:`test_sigkill_at_a_random_step_resumes_bitwise`: the kill lands at a seeded random step
  after the first checkpoint (``GEAR_RELIABILITY_SEED``).
- :func:`test_sigkill_during_a_checkpoint_write_falls_back_to_the_previous_one`: the process dies
  while ``state.pt`` of a checkpoint is half on disk; the rerun ignores that checkpoint, resumes
  from the one before, and clears the dead write's temporary folder.

(``tests/gear/test_train.py`` covers the in-process stop via ``max_steps`` and a checkpoint whose
file was truncated after its manifest was written.)
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from gear.io import write_json
from tests.conftest import REPO_ROOT
from tests.reliability.conftest import (
    RELIABILITY_SEED,
    child_env,
    hidden_entries,
    tiny_train_config,
    total_steps,
    wait_for,
    write_eval_set,
    write_triples,
)

pytestmark = pytest.mark.slow

# Dies on the n-th torch.save (the n-th state checkpoint) with the file half written: what a
# SIGKILL, an OOM kill or a power loss in the middle of torch.save leaves.
DIE_DURING_SAVE = r"""
import os, signal, sys, torch
import gear.training.trainer

die_on, calls, real_save = int(os.environ["DIE_ON_SAVE"]), [0], torch.save

def save_then_die(obj, f, *args, **kwargs):
    calls[0] += 1
    real_save(obj, f, *args, **kwargs)
    if calls[0] == die_on:
        os.truncate(f, os.path.getsize(f) // 2)
        os.kill(os.getpid(), signal.SIGKILL)

torch.save = save_then_die
gear.training.trainer.main(sys.argv[1:])
"""


def train_command(setup: SimpleNamespace, out: Path) -> list[str]:
    return [
        "-m",
        "gear.training.trainer",
        "--config",
        str(setup.config_file),
        "--variant",
        "GeAR",
        "--scenario",
        "qar",
        "--train-file",
        str(setup.triples),
        "--out",
        str(out),
        "--threads",
        "1",
    ]


def run_training(setup: SimpleNamespace, out: Path) -> subprocess.CompletedProcess:
    """The training command, run to its end (no kill) in a child process."""
    return subprocess.run(
        [sys.executable, *train_command(setup, out)],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO_ROOT,
        timeout=300,
    )


def weight_bytes(model_dir: Path) -> dict[str, bytes]:
    """Every tensor of a saved model as raw bytes (bitwise comparison; the safetensors header
    is left out: its metadata order varies from save to save)."""
    from safetensors.torch import load_file

    return {
        name: t.contiguous().view(-1).view(torch.uint8).numpy().tobytes()
        for name, t in sorted(load_file(model_dir / "model.safetensors").items())
    }


def checkpoints(state: Path) -> dict[int, bool]:
    """Step checkpoints in a state folder: step -> whether its manifest (written last) exists."""
    found = {}
    for folder in state.glob("step_*"):
        found[int(folder.name.split("_")[1])] = (folder / "manifest.json").is_file()
    return found


def retrieval_metrics(model_dir: Path, corpus: Path, queries: Path, settings, out_json: Path) -> dict:
    from gear.evaluation.dataset import EvalDataset
    from gear.evaluation.retrieval import evaluate_retrieval
    from gear.inference import GearEncoder

    data = EvalDataset.load("squad", corpus, queries)
    result = evaluate_retrieval(GearEncoder(model_dir, device="cpu"), data, settings, out_json=out_json)
    return {"metrics": result["metrics"], "ci": result["ci"], "per_query": result["per_query"]}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_bert_path, _mini_config):
    """The uninterrupted reference run (same command, same CPU thread count), and its metrics."""
    from gear.evaluation.settings import EvaluateSettings

    root = tmp_path_factory.mktemp("kill")
    triples = write_triples(root / "triples.jsonl")
    cfg = tiny_train_config(_mini_config, tiny_bert_path)
    config_file = root / "train_config.json"
    write_json(config_file, cfg)
    corpus, queries = write_eval_set(root / "eval_set")
    setup = SimpleNamespace(
        root=root,
        cfg=cfg,
        triples=triples,
        config_file=config_file,
        steps=total_steps(cfg),
        every=cfg["train"]["checkpoint_every_steps"],
        corpus=corpus,
        queries=queries,
        settings=EvaluateSettings.from_config(_mini_config["evaluate"]),
    )
    reference = root / "reference"
    done = run_training(setup, reference)
    assert done.returncode == 0, done.stderr[-3000:]
    setup.reference = reference / "model"
    setup.reference_metrics = retrieval_metrics(
        setup.reference, corpus, queries, setup.settings, root / "reference_eval.json"
    )
    return setup


def assert_same_run(setup: SimpleNamespace, out: Path, tmp_path: Path) -> None:
    """Same weights (bytes of every model file), same per-step log, same retrieval metrics."""
    final, reference = out / "model", setup.reference
    assert weight_bytes(final) == weight_bytes(reference)
    for epoch in range(1, setup.cfg["train"]["epochs"] + 1):
        name = f"epoch_{epoch}"
        assert weight_bytes(out / "epochs" / name) == weight_bytes(reference.parent / "epochs" / name), name
    log, reference_log = (
        [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
        for folder in (final, reference)
    )
    assert [r["step"] for r in log if r["event"] == "steps"] == list(range(1, setup.steps + 1))
    assert log == reference_log  # every step's losses, lr, alpha, temperature; the epoch means
    metrics = retrieval_metrics(final, setup.corpus, setup.queries, setup.settings, tmp_path / "eval.json")
    assert metrics == setup.reference_metrics
    assert 0.0 < metrics["metrics"]["R@5"] <= 1.0


def test_sigkill_at_a_random_step_resumes_bitwise(setup, tmp_path):
    kill_at = random.Random(RELIABILITY_SEED).randint(setup.every + 1, setup.steps - 2)
    note = f"(GEAR_RELIABILITY_SEED={RELIABILITY_SEED}: SIGKILL at step {kill_at} of {setup.steps})"
    out = tmp_path / "out"
    log = tmp_path / "killed.log"
    with open(log, "w") as sink:
        process = subprocess.Popen(
            [sys.executable, *train_command(setup, out)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=REPO_ROOT,
        )
    try:
        pattern = re.compile(rf"step {kill_at}/{setup.steps} ")
        wait_for(lambda: pattern.search(log.read_text()), 300, process, f"step {kill_at} {note}")
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, note
    # Nothing a later job could take for a result: no model folder, only whole checkpoints.
    assert not (out / "model").exists(), note
    found = checkpoints(out / "state")
    complete = [step for step, whole in found.items() if whole]
    assert complete and min(complete) >= setup.every and max(complete) < setup.steps, (found, note)

    again = run_training(setup, out)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = re.search(r"resuming from \S+step_(\d+) at step (\d+)", again.stderr)
    assert resumed and int(resumed.group(1)) == max(complete), (again.stderr[-3000:], note)
    assert_same_run(setup, out, tmp_path)


def test_sigkill_during_a_checkpoint_write_falls_back_to_the_previous_one(setup, tmp_path):
    out = tmp_path / "out"
    die_on = 3  # checkpoints at steps 2, 4, 6, ...: the third write (step 6) is cut short
    killed = subprocess.run(
        [sys.executable, "-c", DIE_DURING_SAVE, *train_command(setup, out)[2:]],
        capture_output=True,
        text=True,
        env=child_env(DIE_ON_SAVE=str(die_on)),
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    dying_step = die_on * setup.every
    state = out / "state"
    # The dead write is a hidden temporary folder with half a state.pt and no manifest; the
    # checkpoint's real name never appeared.
    assert checkpoints(state) == {dying_step - setup.every: True, dying_step - 2 * setup.every: True}
    leftovers = [name for name in hidden_entries(state) if name.startswith(f".step_{dying_step}.")]
    assert len(leftovers) == 1, hidden_entries(state)
    partial = state / leftovers[0]
    assert (partial / "state.pt").is_file() and not (partial / "manifest.json").exists()
    with pytest.raises(Exception):  # noqa: B017 (what torch raises for a cut zip file varies)
        torch.load(partial / "state.pt", weights_only=True)
    assert not (out / "model").exists()

    again = run_training(setup, out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert re.search(rf"resuming from \S+step_{dying_step - setup.every} at step", again.stderr), (
        again.stderr[-3000:]
    )
    assert_same_run(setup, out, tmp_path)
    # The dead write's temporary folder is cleared when training starts again (no leaked disk).
    assert hidden_entries(state) == [], hidden_entries(state)

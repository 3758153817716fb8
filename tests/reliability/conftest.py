"""Shared pieces of the reliability suite: real components at tiny size, and process helpers.

- ``tiny_bert_path`` (from ``tests/conftest.py``): a 2-layer, hidden-32 BERT checkpoint with
  MiniLM's real bert-base-uncased tokenizer; GeAR trains from it in seconds.
- :func:`tiny_train_config`: the train sections of ``config/mini.yaml`` shrunk to 12 optimizer
  steps (2 epochs of 6), a state checkpoint every 2 steps and a log line every step.
- :func:`write_eval_set`: a normalised test set (``corpus.jsonl``, ``queries.jsonl``) of real
  text, written through ``data_prep.normalized``.
- :func:`child_env`, :func:`wait_for`, :func:`run_python`: running the suite's own entry points in
  child processes that a test can kill, limit or starve, on CPU.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from gear.encoding import TextEncoder
from tests.conftest import REPO_ROOT
from tests.gear.conftest import PASSAGES, write_triples  # noqa: F401 (re-exported to the tests here)

#: Seed of every random choice the suite makes (kill points, fault scripts). Set
#: GEAR_RELIABILITY_SEED to explore other points; a failure message always names the seed.
RELIABILITY_SEED = int(os.environ.get("GEAR_RELIABILITY_SEED", "20240917"))
TRAIN_KEYS = ("seed", "allow_downloads", "model_paths", "model_revisions", "gear", "train")


def tiny_train_config(mini_config: dict, checkpoint: Path, **train_overrides) -> dict:
    """The train sections of the mini config for the tiny checkpoint: 24 triples, batch 4, 2 epochs.

    ``record_every_steps: 1``: ``train_log.jsonl`` holds the losses of each optimizer step, a full
    record to compare between runs (``log_every_seconds: 0`` prints a progress line every step,
    which the kill tests wait for).
    """
    cfg = {key: copy.deepcopy(mini_config[key]) for key in TRAIN_KEYS}
    cfg["gear"].update(
        init_checkpoint=str(checkpoint),
        max_query_tokens=16,
        max_document_tokens=64,
        max_target_tokens=16,
    )
    cfg["gear"]["localization"]["layer"] = 2
    cfg["train"].update(
        epochs=2, queue_size=8, checkpoint_every_steps=2, log_every_seconds=0.0, record_every_steps=1
    )
    cfg["train"]["scenarios"]["qar"]["batch_size"] = 4
    cfg["train"]["schedule"]["warmup_steps"] = 2
    cfg["train"].update(train_overrides)
    return cfg


def total_steps(cfg: dict, triples: int = 24) -> int:
    batch = cfg["train"]["scenarios"]["qar"]["batch_size"] * cfg["train"]["gradient_accumulation"]
    return (triples // batch) * cfg["train"]["epochs"]


def write_eval_set(folder: Path) -> tuple[Path, Path]:
    """The tiny normalised test set: 8 documents and their 24 questions (``PASSAGES``)."""
    from data_prep.normalized import Document, Query, SentenceSplitter, relevant_units, write_dataset

    splitter = SentenceSplitter()
    documents, queries = [], []
    for index, (title, text, qas) in enumerate(PASSAGES):
        document = Document(f"doc-{index}", title, text, splitter.split(text))
        documents.append(document)
        for number, (question, answer) in enumerate(qas):
            queries.append(
                Query(
                    query_id=f"q{index}-{number}",
                    text=question,
                    doc_id=document.doc_id,
                    answers=[answer],
                    relevant_units=relevant_units(text, document.units, [answer]),
                    target=answer,
                    fine_grained=True,
                )
            )
    write_dataset(folder, documents, queries, {"dataset": "squad"})
    return folder / "corpus.jsonl", folder / "queries.jsonl"


def child_env(**extra: str) -> dict[str, str]:
    """Environment of a child process: CPU only, offline, one thread, unbuffered output."""
    env = dict(os.environ)
    env.update(
        CUDA_VISIBLE_DEVICES="",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
    )
    env.update(extra)
    return env


def wait_for(condition: Callable[[], bool], timeout: float, process: subprocess.Popen | None = None, what=""):
    """Poll ``condition`` every 5 ms; fail if it is not met in ``timeout`` s or ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the child process exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def run_python(code: str, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """Run ``python -c code args`` in the child environment; capture its output."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(**env),
        cwd=REPO_ROOT,
    )


def hidden_entries(folder: Path) -> list[str]:
    """Names of the hidden (dot) entries directly in ``folder``: the only things a killed atomic
    write may leave behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


class NumberedEncoder(TextEncoder):
    """Maps ``"passage {i}"`` to a fixed unit vector of ``dim`` dimensions, vectorised.

    Where only the cache, the disk or the memory is under test, not a model: it encodes
    hundreds of thousands of texts in a second. ``encoded`` counts the texts it was given.
    """

    name = "numbered"

    def __init__(self, dim: int = 128):
        self.dim = dim
        self.encoded = 0

    def encode_documents(self, texts, batch_size: int = 32) -> np.ndarray:
        self.encoded += len(texts)
        ids = np.array([int(t.rsplit(" ", 1)[1]) for t in texts], dtype=np.float32)
        vectors = np.outer(ids + 1, np.linspace(0.5, 7.0, self.dim, dtype=np.float32))
        np.sin(vectors, out=vectors)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors

    encode_queries = encode_documents

    def fingerprint(self) -> str:
        return f"numbered-v1-d{self.dim}"

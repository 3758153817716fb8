"""FlagEmbedding under transformers 5: a run that needs it stops before any job, naming why and the fix.

FlagEmbedding 1.4.2 does not import under transformers 5 (issue 18). The check reads package
metadata only, so it runs in both environments: the main set (transformers 4.57, FlagEmbedding
installed: no problem) and the transformers-5 set (requirements-tf5.txt: the problem is named).
"""

from __future__ import annotations

from importlib import metadata

import pytest

import baselines.adapters
from baselines.adapters import FlagEmbeddingEncoder, flag_embedding_problem
from baselines.registry import ModelEntry
from gear.workflow.plan import software_problem

BGE = ModelEntry("BGE", "flag_embedding", "cls", "baselines", ("qar",), "x", model="BAAI/bge-base-en-v1.5")
BGE_RT = ModelEntry("BGE_RT", "bge_rt", "cls", "retrained", ("qar",), "x")
SBERT = ModelEntry("SBERT", "sentence_transformers", "mean", "baselines", ("qar",), "x", model="m")


@pytest.fixture()
def transformers_5(monkeypatch):
    """Package metadata as a transformers-5 environment with FlagEmbedding 1.4.2 installed has it."""
    versions = {"transformers": "5.25.0", "FlagEmbedding": "1.4.2"}
    monkeypatch.setattr(baselines.adapters.metadata, "version", lambda name: versions[name])


def test_the_problem_follows_the_installed_transformers():
    major = int(metadata.version("transformers").split(".")[0])
    problem = flag_embedding_problem()
    if major >= 5:
        assert problem is not None and "transformers 5" in problem and "requirements.txt" in problem
    else:
        metadata.version("FlagEmbedding")  # the main set installs it
        assert problem is None


def test_a_run_with_bge_entries_stops_under_transformers_5_naming_them_and_the_fix(transformers_5):
    error = software_problem([SBERT, BGE, BGE_RT])
    assert isinstance(error, RuntimeError)
    message = str(error)
    assert "BGE, BGE_RT" in message and "SBERT" not in message
    assert "transformers 5.25.0" in message
    assert "pip install -r requirements.txt" in message and "evaluate.models" in message
    assert software_problem([SBERT]) is None  # nothing else needs FlagEmbedding


def test_the_adapter_refuses_before_importing_flag_embedding(transformers_5, tmp_path):
    from baselines.adapters import EncoderSpec

    spec = EncoderSpec("BGE", str(tmp_path), None, "cls", "", "", 512)
    with pytest.raises(
        RuntimeError, match=r"registry entry BGE needs FlagEmbedding: .*transformers 5\.25\.0"
    ):
        FlagEmbeddingEncoder(spec, device="cpu")

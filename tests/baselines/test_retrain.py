"""SBERT_RT and BGE_RT retraining from the MiniLM start on 16 tiny triples (one short epoch)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from baselines.registry import build_encoder, load_registry
from baselines.retrain_bge import BgeRTConfig, flag_command, retrain_bge, write_flag_data
from baselines.retrain_sbert import last_checkpoint, read_triples, retrain_sbert
from gear.config import REPO_ROOT, ConfigError
from gear.io import DataFormatError
from gear.layout import Layout
from tests.baselines.helpers import PAIRS, reference_embeddings

REGISTRY = REPO_ROOT / "config" / "baselines.yaml"
PROBE = ["who discovered penicillin", "Spiders are arachnids with eight legs."]


def test_read_triples_names_file_and_line(tmp_path):
    path = tmp_path / "qar.jsonl"
    path.write_text(json.dumps({"query": "q", "document": "d"}) + "\n" + json.dumps({"query": "q2"}) + "\n")
    with pytest.raises(DataFormatError, match=r"qar.jsonl:2: missing field 'document'"):
        read_triples(path)
    path.write_text("")
    with pytest.raises(DataFormatError, match="no training triples"):
        read_triples(path)


def test_resume_picks_the_newest_complete_checkpoint(tmp_path):
    assert last_checkpoint(tmp_path / "absent") is None
    for step, complete in ((2, True), (10, True), (12, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")  # numeric, not lexical order
    assert not (tmp_path / "checkpoint-12").exists()  # killed while saving: removed


def test_flag_data_has_one_positive_and_no_negatives(triples_file, tmp_path):
    out = tmp_path / "flag.jsonl"
    assert write_flag_data(triples_file, out) == len(PAIRS)
    first = json.loads(out.read_text().splitlines()[0])
    assert first == {"query": PAIRS[0][0], "pos": [PAIRS[0][1]], "neg": []}


def test_bge_rt_command_line(mini_config, tmp_path):
    cfg = BgeRTConfig(**mini_config["baselines"]["bge_rt"])
    command = flag_command(cfg, "/start", tmp_path / "d.jsonl", tmp_path / "c", tmp_path / "o", 7, "cpu")
    args = dict(itertools.pairwise(command))
    assert command[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    assert "FlagEmbedding.finetune.embedder.encoder_only.base" in command
    assert args["--temperature"] == "0.02" and args["--sentence_pooling_method"] == "cls"
    assert args["--normalize_embeddings"] == "True" and args["--train_group_size"] == "1"
    assert args["--negatives_cross_device"] == "False" and args["--use_cpu"] == "True"
    assert args["--query_max_len"] == "48" and args["--passage_max_len"] == "256" and args["--seed"] == "7"
    assert "--deepspeed" not in command and "--fp16" not in command and "--bf16" not in command
    with pytest.raises(ConfigError, match=r"train_group_size is 2.*no negatives"):
        flag_command(
            BgeRTConfig(**{**mini_config["baselines"]["bge_rt"], "train_group_size": 2}),
            "/s",
            *[tmp_path] * 3,
            1,
            "cpu",
        )


def assert_trained_and_loadable(name, out, run_config, minilm_reference, pooling):
    """The folder loads through the registry, encodes, and no longer encodes like the start."""
    record = json.loads((out / "train_config.json").read_text())
    assert record["pooling"] == pooling and record["triples"] == len(PAIRS)
    layout = Layout.from_config(run_config)
    assert out == layout.final_model(name, "qar")
    encoder = build_encoder(load_registry(REGISTRY)[name], run_config, "qar", layout, device="cpu")
    vectors = encoder.encode_documents(PROBE)
    assert vectors.shape == (2, 384)
    start = reference_embeddings(minilm_reference, PROBE, pooling, 512)
    assert not np.allclose(vectors, start, atol=1e-3), "training left the weights unchanged"
    # Users load the folder with sentence-transformers and get the embeddings the suite scores.
    exported = SentenceTransformer(str(out), device="cpu")
    np.testing.assert_allclose(exported.encode_document(PROBE), vectors, atol=1e-5)
    np.testing.assert_allclose(exported.encode_query(PROBE), encoder.encode_queries(PROBE), atol=1e-5)
    card = (out / "README.md").read_text(encoding="utf-8")
    assert f"| triples | {len(PAIRS)} |" in card and f"`{record['start_checkpoint']}`" in card
    assert f"| pooling | {pooling} |" in card and "## Not in this card" in card
    leftovers = [p.name for p in out.parent.iterdir() if p.name != "model"]
    assert leftovers == [], f"temporary folders left beside the model: {leftovers}"


@pytest.mark.slow
def test_sbert_rt_retraining_gives_a_loadable_model(run_config, triples_file, minilm_path, minilm_reference):
    cfg = {**run_config["baselines"]["sbert_rt"], "epochs": 1, "max_length": 64}
    out = Layout.from_config(run_config).final_model("SBERT_RT", "qar")
    retrain_sbert(triples_file, out, minilm_path, cfg, seed=run_config["seed"], device="cpu")
    assert (out / "modules.json").is_file()
    record = json.loads((out / "train_config.json").read_text())
    assert record["steps"] == 2 and record["batch_sampler"] == "no_duplicates"  # 16 triples, batch 8
    assert_trained_and_loadable("SBERT_RT", out, run_config, minilm_reference, "mean")


@pytest.mark.slow
def test_bge_rt_retraining_through_torchrun_on_cpu(run_config, triples_file, minilm_path, minilm_reference):
    cfg = {**run_config["baselines"]["bge_rt"], "epochs": 1, "passage_max_len": 64}
    out = Layout.from_config(run_config).final_model("BGE_RT", "qar")
    retrain_bge(triples_file, out, minilm_path, cfg, seed=run_config["seed"], device="cpu", threads=2)
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not (out / "training_args.bin").exists()
    assert_trained_and_loadable("BGE_RT", out, run_config, minilm_reference, "cls")

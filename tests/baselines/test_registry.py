"""The registry: validation errors, early failure for hub-only models, build_encoder for every kind."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from baselines.adapters import FlagEmbeddingEncoder, HFEncoder, SentenceTransformerEncoder
from baselines.registry import (
    ModelEntry,
    build_encoder,
    load_entry,
    load_registry,
    run_models,
    select_models,
)
from gear.config import REPO_ROOT, ConfigError, validate_config
from gear.hub import ModelUnavailableError
from gear.layout import Layout
from gear.workflow.plan import check_models

REGISTRY = REPO_ROOT / "config" / "baselines.yaml"
BASE_ENTRY = {
    "kind": "hf_encoder",
    "model": "some/model",
    "pooling": "mean",
    "query_prefix": "",
    "document_prefix": "",
    "max_length": 128,
    "group": "pretrained",
    "tasks": ["retrieval"],
    "citation": "test",
}


def write_registry(path: Path, **entries: dict) -> Path:
    path.write_text(yaml.safe_dump({"models": entries}), encoding="utf-8")
    return path


@pytest.fixture()
def empty_hub_cache(tmp_path, monkeypatch):
    """No model in the Hugging Face cache, whatever this machine has downloaded before."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def test_the_shipped_registry_loads():
    registry = load_registry(REGISTRY)
    assert {"SBERT", "E5", "BGE", "GTE", "SBERT_RT", "BGE_RT", "GeAR", "GeAR_CL", "MiniLM"} <= set(registry)
    assert registry["E5"].query_prefix == "query: " and registry["E5"].document_prefix == "passage: "
    assert registry["BGE"].kind == "flag_embedding" and registry["BGE"].pooling == "cls"
    assert registry["BGE"].document_prefix == ""
    assert registry["GTE"].query_prefix == registry["SBERT"].query_prefix == ""
    for entry in registry.values():
        if entry.kind in ("sentence_transformers", "hf_encoder", "flag_embedding"):
            assert entry.revision and len(entry.revision) == 40, f"{entry.name}: revision not pinned"


def test_a_job_loads_its_entry_by_name_and_checks_the_planned_digest(tmp_path):
    path = write_registry(tmp_path / "registry.yaml", Mine=BASE_ENTRY, Other=BASE_ENTRY)
    planned = load_registry(path)["Mine"]
    assert load_entry(path, "Mine", planned.digest()) == planned
    write_registry(tmp_path / "registry.yaml", Mine={**BASE_ENTRY, "max_length": 64}, Other=BASE_ENTRY)
    assert load_entry(path, "Other", load_registry(path)["Other"].digest()).max_length == 128
    with pytest.raises(ConfigError, match="'Mine' changed after the workflow planned"):
        load_entry(path, "Mine", planned.digest())
    with pytest.raises(ConfigError, match="no registry entry 'Nope'"):
        load_entry(path, "Nope")


def test_unknown_kind_names_the_entry(tmp_path):
    path = write_registry(tmp_path / "registry.yaml", Mine={**BASE_ENTRY, "kind": "onnx_thing"})
    with pytest.raises(ConfigError, match=r"models\.Mine\.kind: 'onnx_thing' is not one of"):
        load_registry(path)


def test_pretrained_kind_without_model_names_the_entry(tmp_path):
    entry = {key: value for key, value in BASE_ENTRY.items() if key != "model"}
    path = write_registry(tmp_path / "registry.yaml", Mine=entry)
    with pytest.raises(ConfigError, match=r"models\.Mine.*'model' is a required property"):
        load_registry(path)


def test_unknown_model_name_in_a_run(tmp_path):
    registry = load_registry(REGISTRY)
    with pytest.raises(ConfigError, match=r"unknown model\(s\) \['Nope'\]"):
        select_models(registry, ["MiniLM", "Nope"])


def test_a_gear_entry_with_an_unknown_variant_names_train_variants(tmp_path):
    """It failed as Snakemake's MissingInputException (issue 16, item 8)."""
    import yaml

    data = yaml.safe_load(REGISTRY.read_text())
    data["models"]["GeAR_mine"] = {**data["models"]["GeAR"], "variant": "GeAR_mine"}
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data))
    registry = load_registry(path)
    variants = {"GeAR": {}, "GeAR_CL": {}}
    assert [e.name for e in select_models(registry, ["GeAR"], variants=variants)] == ["GeAR"]
    with pytest.raises(
        ConfigError, match=r"'GeAR_mine': variant 'GeAR_mine' is not in train\.variants \['GeAR', 'GeAR_CL'\]"
    ):
        select_models(registry, ["GeAR", "GeAR_mine"], variants=variants)


def test_hub_only_model_without_downloads_fails_before_any_work(run_config, empty_hub_cache):
    """A run naming BGE offline fails in the planning step, naming the model and the fixes."""
    run_config["evaluate"]["models"] = ["BGE"]
    entries = select_models(load_registry(REGISTRY), run_config["evaluate"]["models"])
    with pytest.raises(ModelUnavailableError) as error:
        check_models(run_config, entries)
    message = str(error.value)
    assert "registry entry BGE" in message and "'BAAI/bge-base-en-v1.5'" in message
    assert "allow_downloads: false" in message and "model_paths" in message
    assert "huggingface-cli download BAAI/bge-base-en-v1.5 --revision a5beb1e3" in message


def test_model_paths_is_the_fix(run_config, empty_hub_cache, minilm_path):
    run_config["model_paths"] = {"BAAI/bge-base-en-v1.5": str(minilm_path)}
    entries = select_models(load_registry(REGISTRY), ["BGE"])
    assert check_models(run_config, entries)["BAAI/bge-base-en-v1.5"] == str(minilm_path)
    encoder = build_encoder(entries[0], run_config, "qar", Layout.from_config(run_config), device="cpu")
    assert isinstance(encoder, FlagEmbeddingEncoder)
    assert encoder.spec.query_prefix.startswith("Represent this sentence")


def local_entry(name: str, kind: str, path, pooling: str = "mean") -> ModelEntry:
    return ModelEntry(
        name=name,
        kind=kind,
        pooling=pooling,
        group="pretrained",
        tasks=("retrieval",),
        citation="test",
        model=str(path),
        query_prefix="q: ",
        document_prefix="",
        max_length=64,
    )


@pytest.mark.parametrize(
    ("kind", "pooling", "adapter"),
    [
        ("sentence_transformers", "mean", SentenceTransformerEncoder),
        ("hf_encoder", "mean", HFEncoder),
        ("hf_encoder", "cls", HFEncoder),
        ("flag_embedding", "cls", FlagEmbeddingEncoder),
    ],
)
def test_build_encoder_for_each_pretrained_kind(run_config, minilm_path, kind, pooling, adapter):
    entry = local_entry("Local", kind, minilm_path, pooling)
    encoder = build_encoder(entry, run_config, "qar", Layout.from_config(run_config), device="cpu")
    assert type(encoder) is adapter and encoder.name == "Local"
    assert encoder.spec.path == str(minilm_path) and encoder.spec.query_prefix == "q: "
    vectors = encoder.encode_queries(["who wrote hamlet", "capital of france"])
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def link_model(folder: Path, source: Path) -> Path:
    """A trained-model folder made of links to ``source``'s files (cheap stand-in for training)."""
    folder.mkdir(parents=True)
    for item in source.iterdir():
        os.symlink(item, folder / item.name)
    return folder


@pytest.mark.parametrize(
    ("name", "adapter", "rule"),
    [
        ("SBERT_RT", SentenceTransformerEncoder, "train_sbert_rt"),
        ("BGE_RT", FlagEmbeddingEncoder, "train_bge_rt"),
    ],
)
def test_build_encoder_for_retrained_kinds(run_config, minilm_path, name, adapter, rule):
    layout = Layout.from_config(run_config)
    entry = load_registry(REGISTRY)[name]
    with pytest.raises(FileNotFoundError, match=rf"no trained model at .*{name}/rir/model.*{rule}"):
        build_encoder(entry, run_config, "rir", layout, device="cpu")
    folder = link_model(layout.final_model(name, "rir"), minilm_path)
    encoder = build_encoder(entry, run_config, "rir", layout, device="cpu")
    assert type(encoder) is adapter and encoder.spec.path == str(folder)
    assert encoder.encode_documents(["Paris is the capital of France."]).shape == (1, 384)


def test_retrained_model_must_pool_as_trained(run_config, minilm_path):
    layout = Layout.from_config(run_config)
    folder = link_model(layout.final_model("BGE_RT", "qar"), minilm_path)
    (folder / "train_config.json").write_text(json.dumps({"pooling": "mean"}))
    entry = load_registry(REGISTRY)["BGE_RT"]
    with pytest.raises(
        ConfigError, match=r"registry entry BGE_RT: pooling 'cls', but the model .* trained with 'mean'"
    ):
        build_encoder(entry, run_config, "qar", layout, device="cpu")


def test_build_encoder_for_gear_needs_the_trained_variant(run_config):
    entry = load_registry(REGISTRY)["GeAR_CL"]
    with pytest.raises(FileNotFoundError, match=r"GeAR_CL/qar/model.*train_gear"):
        build_encoder(entry, run_config, "qar", Layout.from_config(run_config))


def test_extra_models_follow_the_default_list(mini_config):
    """evaluate.extra_models adds entries after evaluate.models; unknown or repeated names fail early."""
    registry = load_registry(REGISTRY)
    evaluate = dict(mini_config["evaluate"], extra_models=["BM25", "E5"])
    validate_config(dict(mini_config, evaluate=evaluate))  # the schema knows the key
    names = [entry.name for entry in run_models(registry, evaluate)]
    assert names == [*mini_config["evaluate"]["models"], "BM25", "E5"]
    assert [e.name for e in run_models(registry, mini_config["evaluate"])] == mini_config["evaluate"][
        "models"
    ]
    with pytest.raises(ConfigError, match=r"evaluate\.extra_models: unknown model\(s\) \['Nope'\]"):
        run_models(registry, dict(evaluate, extra_models=["Nope"]))
    with pytest.raises(
        ConfigError, match=r"evaluate\.extra_models: \['MiniLM'\] already in evaluate\.models"
    ):
        run_models(registry, dict(evaluate, extra_models=["MiniLM"]))
    with pytest.raises(ConfigError, match=r"evaluate\.extra_models: expected unique|extra_models"):
        validate_config(dict(mini_config, evaluate=dict(evaluate, extra_models=["BM25", "BM25"])))


def _gear_folder_entry(tmp_path: Path, model: str) -> ModelEntry:
    path = write_registry(
        tmp_path / "registry.yaml",
        Saved={
            "kind": "gear_folder",
            "model": model,
            "pooling": "mean",
            "group": "gear",
            "tasks": ["retrieval", "localization", "generation"],
            "citation": "test",
        },
    )
    return load_registry(path)["Saved"]


def test_a_gear_folder_entry_names_a_saved_gear_per_scenario(tmp_path, tiny_gear_path, run_config):
    from baselines.registry import saved_gear_folder
    from gear.inference import GearEncoder

    for scenario in ("qar", "rir"):
        (tmp_path / scenario).symlink_to(tiny_gear_path)
    entry = _gear_folder_entry(tmp_path, str(tmp_path / "{scenario}"))
    assert entry.is_gear and not entry.trained_by_suite
    assert saved_gear_folder(entry, "rir") == tmp_path / "rir"
    encoder = build_encoder(entry, run_config, "qar", Layout.from_config(run_config), device="cpu")
    assert isinstance(encoder, GearEncoder)
    check_models({**run_config, "evaluate": {**run_config["evaluate"], "models": []}}, [entry])


def test_a_gear_folder_entry_without_a_gear_fails_before_any_work(tmp_path, minilm_path, run_config):
    """A missing folder, or one holding another model, fails the run's planning step, naming the
    entry, the folder, the scenario and what to point the entry at."""
    missing = _gear_folder_entry(tmp_path, str(tmp_path / "nowhere" / "{scenario}"))
    with pytest.raises(ModelUnavailableError) as error:
        check_models(run_config, [missing])
    message = str(error.value)
    assert "registry entry Saved" in message and str(tmp_path / "nowhere" / "qar") in message
    assert "is no saved GeAR folder (config.json with model_type gear)" in message
    other = _gear_folder_entry(tmp_path, str(minilm_path))
    with pytest.raises(
        FileNotFoundError, match=rf"{re.escape(str(minilm_path))} \(scenario qar\) is no saved GeAR folder"
    ):
        build_encoder(other, run_config, "qar", Layout.from_config(run_config), device="cpu")


def test_a_gear_folder_entry_takes_no_variant(tmp_path):
    path = write_registry(
        tmp_path / "registry.yaml",
        Saved={
            "kind": "gear_folder",
            "model": "x",
            "variant": "GeAR",
            "pooling": "mean",
            "group": "gear",
            "tasks": ["retrieval"],
            "citation": "test",
        },
    )
    with pytest.raises(ConfigError, match="Saved"):
        load_registry(path)

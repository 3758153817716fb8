"""Model resolution: the packaged MiniLM offline, model_paths, and clear failures (no fallback)."""

from __future__ import annotations

import json

import pytest

from baselines.registry import load_registry, select_models
from gear.hub import MINILM_ID, ModelSource, ModelUnavailableError, resolve_model
from gear.workflow.plan import check_models, required_models


def test_minilm_resolves_offline_from_the_pypi_package(minilm_path):
    assert (minilm_path / "config.json").is_file()
    assert json.loads((minilm_path / "config.json").read_text())["num_hidden_layers"] == 6
    assert resolve_model(MINILM_ID, allow_downloads=False) == str(minilm_path)


def test_hub_only_model_fails_with_name_and_fixes():
    with pytest.raises(ModelUnavailableError) as info:
        resolve_model("BAAI/bge-base-en-v1.5", allow_downloads=False)
    message = str(info.value)
    assert "'BAAI/bge-base-en-v1.5'" in message
    assert "model_paths" in message and "allow_downloads" in message


@pytest.mark.parametrize(
    "name", ["/data/models/my-encoder", "./models/mine", "~/models/mine", "runs/a/model"]
)
def test_a_missing_local_folder_is_not_sent_to_the_hub(name, monkeypatch):
    """A path that does not exist says so, instead of suggesting huggingface-cli (issue 16, item 8);
    even where downloads are allowed, it is not handed to the hub as an id."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for allow in (False, True):
        with pytest.raises(
            ModelUnavailableError, match=r"does not exist \(a local path, not a hub id\)"
        ) as info:
            resolve_model(name, allow_downloads=allow)
        assert "huggingface-cli" not in str(info.value)


def test_hub_offline_env_blocks_downloads_even_when_allowed(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="HF_HUB_OFFLINE is set"):
        resolve_model("thenlper/gte-base", allow_downloads=True)


def test_downloads_allowed_hands_the_hub_id_on(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert resolve_model("thenlper/gte-base", allow_downloads=True) == "thenlper/gte-base"


def test_model_paths_maps_an_id_to_a_local_folder(tmp_path, minilm_path):
    assert resolve_model("bert-base-uncased", {"bert-base-uncased": str(minilm_path)}) == str(minilm_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelUnavailableError, match=r"holds no config\.json"):
        resolve_model("bert-base-uncased", {"bert-base-uncased": str(empty)})


def test_a_model_source_resolves_with_the_config_it_was_built_from(minilm_path, monkeypatch):
    cfg = {"model_paths": {"bert-base-uncased": str(minilm_path)}, "allow_downloads": True}
    source = ModelSource.from_config(cfg)
    assert source == ModelSource({"bert-base-uncased": str(minilm_path)}, True)
    assert source.resolve("bert-base-uncased") == str(minilm_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert source.resolve("thenlper/gte-base") == "thenlper/gte-base"  # downloads allowed
    with pytest.raises(ModelUnavailableError, match="allow_downloads: false"):
        ModelSource().resolve("thenlper/gte-base")


def test_local_folder_name_resolves(minilm_path):
    assert resolve_model(str(minilm_path)) == str(minilm_path)


def test_mini_run_needs_only_offline_models(mini_config):
    entries = select_models(load_registry(mini_config["registry"]), mini_config["evaluate"]["models"])
    resolved = check_models(mini_config, entries)
    assert set(resolved) == {MINILM_ID}


def test_hub_only_registry_entry_fails_before_any_work(mini_config):
    mini_config["evaluate"]["models"] = ["MiniLM", "BGE", "E5"]
    entries = select_models(load_registry(mini_config["registry"]), mini_config["evaluate"]["models"])
    with pytest.raises(ModelUnavailableError) as info:
        check_models(mini_config, entries)
    message = str(info.value)
    assert "registry entry BGE" in message and "registry entry E5" in message
    assert "'intfloat/e5-base-v2'" in message


def test_paper_run_lists_every_model_it_loads(paper_config):
    entries = select_models(load_registry(paper_config["registry"]), paper_config["evaluate"]["models"])
    needs = {(n.model, n.revision) for n in required_models(paper_config, entries)}
    assert ("bert-base-uncased", "86b5e0934494bd15c9632b12f734a8a67f723594") in needs
    assert ("BAAI/bge-base-en-v1.5", "a5beb1e3e68b9ab74eb54cfd186867f64f240e1a") in needs
    assert {"sentence-transformers/all-mpnet-base-v2", "intfloat/e5-base-v2", "thenlper/gte-base"} <= {
        m for m, _ in needs
    }

"""README "Compare your model": one registry entry, its name in evaluate.models, nothing else.

The fixtures build what a user would: a model folder of their own (here the MiniLM weights saved
with ``save_pretrained``), a registry with one extra entry, and a run config (config/mini.yaml)
pointing at that registry and naming the model. Each test checks one step of the recipe; the
last runs the real workflow on ``compare_run.config_file`` and reads the entry's rows in Tables 1
and 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from gear.config import REPO_ROOT, load_config, load_yaml

MY_MODEL = "MyEncoder"
MY_ENTRY = {
    "kind": "hf_encoder",
    "pooling": "mean",
    "query_prefix": "query: ",
    "document_prefix": "passage: ",
    "max_length": 256,
    "group": "pretrained",
    "tasks": ["retrieval", "localization"],
    "citation": "My encoder (test), fine-tuned from all-MiniLM-L6-v2",
}


@dataclass(frozen=True)
class CompareRun:
    """A run that compares the user's model with the mini benchmark's models."""

    model_dir: Path  # the user's model folder
    registry_file: Path  # config/baselines.yaml plus the user's entry
    config_file: Path  # config/mini.yaml with registry, models and output folders changed
    config: dict  # the validated run config

    @property
    def layout(self):
        from gear.layout import Layout

        return Layout.from_config(self.config)


@pytest.fixture(scope="module")
def my_model_dir(tmp_path_factory, minilm_path) -> Path:
    """A local model folder of the user's: the MiniLM weights saved with transformers."""
    from transformers import AutoModel, AutoTokenizer

    folder = tmp_path_factory.mktemp("my-models") / "my-encoder"
    AutoModel.from_pretrained(minilm_path).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_path).save_pretrained(folder)
    return folder


@pytest.fixture()
def compare_run(tmp_path, my_model_dir) -> CompareRun:
    """The recipe's two edits: the registry entry, and its name in ``evaluate.models``."""
    registry = load_yaml(REPO_ROOT / "config" / "baselines.yaml")
    registry["models"][MY_MODEL] = {**MY_ENTRY, "model": str(my_model_dir)}
    registry_file = tmp_path / "baselines.yaml"
    registry_file.write_text(yaml.safe_dump(registry, sort_keys=False))

    config = load_yaml(REPO_ROOT / "config" / "mini.yaml")
    config["registry"] = str(registry_file)
    config["evaluate"]["models"] = ["MiniLM", MY_MODEL]
    config["results_dir"] = str(tmp_path / "results")
    config["reports_dir"] = str(tmp_path / "reports")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    return CompareRun(my_model_dir, registry_file, config_file, load_config(config_file))


def test_the_entry_is_selected_and_resolves_to_the_folder(compare_run):
    from baselines.registry import load_registry, select_models
    from gear.workflow.plan import check_models

    entries = select_models(
        load_registry(compare_run.config["registry"]), compare_run.config["evaluate"]["models"]
    )
    assert [entry.name for entry in entries] == ["MiniLM", MY_MODEL]
    assert entries[1].group == "pretrained" and entries[1].tasks == ("retrieval", "localization")
    resolved = check_models(compare_run.config, entries)
    assert resolved[str(compare_run.model_dir)] == str(compare_run.model_dir)


def test_the_entry_builds_an_encoder_that_encodes(compare_run, minilm_reference):
    from baselines.adapters import HFEncoder
    from baselines.registry import build_encoder, load_registry
    from tests.baselines.helpers import reference_embeddings

    entry = load_registry(compare_run.config["registry"])[MY_MODEL]
    encoder = build_encoder(entry, compare_run.config, "qar", compare_run.layout, device="cpu")
    assert isinstance(encoder, HFEncoder) and encoder.name == MY_MODEL
    queries = encoder.encode_queries(["who wrote hamlet"])
    documents = encoder.encode_documents(
        ["Hamlet is a tragedy by William Shakespeare.", "Paris is in France."]
    )
    assert queries.shape == (1, 384) and documents.shape == (2, 384)
    expected = reference_embeddings(minilm_reference, ["query: who wrote hamlet"], "mean", 256)
    np.testing.assert_allclose(queries, expected, atol=2e-5)
    assert (queries @ documents.T).argmax() == 0
    assert (
        encoder.fingerprint()
        != build_encoder(
            load_registry(compare_run.config["registry"])["MiniLM"],
            compare_run.config,
            "qar",
            compare_run.layout,
            "cpu",
        ).fingerprint()
    )


@pytest.mark.slow
def test_the_entry_appears_in_tables_1_and_2_of_a_mini_run(compare_run, tmp_path):
    """The whole recipe through the real workflow: build the mini data, evaluate, render.

    The run works in a scratch folder that links the repository's data_prep/ (the config's
    relative data paths), so nothing is written or locked in the repository; without config/
    there, Snakemake reads the run config alone instead of merging it over config/mini.yaml (whose
    epoch analysis names RIR).
    """
    import os
    import subprocess
    import sys

    from gear.io import read_json

    # One of the five data sets keeps the run short (the recipe does not depend on which): it
    # builds SQuAD only and evaluates two models on it.
    config = load_yaml(compare_run.config_file)
    config["evaluate"].update(datasets=["squad"], layer_analysis=["squad"], epoch_analysis={"qar": "squad"})
    compare_run.config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "data_prep").symlink_to(REPO_ROOT / "data_prep")
    snakemake = Path(sys.executable).with_name("snakemake")
    command = [str(snakemake), "--snakefile", str(REPO_ROOT / "Snakefile"), "--cores", "2"]
    done = subprocess.run(
        [*command, "table_1", "table_2", "--configfile", str(compare_run.config_file)],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "rule train_gear" not in done.stderr  # only the models the run names

    layout = compare_run.layout
    for dataset in config["evaluate"]["datasets"]:
        mine = read_json(layout.eval_json(MY_MODEL, dataset, "retrieval"))
        assert mine["model"] == MY_MODEL and 0.0 <= mine["metrics"]["R@5"] <= 1.0
        assert layout.eval_json(MY_MODEL, dataset, "localization").is_file()
    for table, task, metric in (("table_1", "retrieval", "R@5"), ("table_2", "localization", "R@1")):
        rows = (layout.reports / f"{table}.md").read_text().splitlines()
        mine = next(row for row in rows if row.startswith(f"| {MY_MODEL}[†] |"))  # beyond the paper
        value = read_json(layout.eval_json(MY_MODEL, "squad", task))["metrics"][metric]
        # The first cell after the name is SQuAD's first metric: the model's value, no paper value.
        assert mine.split("|")[2].strip() == f"{value:.3f} / —"

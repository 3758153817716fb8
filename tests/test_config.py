"""Config validation: both shipped configs validate; a wrong key or value fails with its path."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import yaml

from gear.config import ConfigError, dataclass_from_mapping, load_config, validate_config


def test_shipped_configs_validate(mini_config, paper_config):
    assert mini_config["run_name"] == "mini"
    assert paper_config["run_name"] == "paper"


def test_paper_config_holds_the_papers_values(paper_config):
    """Table 4, Appendix A and C, SPEC 5-6: the paper's values are the paper config's."""
    train = paper_config["train"]
    assert train["epochs"] == 10
    assert train["scenarios"]["qar"]["batch_size"] == 48
    assert train["scenarios"]["rir"]["batch_size"] == 16
    assert train["reference_gpus"] == 16
    assert train["momentum"] == 0.995
    assert train["queue_size"] == 57600
    assert train["alpha"] == 0.4 and train["alpha_ramp_epochs"] == 2
    assert train["temperature_init"] == 0.07
    assert (train["temperature_min"], train["temperature_max"]) == (0.001, 0.5)
    assert train["optimizer"] == {
        "lr": 1e-5,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "weight_decay": 0.05,
        # the paper states one rate for the whole model: no group gets another
        "new_parameters_lr_multiplier": 1.0,
        "temperature_lr_multiplier": 1.0,
    }
    assert train["schedule"] == {"warmup_steps": 1000, "warmup_lr": 1e-6, "min_lr": 1e-6}
    assert paper_config["gear"]["max_document_tokens"] == 512
    assert paper_config["gear"]["init_checkpoint"] == "bert-base-uncased"
    assert paper_config["gear"]["localization"]["layer"] == 10
    pre = paper_config["data"]["rir"]["preprocess"]
    assert (pre["max_tokens"], pre["min_sentences"], pre["min_tokens"]) == (500, 3, 200)
    assert (pre["candidate_min_tokens"], pre["candidate_max_tokens"], pre["min_candidates"]) == (8, 20, 3)
    assert pre["pronouns"] == ["this", "these", "it", "that", "those", "they", "he", "she", "we", "you", "i"]
    rewrite = paper_config["data"]["rir"]["rewrite"]
    assert rewrite["model"] == "meta-llama/Llama-3.1-70B-Instruct"
    assert rewrite["candidates_per_document"] == 3
    assert rewrite["prompt"].startswith("You are a helpful assistant, please help the user")
    assert rewrite["prompt"].endswith("Unimportant words can be modified, but do not add other information.")
    assert paper_config["data"]["rir"]["filter"] == {
        "model": "BAAI/bge-base-en-v1.5",
        "threshold": 0.5,
        "query_instruction": "",
        "batch_size": 256,
    }
    assert paper_config["data"]["rir"]["split"]["test_fraction"] == 0.05
    assert paper_config["data"]["rir"]["split"]["localization_queries"] == 10000
    assert paper_config["data"]["paq"]["train_triples"] == 30_000_000
    assert paper_config["data"]["paq"]["test_queries"] == 20_000
    assert paper_config["evaluate"]["bootstrap"]["resamples"] == 1000


def test_prompt_is_identical_in_both_configs(mini_config, paper_config):
    assert mini_config["data"]["rir"]["rewrite"]["prompt"] == paper_config["data"]["rir"]["rewrite"]["prompt"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c["train"].update(momentm=0.9), "train: unknown key(s) 'momentm'"),
        (lambda c: c["train"].update(epochs=0), "train.epochs: 0 violates minimum 1"),
        (lambda c: c["train"].update(epochs="ten"), "train.epochs: 'ten' is not of type 'integer'"),
        (
            lambda c: c["gear"]["localization"].update(head_reduction="median"),
            "gear.localization.head_reduction: 'median' is not one of",
        ),
        (lambda c: c["data"]["rir"]["rewrite"].update(backend="gpt"), "data.rir.rewrite.backend"),
        (lambda c: c["evaluate"].update(datasets=["squad", "msmarco"]), "evaluate.datasets[1]"),
        (lambda c: c.pop("seed"), "'seed' is a required property"),
        (
            lambda c: c["train"].update(queue_size=60),
            "train.queue_size 60 is not a multiple of the global batch",
        ),
        (
            lambda c: c["data"]["rir"]["preprocess"].update(candidate_min_tokens=30),
            "candidate_min_tokens is larger",
        ),
        (
            lambda c: c["evaluate"].update(layer_analysis=["squad", "rir"], datasets=["squad"]),
            "evaluate.layer_analysis: 'rir'",
        ),
        (
            lambda c: c["evaluate"]["retrieval"].update(k=50),
            "evaluate.retrieval.depth 20 is below evaluate.retrieval.k 50",
        ),
        (lambda c: c["data"]["splitter"].update(clean=True), "data.splitter.clean must be false"),
    ],
)
def test_invalid_values_fail_with_the_key_path(mini_config, mutate, expected):
    mutate(mini_config)
    with pytest.raises(ConfigError) as info:
        validate_config(mini_config, "config/mini.yaml")
    assert expected in str(info.value)
    assert "config/mini.yaml" in str(info.value)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run_name: x\nseed: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_config(bad)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")


def test_every_error_is_listed_at_once(mini_config, tmp_path):
    mini_config["train"]["epochs"] = -1
    mini_config["evaluate"]["batch_size"] = 0
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(mini_config))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "train.epochs" in str(info.value) and "evaluate.batch_size" in str(info.value)


@dataclass
class Inner:
    a: int


@dataclass
class Outer:
    inner: Inner
    b: tuple = (1, 2)


def test_dataclass_from_mapping_refuses_unknown_and_missing_keys():
    built = dataclass_from_mapping(Outer, {"inner": {"a": 3}, "b": [4, 5]}, "sec")
    assert built.inner.a == 3 and built.b == (4, 5)
    with pytest.raises(ConfigError, match=r"sec.inner: unknown key\(s\) \['z'\]"):
        dataclass_from_mapping(Outer, {"inner": {"a": 1, "z": 2}}, "sec")
    with pytest.raises(ConfigError, match=r"sec\.inner\.a: missing"):
        dataclass_from_mapping(Outer, {"inner": {}}, "sec")

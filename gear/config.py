"""Loading and validating a run's configuration.

Config flows one way: a YAML file (``config/mini.yaml``, ``config/paper.yaml``) is validated
against ``workflow/schemas/config.schema.yaml``, checked for the rules a schema cannot state, and
handed to each stage, which turns its own section into a typed dataclass with
:func:`dataclass_from_mapping`. A wrong key or value fails at start with the key's path and what
is allowed.
"""

from __future__ import annotations

import dataclasses
import io
import typing
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_SCHEMA = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and what is allowed."""


def _key_path(parts: typing.Iterable[Any]) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "<top level>"


def _describe_error(error: Any) -> str:
    """One line for a jsonschema ValidationError: key path, problem, what is allowed."""
    where = _key_path(error.absolute_path)
    validator = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    if validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown key(s) {', '.join(map(repr, extra))}{hint}"
    if validator == "required":
        return f"{where}: {error.message}"
    if validator == "enum":
        return f"{where}: {error.instance!r} is not one of {error.validator_value}"
    if validator == "anyOf" and (names := [v for sub in error.validator_value for v in sub.get("enum", [])]):
        # a closed list opened by a pattern (evaluate.datasets: built-in names or beir-{name})
        message = f"{where}: {error.instance!r} is not one of {names}"
        return message + (f" ({schema['description']})" if schema.get("description") else "")
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{where}: {error.instance!r} violates {validator} {error.validator_value}"
    message = f"{where}: {error.message}"
    if schema.get("description"):
        message += f" ({schema['description']})"
    return message


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file; syntax errors and bytes that are not UTF-8 name the file and line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: no such config file") from err
    try:
        # decoded whole, so that a bad byte's offset gives its line (a text-mode stream decodes
        # ahead of the parser and names no line)
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not valid UTF-8 ({err.reason}); save the file as UTF-8") from err
    try:
        stream = io.StringIO(text)
        stream.name = str(path)  # YAML's own messages name the file
        return yaml.safe_load(stream)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {err}") from err


def validate_against_schema(obj: Any, schema_path: str | Path, source: str) -> None:
    """Validate ``obj`` against a JSON schema stored as YAML; raise ConfigError listing every error."""
    import jsonschema

    schema = load_yaml(schema_path)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(obj), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        lines = "\n  ".join(_describe_error(e) for e in errors)
        raise ConfigError(f"{source}: invalid configuration:\n  {lines}")


def check_config_rules(cfg: dict, source: str) -> None:
    """Rules across keys that JSON Schema cannot express."""
    problems = []
    pre = cfg["data"]["rir"]["preprocess"]
    if pre["candidate_min_tokens"] > pre["candidate_max_tokens"]:
        problems.append("data.rir.preprocess: candidate_min_tokens is larger than candidate_max_tokens")
    if pre["max_tokens"] > cfg["data"]["max_document_tokens"]:
        problems.append("data.rir.preprocess.max_tokens exceeds data.max_document_tokens")
    train = cfg["train"]
    if not train["temperature_min"] <= train["temperature_init"] <= train["temperature_max"]:
        problems.append("train: temperature_init must lie within [temperature_min, temperature_max]")
    if train["schedule"]["min_lr"] > train["optimizer"]["lr"]:
        problems.append("train.schedule.min_lr exceeds train.optimizer.lr")
    for scenario, spec in train["scenarios"].items():
        global_batch = spec["batch_size"] * train["reference_gpus"]
        if train["queue_size"] % global_batch:
            problems.append(
                f"train.queue_size {train['queue_size']} is not a multiple of the global batch of "
                f"scenario {scenario} (train.scenarios.{scenario}.batch_size {spec['batch_size']} x "
                f"train.reference_gpus {train['reference_gpus']} = {global_batch})"
            )
    if cfg["data"]["splitter"]["clean"]:
        problems.append(
            "data.splitter.clean must be false: pysbd's cleaning rewrites the text and unit spans must index into it"
        )
    retrieval = cfg["evaluate"]["retrieval"]
    if retrieval["k"] > retrieval["depth"]:
        problems.append(
            f"evaluate.retrieval.depth {retrieval['depth']} is below evaluate.retrieval.k {retrieval['k']}"
        )
    datasets = set(cfg["evaluate"]["datasets"])
    declared = cfg["data"].get("beir", {})
    for name in cfg["evaluate"]["datasets"]:
        if name.startswith("beir-") and name not in declared:
            problems.append(
                f"evaluate.datasets: {name!r} is not declared under data.beir "
                f"(add data.beir.{name}.path: the folder holding its corpus.jsonl, queries.jsonl and qrels/)"
            )
    for name in cfg["evaluate"]["layer_analysis"]:
        if name not in datasets:
            problems.append(f"evaluate.layer_analysis: {name!r} is not in evaluate.datasets")
    for scenario, name in cfg["evaluate"]["epoch_analysis"].items():
        if name not in datasets:
            problems.append(f"evaluate.epoch_analysis.{scenario}: {name!r} is not in evaluate.datasets")
    if cfg["reports"]["figure3"]["dataset"] not in datasets:
        problems.append("reports.figure3.dataset is not in evaluate.datasets")
    if problems:
        raise ConfigError(f"{source}: invalid configuration:\n  " + "\n  ".join(problems))


def validate_config(cfg: Any, source: str = "config") -> dict:
    """Validate a loaded configuration mapping; return it unchanged or raise ConfigError."""
    validate_against_schema(cfg, CONFIG_SCHEMA, source)
    check_config_rules(cfg, source)
    return cfg


def load_config(path: str | Path) -> dict:
    """Load and validate a run configuration file.

    Example:
        >>> cfg = load_config("config/mini.yaml")  # doctest: +SKIP
        >>> cfg["train"]["momentum"]
        0.995
    """
    return validate_config(load_yaml(path), str(path))


T = typing.TypeVar("T")


def dataclass_from_mapping(cls: type[T], mapping: dict, where: str = "") -> T:
    """Build dataclass ``cls`` from ``mapping``, refusing unknown keys and missing fields.

    Nested dataclass fields are built recursively; the error names the dotted key path.
    """
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(mapping).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    kwargs = {}
    for name, field in fields.items():
        key = f"{where}.{name}" if where else name
        if name not in mapping:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key}: missing")
            continue
        value = mapping[name]
        hint = hints.get(name)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = dataclass_from_mapping(hint, value, key)
        elif (hint is tuple or typing.get_origin(hint) is tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)

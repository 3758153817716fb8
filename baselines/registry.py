"""The model registry: ``config/baselines.yaml`` loaded, validated and turned into encoders.

Every model compared in the suite is one entry (SPEC 8). A run chooses entries by name in its
config's ``evaluate.models``; nothing is chosen by catching a failed download. Comparing a new
model is one entry in the registry plus its name in ``evaluate.models``::

    MyModel:
      kind: hf_encoder            # or sentence_transformers / flag_embedding
      model: /data/models/my-encoder   # hub id, model_paths key or local folder
      revision: main
      pooling: mean
      query_prefix: ""
      document_prefix: ""
      max_length: 512
      group: pretrained
      tasks: [retrieval, localization]
      citation: "..."
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gear.config import REPO_ROOT, ConfigError, load_yaml, validate_against_schema

REGISTRY_SCHEMA = REPO_ROOT / "workflow" / "schemas" / "baselines.schema.yaml"
PRETRAINED_KINDS = ("sentence_transformers", "hf_encoder", "flag_embedding")
TRAINED_KINDS = ("sbert_rt", "bge_rt", "gear")


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry (see ``config/baselines.yaml`` for the meaning of each field)."""

    name: str
    kind: str
    pooling: str
    group: str
    tasks: tuple[str, ...]
    citation: str
    model: str | None = None
    revision: str | None = None
    variant: str | None = None
    query_prefix: str = ""
    document_prefix: str = ""
    max_length: int = 512
    extra: dict = field(default_factory=dict)

    @property
    def trained_by_suite(self) -> bool:
        """Whether the workflow trains this model (its weights come from ``R/models``)."""
        return self.kind in TRAINED_KINDS


def load_registry(path: str | Path) -> dict[str, ModelEntry]:
    """Load and validate the registry; errors name the entry and field."""
    data = load_yaml(path)
    validate_against_schema(data, REGISTRY_SCHEMA, str(path))
    entries = {}
    for name, spec in data["models"].items():
        spec = dict(spec)
        spec["tasks"] = tuple(spec["tasks"])
        entries[name] = ModelEntry(name=name, **spec)
    return entries


def select_models(registry: dict[str, ModelEntry], names: list[str], source: str = "evaluate.models") -> list[ModelEntry]:
    """The entries a run evaluates, in the order given; unknown names fail with the known ones."""
    unknown = [name for name in names if name not in registry]
    if unknown:
        raise ConfigError(f"{source}: unknown model(s) {unknown}; the registry has {sorted(registry)}")
    return [registry[name] for name in names]

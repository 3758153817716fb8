"""The model registry: ``config/baselines.yaml`` loaded, validated and turned into encoders.

Every model compared in the suite is one entry (SPEC 8). A run chooses entries by name in its
config's ``evaluate.models`` and ``evaluate.extra_models`` (:func:`run_models`); nothing is chosen
by catching a failed download. Comparing a new model is one entry in the registry plus its name in
``evaluate.extra_models`` (or ``evaluate.models``)::

    MyModel:
      kind: hf_encoder            # or sentence_transformers / flag_embedding (or bm25, below)
      model: /data/models/my-encoder   # hub id, model_paths key or local folder
      revision: main
      pooling: mean
      query_prefix: ""
      document_prefix: ""
      max_length: 512
      group: pretrained
      tasks: [retrieval, localization]
      citation: "..."

:func:`build_encoder` turns an entry into a :class:`gear.encoding.TextEncoder`: pretrained kinds
load ``entry.model`` through :func:`gear.hub.resolve_model` (hub ids are fetched at the pinned
revision only where the run allows downloads), ``sbert_rt`` / ``bge_rt`` load the folder the
workflow trained (``layout.final_model(entry.name, scenario)``), ``gear`` loads
``layout.final_model(entry.variant, scenario)`` through ``gear.inference.GearEncoder``, and
``gear_folder`` loads a GeAR model saved elsewhere (``python -m gear.tools.squad_check``'s epochs,
a cluster run's ``model/``) as it is, with the same retrieval, localization and generation::

    GeAR_squad:
      kind: gear_folder
      model: runs/squad_check/gear/epochs/epoch_2   # a "{scenario}" in it becomes qar or rir
      pooling: mean
      group: gear
      tasks: [retrieval, localization, generation]
      citation: "..."

Two families of retrievers, told apart by ``kind``: dense ones (every kind above) are
:class:`gear.encoding.TextEncoder` objects whose vectors the evaluation searches by inner product;
lexical ones (``LEXICAL_KINDS``: ``bm25``) rank texts themselves, :func:`build_lexical` gives a
:class:`baselines.lexical.BM25Retriever` (``search`` for retrieval, ``score_units`` for
localization), configured by the entry's optional ``bm25:`` mapping::

    BM25:
      kind: bm25
      bm25: {k1: 0.9, b: 0.4}     # optional: method, stemmer (english | none), stopwords (en | none)
      group: lexical
      tasks: [retrieval, localization]
      citation: "..."
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from baselines.adapters import ADAPTERS, EncoderSpec
from baselines.lexical import BM25Retriever, BM25Settings
from gear.config import REPO_ROOT, ConfigError, dataclass_from_mapping, load_yaml, validate_against_schema
from gear.hub import ModelSource, local_model_folder
from gear.io import is_gear_folder, read_json

REGISTRY_SCHEMA = REPO_ROOT / "workflow" / "schemas" / "baselines.schema.yaml"
PRETRAINED_KINDS = ("sentence_transformers", "hf_encoder", "flag_embedding")
TRAINED_KINDS = ("sbert_rt", "bge_rt", "gear")
#: kinds whose model is a GeAR (cross-attention localization, generation): trained by the suite
#: (``gear``) or a saved folder evaluated as it is (``gear_folder``)
GEAR_KINDS = ("gear", "gear_folder")
#: kinds that rank texts themselves (no vectors): :func:`build_lexical`
LEXICAL_KINDS = ("bm25",)
#: the rule that trains each trained kind (named in the error when its model is missing)
TRAINING_RULES = {"sbert_rt": "train_sbert_rt", "bge_rt": "train_bge_rt", "gear": "train_gear"}


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry (see ``config/baselines.yaml`` for the meaning of each field)."""

    name: str
    kind: str
    group: str
    tasks: tuple[str, ...]
    citation: str
    pooling: str | None = None  # dense kinds only
    model: str | None = None
    revision: str | None = None
    variant: str | None = None
    query_prefix: str = ""
    document_prefix: str = ""
    max_length: int = 512
    bm25: dict = field(default_factory=dict)  # lexical kinds only (baselines.lexical.BM25Settings)
    extra: dict = field(default_factory=dict)

    @property
    def trained_by_suite(self) -> bool:
        """Whether the workflow trains this model (its weights come from ``R/models``)."""
        return self.kind in TRAINED_KINDS

    @property
    def is_gear(self) -> bool:
        """Whether the model is a GeAR (``GEAR_KINDS``): it localizes by cross-attention and generates."""
        return self.kind in GEAR_KINDS

    @property
    def lexical(self) -> bool:
        """Whether the model ranks texts itself (``LEXICAL_KINDS``) instead of encoding them."""
        return self.kind in LEXICAL_KINDS

    def digest(self) -> str:
        """A short hash of every field: a rule param that reruns a job when its entry is edited
        (and only then), and that the job checks against the entry it loads."""
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


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


def load_entry(path: str | Path, name: str, digest: str | None = None) -> ModelEntry:
    """The entry ``name`` of the registry at ``path`` (how a workflow job gets its entry).

    Args:
        path: the registry file (config ``registry``).
        name: the entry's name.
        digest: :meth:`ModelEntry.digest` of the entry the workflow planned with, if any.

    Raises:
        ConfigError: no such entry, or the entry differs from the one planned with (the registry
            changed after the workflow started).
    """
    registry = load_registry(path)
    if name not in registry:
        raise ConfigError(f"{path}: no registry entry {name!r}; the registry has {sorted(registry)}")
    entry = registry[name]
    if digest is not None and entry.digest() != digest:
        raise ConfigError(
            f"{path}: registry entry {name!r} changed after the workflow planned its jobs; rerun snakemake"
        )
    return entry


def select_models(
    registry: dict[str, ModelEntry],
    names: list[str],
    source: str = "evaluate.models",
    variants: Iterable[str] | None = None,
) -> list[ModelEntry]:
    """The entries a run evaluates, in the order given; unknown names fail with the known ones.

    With ``variants`` (the config's ``train.variants``), a GeAR entry whose ``variant`` is not
    one of them fails here, naming both, instead of as a missing input of the workflow.
    """
    unknown = [name for name in names if name not in registry]
    if unknown:
        raise ConfigError(f"{source}: unknown model(s) {unknown}; the registry has {sorted(registry)}")
    chosen = [registry[name] for name in names]
    if variants is not None:
        known = sorted(variants)
        for entry in chosen:
            if entry.kind == "gear" and entry.variant not in known:
                raise ConfigError(
                    f"registry entry {entry.name!r}: variant {entry.variant!r} is not in train.variants "
                    f"{known}; add it there (its losses) or use one of those"
                )
    return chosen


def run_models(
    registry: dict[str, ModelEntry], evaluate: dict, variants: Iterable[str] | None = None
) -> list[ModelEntry]:
    """The entries a run evaluates: ``evaluate.models``, then ``evaluate.extra_models`` (optional).

    ``extra_models`` lets a config that is merged onto another (``--configfile mine.yaml`` on top
    of ``config/mini.yaml``: Snakemake merges mappings key by key and replaces lists whole) add
    models without repeating the default list.

    Raises:
        ConfigError: an unknown name (naming the key and the registry's names), or a name in both lists.
    """
    extra = list(evaluate.get("extra_models") or [])
    repeated = [name for name in extra if name in evaluate["models"]]
    if repeated:
        raise ConfigError(
            f"evaluate.extra_models: {repeated} already in evaluate.models {evaluate['models']}; name each model once"
        )
    return select_models(registry, evaluate["models"], "evaluate.models", variants) + select_models(
        registry, extra, "evaluate.extra_models", variants
    )


def start_checkpoint_folder(cfg: dict, resolved: dict[str, str] | None = None) -> str:
    """Where ``baselines.start_checkpoint`` is (a folder, or the hub id where downloads are allowed).

    Args:
        cfg: the validated run configuration.
        resolved: models the run resolved while planning (``gear.workflow.plan.check_models``), if any.
    """
    name = cfg["baselines"]["start_checkpoint"]
    if resolved and name in resolved:
        return resolved[name]
    return ModelSource.from_config(cfg).resolve(name, cfg["model_revisions"].get(name))


def trained_model_dir(entry: ModelEntry, scenario: str, layout) -> Path:
    """Where the workflow writes the weights of a trained entry (``sbert_rt``, ``bge_rt``, ``gear``)."""
    if entry.kind == "gear":
        return layout.final_model(entry.variant, scenario)
    if entry.kind in ("sbert_rt", "bge_rt"):
        return layout.final_model(entry.name, scenario)
    raise ValueError(f"registry entry {entry.name}: kind {entry.kind!r} is not trained by the suite")


def gear_folder_path(entry: ModelEntry, scenario: str) -> Path:
    """Where a ``gear_folder`` entry's model for ``scenario`` is: ``entry.model`` with
    ``{scenario}`` replaced by ``qar`` or ``rir`` (unchecked: :func:`saved_gear_folder` checks)."""
    return Path(entry.model.replace("{scenario}", scenario))


def saved_gear_folder(entry: ModelEntry, scenario: str) -> Path:
    """The folder of a ``gear_folder`` entry for ``scenario``: ``entry.model`` with ``{scenario}``
    replaced by ``qar`` or ``rir`` (one folder serves both scenarios when it has none).

    Raises:
        FileNotFoundError: no saved GeAR model there (names the entry, the folder and what to do).
    """
    if entry.kind != "gear_folder":
        raise ValueError(f"registry entry {entry.name}: kind {entry.kind!r} is not gear_folder")
    folder = gear_folder_path(entry, scenario)
    if not is_gear_folder(folder):
        raise FileNotFoundError(
            f"registry entry {entry.name}: {folder} (scenario {scenario}) is no saved GeAR folder "
            "(config.json with model_type gear); point the entry's model at one (a trained model/ "
            "or epochs/epoch_N folder of this suite)"
        )
    return folder


def gear_model_dir(entry: ModelEntry, scenario: str, layout) -> Path:
    """The GeAR folder a ``gear`` or ``gear_folder`` entry evaluates on ``scenario``, checked."""
    if entry.kind == "gear_folder":
        return saved_gear_folder(entry, scenario)
    return _require_trained(entry, scenario, layout)


def _check_trained_pooling(entry: ModelEntry, folder: Path) -> None:
    """A retrained model records how it pooled in training; the entry must pool the same way."""
    record = folder / "train_config.json"
    if not record.is_file():
        return
    trained = read_json(record).get("pooling")
    if trained is not None and trained != entry.pooling:
        raise ConfigError(
            f"registry entry {entry.name}: pooling {entry.pooling!r}, but the model in {folder} was "
            f"trained with {trained!r} pooling ({record}); make the entry's pooling {trained!r}"
        )


def encoder_spec(entry: ModelEntry, cfg: dict, scenario: str, layout):
    """The :class:`baselines.adapters.EncoderSpec` of a non-GeAR entry: its local folder and settings.

    Raises:
        ModelUnavailableError: a pretrained model cannot be had on this machine.
        FileNotFoundError: a retrained model has not been trained yet (names the rule).
    """
    if entry.kind in PRETRAINED_KINDS:
        resolved = ModelSource.from_config(cfg).resolve(entry.model, entry.revision)
        folder, revision = local_model_folder(resolved, entry.revision), entry.revision
    elif entry.kind in ("sbert_rt", "bge_rt"):
        folder, revision = str(_require_trained(entry, scenario, layout)), None
        _check_trained_pooling(entry, Path(folder))
    else:
        raise ValueError(f"registry entry {entry.name}: kind {entry.kind!r} has no adapter spec")
    return EncoderSpec(
        name=entry.name,
        path=folder,
        revision=revision,
        pooling=entry.pooling,
        query_prefix=entry.query_prefix,
        document_prefix=entry.document_prefix,
        max_length=entry.max_length,
    )


def _require_trained(entry: ModelEntry, scenario: str, layout) -> Path:
    folder = trained_model_dir(entry, scenario, layout)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"registry entry {entry.name}: no trained model at {folder} (scenario {scenario}); train it "
            f"first with the workflow rule {TRAINING_RULES[entry.kind]} (snakemake {folder})"
        )
    return folder


def build_lexical(entry: ModelEntry) -> BM25Retriever:
    """The retriever of a lexical entry (``kind: bm25``); its ``bm25:`` mapping sets it up.

    Raises:
        ConfigError: the entry is not lexical, or a bad ``bm25`` setting (names the entry).
    """
    if not entry.lexical:
        raise ConfigError(
            f"registry entry {entry.name}: kind {entry.kind!r} is not lexical; use build_encoder"
        )
    try:
        settings = dataclass_from_mapping(
            BM25Settings, dict(entry.bm25), f"registry entry {entry.name}: bm25"
        )
    except ValueError as err:
        raise ConfigError(f"registry entry {entry.name}: {err}") from err
    return BM25Retriever(settings, name=entry.name)


def build_encoder(entry: ModelEntry, cfg: dict, scenario: str, layout, device: str | None = None):
    """The :class:`gear.encoding.TextEncoder` of a registry entry.

    Args:
        entry: the registry entry.
        cfg: the validated run configuration (``model_paths`` and ``allow_downloads`` are read).
        scenario: "qar" or "rir": which trained weights a trained kind loads.
        layout: the run's :class:`gear.layout.Layout`.
        device: "cuda", "cuda:1", "cpu"; None picks CUDA when available.

    Returns:
        an adapter from :mod:`baselines.adapters`, or ``gear.inference.GearEncoder`` for the
        GeAR kinds (``GEAR_KINDS``).
    """
    if entry.is_gear:
        folder = gear_model_dir(entry, scenario, layout)
        # Imported here: GeAR's model code is heavy and not needed by the baselines.
        from gear.inference import GearEncoder

        return GearEncoder(folder, name=entry.name, device=device)
    if entry.lexical:
        raise ValueError(
            f"registry entry {entry.name}: kind {entry.kind!r} encodes nothing; build_lexical gives its retriever"
        )

    return ADAPTERS[entry.kind](encoder_spec(entry, cfg, scenario, layout), device=device)

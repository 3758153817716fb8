"""Checkpoints of a training run: resumable step states (:class:`StateStore`, verified by a manifest
written last), the RNG states, and the per-epoch models published beside the final one."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from gear.io import atomic_dir, file_sha256, read_json, write_json

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# State checkpoints
# --------------------------------------------------------------------------------------------
STATE_FILE = "state.pt"
MANIFEST = "manifest.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


#: The modules whose code decides what training produces; the resume fingerprint hashes them, so
#: a fix to the model or the trainer never resumes (or republishes) weights of the old code.
TRAINING_CODE = ("model", "training")


def training_code_fingerprint() -> str:
    """Short SHA-256 of the source of every module in the :data:`TRAINING_CODE` packages of gear."""
    gear_root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in TRAINING_CODE:
        for path in sorted((gear_root / package).glob("*.py")):
            digest.update(path.relative_to(gear_root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class StateStore:
    """Step checkpoints in ``root/step_{n}``: atomic folders, verified by a manifest written last."""

    def __init__(self, root: Path, fingerprint: str, keep: int = 2):
        self.root, self.fingerprint, self.keep = Path(root), fingerprint, keep
        # Folders whose checksums this process has verified (or just computed while writing):
        # each is hashed once per process, not again at every later save's clean-up.
        self._verified: set[Path] = set()

    def steps(self) -> list[tuple[int, Path]]:
        """Every ``(step, folder)`` under the root, newest first, complete or not."""
        if not self.root.is_dir():
            return []
        found = [
            (int(m.group(1)), p) for p in self.root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()
        ]
        return sorted(found, reverse=True)

    def verify(self, folder: Path) -> str | None:
        """None when ``folder`` is a complete checkpoint of this run, else the reason it is not."""
        if folder in self._verified and (folder / MANIFEST).is_file():
            return None
        problem = self._check(folder)
        if problem is None:
            self._verified.add(folder)
        return problem

    def _check(self, folder: Path) -> str | None:
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            return "no manifest (incomplete write)"
        try:
            manifest = read_json(manifest_path)
        except ValueError as err:
            return f"unreadable manifest: {err}"
        if manifest.get("fingerprint") != self.fingerprint:
            return "written under another configuration, data file or process count"
        for name, digest in manifest.get("files", {}).items():
            path = folder / name
            if not path.is_file():
                return f"{name} is missing"
            if file_sha256(path) != digest:
                return f"{name} does not match its checksum (truncated or corrupt)"
        return None

    def discard_other_runs(self) -> None:
        """Remove the complete checkpoints written under another fingerprint (another run)."""
        for _, folder in self.steps():
            if (folder / MANIFEST).is_file() and read_json(folder / MANIFEST).get(
                "fingerprint"
            ) != self.fingerprint:
                log.warning(
                    "discarding %s: written under another configuration, data file or training code", folder
                )
                shutil.rmtree(folder, ignore_errors=True)

    def clear(self) -> None:
        """Remove every step checkpoint (a finished run's, before training afresh)."""
        for _, folder in self.steps():
            shutil.rmtree(folder, ignore_errors=True)
        self._verified.clear()

    def newest(self) -> tuple[int, dict] | None:
        """The newest verified checkpoint ``(step, payload)``; bad ones are skipped with a warning."""
        for step, folder in self.steps():
            problem = self.verify(folder)
            if problem is None:
                try:
                    return step, torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
                except Exception as err:  # a checksum-valid file torch cannot read: skip it too
                    problem = f"cannot be loaded: {err}"
            log.warning("skipping state checkpoint %s: %s", folder, problem)
        return None

    def save(self, step: int, payload: dict) -> Path:
        """Write ``step_{step}`` atomically, then keep only the newest ``keep`` valid checkpoints."""
        target = self.root / f"step_{step}"
        try:
            with atomic_dir(target) as tmp:
                torch.save(payload, tmp / STATE_FILE)
                write_json(
                    tmp / MANIFEST,
                    {
                        "step": step,
                        "fingerprint": self.fingerprint,
                        "files": {STATE_FILE: file_sha256(tmp / STATE_FILE)},
                    },
                )
            self._verified.add(target)  # its checksum was just computed from the written file
        except (OSError, RuntimeError) as err:
            # torch.save reports a full disk as a bare RuntimeError ("file write failed",
            # "unexpected pos"): say which checkpoint failed, why that may be, and what is safe.
            free = shutil.disk_usage(self.root).free / 2**20
            message = (
                f"{target}: the training state could not be written ({err}); {free:.0f} MiB are free "
                "there: is the disk or the quota full, or the file-size limit (ulimit -f) reached? "
                "Nothing of this checkpoint was kept; the previous ones are intact, and rerunning "
                "the same command resumes from the newest."
            )
            raise type(err)(*((err.errno, message) if isinstance(err, OSError) else (message,))) from err
        kept = 0
        for _, folder in self.steps():
            if kept < self.keep and self.verify(folder) is None:
                kept += 1
            else:
                shutil.rmtree(folder, ignore_errors=True)
        return target


def rng_state() -> dict:
    numpy_state = np.random.get_state()  # noqa: NPY002 (the legacy global RNG other code may draw from)
    return {
        "python": random.getstate(),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def remove_unfinished_writes(folder: Path, prefixes: tuple[str, ...]) -> None:
    """Delete the hidden temporaries (names starting with one of ``prefixes``) that writes killed
    before their final rename left in ``folder``; call only when no other process writes there."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.name.startswith(prefixes):
            log.warning("removing %s: left by a write that never finished (the process was killed)", path)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


class CheckpointError(RuntimeError):
    """A checkpoint or epoch model on disk is damaged; the message says what to delete."""


#: Checksums of an epoch model's files, written last into its kept folder (gear.training.trainer).
EPOCH_MANIFEST = "epoch_manifest.json"


def write_epoch_manifest(folder: Path) -> None:
    files = {item.name: file_sha256(item) for item in sorted(folder.iterdir()) if item.is_file()}
    write_json(folder / EPOCH_MANIFEST, {"files": files})


def check_epoch(folder: Path) -> str | None:
    """None when the kept epoch model ``folder`` matches its manifest, else what is wrong."""
    try:
        files = read_json(folder / EPOCH_MANIFEST)["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"no readable {EPOCH_MANIFEST} ({err})"
    for name, digest in files.items():
        if not (folder / name).is_file():
            return f"{name} is missing"
        if file_sha256(folder / name) != digest:
            return f"{name} does not match its checksum (truncated or corrupt)"
    return None


def publish_epochs(kept: Path, published: Path, verified: set[Path] | None = None) -> None:
    """Rebuild ``published`` (``out_root/epochs``) from the kept epoch models, atomically.

    Every kept model is first checked against the checksums written with it (once per process
    with ``verified``): a truncated or corrupt one is never published (Figure 4a/b reads them);
    the error names it and says how to retrain it. Hard links, so no space is used twice (copies
    where links are impossible); rebuilt whole, so nothing of an earlier, discarded run survives.

    Raises:
        CheckpointError: a kept epoch model that does not match its checksums.
    """
    if not kept.is_dir():
        return
    verified = set() if verified is None else verified
    folders = sorted(p for p in kept.iterdir() if p.name.startswith("epoch_"))
    for folder in folders:
        if folder not in verified:
            problem = check_epoch(folder)
            if problem is not None:
                raise CheckpointError(
                    f"{folder}: {problem}. This epoch model was damaged after it was written (a crash "
                    f"or a full disk) and is not published. Delete {folder} and the step checkpoints "
                    f"after it in {kept.parent} (or all of {kept.parent} to retrain everything), then "
                    "rerun the same command."
                )
            verified.add(folder)
    with atomic_dir(published) as tmp:
        for folder in folders:
            (tmp / folder.name).mkdir()
            for item in folder.iterdir():
                try:
                    os.link(item, tmp / folder.name / item.name)
                except OSError:
                    shutil.copy2(item, tmp / folder.name / item.name)

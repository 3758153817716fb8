"""Point 6: a full disk fails clearly and leaves no partial file; a corpus larger than the memory
available is encoded and searched shard by shard.

- :func:`test_full_disk_fails_clearly_and_leaves_no_partial_file`: each writer of the suite runs
  in a child process whose file-size limit (``RLIMIT_FSIZE``, SIGXFSZ ignored so that ``write``
  fails with EFBIG as it fails with ENOSPC on a full disk) is smaller than its output. The error
  names the output and the cause; the destination holds nothing new (a previous version is
  untouched) and no temporary file is left.
- :func:`test_full_tmpfs_then_freed_space_resumes_the_embedding_cache`: a real full file system
  (a 3 MiB tmpfs; needs root, skipped otherwise): encoding stops at the shard that does not fit
  with ENOSPC, the shards written before stay whole, and once space is freed the rerun encodes
  only the missing shards and equals an encoding that never failed.
- :func:`test_corpus_larger_than_the_memory_limit_is_encoded_and_searched_shard_by_shard`: a
  child process limited (``RLIMIT_DATA``) to 48 MiB of memory above its start-up footprint
  encodes 300,000 documents (146 MiB of float32 vectors, 73 MiB of float16 cache) and searches
  them shard by shard; searching them in one index fails under the same limit, and once the
  limit is lifted gives exactly the same results.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.conftest import NumberedEncoder, hidden_entries, run_python

# RLIMIT_FSIZE / RLIMIT_DATA semantics and /proc are Linux's.
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux resource limits")
LIMIT = 30_000  # bytes: the file-size limit of the child processes

DISK_FULL = r"""
import json, os, resource, signal, sys
from pathlib import Path

from tests.reliability.conftest import NumberedEncoder

case, folder, limit = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])


if case == "write_jsonl":
    from gear.io import write_jsonl

    def run():
        write_jsonl(folder / "rows.jsonl", ({"i": i, "text": "x" * 100} for i in range(10_000)))
elif case == "build_squad":
    from data_prep.squad import build_squad

    data_cfg = json.loads(os.environ["DATA_CFG"])

    def run():
        build_squad(folder / "squad.json", folder / "squad", data_cfg)
elif case == "embedding_cache":
    from gear.evaluation.embeddings import encode_texts

    def run():
        encode_texts(NumberedEncoder(), [f"passage {i}" for i in range(4000)], folder / "cache", shard_size=2000)
elif case == "training_state":
    import torch
    from gear.training.checkpoints import StateStore

    store = StateStore(folder / "state", fingerprint="run")
    store.save(2, {"weights": torch.zeros(1000)})  # 4 kB: fits

    def run():
        store.save(4, {"weights": torch.zeros(100_000)})  # 400 kB: does not
elif case == "model_folder":
    import torch
    from safetensors.torch import save_file
    from gear.io import atomic_dir

    def run():
        with atomic_dir(folder / "model") as tmp:  # as train_gear saves a model
            (tmp / "config.json").write_text("{}")
            save_file({"weight": torch.zeros(100_000)}, str(tmp / "model.safetensors"))

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    run()
    outcome = {"type": None}
except Exception as err:
    outcome = {"type": type(err).__name__, "message": str(err), "errno": getattr(err, "errno", None)}
print(json.dumps(outcome))
"""


def squad_source(path: Path, paragraphs: int = 80) -> Path:
    """A SQuAD file whose corpus (~50 kB) is larger than LIMIT."""
    rng = np.random.default_rng(0)
    words = ["harbour", "railway", "council", "bridge", "library", "fort", "factory", "school", "mine"]
    articles = []
    for a in range(paragraphs // 10):
        paragraphs_ = []
        for p in range(10):
            context = " ".join(
                f"The {rng.choice(words)} of Town{a}x{p} was rebuilt in {1700 + s} by Mayor {s}."
                for s in range(8)
            )
            paragraphs_.append(
                {
                    "context": context,
                    "qas": [
                        {"id": f"{a}-{p}", "question": "When was it rebuilt?", "answers": [{"text": "1700"}]}
                    ],
                }
            )
        articles.append({"title": f"Town {a}", "paragraphs": paragraphs_})
    path.write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")
    return path


def all_entries(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        pytest.param(
            "write_jsonl",
            r"rows\.jsonl: not written: File too large .*No partial output was left",
            id="write_jsonl",
        ),
        # loads the real tokenizer in a fresh process (~5 s)
        pytest.param(
            "build_squad", r"squad: not written: File too large", id="build_squad", marks=pytest.mark.slow
        ),
        pytest.param(
            "embedding_cache", r"shard_00000\.npy: not written: File too large", id="embedding_cache"
        ),
        pytest.param(
            "training_state",
            r"step_4: the training state could not be written .*disk or the quota full",
            id="training_state",
        ),
        pytest.param("model_folder", r"model: not written: File too large", id="model_folder"),
    ],
)
def test_full_disk_fails_clearly_and_leaves_no_partial_file(tmp_path, mini_config, case, message):
    folder = tmp_path / "out"
    folder.mkdir()
    env = {}
    if case == "write_jsonl":
        (folder / "rows.jsonl").write_text('{"i": 0, "text": "previous"}\n')
    if case == "build_squad":
        squad_source(folder / "squad.json")
        env["DATA_CFG"] = json.dumps(mini_config["data"])
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    child = run_python(DISK_FULL, case, str(folder), str(LIMIT), timeout=300, **env)
    assert child.returncode == 0, child.stderr[-3000:]
    outcome = json.loads(child.stdout.strip().splitlines()[-1])
    assert outcome["type"] is not None, "the write did not fail: the limit is too large"
    assert re.search(message, outcome["message"]), outcome
    if case != "training_state":
        assert outcome["type"] == "DiskFullError" and outcome["errno"] == 27  # EFBIG

    # nothing partial: earlier files untouched, no new file, no temporary left
    after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    if case == "training_state":
        assert all_entries(folder) == [
            "state",
            "state/step_2",
            "state/step_2/manifest.json",
            "state/step_2/state.pt",
        ]
        from gear.training.checkpoints import StateStore

        assert StateStore(folder / "state", fingerprint="run").newest()[0] == 2
    elif case == "embedding_cache":  # the cache folder holds no file: no shard, no manifest
        assert [p for p in folder.rglob("*") if p.is_file()] == []
    else:
        assert after == before, sorted(set(map(str, after)) ^ set(map(str, before)))
        assert not [e for e in all_entries(folder) if any(part.startswith(".") for part in Path(e).parts)]


# --------------------------------------------------------------------------------------------
# A real full file system


@pytest.fixture()
def small_disk(tmp_path):
    """A 3 MiB tmpfs mounted in tmp_path (root only)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_tmpfs_then_freed_space_resumes_the_embedding_cache(small_disk, tmp_path):
    from gear.evaluation.embeddings import MANIFEST, EmbeddingStore, encode_texts
    from gear.io import DiskFullError

    texts = [f"passage {i}" for i in range(5000)]  # 5 shards of 1000 x 256 float16: 0.5 MiB each
    blocker = small_disk / "other_job_output.bin"
    blocker.write_bytes(b"\0" * (1024 * 1024))  # 1 MiB taken by something else: 3 shards fit
    with pytest.raises(
        DiskFullError, match=r"shard_0000\d\.npy: not written: No space left on device"
    ) as error:
        encode_texts(NumberedEncoder(256), texts, small_disk / "cache", shard_size=1000)
    assert error.value.errno == 28  # ENOSPC
    (folder,) = (small_disk / "cache").iterdir()
    written = sorted(p.name for p in folder.iterdir())
    assert written and not (folder / MANIFEST).exists()
    assert all(name.startswith("shard_") and not name.startswith(".") for name in written)
    for name in written:  # every shard on disk is whole
        assert np.load(folder / name).shape == (1000, 256)

    blocker.unlink()  # space freed: the rerun encodes only the shards that are missing
    resumed = NumberedEncoder(256)
    store = encode_texts(resumed, texts, small_disk / "cache", shard_size=1000)
    assert resumed.encoded == len(texts) - 1000 * len(written)
    fresh = encode_texts(NumberedEncoder(256), texts, tmp_path / "fresh", shard_size=1000)
    assert np.array_equal(store.to_array(), fresh.to_array())
    # the folder reopened alone holds the same vectors, and no temporary file is left in it
    assert np.array_equal(EmbeddingStore(folder).to_array(), fresh.to_array())
    assert hidden_entries(folder) == []


# --------------------------------------------------------------------------------------------
# Larger than memory

MEMORY_LIMITED = r"""
import json, resource, sys
from collections.abc import Sequence

import faiss
import numpy as np

from gear.evaluation.embeddings import encode_texts
from gear.evaluation.search import SearchSettings, search
from tests.reliability.conftest import NumberedEncoder

N, DIM, SHARD, BUDGET_MB = 300_000, 128, 20_000, 48
root = sys.argv[1]


class Numbered(Sequence):
    # the corpus texts, made on demand: never all in memory
    def __len__(self):
        return N

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [f"passage {j}" for j in range(*i.indices(N))]
        if not 0 <= i < N:
            raise IndexError(i)
        return f"passage {i}"


def data_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024


queries = np.random.default_rng(0).standard_normal((64, DIM)).astype(np.float32)
queries /= np.linalg.norm(queries, axis=1, keepdims=True)
warm = faiss.IndexFlatIP(DIM)  # FAISS's threads and buffers exist before the limit is set
warm.add(queries)
warm.search(queries, 5)
del warm
start = data_bytes()
resource.setrlimit(resource.RLIMIT_DATA, (start + BUDGET_MB * 2**20, resource.RLIM_INFINITY))
store = encode_texts(NumberedEncoder(DIM), Numbered(), root, shard_size=SHARD)
scores, ids = search(store, queries, 10, SearchSettings(ram_budget_bytes=16 * 2**20, backend="faiss"))
try:
    search(store, queries, 10, SearchSettings(ram_budget_bytes=2**40, backend="faiss"))
    one_index = "fitted"
except MemoryError as err:
    one_index = f"MemoryError: {err}"
resource.setrlimit(resource.RLIMIT_DATA, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
scores_all, ids_all = search(store, queries, 10, SearchSettings(ram_budget_bytes=2**40, backend="faiss"))
print(json.dumps({
    "budget_mb": BUDGET_MB,
    "corpus_float32_mb": N * DIM * 4 / 2**20,
    "cache_mb": sum(s.nbytes for s in store.shards) / 2**20,
    "shards": len(store.shards),
    "one_index_under_limit": one_index,
    "same_results": bool(np.array_equal(ids, ids_all) and np.array_equal(scores, scores_all)),
    "found": int((ids >= 0).sum()),
}))
"""


@pytest.mark.slow
def test_corpus_larger_than_the_memory_limit_is_encoded_and_searched_shard_by_shard(tmp_path):
    child = run_python(MEMORY_LIMITED, str(tmp_path / "cache"), timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["budget_mb"] < report["corpus_float32_mb"] / 3
    assert report["budget_mb"] < report["cache_mb"]  # not even the float16 cache fits
    assert report["shards"] == 15
    assert report["one_index_under_limit"].startswith("MemoryError"), report  # the limit bites
    assert report["same_results"] and report["found"] == 64 * 10, report
    assert os.path.getsize(next((tmp_path / "cache").rglob("shard_00014.npy"))) > 0
    print(json.dumps(report))  # measured numbers for the README (pytest -s)

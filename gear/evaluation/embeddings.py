"""The embedding cache: a corpus encoded once, kept on disk in float16 shards (SPEC 6).

Embedding cache
    ``encode_texts(encoder, texts, cache_root)`` stores the vectors of ``texts`` under
    ``cache_root/<encoder name>-<hash of fingerprint>-<hash of texts>-s<shard size>/``:

    - ``shard_00000.npy``, ``shard_00001.npy``, ...: float16 ``(rows, dim)``, ``shard_size``
      texts each (the last one fewer), each written atomically, so a shard file that exists is
      whole. After a crash the shards already written are reused and only the rest is encoded.
    - ``manifest.json``, written last: fingerprint, texts hash, counts, shard list. A folder
      without a manifest is never read as a finished cache.

    The key is the encoder's :meth:`~gear.encoding.TextEncoder.fingerprint` (anything that changes
    the vectors) and a SHA-256 of the texts in order, so a changed corpus or model is re-encoded
    and an unchanged one never is. Shards are opened memory-mapped: a corpus of millions of
    documents is searched without holding its vectors in RAM. float16 halves the disk and page
    cache; the inner products lose about 3 decimal digits, far below any ranking difference the
    metrics can see (the suite's choice; SPEC is silent).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gear.encoding import TextEncoder
from gear.io import DataFormatError, atomic_open, read_json, write_json

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CACHE_FORMAT = 1


# --------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------


def texts_hash(texts: Sequence[str]) -> str:
    """SHA-256 of the texts in order (length-prefixed, so ``["ab", "c"]`` differs from ``["a", "bc"]``)."""
    digest = hashlib.sha256()
    for text in texts:
        blob = text.encode("utf-8")
        digest.update(len(blob).to_bytes(8, "little"))
        digest.update(blob)
    return digest.hexdigest()


def cache_dir_for(
    cache_root: str | Path, encoder: TextEncoder, corpus_hash: str, shard_size: int, kind: str
) -> Path:
    """The cache folder of ``encoder``'s vectors of one text collection."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", getattr(encoder, "name", type(encoder).__name__))[:40]
    fingerprint = hashlib.sha256(encoder.fingerprint().encode("utf-8")).hexdigest()[:16]
    return Path(cache_root) / f"{name}-{kind}-{fingerprint}-{corpus_hash[:16]}-s{shard_size}"


class EmbeddingStore:
    """A finished cache folder: float16 shards opened memory-mapped.

    Attributes:
        folder: the cache folder.
        manifest: its manifest (fingerprint, texts hash, ``count``, ``dim``, ``shards``).
        shards: ``(rows, dim)`` float16 memory maps, in corpus order.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        manifest_path = self.folder / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{self.folder}: no {MANIFEST}; the cache is unfinished")
        self.manifest = read_json(manifest_path)
        self.shards: list[np.ndarray] = []
        for entry in self.manifest["shards"]:
            array = _open_shard(self.folder / entry["file"])
            if array is None or array.shape != (entry["rows"], self.manifest["dim"]):
                raise DataFormatError(
                    f"{self.folder / entry['file']}: missing or not ({entry['rows']}, {self.manifest['dim']}) "
                    f"float16 as {manifest_path} says; delete {self.folder} to re-encode"
                )
            self.shards.append(array)

    def __len__(self) -> int:
        return int(self.manifest["count"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    def iter_shards(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(offset, shard)``: the corpus position of the shard's first row, and the shard."""
        offset = 0
        for shard in self.shards:
            yield offset, shard
            offset += len(shard)

    def to_array(self) -> np.ndarray:
        """All vectors as one float32 ``(count, dim)`` array (for corpora that fit in RAM)."""
        if not self.shards:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate([np.asarray(s, dtype=np.float32) for s in self.shards])


def _open_shard(path: Path) -> np.ndarray | None:
    """A shard memory-mapped, or None when it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        array = np.load(path, mmap_mode="r")
    except (ValueError, OSError):
        return None
    return array if array.dtype == np.float16 and array.ndim == 2 else None


class _WriteOnly:
    """A binary file numpy sees as a plain object with ``write``.

    ``np.save`` writes a real file with ``ndarray.tofile`` (C ``fwrite``), which reports a full
    disk as a bare ``OSError("N requested and M written")``, without errno. Through ``write`` it
    writes 16 MiB chunks, and a full disk raises ``OSError(ENOSPC)``, which ``gear.io`` turns
    into a :class:`~gear.io.DiskFullError` naming the shard.
    """

    def __init__(self, handle):
        self.write = handle.write


def _check_vectors(vectors: np.ndarray, rows: int, encoder: TextEncoder, what: str) -> np.ndarray:
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != rows:
        raise ValueError(
            f"{getattr(encoder, 'name', encoder)}: {what} returned shape {vectors.shape} for {rows} texts"
        )
    if not np.isfinite(vectors).all():
        raise ValueError(f"{getattr(encoder, 'name', encoder)}: {what} returned non-finite values")
    return vectors


def encode_texts(
    encoder: TextEncoder,
    texts: Sequence[str],
    cache_root: str | Path | None,
    *,
    kind: str = "documents",
    batch_size: int = 32,
    shard_size: int = 100_000,
) -> EmbeddingStore | np.ndarray:
    """Embed ``texts`` with ``encoder``, through the on-disk cache when ``cache_root`` is given.

    Args:
        encoder: any :class:`~gear.encoding.TextEncoder`.
        texts: the texts in corpus order (any sequence that supports ``len`` and slicing).
        cache_root: folder of the embedding cache (``Layout.embedding_cache()``); None encodes in
            memory and returns a float32 array.
        kind: ``"documents"`` (``encode_documents``) or ``"queries"`` (``encode_queries``).
        batch_size: handed to the encoder.
        shard_size: texts per shard.

    Returns:
        an :class:`EmbeddingStore` (cached) or a float32 ``(len(texts), dim)`` array (no cache).
    """
    if kind not in ("documents", "queries"):
        raise ValueError(f"kind must be 'documents' or 'queries', got {kind!r}")
    encode = encoder.encode_documents if kind == "documents" else encoder.encode_queries
    what = f"encode_{kind}"
    if cache_root is None:
        if not len(texts):
            raise ValueError("nothing to encode: the text collection is empty")
        return _check_vectors(encode(list(texts), batch_size=batch_size), len(texts), encoder, what).astype(
            np.float32
        )
    if shard_size < 1:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    if not len(texts):
        raise ValueError("nothing to encode: the text collection is empty")
    from tqdm.auto import tqdm

    corpus_hash = texts_hash(texts)
    folder = cache_dir_for(cache_root, encoder, corpus_hash, shard_size, kind)
    fingerprint = encoder.fingerprint()
    if (folder / MANIFEST).is_file():
        manifest = read_json(folder / MANIFEST)
        if (
            manifest.get("format") == CACHE_FORMAT
            and manifest.get("fingerprint") == fingerprint
            and manifest.get("texts_sha256") == corpus_hash
            and manifest.get("count") == len(texts)
        ):
            log.info("embedding cache hit: %s (%d texts)", folder, len(texts))
            return EmbeddingStore(folder)
        # Same folder name, other contents (a hash prefix collision or an older cache format):
        # none of its shards can be trusted.
        log.warning("embedding cache %s has a manifest for other texts or another model; re-encoding", folder)
        (folder / MANIFEST).unlink()
        for stale in folder.glob("shard_*.npy"):
            stale.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    bounds = [(start, min(start + shard_size, len(texts))) for start in range(0, len(texts), shard_size)]
    dim = None
    shards = []
    reused = 0
    for number, (start, end) in enumerate(tqdm(bounds, desc=f"encode {kind} ({len(texts)})", unit="shard")):
        path = folder / f"shard_{number:05d}.npy"
        array = _open_shard(path)
        if array is not None and array.shape[0] == end - start and dim in (None, array.shape[1]):
            reused += 1
        else:
            vectors = _check_vectors(
                encode(list(texts[start:end]), batch_size=batch_size), end - start, encoder, what
            )
            array = vectors.astype(np.float16)
            with atomic_open(path, "wb") as handle:
                np.save(_WriteOnly(handle), array)
        if dim is None:
            dim = int(array.shape[1])
        elif array.shape[1] != dim:
            raise ValueError(f"{path}: {array.shape[1]}-d vectors after {dim}-d ones from the same encoder")
        shards.append({"file": path.name, "rows": end - start})
    if reused:
        log.info("reused %d of %d shards already written in %s", reused, len(bounds), folder)
    write_json(
        folder / MANIFEST,
        {
            "format": CACHE_FORMAT,
            "encoder": getattr(encoder, "name", type(encoder).__name__),
            "fingerprint": fingerprint,
            "kind": kind,
            "texts_sha256": corpus_hash,
            "count": len(texts),
            "dim": dim,
            "dtype": "float16",
            "shard_size": shard_size,
            "shards": shards,
        },
    )
    return EmbeddingStore(folder)


# --------------------------------------------------------------------------------------------

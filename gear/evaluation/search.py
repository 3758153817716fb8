"""Exact search over an embedding cache (SPEC 6: inner product), and TREC run and qrels files.

Search
    Exact maximum inner product (SPEC 6 says no more), by one of two backends. Which one runs is
    the suite's choice, ``SearchSettings.backend``:

    - ``"faiss"``: ``faiss.IndexFlatIP`` in float32, on the GPU when ``faiss.get_num_gpus() > 0``
      (``use_gpu`` forces either way; a CUDA ``device`` such as ``"cuda:1"`` asks for FAISS's GPU
      index on that GPU, and fails clearly when FAISS has none). FAISS's GPU index comes with the
      ``gpu`` extra (``pip install -e '.[gpu]'``: the PyPI ``faiss-gpu`` package, README). A corpus whose float32 vectors fit ``ram_budget_bytes`` is
      searched in one index; a larger one shard by shard, each shard's top ``depth`` merged into
      the running top ``depth``.
    - ``"torch"``: a matrix product and ``torch.topk`` on a torch device (``device``; default
      CUDA when torch sees it, else the CPU). The vectors go to the device from the cache's
      memory-mapped shards a slice at a time (the host never holds the corpus in float32), as
      float16 on CUDA (the cache's own precision) and float32 elsewhere. A corpus that fits
      ``device_budget_bytes`` (default: half the device's free memory on CUDA, ``ram_budget_bytes``
      on the CPU) stays on the device and each query batch is scored against it block by block
      (``score_block_bytes`` of scores at a time); a larger one is streamed through the device in
      budget-sized slabs. Each block's top ``depth`` is merged into the running top ``depth`` on
      the device, and each query batch comes back to the host in one copy.
    - ``"auto"`` (default): FAISS on the GPU when FAISS has one (faiss-gpu); otherwise the torch
      backend on CUDA when torch sees a CUDA device (the pip ``faiss-cpu`` the suite installs has
      no GPU, so this is the usual path on a GPU machine; FAISS need not be installed there at
      all); otherwise FAISS on the CPU.
      Under ``auto``, ``use_gpu=True`` / ``False`` keeps its meaning (FAISS on the GPU / FAISS
      on the CPU), and a ``device`` that is not CUDA (``"cpu"``) means FAISS on the CPU.

    Both backends put their results in a canonical order (score descending, then corpus position
    ascending, :func:`canonical_topk`), so every path returns the same ranking up to the score
    precision. On CUDA the torch backend multiplies float16 queries by float16 vectors and keeps
    float16 scores (about 3 significant digits, the cache's precision): documents whose scores
    differ by less than that can swap places against the float32 FAISS path, and are ordered by
    corpus position when their float16 scores are equal. Among documents whose scores are
    exactly equal at the ``depth`` boundary, the FAISS paths keep the lowest positions; the torch
    backend keeps the ones ``torch.topk`` picks (in the order above).

Run and qrels files
    :func:`write_run` writes the standard TREC run format, one line per retrieved document,
    ``query_id Q0 doc_id rank score run_name`` separated by single spaces (``rank`` from 1 in the
    search's order, ``score`` with 6 decimals, ``run_name`` the model); :func:`write_qrels` writes
    TREC qrels ``query_id 0 doc_id relevance`` beside it, so ``trec_eval -m recall.5 -m
    recip_rank qrels.tsv run.tsv``, pytrec_eval and ir_measures read both as they are. Ties:
    trec_eval ignores the rank column and orders by score, then by document id in reverse
    lexicographic order, while :mod:`gear.evaluation.metrics` ranks documents of exactly equal
    float32 score pessimistically (irrelevant first). Figures agree wherever a relevant document
    shares no printed score with another document of its query's list (tested on every run file
    of an evaluation, ``tests/gear/test_evaluate.py``); trec_eval's ``recip_rank`` has no
    cut-off, so ``M@k`` equals it on the run cut to its top k.

Example:
    >>> store = encode_texts(encoder, [d.text for d in corpus], "results/mini/cache/embeddings")  # doctest: +SKIP
    >>> scores, ids = search(store, encoder.encode_queries(questions), depth=100)                # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gear.evaluation.embeddings import EmbeddingStore
from gear.hub import default_device
from gear.io import DataFormatError, atomic_open, iter_text_lines

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

BACKENDS = ("auto", "faiss", "torch")
#: Default share of a CUDA device's free memory the torch backend may fill with corpus vectors.
DEVICE_BUDGET_FRACTION = 0.5
#: Default size of one block of scores (queries x corpus rows) in the torch backend.
SCORE_BLOCK_BYTES = {"cuda": 1 << 30, "other": 256 << 20}
#: Corpus rows copied from the host to the device at a time (96 MiB of 768-d float16).
UPLOAD_ROWS = 65_536


@dataclass(frozen=True)
class SearchSettings:
    """How the corpus is cached and searched. Not in the config schema: defaults chosen here.

    Attributes:
        shard_size: documents per cache shard (100k: a shard of 768-d float16 vectors is 150 MB).
        ram_budget_bytes: a corpus whose float32 vectors exceed this is searched shard by shard
            (FAISS; also the torch backend's budget on the CPU).
        query_batch_size: queries per FAISS search call / per matrix product of the torch backend.
        use_gpu: FAISS on the GPU: True / False to force, None to use a GPU when FAISS reports one.
        backend: ``"auto"``, ``"faiss"`` or ``"torch"`` (module docstring: which runs when).
        device: the torch backend's device (``"cuda"``, ``"cuda:1"``, ``"cpu"``); None: CUDA when
            torch sees it, else the CPU.
        device_budget_bytes: device memory the torch backend may fill with corpus vectors (float16
            on CUDA, float32 elsewhere); a larger corpus is streamed through the device. None:
            ``DEVICE_BUDGET_FRACTION`` of the free memory on CUDA, ``ram_budget_bytes`` elsewhere.
            The score blocks and the queries come on top.
        score_block_bytes: the torch backend's scores per matrix product (queries x corpus rows);
            None: ``SCORE_BLOCK_BYTES`` (1 GiB on CUDA, 256 MiB elsewhere).
    """

    shard_size: int = 100_000
    ram_budget_bytes: int = 8 * 1024**3
    query_batch_size: int = 4096
    use_gpu: bool | None = None
    backend: str = "auto"
    device: str | None = None
    device_budget_bytes: int | None = None
    score_block_bytes: int | None = None

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(
                f"SearchSettings.backend must be one of {', '.join(map(repr, BACKENDS))}, got {self.backend!r}"
            )
        if self.use_gpu not in (None, True, False):
            raise ValueError(f"SearchSettings.use_gpu must be None, True or False, got {self.use_gpu!r}")
        for name in ("shard_size", "ram_budget_bytes", "query_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"SearchSettings.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("device_budget_bytes", "score_block_bytes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"SearchSettings.{name} must be positive or None, got {value!r}")
        if self.device is not None:
            import torch

            try:
                torch.device(self.device)
            except (RuntimeError, TypeError, ValueError) as err:
                raise ValueError(
                    f"SearchSettings.device must be a torch device such as 'cuda', 'cuda:1' or 'cpu', "
                    f"got {self.device!r}"
                ) from err


@dataclass(frozen=True)
class SearchBackend:
    """The backend :func:`search` runs, as :func:`resolve_backend` chose it.

    Attributes:
        name: ``"faiss"`` or ``"torch"``.
        gpu: FAISS on the GPU (FAISS only).
        gpu_index: which GPU FAISS's index goes to (FAISS on the GPU only; a ``device`` of
            ``"cuda:N"`` sets it).
        device: the torch device, e.g. ``"cuda"`` or ``"cpu"`` (torch only; None for FAISS).
    """

    name: str
    gpu: bool = False
    device: str | None = None
    gpu_index: int = 0

    @property
    def half(self) -> bool:
        """Whether vectors, queries and scores are float16 (the torch backend on CUDA)."""
        return self.name == "torch" and self.device is not None and self.device.startswith("cuda")

    def describe(self) -> str:
        """``"faiss IndexFlatIP"``, ``"faiss GpuIndexFlatIP on GPU 0"``, ``"torch fp16 on CUDA"``, ``"torch fp32 on CPU"``."""
        if self.name == "faiss":
            return f"faiss GpuIndexFlatIP on GPU {self.gpu_index}" if self.gpu else "faiss IndexFlatIP"
        where = "CUDA" if self.half else str(self.device).upper()
        return f"torch {'fp16' if self.half else 'fp32'} on {where}"


# Choosing the backend; the FAISS backend
# --------------------------------------------------------------------------------------------


def _faiss_gpus() -> int:
    """GPUs FAISS can use: 0 for the pip ``faiss-cpu``, and 0 where FAISS is not installed at all."""
    try:
        import faiss
    except ImportError:
        return 0
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def _gpu_wanted(use_gpu: bool | None) -> bool:
    gpus = _faiss_gpus()
    if use_gpu and gpus == 0:
        raise RuntimeError(
            "use_gpu=True but FAISS sees no GPU: install faiss-gpu on a CUDA machine or set use_gpu=None"
        )
    return gpus > 0 if use_gpu is None else bool(use_gpu)


def _torch_device(name: str | None) -> str:
    """The torch backend's device: ``name``, or CUDA when torch sees it, else the CPU."""
    import torch

    device = torch.device(name if name is not None else default_device())
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"gear.evaluation.search: the torch backend was asked for device {name!r}, but torch sees no CUDA "
                "device (a CPU-only torch build, no GPU, or CUDA_VISIBLE_DEVICES hides it): set "
                "SearchSettings(device='cpu') to search on the CPU, or backend='auto' (or device=None) to "
                "let the suite choose"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(
                f"gear.evaluation.search: device {name!r} does not exist, torch sees {torch.cuda.device_count()} CUDA "
                "device(s): pick another index or set SearchSettings(device='cuda')"
            )
    return str(device)


def resolve_backend(settings: SearchSettings) -> SearchBackend:
    """The backend :func:`search` runs under ``settings`` (module docstring: the ``auto`` rule).

    Raises:
        RuntimeError: a GPU was asked for (``use_gpu=True``, a CUDA ``device``) and is not there.
    """
    if settings.backend == "faiss":
        return _faiss_backend(settings)
    if settings.backend == "torch":
        return SearchBackend("torch", device=_torch_device(settings.device))
    if settings.use_gpu is not None or _faiss_gpus() > 0:
        return _faiss_backend(settings)
    import torch

    if settings.device is not None:
        if torch.device(settings.device).type == "cuda":
            return SearchBackend("torch", device=_torch_device(settings.device))
    elif torch.cuda.is_available():
        return SearchBackend("torch", device=_torch_device(None))
    return SearchBackend("faiss", gpu=False)


def _faiss_backend(settings: SearchSettings) -> SearchBackend:
    """``backend="faiss"``: on the GPU when ``use_gpu`` says so, when ``device`` is CUDA, or (both
    None) when FAISS has a GPU; a CUDA ``device`` picks which GPU. torch is imported only to read
    a ``device``: a CPU search needs none of its memory (a process under a memory limit, such as
    a shard-by-shard search, cannot afford it)."""
    device = None
    if settings.device is not None:
        import torch

        device = torch.device(settings.device)
    on_cuda = device is not None and device.type == "cuda"
    if on_cuda and settings.use_gpu is False:
        raise ValueError(
            f"SearchSettings(backend='faiss', device={settings.device!r}, use_gpu=False) contradict each other: "
            "drop use_gpu, or set device='cpu'"
        )
    if on_cuda and _faiss_gpus() == 0:
        raise RuntimeError(
            f"gear.evaluation.search: FAISS on {settings.device!r} was asked for, but this FAISS sees no GPU "
            "(the pip faiss-cpu, or no CUDA device): install the gpu extra (pip install -e '.[gpu]', README) on "
            "a CUDA machine, or use backend='torch' (the suite's GPU search without faiss-gpu)"
        )
    gpu = _gpu_wanted(True if on_cuda else settings.use_gpu)
    if device is not None and device.type == "cpu" and settings.use_gpu is None:
        gpu = False
    index = (device.index or 0) if on_cuda else 0
    if gpu and index >= _faiss_gpus():
        raise RuntimeError(
            f"gear.evaluation.search: FAISS sees {_faiss_gpus()} GPU(s), device {settings.device!r} is not one of "
            "them: pick another index or set SearchSettings(device='cuda')"
        )
    return SearchBackend("faiss", gpu=gpu, gpu_index=index if gpu else 0)


def _flat_index(vectors: Sequence[np.ndarray], dim: int, gpu: bool, gpu_index: int = 0):
    """An exact inner-product index over the given float blocks (on GPU ``gpu_index`` when ``gpu``).

    On the GPU: ``faiss.index_cpu_to_gpu`` of an ``IndexFlatIP`` (a ``GpuIndexFlatIP``, float32
    vectors on the device, brute-force products by cuBLAS), its ``StandardGpuResources`` kept
    alive with the index.
    """
    import faiss

    index = faiss.IndexFlatIP(dim)
    if gpu:
        resources = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(resources, gpu_index, index)
        index.referenced_resources = resources  # keep the resources alive as long as the index
    for block in vectors:
        index.add(np.ascontiguousarray(block, dtype=np.float32))
    return index


def _search_index(index, queries: np.ndarray, depth: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """FAISS search in query batches; slots beyond the index size are ``-1`` / ``-inf``."""
    n = len(queries)
    scores = np.full((n, depth), -np.inf, dtype=np.float32)
    ids = np.full((n, depth), -1, dtype=np.int64)
    k = min(depth, index.ntotal)
    if k == 0 or n == 0:
        return scores, ids
    for start in range(0, n, batch):
        block = np.ascontiguousarray(queries[start : start + batch], dtype=np.float32)
        found_scores, found_ids = index.search(block, k)
        scores[start : start + len(block), :k] = found_scores
        ids[start : start + len(block), :k] = found_ids
    scores[ids < 0] = -np.inf
    return scores, ids


def canonical_topk(scores: np.ndarray, ids: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``depth`` of each row, ordered by score descending then corpus position ascending.

    Empty slots (id ``-1``) go last. Used both to merge shard results and to order one-shot
    results, so that both search paths agree even on ties.
    """
    empty = ids < 0
    order = np.lexsort(
        (np.where(empty, np.iinfo(np.int64).max, ids), np.where(empty, np.inf, -scores)), axis=-1
    )
    order = order[:, :depth]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


# --------------------------------------------------------------------------------------------
# The torch backend
# --------------------------------------------------------------------------------------------


def _torch_dtype(device: torch.device) -> torch.dtype:
    """float16 on CUDA (the cache's precision, tensor-core products), float32 elsewhere."""
    import torch

    return torch.float16 if device.type == "cuda" else torch.float32


def device_budget(settings: SearchSettings, device: torch.device) -> int:
    """Bytes of corpus vectors the torch backend may keep on ``device`` (``device_budget_bytes``).

    On CUDA the default counts PyTorch's cached but unused blocks as free: the allocator reuses them.
    """
    if settings.device_budget_bytes is not None:
        return settings.device_budget_bytes
    if device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(DEVICE_BUDGET_FRACTION * (free + cached))
    return settings.ram_budget_bytes


def torch_corpus_fits(count: int, dim: int, settings: SearchSettings, device: torch.device) -> bool:
    """Whether the torch backend keeps the whole corpus on ``device`` (else it streams slabs)."""
    return count * dim * _torch_dtype(device).itemsize <= device_budget(settings, device)


def _score_block_rows(settings: SearchSettings, device: torch.device, batch: int, itemsize: int) -> int:
    """Corpus rows per matrix product, so that ``batch`` x rows scores fill ``score_block_bytes``."""
    budget = settings.score_block_bytes or SCORE_BLOCK_BYTES["cuda" if device.type == "cuda" else "other"]
    rows = budget // (max(1, batch) * itemsize)
    return max(1, rows - rows % 64 if rows >= 128 else rows)


def _upload_rows(
    shards: Sequence[tuple[int, np.ndarray]],
    start: int,
    end: int,
    dim: int,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Rows ``start:end`` of the corpus made of ``shards`` (``(offset, rows)``) as a ``dtype`` tensor on ``device``.

    Copied ``UPLOAD_ROWS`` rows at a time: the host holds one slice (in the shard's own float16
    or float32), never the whole range, and the conversion to ``dtype`` happens on the device.
    """
    import torch

    out = torch.empty((end - start, dim), dtype=dtype, device=device)
    for offset, shard in shards:
        low, high = max(start, offset), min(end, offset + len(shard))
        for first in range(low, high, UPLOAD_ROWS):
            last = min(high, first + UPLOAD_ROWS)
            # np.array: a writable, contiguous copy of the slice (torch will not wrap a read-only memmap)
            host = np.array(shard[first - offset : last - offset])
            if host.dtype != np.float16:
                host = host.astype(np.float32, copy=False)
            out[first - start : last - start].copy_(torch.from_numpy(host))
    return out


def _merge_block_topk(
    queries: torch.Tensor,
    slab: torch.Tensor,
    slab_start: int,
    run_scores: torch.Tensor,
    run_ids: torch.Tensor,
    depth: int,
    block_rows: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge the top ``depth`` of ``queries`` against the corpus rows in ``slab`` into a running top.

    ``slab`` holds corpus positions ``slab_start ...``; it is scored ``block_rows`` rows at a
    time, each block's ``torch.topk`` merged into ``run_scores`` (float32) / ``run_ids`` (int64,
    ``-1`` for empty slots). All on the device, nothing is copied to the host (no host sync).
    """
    import torch

    for first in range(0, len(slab), block_rows):
        block = slab[first : first + block_rows]
        top_scores, top_ids = torch.topk(queries @ block.T, min(depth, len(block)), dim=1, sorted=False)
        scores = torch.cat((run_scores, top_scores.float()), dim=1)
        ids = torch.cat((run_ids, top_ids + (slab_start + first)), dim=1)
        run_scores, pick = torch.topk(scores, depth, dim=1, sorted=False)
        run_ids = torch.gather(ids, 1, pick)
    return run_scores, run_ids


def _empty_top(rows: int, depth: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    return (
        torch.full((rows, depth), -torch.inf, dtype=torch.float32, device=device),
        torch.full((rows, depth), -1, dtype=torch.int64, device=device),
    )


def _host_top(rows: int, depth: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Host buffers for the results (page-locked on CUDA, so the copies back need no host sync)."""
    import torch

    pin = device.type == "cuda"
    return (
        torch.empty((rows, depth), dtype=torch.float32, pin_memory=pin),
        torch.empty((rows, depth), dtype=torch.int64, pin_memory=pin),
    )


def _finish(device: torch.device) -> None:
    """Wait for the device's queued work (the copies back to the host)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def torch_search_resident(
    matrix: torch.Tensor, queries: np.ndarray, depth: int, settings: SearchSettings
) -> tuple[np.ndarray, np.ndarray]:
    """The top ``depth`` of ``queries`` against a corpus held on the device (not yet canonical).

    Args:
        matrix: ``(count, dim)`` corpus vectors on the device (:func:`_upload_rows`).
        queries: ``(n, dim)`` float32 query vectors, cast to ``matrix.dtype`` on the device.
        depth: results per query.
        settings: ``query_batch_size``, ``score_block_bytes``.

    Returns:
        ``(scores, ids)``, float32 and int64 ``(n, depth)`` numpy arrays, in no particular order
        within a row; put them through :func:`canonical_topk`.
    """
    import torch

    device, n, batch = matrix.device, len(queries), settings.query_batch_size
    block_rows = _score_block_rows(settings, device, min(batch, n), matrix.element_size())
    with torch.inference_mode():
        q = _upload_rows([(0, queries)], 0, n, queries.shape[1], device, matrix.dtype)
        host_scores, host_ids = _host_top(n, depth, device)
        for first in range(0, n, batch):
            last = min(n, first + batch)
            top_scores, top_ids = _merge_block_topk(
                q[first:last], matrix, 0, *_empty_top(last - first, depth, device), depth, block_rows
            )
            host_scores[first:last].copy_(top_scores, non_blocking=True)
            host_ids[first:last].copy_(top_ids, non_blocking=True)
        _finish(device)
    return host_scores.numpy(), host_ids.numpy()


def _torch_search(
    shards: Sequence[tuple[int, np.ndarray]],
    count: int,
    dim: int,
    queries: np.ndarray,
    depth: int,
    settings: SearchSettings,
    device_name: str,
) -> tuple[np.ndarray, np.ndarray]:
    """The torch backend: the corpus resident on the device when it fits, else streamed in slabs."""
    import torch

    device = torch.device(device_name)
    dtype = _torch_dtype(device)
    budget = device_budget(settings, device)
    with torch.inference_mode():
        if count * dim * dtype.itemsize <= budget:
            matrix = _upload_rows(shards, 0, count, dim, device, dtype)
            return torch_search_resident(matrix, queries, depth, settings)
        slab_rows = max(1, budget // (dim * dtype.itemsize))
        log.info(
            "corpus of %d x %d exceeds the device budget (%d bytes): streaming it through %s in slabs of %d rows",
            count,
            dim,
            budget,
            device,
            slab_rows,
        )
        from tqdm.auto import tqdm

        n, batch = len(queries), settings.query_batch_size
        block_rows = _score_block_rows(settings, device, min(batch, n), dtype.itemsize)
        q = _upload_rows([(0, queries)], 0, n, dim, device, dtype)
        best_scores, best_ids = _empty_top(n, depth, device)
        for slab_start in tqdm(range(0, count, slab_rows), desc="search slabs", unit="slab"):
            slab = _upload_rows(shards, slab_start, min(count, slab_start + slab_rows), dim, device, dtype)
            for first in range(0, n, batch):
                last = min(n, first + batch)
                best_scores[first:last], best_ids[first:last] = _merge_block_topk(
                    q[first:last],
                    slab,
                    slab_start,
                    best_scores[first:last],
                    best_ids[first:last],
                    depth,
                    block_rows,
                )
            del slab  # before the next slab is uploaded: one slab on the device at a time
        host_scores, host_ids = _host_top(n, depth, device)
        for first in range(0, n, batch):
            host_scores[first : first + batch].copy_(best_scores[first : first + batch], non_blocking=True)
            host_ids[first : first + batch].copy_(best_ids[first : first + batch], non_blocking=True)
        _finish(device)
    return host_scores.numpy(), host_ids.numpy()


# --------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------


def search(
    store: EmbeddingStore | np.ndarray,
    queries: np.ndarray,
    depth: int,
    settings: SearchSettings | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``depth`` inner-product search of ``queries`` in a corpus.

    Args:
        store: the corpus vectors: an :class:`EmbeddingStore` or a ``(count, dim)`` array.
        queries: ``(n, dim)`` float32 query vectors.
        depth: results per query.
        settings: backend, device, memory budgets, batch size.

    Returns:
        ``(scores, ids)``, each ``(n, depth)``: float32 inner products and int64 corpus positions,
        best first; ``-1`` / ``-inf`` fill the slots a corpus smaller than ``depth`` leaves empty.

    Raises:
        RuntimeError: the settings ask for a GPU (``use_gpu=True``, a CUDA ``device``) that is not there.
    """
    settings = settings or SearchSettings()
    if depth < 1:
        raise ValueError(f"depth must be positive, got {depth}")
    shards = list(store.iter_shards()) if isinstance(store, EmbeddingStore) else [(0, np.asarray(store))]
    dim = store.dim if isinstance(store, EmbeddingStore) else np.asarray(store).shape[1]
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ValueError(f"queries of shape {queries.shape} do not match {dim}-d corpus vectors")
    backend = resolve_backend(settings)
    count = sum(len(shard) for _, shard in shards)
    log.info(
        "exact search of %d queries in %d x %d vectors: %s", len(queries), count, dim, backend.describe()
    )
    if backend.name == "torch":
        scores, ids = _torch_search(shards, count, dim, queries, depth, settings, str(backend.device))
        return canonical_topk(scores, ids, depth)
    gpu = backend.gpu
    if count * dim * 4 <= settings.ram_budget_bytes:
        index = _flat_index([shard for _, shard in shards], dim, gpu, backend.gpu_index)
        scores, ids = _search_index(index, queries, depth, settings.query_batch_size)
        return canonical_topk(scores, ids, depth)
    log.info(
        "corpus of %d x %d exceeds the RAM budget: searching %d shards one by one", count, dim, len(shards)
    )
    from tqdm.auto import tqdm

    best_scores = np.full((len(queries), depth), -np.inf, dtype=np.float32)
    best_ids = np.full((len(queries), depth), -1, dtype=np.int64)
    for offset, shard in tqdm(shards, desc="search shards", unit="shard"):
        index = _flat_index([shard], dim, gpu, backend.gpu_index)
        scores, ids = _search_index(index, queries, depth, settings.query_batch_size)
        ids = np.where(ids >= 0, ids + offset, -1)
        best_scores, best_ids = canonical_topk(
            np.concatenate([best_scores, scores], axis=1), np.concatenate([best_ids, ids], axis=1), depth
        )
        del index
    return best_scores, best_ids


# --------------------------------------------------------------------------------------------
# TREC run files
# --------------------------------------------------------------------------------------------


def write_run(
    path: str | Path,
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    ids: np.ndarray,
    scores: np.ndarray,
    run_name: str,
) -> None:
    """Write a TREC run file ``query_id Q0 doc_id rank score run_name`` atomically.

    Args:
        path: destination (``Layout.run_file(model, dataset)``).
        query_ids: ``n`` query ids, in the rows' order.
        doc_ids: corpus document ids, indexed by corpus position.
        ids: ``(n, depth)`` corpus positions from :func:`search` (``-1`` slots are left out).
        scores: ``(n, depth)`` their scores.
        run_name: the last column (the model's name, no white space).
    """
    if re.search(r"\s", run_name):
        raise ValueError(f"run name {run_name!r} must not contain white space")
    with atomic_open(path) as handle:
        for qid, row_ids, row_scores in zip(query_ids, ids, scores, strict=True):
            rank = 0
            for position, score in zip(row_ids, row_scores, strict=True):
                if position < 0:
                    continue
                rank += 1
                handle.write(f"{qid} Q0 {doc_ids[position]} {rank} {float(score):.6f} {run_name}\n")


def write_qrels(path: str | Path, judgments: Sequence[tuple[str, Mapping[str, int]]]) -> None:
    """Write TREC qrels ``query_id 0 doc_id relevance`` atomically (trec_eval's qrels format).

    Args:
        path: destination (``Layout.qrels_file(model, dataset)``, beside the run file).
        judgments: ``(query_id, {doc_id: relevance})`` of every evaluated query, in order.
    """
    with atomic_open(path) as handle:
        for qid, relevant in judgments:
            for doc_id, relevance in relevant.items():
                handle.write(f"{qid} 0 {doc_id} {int(relevance)}\n")


def read_run(path: str | Path) -> dict[str, list[tuple[str, float]]]:
    """Read a TREC run file: ``{query_id: [(doc_id, score), ...]}`` in rank order."""
    path = Path(path)
    run: dict[str, list[tuple[int, str, float]]] = {}
    for number, line in iter_text_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise DataFormatError(
                f"{path}:{number}: expected 6 columns 'qid Q0 docid rank score run', got {len(parts)}"
            )
        try:
            rank, score = int(parts[3]), float(parts[4])
        except ValueError as err:
            raise DataFormatError(f"{path}:{number}: rank or score is not a number") from err
        run.setdefault(parts[0], []).append((rank, parts[2], score))
    return {qid: [(doc, score) for _, doc, score in sorted(rows)] for qid, rows in run.items()}

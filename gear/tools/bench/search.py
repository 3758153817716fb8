"""The search bench: queries per second of exact top-k inner-product search (``gear.evaluation.search``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gear.evaluation import search as search_module
from gear.tools.bench.common import BenchResult, cpu_model, device_name, synchronize, timed_loop

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------
def random_unit_vectors(
    count: int, dim: int, seed: int, dtype: Any = np.float16, chunk: int = 100_000
) -> np.ndarray:
    """``(count, dim)`` random L2-normalised vectors, made in chunks (2.3M x 768 float16: 3.5 GB)."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, dim), dtype=dtype)
    for start in range(0, count, chunk):
        block = rng.standard_normal((min(chunk, count - start), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + len(block)] = block
    return out


def bench_search(
    corpus_size: int,
    queries: int,
    dim: int,
    depth: int,
    *,
    backends: Sequence[str] = ("suite",),
    device: torch.device | None = None,
    query_batch: int | None = None,
    seed: int = 0,
    suite_backend: str = "auto",
) -> list[BenchResult]:
    """Queries per second of exact top-``depth`` inner-product search over ``corpus_size`` vectors.

    Args:
        corpus_size, dim: the corpus (random unit vectors, stored float16 like the cache).
        queries: query vectors to search (random unit vectors).
        depth: results per query (``evaluate.retrieval.depth``).
        backends: ``suite`` (:mod:`gear.evaluation.search` with the backend ``search()`` picks, see
            ``suite_backend``) and/or ``torch`` (the PERF-NOTES reference: fp16 product and
            ``torch.topk`` on ``device``; fp32 on CPU).
        device: where the torch reference runs (default CPU), and ``SearchSettings.device`` of
            the suite (None: gear.evaluation.search's default, CUDA when available).
        query_batch: queries per FAISS call / per product (default: SearchSettings' 4,096 for
            the suite; for the reference what keeps the score block near 4 GB).
        suite_backend: ``SearchSettings.backend`` of the suite: ``auto`` (what the workflow
            runs), ``faiss`` or ``torch``.

    Returns:
        one result per backend (``details`` holds the first query's top-10 ids, to compare).
    """
    corpus = random_unit_vectors(corpus_size, dim, seed)
    query_vectors = random_unit_vectors(queries, dim, seed + 1, dtype=np.float32)
    lengths = f"corpus {corpus_size:,} x {dim}, {queries:,} queries, top {depth}"
    results = []
    for backend in backends:
        if backend == "suite":
            result = _search_suite(corpus, query_vectors, depth, query_batch, suite_backend, device)
        elif backend == "torch":
            result = _search_torch(corpus, query_vectors, depth, device or torch.device("cpu"), query_batch)
        else:
            raise ValueError(f"search backend {backend!r} is not 'suite' or 'torch'")
        result.lengths = lengths
        results.append(result)
    return results


def _search_suite(
    corpus: np.ndarray,
    queries: np.ndarray,
    depth: int,
    query_batch: int | None,
    backend: str = "auto",
    device: torch.device | None = None,
) -> BenchResult:
    """gear.evaluation.search's path for a corpus that fits its memory budget, index build and search timed apart.

    The backend is the one :func:`gear.evaluation.search.search` picks under the same settings
    (:func:`gear.evaluation.search.resolve_backend`). ``search()`` builds and searches in one call; its steps
    are called here one by one so that the build (a copy to the device) does not blur the search
    rate: FAISS ``_flat_index``, ``_search_index``, ``canonical_topk``; torch ``_upload_rows``,
    ``torch_search_resident``, ``canonical_topk``.
    """

    settings = search_module.SearchSettings(
        **({"query_batch_size": query_batch} if query_batch else {}),
        backend=backend,
        device=None if device is None else str(device),
    )
    chosen = search_module.resolve_backend(settings)
    count, dim = corpus.shape
    details: dict[str, Any] = {"backend": chosen.describe()}
    if chosen.name == "torch":
        where = torch.device(chosen.device)
        if not search_module.torch_corpus_fits(count, dim, settings, where):
            raise ValueError(
                f"{count} x {dim} vectors exceed gear.evaluation.search's device budget "
                f"({search_module.device_budget(settings, where)} bytes): search() would stream them "
                "through the device; not benchmarked here"
            )
        dtype = search_module._torch_dtype(where)
        synchronize(where)
        started = time.perf_counter()
        with torch.inference_mode():
            matrix = search_module._upload_rows([(0, corpus)], 0, count, dim, where, dtype)
        synchronize(where)
        build_s = time.perf_counter() - started
        # warm-up: a full query batch (cuBLAS handle and kernel choice, allocator growth)
        search_module.torch_search_resident(matrix, queries[: settings.query_batch_size], depth, settings)
        started = time.perf_counter()
        scores, ids = search_module.torch_search_resident(matrix, queries, depth, settings)  # ends synced
        scores, ids = search_module.canonical_topk(scores, ids, depth)
        search_s = time.perf_counter() - started
        del matrix
        device_text = f"{device_name(where)} (gear.search torch)"  # as recorded in BENCHMARKS.md
        dtype_text = f"{'fp16' if chosen.half else 'fp32'} (cache fp16)"
        details["device_budget_bytes"] = search_module.device_budget(settings, where)
    else:
        import faiss

        if count * dim * 4 > settings.ram_budget_bytes:
            raise ValueError(
                f"{count} x {dim} float32 exceeds gear.evaluation.search's RAM budget ({settings.ram_budget_bytes} bytes): "
                "search() would go shard by shard; not benchmarked here"
            )
        gpu = chosen.gpu
        started = time.perf_counter()
        index = search_module._flat_index([corpus], dim, gpu, chosen.gpu_index)
        build_s = time.perf_counter() - started
        search_module._search_index(index, queries[:64], depth, settings.query_batch_size)  # warm-up
        started = time.perf_counter()
        scores, ids = search_module._search_index(index, queries, depth, settings.query_batch_size)
        scores, ids = search_module.canonical_topk(scores, ids, depth)
        search_s = time.perf_counter() - started
        where = "faiss GPU" if gpu else f"faiss CPU, {faiss.omp_get_max_threads()} threads"
        device_text = f"{torch.cuda.get_device_name(0)} ({where})" if gpu else f"CPU {cpu_model()} ({where})"
        dtype_text = "fp32 (cache fp16)"
    return BenchResult(
        benchmark=f"search exact (gear.search, {chosen.describe()})",  # the row name recorded in BENCHMARKS.md
        value=len(queries) / search_s,
        unit="queries/s",
        device=device_text,
        dtype=dtype_text,
        batch=settings.query_batch_size,
        lengths="",
        details={
            **details,
            "index_build_s": round(build_s, 3),
            "search_s": round(search_s, 3),
            "end_to_end_queries_per_s": len(queries) / (build_s + search_s),
            "top10_first_query": ids[0, :10].tolist(),
        },
    )


def _search_torch(
    corpus: np.ndarray, queries: np.ndarray, depth: int, device: torch.device, query_batch: int | None
) -> BenchResult:
    """The PERF-NOTES reference: one matrix product and ``torch.topk`` per query block on ``device``."""
    half = device.type == "cuda"
    dtype = torch.float16 if half else torch.float32
    matrix = torch.from_numpy(corpus).to(device=device, dtype=dtype)
    q = torch.from_numpy(queries).to(device=device, dtype=dtype)
    block = query_batch or max(1, min(4096, int(4e9 // (len(corpus) * matrix.element_size()))))
    found: list[torch.Tensor] = []

    def run(selected: torch.Tensor) -> None:
        found.clear()
        for s in range(0, len(selected), block):
            found.append(torch.topk(selected[s : s + block] @ matrix.T, depth, dim=1).indices)

    run(q[:64])  # warm-up
    timing = timed_loop(lambda _: run(q), 1, 0, device)
    ids = torch.cat(found).cpu()
    return BenchResult(
        benchmark="search exact (reference: torch matmul + topk)",
        value=len(queries) / timing["total_s"],
        unit="queries/s",
        device=device_name(device),
        dtype="fp16" if half else "fp32",
        batch=block,
        lengths="",
        details={"search_s": round(timing["total_s"], 3), "top10_first_query": ids[0, :10].tolist()},
    )

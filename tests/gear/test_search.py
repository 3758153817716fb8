"""FAISS search against brute force, shard-by-shard search, the torch backend against FAISS, the
embedding cache and TREC run files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from gear.encoding import TextEncoder, l2_normalise
from gear.evaluation import search as search_module
from gear.evaluation.embeddings import MANIFEST, EmbeddingStore, cache_dir_for, encode_texts, texts_hash
from gear.evaluation.search import SearchBackend, SearchSettings, read_run, resolve_backend, search, write_run


class MiniLMEncoder(TextEncoder):
    """A real TextEncoder: all-MiniLM-L6-v2 through sentence-transformers, counting its calls."""

    def __init__(self, model, tag: str = ""):
        self.model = model
        self.path = "sentence-transformers/all-MiniLM-L6-v2"
        self.tag = tag
        self.name = "MiniLM"
        self.calls = {"documents": 0, "queries": 0}
        self.texts_encoded = 0

    def _encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        self.texts_encoded += len(texts)
        vectors = self.model.encode(
            list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True
        )
        return vectors.astype(np.float32)

    def encode_queries(self, texts, batch_size=32):
        self.calls["queries"] += 1
        return self._encode(texts, batch_size)

    def encode_documents(self, texts, batch_size=32):
        self.calls["documents"] += 1
        return self._encode(texts, batch_size)

    def fingerprint(self) -> str:
        return f"sentence-transformers:{self.path}:{self.tag}"


class CrashingEncoder(MiniLMEncoder):
    """MiniLM that dies on its n-th document call, as a job killed mid-encoding would."""

    def __init__(self, model, crash_on_call: int):
        super().__init__(model)
        self.crash_on_call = crash_on_call

    def encode_documents(self, texts, batch_size=32):
        if self.calls["documents"] + 1 == self.crash_on_call:
            raise KeyboardInterrupt("killed")
        return super().encode_documents(texts, batch_size)


@pytest.fixture(scope="module")
def minilm(minilm_path):
    """The sentence-transformers model, loaded once for the module (each test wraps it afresh)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_path), device="cpu")


TEXTS = [
    "The Normans were a people who in the 10th and 11th centuries gave their name to Normandy.",
    "Gutenberg developed a printing press with movable metal type in Mainz.",
    "The Amazon rainforest covers most of the Amazon basin of South America.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The Rhine flows from the Swiss Alps to the North Sea.",
    "Beyoncé rose to fame in the late 1990s as lead singer of Destiny's Child.",
    "Oxygen is a chemical element with symbol O and atomic number 8.",
]


# ------------------------------------------------------------------ search


def _random_unit(n: int, d: int, seed: int) -> np.ndarray:
    return l2_normalise(np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32))


# FAISS whatever the machine: on a CUDA machine without faiss-gpu, "auto" is the torch backend
FAISS = SearchSettings(backend="faiss")


def test_faiss_search_equals_brute_force():
    corpus, queries = _random_unit(500, 32, 0), _random_unit(40, 32, 1)
    scores, ids = search(corpus, queries, depth=10, settings=FAISS)
    full = queries @ corpus.T
    expected = np.argsort(-full, axis=1, kind="stable")[:, :10]
    assert np.array_equal(ids, expected)
    assert np.allclose(scores, np.take_along_axis(full, expected, axis=1), atol=1e-5)


def test_depth_beyond_corpus_leaves_empty_slots():
    corpus, queries = _random_unit(3, 8, 0), _random_unit(2, 8, 1)
    scores, ids = search(corpus, queries, depth=5, settings=FAISS)
    assert (ids[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    assert sorted(ids[0, :3].tolist()) == [0, 1, 2]


def test_shard_by_shard_search_equals_one_shot(tmp_path):
    vectors = _random_unit(230, 16, 2)
    queries = _random_unit(25, 16, 3)
    store = _store_from_vectors(tmp_path, vectors, shard_size=50)
    assert len(store.shards) == 5 and len(store) == 230
    one_shot = search(
        store, queries, depth=12, settings=SearchSettings(backend="faiss", ram_budget_bytes=1 << 30)
    )
    sharded = search(
        store,
        queries,
        depth=12,
        settings=SearchSettings(backend="faiss", ram_budget_bytes=1000, query_batch_size=7),
    )
    assert np.array_equal(one_shot[1], sharded[1])
    assert np.allclose(one_shot[0], sharded[0])
    # and both equal brute force on the float16 vectors
    full = queries @ store.to_array().T
    assert np.array_equal(one_shot[1], np.argsort(-full, axis=1, kind="stable")[:, :12])


def test_ties_are_ordered_by_corpus_position_in_both_paths(tmp_path):
    vectors = np.tile(_random_unit(1, 8, 4), (9, 1))  # nine identical documents
    store = _store_from_vectors(tmp_path, vectors, shard_size=4)
    query = vectors[:1]
    for budget in (1 << 30, 10):
        _, ids = search(
            store, query, depth=5, settings=SearchSettings(backend="faiss", ram_budget_bytes=budget)
        )
        assert ids[0].tolist() == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------ torch backend

TORCH_CPU = SearchSettings(backend="torch", device="cpu")
RESIDENT = SearchSettings(backend="torch", device="cpu", device_budget_bytes=1 << 30)


def _streamed(**overrides) -> SearchSettings:
    """The torch backend on the CPU with budgets so small that it streams slabs of a few rows,
    scores a few rows at a time and runs several query batches."""
    return SearchSettings(
        backend="torch", device="cpu", device_budget_bytes=900, score_block_bytes=7 * 4 * 5, **overrides
    )


def test_torch_backend_equals_faiss_on_one_array():
    corpus, queries = _random_unit(500, 32, 0), _random_unit(40, 32, 1)
    faiss_scores, faiss_ids = search(corpus, queries, depth=10, settings=FAISS)
    scores, ids = search(corpus, queries, depth=10, settings=TORCH_CPU)
    assert scores.dtype == np.float32 and ids.dtype == np.int64 and ids.shape == (40, 10)
    assert np.array_equal(ids, faiss_ids)
    assert np.allclose(scores, faiss_scores, atol=1e-5)


def test_torch_backend_equals_faiss_on_a_sharded_store_resident_and_streamed(tmp_path):
    vectors = _random_unit(230, 16, 2)
    queries = _random_unit(25, 16, 3)
    store = _store_from_vectors(tmp_path, vectors, shard_size=50)
    faiss_scores, faiss_ids = search(store, queries, depth=12, settings=FAISS)
    assert search_module.torch_corpus_fits(230, 16, RESIDENT, torch.device("cpu"))
    assert not search_module.torch_corpus_fits(230, 16, _streamed(), torch.device("cpu"))
    # streamed: slabs of 14 rows (900 // 64 bytes), which cut across the 50-row shards
    for settings in (RESIDENT, _streamed(query_batch_size=7)):
        scores, ids = search(store, queries, depth=12, settings=settings)
        assert np.array_equal(ids, faiss_ids), settings
        assert np.allclose(scores, faiss_scores, atol=1e-5), settings


def test_torch_backend_depth_beyond_corpus_leaves_empty_slots(tmp_path):
    corpus, queries = _random_unit(3, 8, 0), _random_unit(2, 8, 1)
    store = _store_from_vectors(tmp_path, corpus, shard_size=2)
    faiss_scores, faiss_ids = search(store, queries, depth=5, settings=FAISS)
    for settings in (RESIDENT, _streamed()):
        scores, ids = search(store, queries, depth=5, settings=settings)
        assert (ids[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
        assert np.array_equal(ids, faiss_ids)
        assert np.allclose(scores[:, :3], faiss_scores[:, :3], atol=1e-5)


def test_torch_backend_orders_equal_documents_canonically(tmp_path):
    vectors = np.tile(_random_unit(1, 8, 4), (9, 1))  # nine identical documents
    store = _store_from_vectors(tmp_path, vectors, shard_size=4)
    for settings in (RESIDENT, _streamed()):
        scores, ids = search(store, vectors[:1], depth=5, settings=settings)
        # which five of the nine is torch.topk's pick; their order is score desc, then position asc
        assert len(set(ids[0].tolist())) == 5 and set(ids[0].tolist()) <= set(range(9))
        for (s1, i1), (s2, i2) in zip(zip(scores[0], ids[0]), zip(scores[0][1:], ids[0][1:])):
            assert s1 > s2 or (s1 == s2 and i1 < i2)
        assert np.allclose(scores, scores[0, 0], atol=1e-6)


def _assert_close_to_fp32(found, reference, exact: np.ndarray, top: int = 10) -> None:
    """``found`` (a float16 search) against ``reference`` (float32): scores within 1e-2 and the
    same documents in the top ``top``, except where two documents' exact scores are so close that
    float16 rounding may order them either way."""
    (scores, ids), (ref_scores, ref_ids) = found, reference
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    assert np.allclose(scores[:, :top], ref_scores[:, :top], atol=1e-2)
    differ = ids[:, :top] != ref_ids[:, :top]
    assert differ.mean() < 0.1, f"{differ.sum()} of {differ.size} ids differ"
    found_exact = np.take_along_axis(exact, ids[:, :top], axis=1)
    ref_exact = np.take_along_axis(exact, ref_ids[:, :top], axis=1)
    assert np.allclose(found_exact, ref_exact, atol=2e-3), "a differing id is not a near tie"


def test_float16_arithmetic_of_the_cuda_path_on_the_cpu(tmp_path, monkeypatch):
    """The CUDA path's float16 products and merges, run on the CPU (torch does float16 there too)."""
    vectors, queries = _random_unit(2000, 64, 7), _random_unit(60, 64, 8)
    store = _store_from_vectors(tmp_path, vectors, shard_size=300)
    reference = search(store, queries, depth=20, settings=TORCH_CPU)
    monkeypatch.setattr(search_module, "_torch_dtype", lambda device: torch.float16)
    exact = queries @ store.to_array().T
    for settings in (RESIDENT, _streamed(query_batch_size=16)):
        _assert_close_to_fp32(search(store, queries, depth=20, settings=settings), reference, exact)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_float16_search_agrees_with_cpu_float32(tmp_path):
    vectors, queries = _random_unit(20_000, 128, 9), _random_unit(300, 128, 10)
    store = _store_from_vectors(tmp_path, vectors, shard_size=3_000)
    reference = search(store, queries, depth=50, settings=TORCH_CPU)
    exact = queries @ store.to_array().T
    assert resolve_backend(SearchSettings()) in (
        SearchBackend("torch", device="cuda"),
        SearchBackend("faiss", gpu=True),  # faiss-gpu installed: FAISS keeps the GPU
    )
    resident = SearchSettings(backend="torch", device="cuda")
    assert search_module.torch_corpus_fits(20_000, 128, resident, torch.device("cuda"))
    streamed = SearchSettings(
        backend="torch", device="cuda", device_budget_bytes=4_000 * 128 * 2, query_batch_size=128
    )
    for settings in (resident, streamed):
        found = search(store, queries, depth=50, settings=settings)
        _assert_close_to_fp32(found, reference, exact)


def test_invalid_backend_settings_fail_clearly():
    with pytest.raises(ValueError, match=r"SearchSettings\.backend .*'faiss'.*'gpu'"):
        SearchSettings(backend="gpu")
    with pytest.raises(ValueError, match=r"SearchSettings\.device"):
        SearchSettings(backend="torch", device="tpu:x")
    with pytest.raises(ValueError, match=r"SearchSettings\.device_budget_bytes"):
        SearchSettings(device_budget_bytes=0)


def test_torch_on_cuda_without_cuda_says_what_to_do(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without CUDA
    monkeypatch.setattr(search_module, "_faiss_gpus", lambda: 0)  # and with the pip faiss-cpu
    corpus, queries = _random_unit(20, 8, 0), _random_unit(2, 8, 1)
    with pytest.raises(RuntimeError, match=r"no CUDA device.*device='cpu'"):
        search(corpus, queries, depth=3, settings=SearchSettings(backend="torch", device="cuda"))
    with pytest.raises(RuntimeError, match="no CUDA device"):
        search(corpus, queries, depth=3, settings=SearchSettings(device="cuda"))  # auto, CUDA asked for


def test_auto_picks_faiss_gpu_then_torch_on_cuda_then_faiss_cpu(monkeypatch):
    monkeypatch.setattr(search_module, "_faiss_gpus", lambda: 0)  # pip faiss-cpu
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_backend(SearchSettings()) == SearchBackend("faiss", gpu=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_backend(SearchSettings()) == SearchBackend("torch", device="cuda")
    assert resolve_backend(SearchSettings()).describe() == "torch fp16 on CUDA"
    assert resolve_backend(SearchSettings(device="cpu")) == SearchBackend("faiss", gpu=False)
    assert resolve_backend(SearchSettings(use_gpu=False)) == SearchBackend("faiss", gpu=False)
    assert resolve_backend(SearchSettings(backend="faiss")) == SearchBackend("faiss", gpu=False)
    assert resolve_backend(TORCH_CPU).describe() == "torch fp32 on CPU"
    monkeypatch.setattr(search_module, "_faiss_gpus", lambda: 1)  # faiss-gpu
    assert resolve_backend(SearchSettings()) == SearchBackend("faiss", gpu=True)


def test_faiss_on_cuda_takes_the_gpu_index_or_says_what_to_install(monkeypatch):
    monkeypatch.setattr(search_module, "_faiss_gpus", lambda: 2)  # faiss-gpu on a 2-GPU machine
    faiss_on = {
        d: resolve_backend(SearchSettings(backend="faiss", device=d)) for d in ("cuda", "cuda:1", "cpu")
    }
    assert faiss_on["cuda"] == SearchBackend("faiss", gpu=True, gpu_index=0)
    assert faiss_on["cuda:1"] == SearchBackend("faiss", gpu=True, gpu_index=1)
    assert faiss_on["cuda:1"].describe() == "faiss GpuIndexFlatIP on GPU 1"
    assert faiss_on["cpu"] == SearchBackend("faiss", gpu=False)
    assert resolve_backend(SearchSettings(device="cuda:1")) == faiss_on["cuda:1"]  # auto: FAISS keeps the GPU
    assert resolve_backend(SearchSettings(device="cpu")) == SearchBackend("faiss", gpu=False)
    with pytest.raises(RuntimeError, match=r"FAISS sees 2 GPU\(s\), device 'cuda:2'"):
        resolve_backend(SearchSettings(backend="faiss", device="cuda:2"))
    with pytest.raises(ValueError, match="contradict"):
        resolve_backend(SearchSettings(backend="faiss", device="cuda", use_gpu=False))
    monkeypatch.setattr(search_module, "_faiss_gpus", lambda: 0)  # the pip faiss-cpu
    with pytest.raises(RuntimeError, match=r"sees no GPU.*pip install -e '\.\[gpu\]'.*backend='torch'"):
        resolve_backend(SearchSettings(backend="faiss", device="cuda"))


@pytest.mark.gpu
@pytest.mark.skipif(
    search_module._faiss_gpus() == 0, reason="needs faiss-gpu (the gpu extra) and a CUDA device"
)
def test_faiss_gpu_index_agrees_with_faiss_on_the_cpu(tmp_path):
    vectors, queries = _random_unit(20_000, 128, 11), _random_unit(300, 128, 12)
    store = _store_from_vectors(tmp_path, vectors, shard_size=3_000)
    on_gpu = SearchSettings(backend="faiss", device="cuda")
    assert resolve_backend(on_gpu) == SearchBackend("faiss", gpu=True)
    gpu_scores, gpu_ids = search(store, queries, depth=50, settings=on_gpu)
    cpu_scores, cpu_ids = search(
        store, queries, depth=50, settings=SearchSettings(backend="faiss", use_gpu=False)
    )
    np.testing.assert_allclose(gpu_scores, cpu_scores, atol=1e-4)
    assert (gpu_ids[:, :10] == cpu_ids[:, :10]).mean() > 0.99  # float32 on both: only near-ties may swap
    sharded = SearchSettings(backend="faiss", device="cuda", ram_budget_bytes=4_000 * 128 * 4)
    np.testing.assert_allclose(search(store, queries, depth=50, settings=sharded)[0], cpu_scores, atol=1e-4)


class _ArrayEncoder(TextEncoder):
    """Serves fixed vectors by text (texts are "0", "1", ...): a store of known contents."""

    name = "arrays"

    def __init__(self, vectors):
        self.vectors = vectors

    def encode_queries(self, texts, batch_size=32):
        return self.vectors[[int(t) for t in texts]]

    encode_documents = encode_queries

    def fingerprint(self):
        return "arrays"


def _store_from_vectors(root: Path, vectors: np.ndarray, shard_size: int) -> EmbeddingStore:
    return encode_texts(
        _ArrayEncoder(vectors), [str(i) for i in range(len(vectors))], root, shard_size=shard_size
    )


# ------------------------------------------------------------------ cache


@pytest.mark.slow
def test_cache_encodes_a_corpus_once(tmp_path, minilm):
    encoder = MiniLMEncoder(minilm)
    first = encode_texts(encoder, TEXTS, tmp_path, shard_size=3)
    assert encoder.calls["documents"] == 3 and encoder.texts_encoded == len(TEXTS)
    second = encode_texts(encoder, TEXTS, tmp_path, shard_size=3)
    assert encoder.calls["documents"] == 3, "the cached corpus was encoded again"
    assert np.array_equal(first.to_array(), second.to_array())
    # the cached vectors are the encoder's, in float16, memory-mapped
    assert isinstance(second.shards[0], np.memmap) and second.shards[0].dtype == np.float16
    direct = encoder.encode_documents(TEXTS)
    assert np.allclose(second.to_array(), direct, atol=2e-3)
    manifest = second.manifest
    assert manifest["count"] == len(TEXTS) and manifest["dim"] == 384 and len(manifest["shards"]) == 3


@pytest.mark.slow
def test_changed_corpus_or_fingerprint_recomputes(tmp_path, minilm):
    encoder = MiniLMEncoder(minilm)
    base = encode_texts(encoder, TEXTS, tmp_path)
    edited = [*TEXTS[:-1], TEXTS[-1] + " It is the most abundant element in the crust."]
    changed = encode_texts(encoder, edited, tmp_path)
    assert encoder.calls["documents"] == 2 and changed.folder != base.folder
    reordered = encode_texts(encoder, TEXTS[::-1], tmp_path)
    assert encoder.calls["documents"] == 3 and reordered.folder != base.folder
    other = MiniLMEncoder(minilm, tag="max_length=16")
    retagged = encode_texts(other, TEXTS, tmp_path)
    assert other.calls["documents"] == 1 and retagged.folder != base.folder
    # queries and documents of the same texts are cached apart
    encode_texts(encoder, TEXTS, tmp_path, kind="queries")
    assert encoder.calls["queries"] == 1


@pytest.mark.slow
def test_cache_without_manifest_is_not_used_and_written_shards_are_reused(tmp_path, minilm):
    crashing = CrashingEncoder(minilm, crash_on_call=3)
    with pytest.raises(KeyboardInterrupt):
        encode_texts(crashing, TEXTS, tmp_path, shard_size=2)
    folder = cache_dir_for(tmp_path, crashing, texts_hash(TEXTS), 2, "documents")
    assert sorted(p.name for p in folder.iterdir()) == ["shard_00000.npy", "shard_00001.npy"]
    with pytest.raises(FileNotFoundError, match="unfinished"):
        EmbeddingStore(folder)
    # a shard cut short by the crash (here: garbage bytes) is re-encoded, whole ones are reused
    (folder / "shard_00001.npy").write_bytes(b"\x93NUMPY garbage")
    resumed = MiniLMEncoder(minilm)
    store = encode_texts(resumed, TEXTS, tmp_path, shard_size=2)
    assert resumed.calls["documents"] == 3  # shards 1, 2, 3 of 0..3
    assert resumed.texts_encoded == len(TEXTS) - 2
    fresh = encode_texts(MiniLMEncoder(minilm), TEXTS, tmp_path / "fresh", shard_size=2)
    assert np.array_equal(store.to_array(), fresh.to_array())


def test_encoder_returning_wrong_shape_fails_clearly(tmp_path):
    with pytest.raises(ValueError, match="returned shape"):
        encode_texts(_BadEncoder(), ["a", "b"], tmp_path)
    assert not list(tmp_path.rglob(MANIFEST))


class _BadEncoder(_ArrayEncoder):
    def __init__(self):
        super().__init__(np.ones((1, 4), dtype=np.float32))

    def encode_documents(self, texts, batch_size=32):
        return np.ones((1, 4), dtype=np.float32)


# ------------------------------------------------------------------ run files


def test_run_file_round_trip(tmp_path):
    ids = np.array([[2, 0, -1], [1, 2, 0]])
    scores = np.array([[0.9, 0.5, -np.inf], [0.8, 0.7, 0.1]], dtype=np.float32)
    path = tmp_path / "run.tsv"
    write_run(path, ["q1", "q2"], ["d0", "d1", "d2"], ids, scores, "MiniLM")
    lines = path.read_text().splitlines()
    assert lines[0] == "q1 Q0 d2 1 0.900000 MiniLM"
    assert len(lines) == 5  # the empty slot is not written
    run = read_run(path)
    assert [doc for doc, _ in run["q2"]] == ["d1", "d2", "d0"]
    with pytest.raises(ValueError, match="white space"):
        write_run(path, ["q1"], ["d0"], ids[:1], scores[:1], "Mini LM")


def test_manifest_is_written_last(tmp_path):
    store = _store_from_vectors(tmp_path, _random_unit(5, 4, 0), shard_size=2)
    folder = store.folder
    manifest_time = (folder / MANIFEST).stat().st_mtime_ns
    assert all((folder / s["file"]).stat().st_mtime_ns <= manifest_time for s in store.manifest["shards"])

"""The encode bench: documents per second of GeAR's document encoder on a realistic length mix."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_prep.dpr import build_dpr
from data_prep.normalized import load_corpus
from data_prep.paq import build_paq
from data_prep.rir.preprocess import preprocess_wikipedia
from data_prep.squad import build_squad
from gear.config import REPO_ROOT, load_config
from gear.encoding import length_sorted_order
from gear.evaluation.embeddings import encode_texts as encode_corpus
from gear.hub import ModelSource
from gear.inference import GearEncoder
from gear.model.modeling import GearModel
from gear.model.tokens import DOCUMENT_PAD_MULTIPLE, encode_texts
from gear.tools.bench.common import (
    PAPER_CORPUS_DOCUMENTS,
    BenchResult,
    bench_config,
    device_name,
    model_flops_utilisation,
    peak_rss_mb,
    synchronize,
    timed_loop,
)
from gear.tools.bench.flops import encoding_flops

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------
def load_corpus_texts(paths: Sequence[str | os.PathLike]) -> dict[str, list[str]]:
    """Texts of normalised ``corpus.jsonl`` files, keyed by data set (the file's folder name)."""

    corpora: dict[str, list[str]] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: corpus file not found")
        corpora.setdefault(path.parent.name, []).extend(doc.text for doc in load_corpus(path))
    return corpora


def build_mini_corpora(work_dir: Path, config_path: Path = REPO_ROOT / "config" / "mini.yaml") -> list[Path]:
    """Build the mini corpora from ``data_prep/mini`` with the suite's builders (a few seconds).

    SQuAD, NQ, TriviaQA and PAQ through their builders; RIR's documents are the output of
    :func:`data_prep.rir.preprocess.preprocess_wikipedia` (the RIR corpus is those documents,
    split by document; the query rewriting does not change them).

    Returns:
        ``corpus.jsonl``-format files, one per data set, named ``work_dir/{dataset}/corpus.jsonl``.
    """

    cfg = load_config(config_path)
    # the config's model_paths only: a bench never downloads
    data, source = cfg["data"], ModelSource(cfg.get("model_paths") or {})

    def local(path: str) -> Path:
        return REPO_ROOT / path

    build_squad(local(data["squad"]["path"]), work_dir / "squad", data, model_source=source)
    for name in ("nq", "triviaqa"):
        build_dpr(local(data[name]["path"]), work_dir / name, data, name, model_source=source)
    build_paq(
        local(data["paq"]["metadata"]),
        local(data["paq"]["passages"]),
        work_dir / "paq",
        work_dir / "qar.jsonl",
        data,
        int(cfg["seed"]),
        model_source=source,
    )
    rir = work_dir / "rir"
    rir.mkdir(parents=True, exist_ok=True)
    preprocess_wikipedia(
        local(data["rir"]["wikipedia"]),
        rir / "corpus.jsonl",
        rir / "preprocess_stats.json",
        data["rir"]["preprocess"],
        data["token_counter"],
        data["splitter"],
        model_source=source,
    )
    return [work_dir / name / "corpus.jsonl" for name in ("squad", "nq", "triviaqa", "paq", "rir")]


def length_mix(
    corpora: dict[str, list[str]], count: int, seed: int, mix: str = "paper"
) -> tuple[list[str], dict]:
    """``count`` documents drawn from ``corpora`` (with replacement, seeded), shuffled.

    Args:
        corpora: data set name -> texts.
        count: documents to draw.
        mix: ``paper``: each data set in proportion to its paper-scale corpus size
            (:data:`PAPER_CORPUS_DOCUMENTS`); ``uniform``: every document of every corpus alike.

    Returns:
        the texts and the number drawn per data set.
    """
    corpora = {name: texts for name, texts in corpora.items() if texts}
    if not corpora:
        raise ValueError("no documents to draw from: the corpora are empty")
    rng = np.random.default_rng(seed)
    if mix == "paper":
        unknown = sorted(set(corpora) - set(PAPER_CORPUS_DOCUMENTS))
        if unknown:
            raise ValueError(
                f"--mix paper weighs data sets by their paper-scale size, which {unknown} have none "
                f"(known: {sorted(PAPER_CORPUS_DOCUMENTS)}); name the corpus folders so or use --mix uniform"
            )
        weights = np.array([PAPER_CORPUS_DOCUMENTS[name] for name in corpora], dtype=np.float64)
    elif mix == "uniform":
        weights = np.array([len(texts) for texts in corpora.values()], dtype=np.float64)
    else:
        raise ValueError(f"--mix {mix!r} is not 'paper' or 'uniform'")
    # Largest remainder: the counts sum to ``count`` exactly.
    exact = weights / weights.sum() * count
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(-(exact - counts), kind="stable")[: count - int(counts.sum())]] += 1
    texts: list[str] = []
    drawn = {}
    for (name, pool), n in zip(corpora.items(), counts, strict=True):
        drawn[name] = int(n)
        texts.extend(pool[i] for i in rng.integers(0, len(pool), size=int(n)))
    order = rng.permutation(len(texts))
    return [texts[i] for i in order], drawn


def _in_memory_encoder(model: GearModel, tokenizer: Any, name: str = "GeAR-bench"):
    """A :class:`gear.inference.GearEncoder` around a model built in memory (no folder to load)."""

    class InMemoryGearEncoder(GearEncoder):
        def __init__(self) -> None:  # GearEncoder.__init__ loads from a folder; set what _encode reads
            self.model, self.tokenizer, self.name = model, tokenizer, name
            self.device = next(model.parameters()).device
            self.model_dir = Path("<in memory>")
            self._fingerprint = f"bench:{id(model)}"

    return InMemoryGearEncoder()


def bench_encode(
    texts: Sequence[str],
    tokenizer: Any,
    *,
    size: str,
    device: torch.device,
    batch: int,
    max_document_tokens: int = 512,
    peak_tflops: float | None = None,
    mix: dict | None = None,
    seed: int = 0,
) -> list[BenchResult]:
    """Documents per second of GeAR's document encoder, end to end and model only.

    Args:
        texts: the documents (e.g. :func:`length_mix`).
        tokenizer: a fast BERT tokenizer (bert-base-uncased's vocabulary).
        size: model size; device: where it runs (bf16 autocast on CUDA, fp32 on CPU, as
            :class:`gear.inference.GearEncoder`).
        batch: documents per batch (``evaluate.batch_size`` in the workflow).
        max_document_tokens: truncation (``gear.max_document_tokens``).
        peak_tflops: the peak for MFU (None: no MFU).
        mix: documents drawn per data set (reported).

    Returns:
        two results: ``encode (end to end)`` through :func:`gear.evaluation.embeddings.encode_texts` (tokenising
        included) and ``encode (model only)`` on the same batches pre-tokenised.
    """

    if not texts:
        raise ValueError("no documents to encode")
    cfg = bench_config(size, max_document_tokens=max_document_tokens)
    if len(tokenizer) > cfg.vocab_size:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens, the {size} model {cfg.vocab_size}")
    torch.manual_seed(seed)
    model = GearModel(cfg).to(device).eval()
    encoder = _in_memory_encoder(model, tokenizer)
    dtype = "bf16 autocast" if device.type == "cuda" else "fp32"

    # The batches exactly as GearEncoder._encode forms them: length-sorted, padded to 16s.
    started = time.perf_counter()
    order = length_sorted_order([len(t) for t in texts])
    batches = [
        encode_texts(
            tokenizer, [texts[i] for i in order[s : s + batch]], max_document_tokens, DOCUMENT_PAD_MULTIPLE
        )
        for s in range(0, len(order), batch)
    ]
    tokenise_s = time.perf_counter() - started
    lengths = np.concatenate([b["attention_mask"].sum(1).numpy() for b in batches])
    padded_tokens = sum(b["input_ids"].numel() for b in batches)
    flops = encoding_flops(cfg, lengths)

    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    @torch.inference_mode()
    def model_pass(selected: Sequence[dict[str, torch.Tensor]]) -> None:
        # As GearEncoder does: vectors stay in a device buffer, one copy to the host at the end.
        out = torch.empty((sum(len(b["input_ids"]) for b in selected), cfg.hidden_size), device=device)
        row = 0
        for b in selected:
            ids = b["input_ids"].to(device, non_blocking=True)
            mask = b["attention_mask"].to(device, non_blocking=True)
            with autocast:
                vectors = model.embed_documents(ids, mask)
            out[row : row + len(ids)] = vectors.float()
            row += len(ids)
        out.cpu()

    # Warm-up: one batch of every distinct padded length (kernel choice is per shape on CUDA).
    shapes: dict[tuple[int, ...], dict] = {}
    for b in batches:
        shapes.setdefault(tuple(b["input_ids"].shape), b)
    warm = list(shapes.values()) if device.type == "cuda" else batches[:1]
    model_pass(warm)
    synchronize(device)
    model_timing = timed_loop(lambda _: model_pass(batches), 1, 0, device)
    end_timing = timed_loop(
        lambda _: encode_corpus(encoder, list(texts), None, kind="documents", batch_size=batch), 1, 0, device
    )
    n = len(texts)
    stats = {
        "documents": n,
        "mix": mix or {},
        "tokens_mean": round(float(lengths.mean()), 1),
        "tokens_p10_p50_p90": [int(np.percentile(lengths, q)) for q in (10, 50, 90)],
        "tokens_max": int(lengths.max()),
        "truncated_fraction": round(float((lengths >= max_document_tokens).mean()), 4),
        "padding_overhead": round(padded_tokens / float(lengths.sum()) - 1, 4),
        "flops_per_document": flops / n,
        "tokenise_s": round(tokenise_s, 3),
        "tokenise_documents_per_s": n / tokenise_s,
        "peak_rss_mb": peak_rss_mb(),
        "size": size,
    }
    if device.type == "cuda":
        stats["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    lengths_text = (
        f"mix of {n:,} docs, mean {stats['tokens_mean']:.0f} tokens "
        f"(p10/50/90 {'/'.join(map(str, stats['tokens_p10_p50_p90']))}), max {max_document_tokens}"
    )
    results = []
    for label, timing in (("end to end", end_timing), ("model only", model_timing)):
        seconds = timing["total_s"]
        tflops = flops / seconds / 1e12
        results.append(
            BenchResult(
                benchmark=f"encode documents ({size}, {label})",
                value=n / seconds,
                unit="documents/s",
                device=device_name(device),
                dtype=dtype,
                batch=batch,
                lengths=lengths_text,
                mfu=model_flops_utilisation(tflops, peak_tflops),
                peak_tflops=peak_tflops,
                details={**stats, "seconds": seconds, "model_tflops_per_s": tflops},
            )
        )
    return results

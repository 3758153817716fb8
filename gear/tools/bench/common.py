"""Shared by the benches: result rows, the environment, timing, the benchmark model sizes."""

from __future__ import annotations

import logging
import os
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gear.config import REPO_ROOT
from gear.model.modeling import GearConfig, config_from_bert
from gear.provenance import git_commit, package_versions

log = logging.getLogger(__name__)

#: bf16 dense matrix peak of one H100 80GB, measured (8192^3 product) in PERF-NOTES.md.
H100_BF16_PEAK_TFLOPS = 784.0
#: ``--dtype`` of ``train`` (``train.precision``'s values) -> the dtype column of a result.
PRECISION_LABELS = {"fp32": "fp32", "bf16": "bf16 autocast", "bf16-master": "bf16 weights, fp32 masters"}
#: Paper-scale corpus sizes (SPEC §2): the weights of the realistic length mix.
PAPER_CORPUS_DOCUMENTS = {
    "squad": 20_239,
    "nq": 64_501,
    "triviaqa": 104_160,
    "paq": 1_000_000,
    "rir": 2_315_413,
}
#: Architecture overrides of the benchmark sizes on top of ``transformers.BertConfig()``.
SIZES: dict[str, dict[str, int]] = {
    "base": {},  # BertConfig's defaults are bert-base: hidden 768, 12 layers, 12 heads, FFN 3072
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 256},
    # all-MiniLM-L6-v2's shape: what the embedded mini benchmark trains (config/mini.yaml)
    "mini": {
        "hidden_size": 384,
        "num_hidden_layers": 6,
        "num_attention_heads": 12,
        "intermediate_size": 1536,
    },
}
DEFAULT_CONFIG = REPO_ROOT / "config" / "paper.yaml"
TOKENIZER_ID = "sentence-transformers/all-MiniLM-L6-v2"  # bert-base-uncased's vocabulary, offline


# --------------------------------------------------------------------------------------------
# Results and environment
# --------------------------------------------------------------------------------------------
@dataclass
class BenchResult:
    """One measured figure and the conditions it was measured under.

    Attributes:
        benchmark: e.g. ``"train GeAR"``, ``"encode (end to end)"``, ``"search (faiss)"``.
        value, unit: the headline figure (``412.0``, ``"examples/s"``).
        device: the device in words (GPU name, or CPU model and threads).
        dtype: ``bf16`` (autocast), ``fp32``, ``fp16`` ...
        batch: examples per step / documents per batch / queries per call; None when meaningless.
        lengths: the sequence lengths or sizes in words (``"query 32, document 192, target 32"``).
        mfu: model FLOP utilisation in [0, 1], or None when no peak applies.
        peak_tflops: the peak MFU is measured against (None when none).
        details: everything else (per-step times, FLOP breakdown, memory, ...).
        date: ISO time of the measurement.
        command: the command line that produced it.
    """

    benchmark: str
    value: float
    unit: str
    device: str
    dtype: str
    batch: int | None
    lengths: str
    mfu: float | None = None
    peak_tflops: float | None = None
    details: dict = field(default_factory=dict)
    date: str = ""
    command: str = ""

    def figure(self) -> str:
        text = f"{_fmt(self.value)} {self.unit}"
        tflops = self.details.get("model_tflops_per_s")
        return text + (f"; {tflops:.3g} model TFLOP/s" if tflops is not None else "")

    def markdown_row(self) -> str:
        mfu = f"{100 * self.mfu:.1f}% of {self.peak_tflops:g}" if self.mfu is not None else "-"
        cells = [
            self.date[:10],
            self.benchmark,
            self.figure(),
            mfu,
            self.device,
            self.dtype,
            "-" if self.batch is None else str(self.batch),
            self.lengths,
            f"`{self.command}`",
        ]
        return "| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |"


MARKDOWN_HEADER = (
    "| date | benchmark | figure | MFU (TFLOP/s peak) | device | dtype | batch | lengths | command |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def device_name(device: torch.device) -> str:
    """The device in words: the GPU's name, or the CPU model with the torch thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {cpu_model()} ({torch.get_num_threads()} threads of {os.cpu_count()})"


def environment(device: torch.device) -> dict:
    """What shapes the numbers: versions, device, threads, git commit."""

    env = {
        "date": now_iso(),
        "host_platform": platform.platform(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "device": device_name(device),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        # The fast tokenizer batches over all cores unless this says false (end-to-end encoding).
        "TOKENIZERS_PARALLELISM": os.environ.get("TOKENIZERS_PARALLELISM", "unset (parallel)"),
    }
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
        env["gpu_memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    return env


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports kB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release_memory() -> None:
    """Free what a finished benchmark left: PyTorch's cached CUDA blocks would otherwise starve
    FAISS, which allocates outside PyTorch's allocator."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def timed_loop(step: Callable[[int], Any], steps: int, warmup: int, device: torch.device) -> dict:
    """Run ``step(i)`` ``warmup`` times untimed, then ``steps`` times timed.

    On CUDA the timed region starts and ends with a device synchronisation and per-step times
    come from CUDA events recorded between steps (no host synchronisation in between).

    Returns:
        ``total_s`` (wall time of the timed steps), ``step_s`` (per step), ``median_step_s``.
    """
    for i in range(warmup):
        step(i)
    synchronize(device)
    if device.type == "cuda":
        events = [torch.cuda.Event(enable_timing=True) for _ in range(steps + 1)]
        started = time.perf_counter()
        events[0].record()
        for i in range(steps):
            step(warmup + i)
            events[i + 1].record()
        torch.cuda.synchronize(device)
        total = time.perf_counter() - started
        per_step = [events[i].elapsed_time(events[i + 1]) / 1000 for i in range(steps)]
    else:
        per_step = []
        started = time.perf_counter()
        for i in range(steps):
            tick = time.perf_counter()
            step(warmup + i)
            per_step.append(time.perf_counter() - tick)
        total = time.perf_counter() - started
    return {
        "total_s": total,
        "step_s": [round(s, 6) for s in per_step],
        "median_step_s": float(np.median(per_step)),
    }


def measure_matmul_peak(
    device: torch.device, dtype: torch.dtype, size: int = 8192, repeats: int = 10
) -> float:
    """Achieved TFLOP/s of a ``size``^3 matrix product on ``device`` (PERF-NOTES' peak method)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    timing = timed_loop(lambda _: a @ b, repeats, 2, device)
    return 2 * size**3 * repeats / timing["total_s"] / 1e12


# --------------------------------------------------------------------------------------------
# Models of the benchmark sizes
# --------------------------------------------------------------------------------------------
def bench_config(size: str, **overrides: Any) -> GearConfig:
    """The GeAR architecture of a benchmark size, from ``transformers.BertConfig`` (no download).

    ``base``: BertConfig's defaults (bert-base: hidden 768, 12 layers, vocabulary 30,522), mapped
    by :func:`gear.model.modeling.config_from_bert` as a real checkpoint would be; ``[DEC]`` is id 30,522
    and targets end with ``[SEP]`` (102), as with bert-base-uncased's tokenizer.
    """
    from transformers import BertConfig

    if size not in SIZES:
        raise ValueError(f"--size {size!r} is not one of {sorted(SIZES)}")
    bert = BertConfig(**SIZES[size]).to_dict()
    return config_from_bert(bert, decoder_start_token_id=bert["vocab_size"], eos_token_id=102, **overrides)


def model_flops_utilisation(tflops: float, peak: float | None) -> float | None:
    return None if peak is None else tflops / peak

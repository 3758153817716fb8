"""Speed and scale of the suite's own code: ``python -m gear.tools.bench {train,encode,search,workflow,all}``.

Every figure comes from the code the workflow runs, not from a toy re-implementation:

- **train**: the trainer's own step (:func:`gear.training.trainer.train_step`), at bert-base size
  (``--size base``: random init from a default ``transformers.BertConfig``, no download) or a tiny
  size for CI: :class:`gear.training.trainer.GearTrainingModule` (encoders, momentum encoders, feature queues,
  ITC with soft targets, fusion pass, decoder, LM loss) in the trainer's precision
  (:class:`gear.training.precision.StepPrecision`, ``--dtype``: bf16 autocast, bf16 weights with float32
  masters, or fp32), the trainer's AdamW (:func:`gear.training.trainer.build_optimizer`, fused on CUDA and CPU),
  enqueue, momentum update and temperature clamp, optionally the trainer's ``torch.compile`` of
  the five stacks. One more, untimed step runs under :func:`gear.tools.opcount.count_operators`: the
  operators per step (about one kernel launch each on CUDA), casts and host synchronisations
  go into ``details.operators_per_step``. Input:
  random token ids of fixed lengths (query 32, target 32 tokens; document 192 for QAR-like, 512
  for RIR-like input), no padding, as in the plain-PyTorch baseline of PERF-NOTES.md.
- **encode**: documents through :func:`gear.evaluation.search.encode_texts` and
  :class:`gear.inference.GearEncoder`'s batching (length-sorted, padded to multiples of 16,
  bf16 autocast on CUDA, fp32 on CPU), with the model built in memory instead of loaded from a
  folder. Texts: a realistic length mix, documents drawn from the normalised corpora of the
  mini run (or built from ``data_prep/mini`` when absent) in proportion to the paper-scale
  corpus sizes of SPEC §2 (RIR 2,315,413, PAQ 1M, TriviaQA 104,160, NQ 64,501, SQuAD 20,239
  documents), so 2/3 are RIR documents of 200-500 tokens and 1/3 are 100-word passages. Two
  figures: end to end (tokenising included), and the model alone on pre-tokenised batches.
- **search**: exact inner-product search by :mod:`gear.evaluation.search`, with the backend ``search()``
  itself would pick (``--suite-backend auto``: FAISS ``IndexFlatIP`` on the GPU when FAISS has
  one, else gear.evaluation.search's torch backend, fp16 product and top-k on CUDA, else FAISS on the CPU;
  the row's name says which ran) over random unit vectors stored float16 as the embedding cache
  stores them, index build (copy to the device) and search timed apart; optionally (``--backend
  torch``) the reference the PERF-NOTES baseline measured: an fp16 matrix product and
  ``torch.topk`` on the device.
- **workflow**: per-rule and per-stage wall time and peak memory of a Snakemake run, from the
  rules' ``benchmark:`` files (``R/benchmarks/{stage}/{job}.tsv``, ``gear.layout.Layout.benchmark``;
  each job's rule is read from the Snakemake log, whose log path has the same stage and job
  name) when present, else from the job start and finish times in ``.snakemake/log/`` (wall
  time only: the log holds no memory).
- **run**: any command's wall time and the peak memory of its whole process tree, summed over
  the processes alive at once (:mod:`gear.tools.treemem`): what a machine must hold for a workflow
  that runs jobs in parallel, which per-job figures do not show.

**Timing.** Warm-up steps (kernel selection, ``torch.compile``, allocator growth) are run and
excluded. On CUDA, timed regions start and end with ``torch.cuda.synchronize()``; per-step
times come from CUDA events recorded between steps (no host synchronisation inside the timed
loop, as in the trainer). No tqdm inside timed loops: a progress bar costs host time.

**FLOPs** (:func:`gear_step_flops`, :func:`encoding_flops`) are counted analytically, matrix
products only (2 per multiply-add), as the usual model-FLOP convention: per layer of ``L``
tokens, ``8 L H^2 + 4 L H F + 4 L^2 H`` (QKV, output projection, feed-forward, scores and
attention-weighted values); a cross-attention block from ``L`` tokens to ``S`` states
``4 L H^2 + 4 S H^2 + 4 L S H``; the LM head ``2 T H^2 + 2 T H V``; the contrastive similarities
against batch + queue. Trainable parts count 3x their forward (forward, input and weight
gradients), the momentum encoders 1x, the online similarities 2x (the banks have no gradient).
Causal self-attention is counted in full, as ``torch.utils.flop_counter`` does (the decoder's 32
tokens make this immaterial). ``tests/test_bench.py`` checks the formula against
``torch.utils.flop_counter.FlopCounterMode`` on a real step. Model FLOP utilisation (MFU) is
achieved model FLOP/s over a peak: ``--peak-tflops`` (default 784, the bf16 matrix peak measured
on one H100 in PERF-NOTES.md, used for CUDA bf16 runs only; ``--peak-tflops measure`` times an
8192^3 product on the device). The peak used is printed with every figure.

Example:
    python -m gear.tools.bench all --size tiny --json bench-tiny.json          # CI form, CPU, seconds
    python -m gear.tools.bench train --doc-tokens 512 --batch 64               # full form on a GPU

Each result prints as one Markdown table row (date, benchmark, figure, MFU, device, dtype,
batch, lengths, command); ``--json OUT`` writes them all, with the environment, atomically.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import re
import resource
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gear.config import REPO_ROOT
from gear.model.modeling import GearConfig, GearModel
from gear.tools.opcount import count_operators
from gear.training.precision import StepPrecision

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
    from gear.provenance import git_commit, package_versions

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
# FLOPs, analytically
# --------------------------------------------------------------------------------------------
def self_layer_flops(cfg: GearConfig, batch: int, length: int) -> int:
    """Forward FLOPs of one layer's self-attention and feed-forward over ``(batch, length)`` tokens."""
    h, f = cfg.hidden_size, cfg.intermediate_size
    return batch * length * (8 * h * h + 4 * h * f) + 4 * batch * length * length * h


def cross_attention_flops(cfg: GearConfig, batch: int, length: int, states: int) -> int:
    """Forward FLOPs of one cross-attention block from ``length`` tokens to ``states`` states."""
    h = cfg.hidden_size
    return 4 * batch * length * h * h + 4 * batch * states * h * h + 4 * batch * length * states * h


def encoder_flops(cfg: GearConfig, batch: int, length: int) -> int:
    """Forward FLOPs of a bi-encoder stack (``Eq``, ``Ed`` or a momentum copy)."""
    return cfg.num_hidden_layers * self_layer_flops(cfg, batch, length)


def gear_step_flops(
    cfg: GearConfig,
    batch: int,
    query_tokens: int,
    document_tokens: int,
    target_tokens: int,
    queue_size: int,
    lm_loss: bool = True,
    world_size: int = 1,
) -> dict[str, int]:
    """Model FLOPs of one GeAR training step of one process, by part, and their ``total``.

    Args:
        cfg: the architecture.
        batch: examples of this process; ``world_size`` processes make the global batch that
            meets the queue in the contrastive loss.
        query_tokens, document_tokens, target_tokens: sequence lengths (decoder input = target).
        queue_size: entries of each feature queue.
        lm_loss: GeAR (True) or GeAR_CL (fusion, decoder and LM head do not run).

    Returns:
        FLOPs per part (forward and backward included, see the module docstring) and ``total``.
    """
    h = cfg.hidden_size
    lq, ld, lt = query_tokens, document_tokens, target_tokens
    bank = batch * world_size + queue_size
    parts = {
        "query_encoder": 3 * encoder_flops(cfg, batch, lq),
        "document_encoder": 3 * encoder_flops(cfg, batch, ld),
        "momentum_encoders": encoder_flops(cfg, batch, lq) + encoder_flops(cfg, batch, ld),
        # q2d and d2q similarities: momentum (forward) and online (forward + feature gradient).
        "contrastive": 6 * 2 * batch * bank * h,
    }
    if lm_loss:
        fusion = cfg.num_hidden_layers * (
            self_layer_flops(cfg, batch, lq) + cross_attention_flops(cfg, batch, lq, ld)
        )
        decoder = cfg.num_decoder_layers * (
            self_layer_flops(cfg, batch, lt) + cross_attention_flops(cfg, batch, lt, lq)
        )
        lm_head = 2 * batch * lt * h * h + 2 * batch * lt * h * cfg.decoder_vocab_size
        parts.update(fusion=3 * fusion, decoder=3 * decoder, lm_head=3 * lm_head)
    parts["total"] = sum(parts.values())
    return parts


def encoding_flops(cfg: GearConfig, lengths: Sequence[int] | np.ndarray) -> int:
    """Forward FLOPs of the document encoder over documents of the given token lengths."""
    h, f = cfg.hidden_size, cfg.intermediate_size
    lengths = np.asarray(lengths, dtype=np.int64)
    per_layer = int(lengths.sum()) * (8 * h * h + 4 * h * f) + 4 * int((lengths**2).sum()) * h
    return cfg.num_hidden_layers * per_layer


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

    from gear.model.modeling import config_from_bert

    if size not in SIZES:
        raise ValueError(f"--size {size!r} is not one of {sorted(SIZES)}")
    bert = BertConfig(**SIZES[size]).to_dict()
    return config_from_bert(bert, decoder_start_token_id=bert["vocab_size"], eos_token_id=102, **overrides)


def _mfu(tflops: float, peak: float | None) -> float | None:
    return None if peak is None else tflops / peak


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def random_training_batch(
    cfg: GearConfig, batch: int, query_tokens: int, document_tokens: int, target_tokens: int, seed: int
) -> dict[str, torch.Tensor]:
    """A batch in :class:`gear.training.triples.TripleCollator`'s layout: random ids, no padding.

    Ids avoid the 1,000 lowest rows ([PAD], [unused], [CLS], [SEP], ...), as real text does.
    """
    generator = torch.Generator().manual_seed(seed)

    def ids(length: int, vocab: int) -> torch.Tensor:
        return torch.randint(1000, vocab, (batch, length), generator=generator)

    target_input = ids(target_tokens, cfg.vocab_size)
    target_input[:, 0] = cfg.decoder_start_token_id
    target_labels = torch.cat(
        [target_input[:, 1:], torch.full((batch, 1), cfg.eos_token_id, dtype=torch.int64)], dim=1
    )
    return {
        "query_ids": ids(query_tokens, cfg.vocab_size),
        "query_mask": torch.ones(batch, query_tokens, dtype=torch.int64),
        "document_ids": ids(document_tokens, cfg.vocab_size),
        "document_mask": torch.ones(batch, document_tokens, dtype=torch.int64),
        "target_input": target_input,
        "target_labels": target_labels,
        "doc_keys": torch.arange(batch, dtype=torch.int64),
    }


def _operator_summary(counts) -> dict:
    return {
        "total": counts.total,
        "casts": counts.casts,
        "host_syncs": counts.host_syncs,
        "views": counts.views,
        "top": counts.top(8),
    }


def bench_train(
    run_cfg: dict,
    *,
    size: str,
    device: torch.device,
    dtype: str,
    batch: int,
    document_tokens: int,
    query_tokens: int = 32,
    target_tokens: int = 32,
    steps: int = 3,
    warmup: int = 1,
    variant: str = "GeAR",
    compile_stacks: bool = False,
    peak_tflops: float | None = None,
    seed: int = 0,
) -> BenchResult:
    """Examples per second and MFU of GeAR training steps (the trainer's step, module docstring).

    Args:
        run_cfg: a run config; its ``train`` section gives the queue size, momentum, optimizer
            and variants (``config/paper.yaml``: two 57,600-entry queues).
        size: ``base`` or ``tiny`` (:data:`SIZES`).
        device, dtype: ``train.precision`` of the step (gear.training.precision): ``bf16`` (autocast),
            ``bf16-master`` (bf16 weights, float32 masters) or ``fp32``; applied on any device.
        batch, document_tokens, query_tokens, target_tokens: the input shape.
        steps, warmup: timed and untimed optimizer steps.
        variant: a key of ``train.variants`` (GeAR or GeAR_CL).
        compile_stacks: ``torch.compile`` the five stacks as ``train.compile`` does.
        peak_tflops: the peak for MFU (None: no MFU).
        seed: initialisation and input seed.
    """
    from gear.training.trainer import (
        GearTrainingModule,
        build_optimizer,
        check_queue_size,
        read_sections,
        train_step,
    )
    from gear.training.trainer import compile_stacks as compile_gear_stacks

    _, train = read_sections(run_cfg)
    if variant not in train.variants:
        raise ValueError(f"--variant {variant!r} is not in train.variants {sorted(train.variants)}")
    lm_loss = bool(train.variants[variant]["lm_loss"])
    check_queue_size(train.queue_size, batch, 1)
    cfg = bench_config(
        size,
        max_query_tokens=min(512, max(64, query_tokens)),
        max_document_tokens=document_tokens,
        max_target_tokens=min(512, max(64, target_tokens)),
    )
    torch.manual_seed(seed)
    model = GearModel(cfg)
    training = GearTrainingModule(model, train, lm_loss).to(device)
    precision = StepPrecision(training, dtype, keep_fp32=("temperature",))
    optimizer = build_optimizer(precision.optimizer_parameters(), train.optimizer, device)
    if compile_stacks:  # as train_gear does with train.compile
        compile_gear_stacks(training)
    # Two batches alternate, so no step sees the same input twice in a row; pinned host memory
    # and non-blocking copies as the trainer's DataLoader gives on CUDA.
    host_batches = [
        random_training_batch(cfg, batch, query_tokens, document_tokens, target_tokens, seed + i)
        for i in range(2)
    ]
    if device.type == "cuda":
        host_batches = [{k: v.pin_memory() for k, v in b.items()} for b in host_batches]
    alpha = train.alpha  # the value after the ramp; the cost does not depend on it
    losses: list[dict[str, torch.Tensor]] = []
    training.train()

    def step(i: int) -> None:
        # The trainer's own step, with gradient_accumulation 1 and one process.
        data = {k: v.to(device, non_blocking=True) for k, v in host_batches[i % 2].items()}
        data["doc_keys"] = data["doc_keys"] + i * batch  # fresh documents every step
        losses.extend(train_step(training, precision, optimizer, [data], alpha, train.optimizer.lr))

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    log.info(
        "train %s %s: batch %d, document %d tokens, %d warm-up + %d timed steps on %s",
        size,
        variant,
        batch,
        document_tokens,
        warmup,
        steps,
        device,
    )
    timing = timed_loop(step, steps, warmup, device)
    operators = None
    if not compile_stacks:  # a dispatch mode around compiled code would only recompile it
        # One more step, untimed, under the operator counter (gear.tools.opcount): about one kernel
        # launch per operator on CUDA, the figure PERF-NOTES found the step bound by. The
        # forward and backward alone are counted too: the model's share, which does not depend
        # on how the optimizer and the momentum update are implemented on a device.
        def forward_backward() -> None:
            data = {k: v.to(device, non_blocking=True) for k, v in host_batches[0].items()}
            with precision.autocast():
                loss, _, _ = training(data, alpha)
            loss.backward()
            training.zero_grad(set_to_none=True)

        operators = {
            part: _operator_summary(count_operators(fn))
            for part, fn in (("step", lambda: step(warmup + steps)), ("forward_backward", forward_backward))
        }
    last = losses[-1]
    cl_loss = float(last["cl"])
    lm_loss_value = float(last["lm_sum"] / last["lm_tokens"]) if "lm_sum" in last else None
    if not math.isfinite(cl_loss) or (lm_loss_value is not None and not math.isfinite(lm_loss_value)):
        raise RuntimeError(f"training produced a non-finite loss (cl {cl_loss}, lm {lm_loss_value})")
    flops = gear_step_flops(
        cfg, batch, query_tokens, document_tokens, target_tokens, train.queue_size, lm_loss
    )
    tflops = flops["total"] * steps / timing["total_s"] / 1e12
    details = {
        **timing,
        "steps": steps,
        "warmup_steps": warmup,
        "examples_per_s": batch * steps / timing["total_s"],
        "model_tflops_per_s": tflops,
        "flops_per_step": flops,
        "flops_per_example": flops["total"] / batch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "queue_size": train.queue_size,
        "variant": variant,
        "compile": compile_stacks,
        "operators_per_step": operators,
        "last_losses": {"cl": cl_loss, "lm": lm_loss_value},
        "size": size,
        "architecture": {
            k: getattr(cfg, k)
            for k in (
                "hidden_size",
                "num_hidden_layers",
                "num_decoder_layers",
                "intermediate_size",
                "vocab_size",
            )
        },
    }
    if device.type == "cuda":
        details["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    details["peak_rss_mb"] = peak_rss_mb()
    return BenchResult(
        benchmark=f"train {variant} ({size})" + (" compiled" if compile_stacks else ""),
        value=details["examples_per_s"],
        unit="examples/s",
        device=device_name(device),
        dtype=PRECISION_LABELS[dtype],
        batch=batch,
        lengths=f"query {query_tokens}, document {document_tokens}, target {target_tokens}",
        mfu=_mfu(tflops, peak_tflops),
        peak_tflops=peak_tflops,
        details=details,
    )


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------
def load_corpus_texts(paths: Sequence[str | os.PathLike]) -> dict[str, list[str]]:
    """Texts of normalised ``corpus.jsonl`` files, keyed by data set (the file's folder name)."""
    from data_prep.normalized import load_corpus

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
    from data_prep.dpr import build_dpr
    from data_prep.paq import build_paq
    from data_prep.rir.preprocess import preprocess_wikipedia
    from data_prep.squad import build_squad
    from gear.config import load_config

    cfg = load_config(config_path)
    data, paths = cfg["data"], cfg.get("model_paths") or {}

    def local(path: str) -> Path:
        return REPO_ROOT / path

    build_squad(local(data["squad"]["path"]), work_dir / "squad", data, model_paths=paths)
    for name in ("nq", "triviaqa"):
        build_dpr(local(data[name]["path"]), work_dir / name, data, name, model_paths=paths)
    build_paq(
        local(data["paq"]["metadata"]),
        local(data["paq"]["passages"]),
        work_dir / "paq",
        work_dir / "qar.jsonl",
        data,
        int(cfg["seed"]),
        model_paths=paths,
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
        model_paths=paths,
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
    from gear.inference import GearEncoder

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
        two results: ``encode (end to end)`` through :func:`gear.evaluation.search.encode_texts` (tokenising
        included) and ``encode (model only)`` on the same batches pre-tokenised.
    """
    from gear.encoding import length_sorted_order
    from gear.evaluation.search import encode_texts as encode_corpus
    from gear.model.tokens import DOCUMENT_PAD_MULTIPLE, encode_texts

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
                mfu=_mfu(tflops, peak_tflops),
                peak_tflops=peak_tflops,
                details={**stats, "seconds": seconds, "model_tflops_per_s": tflops},
            )
        )
    return results


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
    from gear.evaluation import search as search_module

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
        device_text = f"{device_name(where)} (gear.evaluation.search torch)"
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
        index = search_module._flat_index([corpus], dim, gpu)
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
        benchmark=f"search exact (gear.evaluation.search, {chosen.describe()})",
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


# --------------------------------------------------------------------------------------------
# Workflow: Snakemake benchmark files and logs
# --------------------------------------------------------------------------------------------
_TIMESTAMP = re.compile(r"^\[(\w{3} \w{3} +\d{1,2} \d\d:\d\d:\d\d \d{4})\]$")
_RULE_START = re.compile(r"^(?:local)?rule (\S+):$")
_FINISHED = re.compile(r"^Finished job(?:id:)? (\d+)")
_ERROR = re.compile(r"^Error in rule (\S+):$")
_FIELD = re.compile(r"^\s+(\w+): (.*)$")
_ELAPSED = re.compile(r"^Elapsed time: (?:(\d+) days?, )?(\d+):(\d\d):(\d\d(?:\.\d+)?)")


@dataclass
class JobRecord:
    """One job of a Snakemake run, from its log: rule, id, stage (``logs/{stage}/``), times."""

    rule: str
    jobid: str
    stage: str
    log: str
    wildcards: str
    start: datetime
    end: datetime | None = None
    failed: bool = False

    @property
    def seconds(self) -> float | None:
        return None if self.end is None else (self.end - self.start).total_seconds()


def _parse_time(text: str) -> datetime:
    return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")


def _stage_of(log_path: str) -> str:
    """The stage of a job: the folder under ``logs/`` of its log file (``gear.layout.Layout.log``)."""
    parts = Path(log_path.split(",")[0].strip()).parts
    if "logs" in parts and parts.index("logs") + 2 <= len(parts) - 1:
        return parts[parts.index("logs") + 1]
    return "-"


def parse_snakemake_log(path: str | os.PathLike) -> tuple[list[JobRecord], dict]:
    """Jobs and run facts of a Snakemake log (``.snakemake/log/*.snakemake.log``).

    Returns:
        the jobs in start order (finish time None when the log ends before the job does) and
        ``{"command", "date", "cores", "elapsed_s", "log"}`` (absent facts are None).
    """
    path = Path(path)
    jobs: dict[str, JobRecord] = {}
    meta: dict[str, Any] = {"log": str(path), "command": None, "date": None, "cores": None, "elapsed_s": None}
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    stamp: datetime | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if match := _TIMESTAMP.match(line):
            stamp = _parse_time(match.group(1))
        elif line.strip().startswith("Command:") and meta["command"] is None:
            meta["command"] = line.split(":", 1)[1].strip()
        elif line.strip().startswith("Date:") and meta["date"] is None:
            meta["date"] = line.split(":", 1)[1].strip()
        elif line.startswith("Provided cores:"):
            meta["cores"] = int(line.split(":", 1)[1])
        elif match := _ELAPSED.match(line):
            days, hours, minutes, seconds = match.groups()
            meta["elapsed_s"] = (
                int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
            )
        elif (match := _RULE_START.match(line)) or (match := _ERROR.match(line)):
            fields: dict[str, str] = {}
            j = i + 1
            while j < len(lines) and (field_match := _FIELD.match(lines[j])):
                fields[field_match.group(1)] = field_match.group(2)
                j += 1
            jobid = fields.get("jobid")
            if jobid is not None and stamp is not None:
                if _RULE_START.match(line):
                    jobs[jobid] = JobRecord(
                        rule=match.group(1),
                        jobid=jobid,
                        stage=_stage_of(fields.get("log", "")),
                        log=fields.get("log", ""),
                        wildcards=fields.get("wildcards", ""),
                        start=stamp,
                    )
                elif jobid in jobs:
                    jobs[jobid].failed = True
                    jobs[jobid].end = stamp
            i = j
            continue
        elif (match := _FINISHED.match(line)) and stamp is not None and match.group(1) in jobs:
            jobs[match.group(1)].end = stamp
        i += 1
    return sorted(jobs.values(), key=lambda job: job.start), meta


def find_snakemake_log(log_dir: str | os.PathLike, results: str | os.PathLike) -> Path | None:
    """The Snakemake log of the latest run that wrote under ``results``, or None.

    The newest log that ran to its end ("(100%) done") is preferred; failing that, the newest
    with at least one finished job (a run interrupted or still going).
    """
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        return None
    marker = str(results).rstrip("/") + "/"
    partial = None
    # Log names start with the start time (2026-11-25T100752.695987.snakemake.log): newest last.
    for path in sorted(log_dir.glob("*.snakemake.log"), reverse=True):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        if not (any(marker in line for line in lines) and any(_FINISHED.match(line) for line in lines)):
            continue
        if any(line.rstrip().endswith("(100%) done") for line in lines):
            return path
        partial = partial or path
    return partial


def read_benchmark_files(root: str | os.PathLike) -> list[dict]:
    """Rows of Snakemake ``benchmark:`` files laid out as ``root/{stage}/{job}.tsv``.

    Returns:
        one dict per measured run: ``stage`` (folder name), ``job`` (file stem), ``s`` (wall seconds),
        ``max_rss_mb`` and ``cpu_time_s`` (None where Snakemake wrote ``NA``: a job too short to
        sample), ``file``.

    Raises:
        DataFormatError: a file without Snakemake's ``s`` / ``max_rss`` columns (names file:line).
    """
    from gear.io import DataFormatError

    rows = []
    for path in sorted(Path(root).glob("*/*.tsv")):
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not lines:
            continue
        header = lines[0].split("\t")
        if "s" not in header or "max_rss" not in header:
            raise DataFormatError(f"{path}:1: not a Snakemake benchmark file (no 's' / 'max_rss' columns)")

        def number(value: str) -> float | None:
            try:
                return float(value)
            except ValueError:
                return None

        for number_line, line in enumerate(lines[1:], start=2):
            cells = dict(zip(header, line.split("\t"), strict=False))
            seconds = number(cells.get("s", ""))
            if seconds is None:
                raise DataFormatError(f"{path}:{number_line}: wall time 's' is not a number")
            rows.append(
                {
                    "stage": path.parent.name,
                    "job": path.stem,
                    "s": seconds,
                    "max_rss_mb": number(cells.get("max_rss", "NA")),
                    "cpu_time_s": number(cells.get("cpu_time", "NA")),
                    "file": str(path),
                }
            )
    return rows


def summarise_workflow(
    results: str | os.PathLike,
    log_dir: str | os.PathLike = ".snakemake/log",
    snakemake_log: str | os.PathLike | None = None,
    benchmarks: str | os.PathLike | None = None,
) -> dict:
    """Wall time and peak memory per rule and per stage of a workflow run.

    Args:
        results: the run's results folder (``results/mini``).
        log_dir: Snakemake's log folder (``.snakemake/log`` under the working directory).
        snakemake_log: a particular log (default: the newest that wrote under ``results``).
        benchmarks: the ``benchmark:`` files' root (default ``results/benchmarks``).

    Returns:
        ``source`` (``benchmark files`` or ``snakemake log``), ``rules`` and ``stages`` (each with
        ``jobs``, ``wall_s`` summed over jobs, ``max_job_s``, ``max_rss_mb`` or None), ``run``
        (log facts: command, date, cores, elapsed), ``memory_note``.

    Raises:
        FileNotFoundError: neither benchmark files nor a Snakemake log for ``results``.
    """
    results = Path(results)
    bench_root = Path(benchmarks) if benchmarks else results / "benchmarks"
    log_path = Path(snakemake_log) if snakemake_log else find_snakemake_log(log_dir, results)
    jobs, meta = parse_snakemake_log(log_path) if log_path else ([], {})
    # A job's benchmark file and its log share the stage folder and the job name. A later run of
    # a few rules (a redrawn table) leaves the other jobs' files in place: their rules come from
    # every log of the folder, oldest first so that newer ones win.
    rule_of_job = {}
    other_logs = sorted(Path(log_dir).glob("*.snakemake.log")) if Path(log_dir).is_dir() else []
    for path in [*other_logs, *([log_path] if log_path else [])]:
        logged = jobs if path == log_path else parse_snakemake_log(path)[0]
        for job in logged:
            rule_of_job[(job.stage, Path(job.log.split(",")[0].strip()).stem)] = job.rule
    rows = read_benchmark_files(bench_root) if bench_root.is_dir() else []
    if rows:
        source = f"benchmark files under {bench_root}"
        records = [
            {
                "rule": rule_of_job.get((r["stage"], r["job"]), f"{r['stage']}/{r['job']}"),
                "stage": r["stage"],
                "s": r["s"],
                "rss": r["max_rss_mb"],
            }
            for r in rows
        ]
        memory_note = "max RSS of the job's process tree, sampled by Snakemake's benchmark: directive"
    elif jobs:
        source = f"Snakemake log {log_path}"
        records = [
            {"rule": job.rule, "stage": job.stage, "s": job.seconds, "rss": None}
            for job in jobs
            if job.seconds is not None
        ]
        memory_note = (
            "not measured: the Snakemake log holds start and finish times only (1 s resolution); "
            "add `benchmark:` files (R/benchmarks/{stage}/{job}.tsv) to the rules for memory"
        )
    else:
        raise FileNotFoundError(
            f"no benchmark files under {bench_root} and no Snakemake log in {log_dir} that wrote under "
            f"{results}: run the workflow first, or pass --snakemake-log"
        )

    def aggregate(key: str) -> dict[str, dict]:
        table: dict[str, dict] = {}
        for record in records:
            entry = table.setdefault(
                record[key],
                {"jobs": 0, "wall_s": 0.0, "max_job_s": 0.0, "max_rss_mb": None, "stage": record["stage"]},
            )
            entry["jobs"] += 1
            entry["wall_s"] += record["s"]
            entry["max_job_s"] = max(entry["max_job_s"], record["s"])
            if record["rss"] is not None:
                entry["max_rss_mb"] = max(entry["max_rss_mb"] or 0.0, record["rss"])
        return dict(sorted(table.items(), key=lambda item: -item[1]["wall_s"]))

    run = dict(meta)
    if jobs:
        finished = [job for job in jobs if job.end is not None]
        run["jobs"] = len(jobs)
        run["failed_jobs"] = sum(job.failed for job in jobs)
        if finished:
            run["first_start_to_last_finish_s"] = (
                max(job.end for job in finished) - min(job.start for job in jobs)
            ).total_seconds()
    rss = [r["rss"] for r in records if r["rss"] is not None]
    return {
        "source": source,
        "results": str(results),
        "rules": aggregate("rule"),
        "stages": aggregate("stage"),
        "run": run,
        "peak_job_rss_mb": max(rss) if rss else None,
        "memory_note": memory_note,
    }


def workflow_markdown(summary: dict) -> str:
    """The summary as two Markdown tables (per stage, per rule) with its source."""

    def rss(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.0f}"

    run = summary["run"]
    lines = [
        f"Source: {summary['source']}. Memory: {summary['memory_note']}.",
        "",
        f"Run: `{run.get('command')}` started {run.get('date')}, {run.get('cores')} cores, "
        f"{run.get('jobs', '?')} jobs ({run.get('failed_jobs', 0)} failed), elapsed "
        f"{run.get('elapsed_s') or run.get('first_start_to_last_finish_s') or float('nan'):.0f} s.",
        "",
        "| stage | jobs | wall s (sum over jobs) | longest job s | max RSS MB |",
        "|---|---|---|---|---|",
    ]
    for name, entry in summary["stages"].items():
        lines.append(
            f"| {name} | {entry['jobs']} | {entry['wall_s']:.0f} | {entry['max_job_s']:.0f} | {rss(entry['max_rss_mb'])} |"
        )
    lines += [
        "",
        "| rule | stage | jobs | wall s (sum) | longest job s | max RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in summary["rules"].items():
        lines.append(
            f"| {name} | {entry['stage']} | {entry['jobs']} | {entry['wall_s']:.0f} | {entry['max_job_s']:.0f} | "
            f"{rss(entry['max_rss_mb'])} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_train_batch(size: str, device: torch.device, document_tokens: int) -> int:
    """The targets' batches on a GPU (128 at <= 256 tokens, 64 above); 4 on a CPU at base size."""
    if size == "base" and device.type == "cuda":
        return 128 if document_tokens <= 256 else 64
    return 4


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="base",
        help="base (bert-base), mini (all-MiniLM-L6-v2, the mini run) or tiny (CI)",
    )
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when available)")
    parser.add_argument(
        "--dtype",
        choices=sorted(PRECISION_LABELS),
        default=None,
        help="training precision, train.precision's values (default bf16 on CUDA, fp32 on CPU)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch and FAISS CPU threads (default 2)")
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="run config: train, gear, evaluate"
    )
    parser.add_argument(
        "--peak-tflops",
        default=None,
        help=f"peak for MFU: a number, or 'measure' (default {H100_BF16_PEAK_TFLOPS:g} for CUDA bf16, none otherwise)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write all results here (JSON)")


def _add_train(parser: argparse.ArgumentParser, batch_flag: Sequence[str] = ("--batch",)) -> None:
    parser.add_argument(*batch_flag, dest="batch", type=int, default=None, help="training batch")
    parser.add_argument(
        "--doc-tokens",
        type=int,
        nargs="+",
        default=[192, 512],
        help="document lengths (QAR-like 192, RIR-like 512)",
    )
    parser.add_argument("--query-tokens", type=int, default=32)
    parser.add_argument("--target-tokens", type=int, default=32)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 20 on CUDA, 3 on CPU)")
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed steps (default 5 on CUDA, 1 on CPU)"
    )
    parser.add_argument("--variant", default="GeAR", help="a train.variants key: GeAR or GeAR_CL")
    parser.add_argument("--compile", action="store_true", help="torch.compile the stacks (train.compile)")


def _add_encode(parser: argparse.ArgumentParser, batch_flags: Sequence[str] = ("--encode-batch",)) -> None:
    parser.add_argument(
        *batch_flags,
        dest="encode_batch",
        type=int,
        default=None,
        help="documents per batch (default evaluate.batch_size)",
    )
    parser.add_argument(
        "--documents",
        type=int,
        default=None,
        help="documents to encode (default 50,000 on CUDA, 128 on CPU, 64 tiny)",
    )
    parser.add_argument("--corpus", type=Path, nargs="+", default=None, help="normalised corpus.jsonl files")
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("results/mini"),
        help="run folder whose data/*/corpus.jsonl to use",
    )
    parser.add_argument("--mix", choices=["paper", "uniform"], default="paper", help="weights of the corpora")
    parser.add_argument("--tokenizer", default=TOKENIZER_ID, help="a BERT tokenizer (hub id or folder)")


def _add_search(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--corpus-size", type=int, default=None, help="vectors (default 2,315,413; tiny 20,000)"
    )
    parser.add_argument("--queries", type=int, default=None, help="queries (default 20,000; tiny 200)")
    parser.add_argument("--dim", type=int, default=None, help="vector size (default the model's hidden size)")
    parser.add_argument(
        "--depth", type=int, default=None, help="results per query (default evaluate.retrieval.depth)"
    )
    parser.add_argument(
        "--backend",
        choices=["suite", "torch", "both"],
        default=None,
        help="suite (gear.evaluation.search), torch (the PERF-NOTES reference) or both; default: both on CUDA, suite on CPU",
    )
    parser.add_argument(
        "--suite-backend",
        choices=["auto", "faiss", "torch"],
        default="auto",
        help="gear.evaluation.search's backend for the suite row (default auto: what the workflow runs)",
    )
    parser.add_argument("--query-batch", type=int, default=None, help="queries per search call")


def _add_workflow(parser: argparse.ArgumentParser, with_results: bool = True) -> None:
    if with_results:
        parser.add_argument(
            "--results", type=Path, default=Path("results/mini"), help="the run's results folder"
        )
    parser.add_argument("--log-dir", type=Path, default=Path(".snakemake/log"), help="Snakemake's log folder")
    parser.add_argument("--snakemake-log", type=Path, default=None, help="a particular Snakemake log")
    parser.add_argument(
        "--benchmarks", type=Path, default=None, help="benchmark files root (default RESULTS/benchmarks)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gear.tools.bench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="GeAR training examples/s and MFU")
    _add_common(train)
    _add_train(train)
    encode = commands.add_parser("encode", help="documents/s of the document encoder")
    _add_common(encode)
    _add_encode(encode, ("--batch", "--encode-batch"))
    search = commands.add_parser("search", help="queries/s of exact search")
    _add_common(search)
    _add_search(search)
    workflow = commands.add_parser("workflow", help="wall time and memory per rule/stage of a Snakemake run")
    _add_common(workflow)
    _add_workflow(workflow)
    run = commands.add_parser(
        "run", help="wall time and peak memory of a command's whole process tree (gear.tools.treemem)"
    )
    run.add_argument("--interval", type=float, default=0.2, help="seconds between memory samples")
    run.add_argument("--json", type=Path, default=None, help="write the measurement here")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    every = commands.add_parser("all", help="train, encode, search, and workflow when a run exists")
    _add_common(every)
    _add_train(every)
    _add_encode(every)
    _add_search(every)
    _add_workflow(every, with_results=False)
    return parser


def _peak(args: argparse.Namespace, device: torch.device, dtype: str) -> float | None:
    if args.peak_tflops is None:
        return H100_BF16_PEAK_TFLOPS if device.type == "cuda" and dtype.startswith("bf16") else None
    if args.peak_tflops == "measure":
        peak = measure_matmul_peak(
            device,
            torch.bfloat16 if dtype.startswith("bf16") else torch.float32,
            size=8192 if device.type == "cuda" else 2048,
        )
        print(f"measured {dtype} matrix peak on {device_name(device)}: {peak:.1f} TFLOP/s", flush=True)
        return peak
    try:
        return float(args.peak_tflops)
    except ValueError:
        raise SystemExit(f"--peak-tflops must be a number or 'measure', got {args.peak_tflops!r}") from None


def _run_train(args, device, dtype, run_cfg, peak) -> list[BenchResult]:
    cuda = device.type == "cuda"
    results = []
    for tokens in args.doc_tokens:
        results.append(
            bench_train(
                run_cfg,
                size=args.size,
                device=device,
                dtype=dtype,
                batch=args.batch or default_train_batch(args.size, device, tokens),
                document_tokens=tokens,
                query_tokens=args.query_tokens,
                target_tokens=args.target_tokens,
                steps=args.steps or (20 if cuda else 3),
                warmup=args.warmup if args.warmup is not None else (5 if cuda else 1),
                variant=args.variant,
                compile_stacks=args.compile,
                peak_tflops=peak,
                seed=args.seed,
            )
        )
        _emit(results[-1])
        release_memory()
    return results


def _corpus_files(args) -> tuple[list[Path], tempfile.TemporaryDirectory | None]:
    if args.corpus:
        return list(args.corpus), None
    found = {p.parent.name: p for p in (args.results / "data").glob("*/corpus.jsonl")}
    if set(PAPER_CORPUS_DOCUMENTS) <= set(found):
        return [found[name] for name in PAPER_CORPUS_DOCUMENTS], None
    # A partial set (a run in progress) would silently shift the length mix: build all five.
    log.info(
        "%s/data holds %s of the corpora %s: building the mini corpora from data_prep/mini",
        args.results,
        sorted(found) or "none",
        sorted(PAPER_CORPUS_DOCUMENTS),
    )
    work = tempfile.TemporaryDirectory(prefix="gear-bench-corpora.")
    return build_mini_corpora(Path(work.name)), work


def _run_encode(args, device, run_cfg, peak) -> list[BenchResult]:
    from transformers import AutoTokenizer

    from gear.hub import resolve_model

    files, work = _corpus_files(args)
    try:
        corpora = load_corpus_texts(files)
    finally:
        if work is not None:
            work.cleanup()
    sources = [str(f) for f in files] if work is None else ["data_prep/mini (built by build_mini_corpora)"]
    cuda = device.type == "cuda"
    count = args.documents or (64 if args.size == "tiny" else 50_000 if cuda else 128)
    texts, drawn = length_mix(corpora, count, args.seed, args.mix)
    tokenizer = AutoTokenizer.from_pretrained(
        resolve_model(args.tokenizer, run_cfg.get("model_paths")), use_fast=True
    )
    batch = args.encode_batch or (16 if args.size == "tiny" else int(run_cfg["evaluate"]["batch_size"]))
    results = bench_encode(
        texts,
        tokenizer,
        size=args.size,
        device=device,
        batch=batch,
        max_document_tokens=int(run_cfg["gear"]["max_document_tokens"]),
        peak_tflops=peak,
        mix={"weights": args.mix, "drawn": drawn, "sources": sources},
        seed=args.seed,
    )
    for result in results:
        _emit(result)
    release_memory()
    return results


def _run_search(args, device, run_cfg) -> list[BenchResult]:
    tiny = args.size == "tiny"
    backend = args.backend or ("both" if device.type == "cuda" else "suite")
    results = bench_search(
        args.corpus_size or (20_000 if tiny else 2_315_413),
        args.queries or (200 if tiny else 20_000),
        args.dim or bench_config(args.size).hidden_size,
        args.depth or int(run_cfg["evaluate"]["retrieval"]["depth"]),
        backends=("suite", "torch") if backend == "both" else (backend,),
        device=device,
        query_batch=args.query_batch,
        seed=args.seed,
        suite_backend=args.suite_backend,
    )
    for result in results:
        _emit(result)
    return results


def _run_workflow(args, results_dir: Path) -> dict:
    summary = summarise_workflow(results_dir, args.log_dir, args.snakemake_log, args.benchmarks)
    print(workflow_markdown(summary), flush=True)
    return summary


_COMMAND = ""


def _run_command(args: argparse.Namespace) -> None:
    """``run``: the command's wall time and the peak memory of its process tree."""
    from gear.tools.treemem import run_sampled

    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    try:
        measured = run_sampled(command, args.interval)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"python -m gear.tools.bench run: {err}") from None
    print(f"| {now_iso()} | `{shlex.join(command)}` | {measured.markdown()} |", flush=True)
    if args.json:
        from gear.io import write_json

        write_json(args.json, {"command": _COMMAND, "date": now_iso(), **asdict(measured)})
    if measured.returncode != 0:
        raise SystemExit(measured.returncode)


def _emit(result: BenchResult) -> None:
    result.date = now_iso()
    result.command = _COMMAND
    peak = f" (MFU against {result.peak_tflops:g} TFLOP/s peak)" if result.peak_tflops else ""
    print(result.markdown_row() + peak, flush=True)


def main(argv: list[str] | None = None) -> list[BenchResult]:
    """``python -m gear.tools.bench``: run the chosen benchmarks, print Markdown rows, write ``--json``."""
    global _COMMAND
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    _COMMAND = "python -m gear.tools.bench " + shlex.join(argv)
    if args.command == "run":
        _run_command(args)
        return []
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    if args.command in ("search", "all"):
        import faiss

        faiss.omp_set_num_threads(args.threads)
    device = torch.device(args.device or _default_device())
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device (CPU-only torch build or no GPU)")
    dtype = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    from gear.config import load_config

    run_cfg = load_config(args.config) if args.command != "workflow" else {}
    # GearEncoder always runs bf16 autocast on CUDA and fp32 on CPU, whatever --dtype says.
    encode_dtype = "bf16" if device.type == "cuda" else "fp32"
    peak_by_dtype: dict[str, float | None] = {}  # 'measure' times the product once per dtype
    peaks: dict[str, float | None] = {}
    for kind, kind_dtype in (("train", dtype), ("encode", encode_dtype)):
        if args.command in (kind, "all"):
            if kind_dtype not in peak_by_dtype:
                peak_by_dtype[kind_dtype] = _peak(args, device, kind_dtype)
            peaks[kind] = peak_by_dtype[kind_dtype]
            used = f"{peaks[kind]:g} TFLOP/s" if peaks[kind] else "none, no MFU (pass --peak-tflops)"
            print(f"MFU peak used for {kind} ({kind_dtype}): {used}", flush=True)
    if args.command != "workflow":
        print(MARKDOWN_HEADER, flush=True)
    results: list[BenchResult] = []
    workflow: dict | None = None
    if args.command in ("train", "all"):
        results += _run_train(args, device, dtype, run_cfg, peaks["train"])
    if args.command in ("encode", "all"):
        results += _run_encode(args, device, run_cfg, peaks["encode"])
    if args.command in ("search", "all"):
        results += _run_search(args, device, run_cfg)
    if args.command == "workflow":
        workflow = _run_workflow(args, args.results)
    elif args.command == "all":
        try:
            workflow = _run_workflow(args, args.results)
        except FileNotFoundError as err:
            print(f"workflow: not measured: {err}", flush=True)
    if args.json:
        from gear.io import write_json

        write_json(
            args.json,
            {
                "command": _COMMAND,
                "environment": environment(device),
                "results": [asdict(r) for r in results],
                "workflow": workflow,
            },
        )
    return results


if __name__ == "__main__":
    main()

"""The train bench: examples per second and MFU of the trainer's own step (``gear.training.step.train_step``)."""

from __future__ import annotations

import logging
import math

import torch

from gear.model.modeling import GearConfig, GearModel
from gear.tools.bench.common import (
    PRECISION_LABELS,
    BenchResult,
    bench_config,
    device_name,
    model_flops_utilisation,
    peak_rss_mb,
    timed_loop,
)
from gear.tools.bench.flops import gear_step_flops
from gear.tools.opcount import count_operators
from gear.training.objectives import GearTrainingModule
from gear.training.precision import StepPrecision
from gear.training.settings import check_queue_size, read_sections
from gear.training.step import build_optimizer, train_step
from gear.training.step import compile_stacks as compile_gear_stacks

log = logging.getLogger(__name__)


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
        mfu=model_flops_utilisation(tflops, peak_tflops),
        peak_tflops=peak_tflops,
        details=details,
    )

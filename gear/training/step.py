"""One optimizer step (:func:`train_step`), the optimizer it steps (:func:`build_optimizer`) and the
optional ``torch.compile`` of the stacks; the training loop and the train bench both call it."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable, Sequence

import torch
from torch import Tensor, nn

from gear.training.objectives import GearTrainingModule
from gear.training.precision import StepPrecision
from gear.training.settings import OptimizerSection


def compile_stacks(training: GearTrainingModule) -> None:
    """``torch.compile`` the five transformer stacks in place (config ``train.compile``); the
    losses and queue updates around them stay eager."""
    model = training.model
    for stack in (
        model.query_encoder,
        model.document_encoder,
        model.decoder,
        training.momentum_query_encoder,
        training.momentum_document_encoder,
    ):
        stack.compile(dynamic=None)


def build_optimizer(
    params: nn.Module | Iterable[Tensor] | Iterable[tuple[str, Tensor]],
    opt: OptimizerSection,
    device: torch.device,
    new_parameters: Collection[str] = (),
) -> torch.optim.AdamW:
    """AdamW over the trainable tensors of ``params``: a module, the tensors of
    :meth:`gear.training.precision.StepPrecision.optimizer_parameters`, or ``(name, tensor)`` pairs
    (:meth:`~gear.training.precision.StepPrecision.named_optimizer_parameters`).

    Weight decay applies to matrices only (module docstring). With names, the tensors named in
    ``new_parameters`` learn at ``opt.new_parameters_lr_multiplier`` x the rate and the one named
    ``temperature`` at ``opt.temperature_lr_multiplier`` x; every group carries its
    ``lr_multiplier``, which the training loop applies to the scheduled rate.
    """
    if isinstance(params, nn.Module):
        params = params.parameters()
    named = [p if isinstance(p, tuple) else ("", p) for p in params]
    new = set(new_parameters)
    groups: dict[tuple[float, bool], list[Tensor]] = {}
    for name, param in named:
        if not param.requires_grad:
            continue
        multiplier = 1.0
        if name in new:
            multiplier = opt.new_parameters_lr_multiplier
        elif name == "temperature":
            multiplier = opt.temperature_lr_multiplier
        groups.setdefault((multiplier, param.ndim >= 2), []).append(param)
    param_groups = [
        {
            "params": tensors,
            "weight_decay": opt.weight_decay if decayed else 0.0,
            "lr": opt.lr * multiplier,
            "lr_multiplier": multiplier,
        }
        for (multiplier, decayed), tensors in sorted(groups.items(), key=lambda kv: (kv[0][0], not kv[0][1]))
    ]
    return torch.optim.AdamW(
        param_groups,
        lr=opt.lr,
        betas=tuple(opt.betas),
        eps=opt.eps,
        fused=device.type in ("cuda", "cpu") or None,
    )


def train_step(
    training: GearTrainingModule,
    precision: StepPrecision,
    optimizer: torch.optim.Optimizer,
    micro_batches: Sequence[dict[str, Tensor]],
    alpha: float,
    lr: float,
    wrapped: nn.Module | None = None,
) -> list[dict[str, Tensor]]:
    """One optimizer step: forward and backward of every micro-batch, then the update.

    Each micro-batch's loss is divided by their number (gradient accumulation); its keys enter the
    queues right after its backward. Then every group's rate is ``lr`` x its ``lr_multiplier``,
    AdamW steps (on the float32 masters under ``bf16-master``), the momentum encoders follow and
    the temperature is clamped. The loop of :func:`train_gear` and the train bench
    (``gear.tools.bench``) both call this.

    Args:
        training: the training module (model, momentum encoders, queues, temperature).
        precision: how the step computes (:class:`gear.training.precision.StepPrecision`).
        optimizer: from :func:`build_optimizer`.
        micro_batches: tensors of :class:`gear.training.triples.TripleCollator` on the device.
        alpha: the LM loss weight at this step (:func:`alpha_at`).
        lr: the scheduled learning rate (:func:`learning_rate`).
        wrapped: ``training`` inside ``DistributedDataParallel`` under several processes
            (gradients are synchronised at the last micro-batch only); default ``training``.

    Returns:
        The statistics of each micro-batch (tensors, see :meth:`GearTrainingModule.forward`).
    """
    wrapped = training if wrapped is None else wrapped
    stats_of_micro_batches = []
    for index, batch in enumerate(micro_batches):
        last = index == len(micro_batches) - 1
        sync = contextlib.nullcontext() if last or wrapped is training else wrapped.no_sync()
        with sync:
            with precision.autocast():
                loss, stats, bank = wrapped(batch, alpha)
            if len(micro_batches) > 1:
                loss = loss / len(micro_batches)
            loss.backward()
        training.enqueue(*bank)
        stats_of_micro_batches.append(stats)
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_multiplier"]
    precision.gradients_to_masters()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    precision.masters_to_weights()
    training.momentum_update(precision)
    training.clamp_temperature()
    return stats_of_micro_batches


def new_parameter_names(newly_initialised: Iterable[str], prefix: str = "model.") -> list[str]:
    """Training-module names of the parameters a checkpoint did not provide at all (a
    :class:`gear.model.modeling.LoadReport`'s ``newly_initialised``, row ranges such as the ``[DEC]`` row
    of a pretrained embedding left out: the rest of that tensor is pretrained)."""
    return [prefix + name for name in newly_initialised if "[" not in name]

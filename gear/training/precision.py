"""How a training step computes: fp32, bf16 autocast, or bf16 weights with fp32 master weights.

``train.precision`` (the paper does not say how it trained; these are the suite's choices):

``fp32``
    Everything in float32. CPU runs always use it (:func:`effective_precision`): bf16 on CPUs
    without bf16 matrix units is slower, and fp32 keeps CPU runs bitwise reproducible.

``bf16`` (default)
    ``torch.autocast(bfloat16)`` on CUDA: float32 weights, each matrix product in bf16.
    Autocast casts every weight (and many activations) to bf16 at every call and casts the
    gradients back in backward; PERF-NOTES.md measured about 1,500 such casts per GeAR step at
    bert-base size, half of the step's kernel launches, at the paper's per-GPU batches where the
    step is bound by launches rather than by the GPU.

``bf16-master``
    The parameters themselves are bf16 (forward and backward compute in bf16 with no casts);
    float32 *master* copies are what the optimizer updates (PERF-NOTES, item 2). Per optimizer
    step, the extra work is two multi-tensor copies: the bf16 gradients into the masters'
    float32 gradients (after the last micro-batch, so DDP reduces them in bf16 first and
    gradient accumulation accumulates in bf16), and the updated masters back into the bf16
    parameters. The momentum encoders follow the online encoders on the masters too (one
    ``_foreach_lerp_``, then a copy), because ``(1 - 0.995) x delta`` vanishes below bf16's
    resolution. The contrastive temperature stays float32 (it divides float32 logits), as do the
    feature queues (buffers, never converted); the similarities, the softmax targets and the
    vocabulary cross-entropy run in float32 as under autocast (``gear.training.trainer``,
    ``gear.model.modeling.lm_loss_sum``). What differs from autocast: activations between blocks
    (the residual stream, LayerNorm outputs) are bf16 rather than float32.

Checkpoints and saved models always hold the float32 masters (:meth:`StepPrecision.fp32_weights`),
so a ``bf16-master`` run resumes exactly and its models load like any other.

Example:
    >>> precision = StepPrecision(training, "bf16-master")                     # doctest: +SKIP
    >>> optimizer = build_optimizer(precision.optimizer_parameters(), opt, device)  # doctest: +SKIP
    >>> with precision.autocast():                                               # doctest: +SKIP
    ...     loss, stats, bank = training(batch, alpha)
    >>> loss.backward(); precision.gradients_to_masters(); optimizer.step()    # doctest: +SKIP
    >>> precision.masters_to_weights(); precision.momentum_update(pairs, mu)   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from gear.config import ConfigError

#: The values of ``train.precision``.
PRECISIONS = ("fp32", "bf16", "bf16-master")


def effective_precision(precision: str, device: torch.device) -> str:
    """The precision a run on ``device`` uses for config value ``precision`` (CPU: always fp32).

    Raises:
        ConfigError: ``precision`` is not one of :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"train.precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    return precision if device.type == "cuda" else "fp32"


class StepPrecision:
    """The precision machinery of one training module (module docstring).

    Args:
        module: the module whose parameters train (``gear.training.objectives.GearTrainingModule``); under
            ``bf16-master`` its floating-point parameters are converted to bf16 in place.
        precision: one of :data:`PRECISIONS` (already resolved for the device,
            :func:`effective_precision`).
        keep_fp32: names (``module.named_parameters()``) of parameters that stay float32 and are
            updated directly (the temperature).
    """

    def __init__(self, module: nn.Module, precision: str, keep_fp32: Sequence[str] = ()):
        if precision not in PRECISIONS:
            raise ConfigError(f"train.precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
        self.precision = precision
        self.device = next(module.parameters()).device
        self._params: list[Tensor] = []  # what the optimizer updates, in module.parameters() order
        self._master_of: dict[int, Tensor] = {}  # id(bf16 parameter) -> its float32 master
        self._converted: list[tuple[Tensor, Tensor]] = []  # (bf16 parameter, master)
        unknown = set(keep_fp32) - {name for name, _ in module.named_parameters()}
        if unknown:
            raise ValueError(f"keep_fp32 names no parameter of the module: {sorted(unknown)}")
        self._names = [name for name, _ in module.named_parameters()]  # parallel to self._params
        for name, param in module.named_parameters():  # tied parameters come once
            if precision != "bf16-master" or name in keep_fp32 or not param.is_floating_point():
                self._params.append(param)
                continue
            master = param.detach().clone().float().requires_grad_(param.requires_grad)
            param.data = param.data.to(torch.bfloat16)
            self._params.append(master)
            self._master_of[id(param)] = master
            self._converted.append((param, master))
        # The pairs the optimizer changes; the momentum encoders' follow in momentum_update, and
        # frozen ones (GeAR_CL's decoder) never change.
        self._trainable = [(param, master) for param, master in self._converted if master.requires_grad]
        # Preallocated float32 gradients of the trainable masters (bf16-master only).
        self._grad_buffers = {id(master): torch.zeros_like(master) for _, master in self._trainable}

    @property
    def masters(self) -> bool:
        """True under ``bf16-master``."""
        return self.precision == "bf16-master"

    def optimizer_parameters(self) -> list[Tensor]:
        """The tensors the optimizer updates: masters for converted parameters, else the parameters."""
        return list(self._params)

    def named_optimizer_parameters(self) -> list[tuple[str, Tensor]]:
        """:meth:`optimizer_parameters` with the module's parameter names (for parameter groups)."""
        return list(zip(self._names, self._params, strict=True))

    def autocast(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` to bf16 under ``bf16``; nothing otherwise."""
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def gradients_to_masters(self) -> None:
        """bf16 gradients -> the masters' float32 gradients, then the bf16 ones are freed.

        Call after the backward of a step's last micro-batch, before ``optimizer.step()``. A
        master whose parameter got no gradient gets none (AdamW then skips it, as it skips a
        float32 parameter without a gradient). A no-op unless ``bf16-master``.
        """
        if not self.masters:
            return
        sources, targets = [], []
        for param, master in self._trainable:
            if param.grad is None:
                master.grad = None
                continue
            buffer = self._grad_buffers[id(master)]
            master.grad = buffer
            sources.append(param.grad)
            targets.append(buffer)
            param.grad = None
        if targets:
            torch._foreach_copy_(targets, sources)

    @torch.no_grad()
    def masters_to_weights(self) -> None:
        """The optimizer's updated masters -> their bf16 parameters (one multi-tensor copy).

        A no-op unless ``bf16-master``. The momentum encoders are refreshed by
        :meth:`momentum_update`, frozen parameters never change.
        """
        if self.masters and self._trainable:
            torch._foreach_copy_([p for p, _ in self._trainable], [m for _, m in self._trainable])

    @torch.no_grad()
    def momentum_update(self, momentum: Sequence[Tensor], online: Sequence[Tensor], mu: float) -> None:
        """``m <- mu m + (1 - mu) theta`` over parameter pairs, on the masters under ``bf16-master``."""
        if not self.masters:
            torch._foreach_lerp_(list(momentum), list(online), 1.0 - mu)
            return
        momentum_masters = [self._master_of[id(p)] for p in momentum]
        torch._foreach_lerp_(momentum_masters, [self._master_of[id(p)] for p in online], 1.0 - mu)
        torch._foreach_copy_(list(momentum), momentum_masters)

    @contextlib.contextmanager
    def fp32_weights(self) -> Iterator[None]:
        """Within the block, the converted parameters hold their float32 masters.

        For saving (``state_dict()``, ``save_pretrained``) and loading: a state loaded within the
        block lands in the masters, and the bf16 parameters are refreshed from them on exit.
        """
        if not self.masters:
            yield
            return
        compute = [param.data for param, _ in self._converted]
        for param, master in self._converted:
            param.data = master.data
        try:
            yield
        finally:
            for (param, _), data in zip(self._converted, compute, strict=True):
                param.data = data
            with torch.no_grad():  # a state loaded within the block changed any of them
                torch._foreach_copy_([p for p, _ in self._converted], [m for _, m in self._converted])

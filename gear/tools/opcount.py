"""Counting the ATen operators a piece of code dispatches: a device-independent launch count.

PERF-NOTES.md found GeAR's eager bf16 step at the paper's per-GPU batches bound by the CPU
launching about 3,000 kernels, not by the GPU. Nearly every ATen operator that runs on a CUDA
tensor is one kernel launch (a ``_foreach_*`` or fused-optimizer operator launches a few for a
whole list of tensors; views launch none), so the number of operators a step dispatches, and
how many of them are dtype casts (``aten._to_copy``), tells how launch-bound a change leaves
the step, and it can be measured on a CPU. The count is of operators, not of kernels: it
says nothing of their size, and CPU autocast casts somewhat different operators than CUDA
autocast does. ``gear.tools.bench train`` reports it beside the timed figures.

Example:
    >>> counts = count_operators(lambda: model(x).sum().backward())  # doctest: +SKIP
    >>> counts.total, counts.casts                                   # doctest: +SKIP
    (412, 96)
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: Operators that only re-describe memory (no kernel on any device).
VIEW_OPERATORS = frozenset(
    {
        "aten.view",
        "aten._unsafe_view",
        "aten.t",
        "aten.transpose",
        "aten.permute",
        "aten.expand",
        "aten.unsqueeze",
        "aten.squeeze",
        "aten.slice",
        "aten.select",
        "aten.as_strided",
        "aten.alias",
        "aten.detach",
        "aten.split",
        "aten.split_with_sizes",
        "aten.unbind",
        "aten.chunk",
        "aten.reshape",
        "aten.flatten",
        "aten.unflatten",
        "aten.lift_fresh",
    }
)

#: Operators that make the host wait for the device on CUDA: a value read back (``.item()``,
#: ``float(t)``, ``if t:``) or an output whose size depends on the data.
SYNC_OPERATORS = frozenset(
    {
        "aten._local_scalar_dense",
        "aten.nonzero",
        "aten.masked_select",
        "aten._unique2",
        "aten.unique_dim",
        "aten.unique_consecutive",
    }
)


@dataclass
class OperatorCount:
    """What :func:`count_operators` saw.

    Attributes:
        by_name: operator overload packet name (``aten.mm``) -> calls, views included.
        total: calls of operators that are not views (about one kernel launch each on CUDA).
        casts: calls of ``aten._to_copy`` (dtype or device copies: what autocast adds).
        views: calls of view operators (no kernel).
        host_syncs: calls of :data:`SYNC_OPERATORS` and indexing with a boolean mask (each
            stalls the host on a CUDA device).
    """

    by_name: dict[str, int] = field(default_factory=dict)
    total: int = 0
    casts: int = 0
    views: int = 0
    host_syncs: int = 0

    def top(self, n: int = 10) -> list[tuple[str, int]]:
        """The ``n`` most called operators that are not views."""
        items = [(k, v) for k, v in self.by_name.items() if k not in VIEW_OPERATORS]
        return sorted(items, key=lambda kv: (-kv[1], kv[0]))[:n]


class _Counter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter[str] = collections.Counter()
        self.boolean_indexing = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        self.calls[name] += 1
        if name in ("aten.index", "aten.index_put_", "aten.index_put") and len(args) > 1:
            # t[mask]: the kernel counts the mask's true entries first (a nonzero on CUDA).
            if any(getattr(i, "dtype", None) == torch.bool for i in args[1] or ()):
                self.boolean_indexing += 1
        return func(*args, **(kwargs or {}))


def count_operators(fn: Callable[[], Any]) -> OperatorCount:
    """Run ``fn()`` once and count the ATen operators it dispatches, backward passes included.

    The counting mode is active on the calling thread and in the autograd engine's threads
    (PyTorch carries dispatch modes into backward). It slows ``fn`` down: never time under it.
    """
    counter = _Counter()
    with counter:
        fn()
    calls = dict(counter.calls)
    views = sum(v for k, v in calls.items() if k in VIEW_OPERATORS)
    return OperatorCount(
        by_name=calls,
        total=sum(calls.values()) - views,
        casts=calls.get("aten._to_copy", 0),
        views=views,
        host_syncs=sum(v for k, v in calls.items() if k in SYNC_OPERATORS) + counter.boolean_indexing,
    )

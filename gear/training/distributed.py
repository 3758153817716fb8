"""Distributed helpers: identities in a single process, ``torch.distributed`` under ``torchrun``."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


# --------------------------------------------------------------------------------------------
# Distributed helpers (identity in a single process)
# --------------------------------------------------------------------------------------------
def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


@torch.no_grad()
def all_gather(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` from every process along dim 0 (rank order); no gradient."""
    if not is_distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


@torch.no_grad()
def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum over processes (a copy; no gradient)."""
    tensor = tensor.detach().clone()
    if is_distributed():
        dist.all_reduce(tensor)
    return tensor


def gather_objects(obj: Any) -> list[Any]:
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def select_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def init_distributed() -> None:
    """Join the process group torchrun describes (WORLD_SIZE > 1); nccl on GPU, gloo on CPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not is_distributed():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def no_buffer_sync() -> dict:
    """DDP keyword that turns off per-forward buffer broadcasts: the queues are identical on every
    rank by construction (all-gathered features), so broadcasting them would only cost time."""
    import inspect

    params = inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
    return (
        {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
    )

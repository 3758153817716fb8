"""Model FLOPs of a GeAR training step and of encoding, counted analytically (matrix products only).

The formula is in the package docstring (``gear.tools.bench``); ``tests/test_bench.py`` checks it
against ``torch.utils.flop_counter.FlopCounterMode`` on a real step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from gear.model.modeling import GearConfig

log = logging.getLogger(__name__)


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

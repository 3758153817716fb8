"""Unit localization from the fusion encoder's cross-attention (paper §3.5, SPEC 6).

:func:`localize_units` (:func:`unit_scores` for the scores alone) and :func:`token_weights`
(Figure 3); the reductions are described in the package docstring (``gear.inference``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gear.encoding import length_sorted_order
from gear.inference.encoder import _autocast, _to
from gear.model.modeling import GearModel
from gear.model.tokens import DOCUMENT_PAD_MULTIPLE, encode_texts, pad_sequences, padded_length

REDUCTIONS = ("mean", "max")
UNIT_REDUCTIONS = ("sum", "mean", "max")


@dataclass
class LocalizationConfig:
    """How cross-attention becomes unit scores; mirrors the config's ``gear.localization``."""

    layer: int  # 1-based cross-attention layer of the fusion encoder
    head_reduction: str = "mean"  # mean | max over heads
    query_reduction: str = "mean"  # mean | max over query tokens (padding excluded)
    unit_reduction: str = "sum"  # sum | mean | max of a unit's token weights

    def __post_init__(self) -> None:
        if not isinstance(self.layer, int) or self.layer < 1:
            raise ValueError(f"localization.layer must be a 1-based layer number, got {self.layer!r}")
        for name, allowed in (
            ("head_reduction", REDUCTIONS),
            ("query_reduction", REDUCTIONS),
            ("unit_reduction", UNIT_REDUCTIONS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"localization.{name} {getattr(self, name)!r} is not one of {allowed}")


@dataclass
class TokenWeights:
    """Cross-attention weight of every document token (special tokens excluded) for one query."""

    tokens: list[str]
    offsets: list[tuple[int, int]]  # character spans into the document
    weights: np.ndarray  # float32, one per token


def _encode_documents_with_offsets(
    tokenizer: Any, documents: Sequence[str], max_length: int
) -> tuple[dict, list, list]:
    """Documents tokenised as the encoders see them, plus per-document offsets and special-token masks."""
    encoded = tokenizer(
        list(documents),
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        split_special_tokens=True,
    )
    ids = encoded["input_ids"]
    length = padded_length(max(len(seq) for seq in ids), DOCUMENT_PAD_MULTIPLE, max_length)
    input_ids = pad_sequences(ids, length, tokenizer.pad_token_id)
    mask = (np.arange(length)[None, :] < np.array([len(seq) for seq in ids])[:, None]).astype(np.int64)
    offsets = [np.asarray(o, dtype=np.int64).reshape(-1, 2) for o in encoded["offset_mapping"]]
    special = [np.asarray(s, dtype=bool) for s in encoded["special_tokens_mask"]]
    return (
        {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)},
        offsets,
        special,
    )


def _reduce_probabilities(probs: Tensor, query_mask: Tensor, localization: LocalizationConfig) -> Tensor:
    """``(B, heads, Lq, Ld)`` probabilities -> ``(B, Ld)`` weights (heads, then query tokens)."""
    per_query = probs.mean(1) if localization.head_reduction == "mean" else probs.amax(1)  # (B, Lq, Ld)
    valid = query_mask.bool()[:, :, None]
    if localization.query_reduction == "mean":
        return (per_query * valid).sum(1) / valid.sum(1).clamp(min=1)
    return per_query.masked_fill(~valid, float("-inf")).amax(1)


def normalised_entropy(probs: Tensor, query_mask: Tensor, document_mask: Tensor) -> Tensor:
    """Mean normalised entropy of cross-attention rows: 1 is uniform attention, 0 one token.

    Args:
        probs: ``(B, heads, Lq, Ld)`` probabilities (rows sum to one over the valid document tokens).
        query_mask, document_mask: ``(B, Lq)``, ``(B, Ld)`` padding masks.

    Returns:
        float32 ``(B,)``: per pair, the entropy of every (head, query token) row divided by
        ``log(number of document tokens)``, averaged over heads and valid query tokens.
    """
    probs = probs.float()
    entropy = -(probs * probs.clamp_min(1e-30).log()).sum(-1)  # (B, heads, Lq)
    tokens = document_mask.sum(1).clamp(min=2).to(torch.float32)
    per_row = entropy / tokens.log()[:, None, None]
    valid = query_mask.bool()[:, None, :].expand_as(per_row)
    return (per_row * valid).sum((1, 2)) / valid.sum((1, 2)).clamp(min=1)


@torch.inference_mode()
def _document_token_weights(
    model: GearModel,
    tokenizer: Any,
    queries: Sequence[str],
    documents: Sequence[str],
    layers: Sequence[int],
    localization: LocalizationConfig,
) -> tuple[
    dict[int, np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray], dict[int, np.ndarray]
]:
    """One forward pass: per layer ``(B, Ld)`` float32 weights, offsets, special masks, token ids,
    and per layer the ``(B,)`` mean normalised attention entropy (:func:`normalised_entropy`)."""
    cfg = model.config
    device = next(model.parameters()).device
    query = _to(encode_texts(tokenizer, queries, cfg.max_query_tokens), device)
    docs, offsets, special = _encode_documents_with_offsets(tokenizer, documents, cfg.max_document_tokens)
    token_ids = [row[: len(o)] for row, o in zip(docs["input_ids"].numpy(), offsets, strict=True)]
    docs = _to(docs, device)
    with _autocast(device):
        states = model.document_encoder(docs["input_ids"], docs["attention_mask"]).hidden_states
        fused = model.fuse(
            query["input_ids"], query["attention_mask"], states, docs["attention_mask"], layers
        )
    weights, entropies = {}, {}
    for layer in layers:
        probs = fused.cross_attentions[layer]
        weights[layer] = (
            _reduce_probabilities(probs, query["attention_mask"], localization).float().cpu().numpy()
        )
        entropies[layer] = (
            normalised_entropy(probs, query["attention_mask"], docs["attention_mask"]).cpu().numpy()
        )
    return weights, offsets, special, token_ids, entropies


def scores_of_units(
    weights: np.ndarray,
    offsets: np.ndarray,
    special: np.ndarray,
    units: Sequence[tuple[int, int]],
    reduction: str,
) -> np.ndarray:
    """Scores of a document's units from its token weights (vectorised).

    Args:
        weights: ``(T,)`` weight per encoded token (at least as long as ``offsets``).
        offsets: ``(T, 2)`` character spans of the encoded tokens.
        special: ``(T,)`` True for special tokens (never part of a unit).
        units: disjoint ``[start, end)`` character spans.
        reduction: ``sum`` | ``mean`` | ``max``.

    Returns:
        float64 ``(len(units),)``; ``-inf`` for units without any encoded token.
    """
    n_units = len(units)
    if n_units == 0:
        return np.zeros(0)
    spans = np.asarray(units, dtype=np.int64).reshape(-1, 2)
    order = np.argsort(spans[:, 0], kind="stable")
    starts, ends = spans[order, 0], spans[order, 1]
    if np.any(starts[1:] < ends[:-1]):
        raise ValueError("units overlap: unit spans must be disjoint [start, end) character ranges")
    keep = ~special & (offsets[:, 1] > offsets[:, 0])
    token_start = offsets[keep, 0]
    token_weight = weights[: len(offsets)][keep].astype(np.float64)
    slot = np.searchsorted(starts, token_start, side="right") - 1
    inside = (slot >= 0) & (token_start < ends[np.clip(slot, 0, None)])
    slot, token_weight = slot[inside], token_weight[inside]
    counts = np.bincount(slot, minlength=n_units)
    if reduction == "max":
        sorted_scores = np.full(n_units, -np.inf)
        np.maximum.at(sorted_scores, slot, token_weight)
    else:
        sorted_scores = np.bincount(slot, weights=token_weight, minlength=n_units)
        if reduction == "mean":
            sorted_scores = sorted_scores / np.maximum(counts, 1)
    sorted_scores[counts == 0] = -np.inf
    scores = np.empty(n_units)
    scores[order] = sorted_scores
    return scores


def _check_layers(model: GearModel, layers: Sequence[int]) -> list[int]:
    layers = sorted(set(int(layer) for layer in layers))
    depth = model.config.num_hidden_layers
    bad = [layer for layer in layers if not 1 <= layer <= depth]
    if bad or not layers:
        raise ValueError(
            f"cross-attention layers {bad or layers} are outside 1..{depth} (1-based) of this model"
        )
    return layers


@dataclass
class UnitScores:
    """What :func:`localize_units` returns for aligned (query, document, units) pairs.

    by_layer: layer -> one float64 array per pair, one score per unit (``-inf``: not reached).
    entropy: layer -> float32 ``(pairs,)`` mean normalised attention entropy (1 = uniform).
    uniform: per pair, the scores uniform attention would give under the same reductions: the
        number of encoded tokens of each unit for ``sum``, 1 for ``mean`` and ``max`` (SPEC 6:
        the unit-length ranking every GeAR localization figure is read against).
    """

    by_layer: dict[int, list[np.ndarray]]
    entropy: dict[int, np.ndarray]
    uniform: list[np.ndarray]


def localize_units(
    model: GearModel,
    tokenizer: Any,
    queries: Sequence[str],
    documents: Sequence[str],
    units: Sequence[Sequence[tuple[int, int]]],
    layers: Sequence[int],
    localization: LocalizationConfig,
    batch_size: int = 16,
) -> UnitScores:
    """Score every unit of each (query, document) pair by cross-attention, at every requested layer.

    Args:
        queries, documents, units: aligned; ``units[i]`` are ``documents[i]``'s unit spans.
        layers: 1-based fusion layers (all computed in one pass; ``localization.layer`` is not
            implied: pass it here).
        localization: head, query and unit reductions.
        batch_size: pairs per forward pass.

    Returns:
        :class:`UnitScores`: the scores per layer, the attention entropy per layer and pair, and
        the uniform-attention (unit length) scores of the same pairs.
    """
    if not len(queries) == len(documents) == len(units):
        raise ValueError(
            f"localize_units: {len(queries)} queries, {len(documents)} documents, {len(units)} unit lists"
        )
    layers = _check_layers(model, layers)
    n = len(queries)
    scores: dict[int, list[np.ndarray | None]] = {layer: [None] * n for layer in layers}
    entropy = {layer: np.zeros(n, dtype=np.float32) for layer in layers}
    uniform: list[np.ndarray | None] = [None] * n
    order = length_sorted_order([len(d) for d in documents])
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        weights, offsets, special, _, entropies = _document_token_weights(
            model, tokenizer, [queries[i] for i in rows], [documents[i] for i in rows], layers, localization
        )
        for j, row in enumerate(rows):
            for layer in layers:
                scores[layer][row] = scores_of_units(
                    weights[layer][j], offsets[j], special[j], units[row], localization.unit_reduction
                )
                entropy[layer][row] = entropies[layer][j]
            ones = np.ones(len(offsets[j]), dtype=np.float32)
            uniform[row] = scores_of_units(
                ones, offsets[j], special[j], units[row], localization.unit_reduction
            )
    return UnitScores(scores, entropy, uniform)  # type: ignore[arg-type]


def unit_scores(
    model: GearModel,
    tokenizer: Any,
    queries: Sequence[str],
    documents: Sequence[str],
    units: Sequence[Sequence[tuple[int, int]]],
    layers: Sequence[int],
    localization: LocalizationConfig,
    batch_size: int = 16,
) -> dict[int, list[np.ndarray]]:
    """The per-layer unit scores of :func:`localize_units` alone."""
    return localize_units(
        model, tokenizer, queries, documents, units, layers, localization, batch_size
    ).by_layer


def token_weights(
    model: GearModel, tokenizer: Any, query: str, document: str, localization: LocalizationConfig
) -> TokenWeights:
    """Per-token cross-attention weights of ``document`` for ``query`` at ``localization.layer`` (Figure 3)."""
    layer = _check_layers(model, [localization.layer])[0]
    weights, offsets, special, token_ids, _ = _document_token_weights(
        model, tokenizer, [query], [document], [layer], localization
    )
    keep = ~special[0]
    ids = token_ids[0][keep]
    return TokenWeights(
        tokens=tokenizer.convert_ids_to_tokens(ids.tolist()),
        offsets=[tuple(map(int, span)) for span in offsets[0][keep]],
        weights=weights[layer][0][: len(offsets[0])][keep].astype(np.float32),
    )

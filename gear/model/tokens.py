"""Tokenising texts for GeAR's encoders and decoder, padded to bucket lengths.

Encoders see ``[CLS] ... [SEP]`` padded to a multiple of 16 (documents) or 8 (queries, targets),
capped at the maximum length, so the model sees few distinct shapes (kernel caches,
``torch.compile``). Training (``gear.training.triples``) and inference share these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gear.hub import bert_tokenizer_config

DOCUMENT_PAD_MULTIPLE = 16
TEXT_PAD_MULTIPLE = 8
IGNORE_INDEX = -100


def load_fast_tokenizer(folder: str | Path) -> Any:
    """``AutoTokenizer.from_pretrained(folder, use_fast=True)``, without transformers' auto module
    where that changes nothing: a folder AutoTokenizer would give ``BertTokenizerFast``
    (:func:`gear.hub.bert_tokenizer_config`: every GeAR save, MiniLM, bert-base) gets that class
    directly; any other goes through AutoTokenizer.
    """
    if bert_tokenizer_config(folder) is not None:
        from transformers import BertTokenizerFast

        return BertTokenizerFast.from_pretrained(str(folder))
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), use_fast=True)


def padded_length(longest: int, multiple: int, cap: int) -> int:
    """``longest`` rounded up to a multiple of ``multiple``, at most ``cap`` (and at least 1)."""
    return max(1, min(cap, -(-longest // multiple) * multiple))


def pad_sequences(sequences: Sequence[Sequence[int]], length: int, value: int) -> np.ndarray:
    """Right-pad (or cut) integer sequences into an ``(n, length)`` int64 array."""
    out = np.full((len(sequences), length), value, dtype=np.int64)
    for row, seq in enumerate(sequences):
        seq = seq[:length]
        out[row, : len(seq)] = seq
    return out


def encode_texts(
    tokenizer: Any, texts: Sequence[str], max_length: int, multiple: int = TEXT_PAD_MULTIPLE
) -> dict[str, torch.Tensor]:
    """Tokenise texts for an encoder: ``[CLS] ... [SEP]``, truncated, padded to a bucket length.

    Special-token strings inside the text (a literal "[SEP]" or "[DEC]") are tokenised as text
    (``split_special_tokens``), so no text can inject control tokens.

    Returns:
        ``input_ids`` int64 ``(n, L)`` and ``attention_mask`` int64 ``(n, L)``.
    """
    ids = tokenizer(
        list(texts),
        add_special_tokens=True,
        truncation=True,
        max_length=max_length,
        split_special_tokens=True,
    )["input_ids"]
    length = padded_length(max(len(seq) for seq in ids), multiple, max_length)
    input_ids = pad_sequences(ids, length, tokenizer.pad_token_id)
    mask = np.zeros_like(input_ids)
    for row, seq in enumerate(ids):
        mask[row, : len(seq)] = 1
    return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}


def encode_targets(
    tokenizer: Any, targets: Sequence[str], max_length: int, start_id: int, end_id: int
) -> dict[str, torch.Tensor]:
    """Decoder inputs and labels: ``[DEC] t1 .. tn`` -> ``t1 .. tn [SEP]`` (n <= max_length - 1).

    Returns:
        ``target_input`` int64 ``(n, T)`` (padding id after the end) and ``target_labels``
        int64 ``(n, T)`` with -100 at padding.
    """
    ids = tokenizer(
        list(targets),
        add_special_tokens=False,
        truncation=True,
        max_length=max_length - 1,
        split_special_tokens=True,
    )["input_ids"]
    length = padded_length(max(len(seq) for seq in ids) + 1, TEXT_PAD_MULTIPLE, max_length)
    inputs = pad_sequences([[start_id, *seq] for seq in ids], length, tokenizer.pad_token_id)
    labels = pad_sequences([[*seq, end_id] for seq in ids], length, IGNORE_INDEX)
    return {"target_input": torch.from_numpy(inputs), "target_labels": torch.from_numpy(labels)}

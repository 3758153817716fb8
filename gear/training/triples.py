"""GeAR's training data: reading triples, tokenising, deterministic length-bucketed batches.

A triples file is JSON Lines (ARCHITECTURE.md "Training triples")::

    {"query_id": "...", "query": "...", "doc_id": "...", "document": "...", "target": "..."}

:class:`TripleFile` indexes the byte offset of every line once and reads lines on demand, so a
30M-line file costs a few hundred MB of offsets, not its text, in memory. Each line is checked
when read; a bad one raises ``DataFormatError`` naming ``file:line``.

:class:`EpochPlan` fixes the order of an epoch from ``(seed, epoch)`` alone: a seeded permutation,
cut into chunks of ``chunk_batches`` global batches, each chunk sorted by length, cut into global
batches, whose order is then shuffled. Batches hold texts of similar length (less padding) while
the epoch stays shuffled, and a resumed run replays exactly the same batches. The length used for
sorting is the line's byte length (mostly the document): no tokenisation pass over the file. The
last incomplete global batch of an epoch is dropped, so every batch is full (the feature queue
and DDP both need equal batches).

:class:`TripleCollator` tokenises a batch and pads it to a multiple of 16 (documents) or 8
(queries, targets), capped at the maximum length, so the model sees few distinct shapes (kernel
caches, ``torch.compile``). Under several processes every rank plans the same global batches and
takes its slice (:meth:`EpochPlan.rank_batches`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gear.io import DataFormatError, require_fields
from gear.model.tokens import DOCUMENT_PAD_MULTIPLE, encode_targets, encode_texts

TRIPLE_FIELDS = {"query_id": str, "query": str, "doc_id": str, "document": str, "target": str}


def doc_id_key(doc_id: str) -> int:
    """A stable non-negative 62-bit integer for a document id (queue positives compare these).

    Hash collisions between two different ids have probability ~n^2 / 2^63: negligible.
    """
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 2


class TripleFile(torch.utils.data.Dataset):
    """Random access to the triples of a JSON Lines file (``dataset[i]`` -> dict with ``line``)."""

    def __init__(self, path: str | os.PathLike, chunk_bytes: int = 1 << 26):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: training triples file not found")
        # One vectorised pass over newline positions: ~12 bytes of index per triple, no Python
        # object per line (30M triples: ~360 MB).
        # The same pass hashes the whole content (the resume fingerprint: a same-size edit anywhere
        # in the file must not resume a checkpoint trained on other data).
        ends, position, digest = [], 0, hashlib.sha256()
        with open(self.path, "rb") as handle:
            while chunk := handle.read(chunk_bytes):
                ends.append(np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10) + position + 1)
                digest.update(chunk)
                position += len(chunk)
        self._sha256, self._size = digest.hexdigest(), position
        line_ends = np.concatenate([*ends, np.array([position], dtype=np.int64)]).astype(np.int64)
        line_ends = np.unique(line_ends)  # a final newline and the file's end coincide
        line_starts = np.concatenate([[0], line_ends[:-1]])
        nonblank = (line_ends - line_starts) > 0
        # Only short lines can be blank (white space only); no triple fits in 64 bytes.
        with open(self.path, "rb") as handle:
            short = np.flatnonzero(nonblank & ((line_ends - line_starts) <= 64))
            for i in short:
                handle.seek(int(line_starts[i]))
                nonblank[i] = bool(handle.read(int(line_ends[i] - line_starts[i])).strip())
        self.offsets = line_starts[nonblank]
        self.byte_lengths = (line_ends - line_starts)[nonblank].astype(np.int32)
        if not len(self.offsets):
            raise DataFormatError(f"{self.path}: no triples (the file is empty)")
        self._handle = None
        self._pid = None

    def line_number(self, index: int) -> int:
        """1-based line of triple ``index`` (counted on demand: only error messages need it)."""
        count, remaining = 1, int(self.offsets[index])
        with open(self.path, "rb") as handle:
            while remaining > 0:
                block = handle.read(min(remaining, 1 << 24))
                count += block.count(b"\n")
                remaining -= len(block)
        return count

    def __len__(self) -> int:
        return len(self.offsets)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handle"], state["_pid"] = None, None  # DataLoader workers open their own handle
        return state

    def _file(self):
        if self._handle is None or self._pid != os.getpid():
            self._handle = open(self.path, "rb")  # kept open for the dataset's life
            self._pid = os.getpid()
        return self._handle

    def __getitem__(self, index: int) -> dict:
        handle = self._file()
        handle.seek(int(self.offsets[index]))
        raw = handle.read(int(self.byte_lengths[index]))
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise DataFormatError(
                f"{self.path}:{self.line_number(index)}: not valid UTF-8 ({err.reason})"
            ) from err
        except json.JSONDecodeError as err:
            raise DataFormatError(
                f"{self.path}:{self.line_number(index)}:{err.colno}: malformed JSON: {err.msg}"
            ) from err
        if not isinstance(obj, dict):
            raise DataFormatError(
                f"{self.path}:{self.line_number(index)}: expected a JSON object, got {type(obj).__name__}"
            )
        if not all(isinstance(obj.get(name), str) for name in TRIPLE_FIELDS):
            require_fields(obj, TRIPLE_FIELDS, f"{self.path}:{self.line_number(index)}")
        return obj

    def fingerprint(self) -> dict:
        """Identifies the file's content: size, triple count and the SHA-256 of every byte, as read
        when the file was indexed (no second pass; BENCHMARKS.md has the cost on 1 GB)."""
        return {"size": self._size, "triples": len(self), "sha256": self._sha256}


@dataclass(frozen=True)
class EpochPlan:
    """Deterministic global batches of every epoch.

    Args:
        lengths: a length per triple (sorting key within chunks).
        global_batch: triples per global micro-batch (per-process batch x processes).
        micro_batches_per_epoch: how many global micro-batches an epoch uses (whole optimizer steps).
        seed: run seed; epoch ``e`` uses ``np.random.default_rng([seed, e])``.
        chunk_batches: global batches per sorted chunk (more: less padding, less shuffling).
    """

    lengths: np.ndarray
    global_batch: int
    micro_batches_per_epoch: int
    seed: int
    chunk_batches: int = 50

    def epoch_batches(self, epoch: int) -> np.ndarray:
        """``(micro_batches_per_epoch, global_batch)`` triple indices of epoch ``epoch`` (0-based)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        usable = (len(order) // self.global_batch) * self.global_batch
        chunk = self.global_batch * self.chunk_batches
        pieces = []
        for start in range(0, usable, chunk):
            block = order[start : min(start + chunk, usable)]
            pieces.append(block[np.argsort(-self.lengths[block], kind="stable")])
        batches = np.concatenate(pieces).reshape(-1, self.global_batch)
        batches = batches[rng.permutation(len(batches))]
        return batches[: self.micro_batches_per_epoch]

    def rank_batches(self, epoch: int, rank: int, world_size: int, start: int = 0) -> np.ndarray:
        """This rank's slice ``(batches, batch / world_size)`` of every global micro-batch of
        ``epoch``, from micro-batch ``start`` on."""
        per_rank = self.global_batch // world_size
        return self.epoch_batches(epoch)[start:, rank * per_rank : (rank + 1) * per_rank]


@dataclass
class TripleCollator:
    """Turns a list of triples into the tensors of one training batch.

    Output keys: ``query_ids``, ``query_mask`` ``(B, Lq)``; ``document_ids``, ``document_mask``
    ``(B, Ld)``; ``target_input``, ``target_labels`` ``(B, T)``; ``doc_keys`` ``(B,)``
    (:func:`doc_id_key` of each triple's ``doc_id``).
    """

    tokenizer: Any
    max_query_tokens: int
    max_document_tokens: int
    max_target_tokens: int
    decoder_start_token_id: int
    eos_token_id: int

    def __call__(self, triples: list[dict]) -> dict[str, torch.Tensor]:
        queries = encode_texts(self.tokenizer, [t["query"] for t in triples], self.max_query_tokens)
        documents = encode_texts(
            self.tokenizer, [t["document"] for t in triples], self.max_document_tokens, DOCUMENT_PAD_MULTIPLE
        )
        targets = encode_targets(
            self.tokenizer,
            [t["target"] for t in triples],
            self.max_target_tokens,
            self.decoder_start_token_id,
            self.eos_token_id,
        )
        return {
            "query_ids": queries["input_ids"],
            "query_mask": queries["attention_mask"],
            "document_ids": documents["input_ids"],
            "document_mask": documents["attention_mask"],
            **targets,
            "doc_keys": torch.tensor([doc_id_key(t["doc_id"]) for t in triples], dtype=torch.int64),
        }


class ListBatchSampler(torch.utils.data.Sampler):
    """Yields the rows of a precomputed ``(batches, batch)`` index array as lists (a DataLoader's
    ``batch_sampler``), one row at a time."""

    def __init__(self, batches: np.ndarray):
        self.batches = batches

    def __iter__(self) -> Iterator[list[int]]:
        return (row.tolist() for row in self.batches)

    def __len__(self) -> int:
        return len(self.batches)

"""Retrieval with a trained GeAR: :class:`GearEncoder` and :func:`load_gear`.

:class:`GearEncoder` is the bi-encoder alone as a ``gear.encoding.TextEncoder`` (mean-pooled,
L2-normalised embeddings of ``Eq`` and ``Ed``); batches are tokenised ahead in a background thread
and the vectors stay on the device, copied to the host in large chunks (design in its docstring).
On CUDA the forward passes run under bf16 autocast; on CPU in float32.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gear.encoding import TextEncoder, length_sorted_order
from gear.hub import default_device
from gear.io import file_sha256
from gear.model.modeling import WEIGHTS_NAME, GearModel, gear_model_folder
from gear.model.tokens import (
    DOCUMENT_PAD_MULTIPLE,
    TEXT_PAD_MULTIPLE,
    encode_texts,
    load_fast_tokenizer,
    padded_length,
)


def _autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def load_gear(
    model_dir: str | Path, device: str | None = None, revision: str | None = None
) -> tuple[GearModel, Any]:
    """Load a saved GeAR folder, or a hub id at ``revision`` (:func:`gear_model_folder`): the model
    in eval mode on ``device`` (default CUDA when present) and its tokenizer."""
    model_dir = gear_model_folder(model_dir, revision)
    model = GearModel.from_pretrained(
        model_dir, device=torch.device(device if device is not None else default_device())
    )
    tokenizer = load_fast_tokenizer(model_dir)
    start = model.config.extra.get("decoder_start_token", "[DEC]")
    if tokenizer.convert_tokens_to_ids(start) != model.config.decoder_start_token_id:
        raise ValueError(
            f"{model_dir}: the tokenizer maps {start!r} to {tokenizer.convert_tokens_to_ids(start)}, the model "
            f"expects {model.config.decoder_start_token_id}: tokenizer files and weights come from different saves"
        )
    return model, tokenizer


def _to(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


#: name of the thread that tokenises ahead of the model in :meth:`GearEncoder._encode`
TOKENIZER_THREAD_NAME = "gear-encoder-tokenizer"
#: bytes of device memory that hold vectors before they are copied to the host (one chunk)
_DEVICE_CHUNK_BYTES = 256 << 20
#: how long a blocked put/get waits before it looks at the other side again (seconds)
_POLL_S = 0.05


def _split_batches(group: dict[str, Tensor], batch_size: int, multiple: int, max_length: int):
    """Cut a tokenised group (padded to its longest text) into batches, each padded as
    :func:`gear.model.tokens.encode_texts` pads it alone: to its own longest text, rounded up to ``multiple``.

    Beyond each text's tokens the group holds padding ids and a zero mask, so the first
    ``length`` columns of a batch are exactly what ``encode_texts`` returns for it.
    """
    lengths = group["attention_mask"].sum(1)
    for start in range(0, len(lengths), batch_size):
        stop = start + batch_size
        length = padded_length(int(lengths[start:stop].max()), multiple, max_length)
        yield {key: value[start:stop, :length].contiguous() for key, value in group.items()}


def _tokenised_batches(
    tokenizer: Any,
    texts: Sequence[str],
    order: np.ndarray,
    batch_size: int,
    max_length: int,
    multiple: int,
    group_texts: int,
    pin: bool,
) -> Iterator[tuple[int, dict[str, Tensor]]]:
    """``(position in order, batch)`` for consecutive batches of ``order``, tokenised a group at a time.

    A group is ``group_texts`` texts rounded down to whole batches (at least one batch); the first
    group is a single batch so that the model starts at once. ``pin``: batches in pinned memory.
    """
    group = max(1, group_texts // batch_size) * batch_size
    bounds, start = [], 0
    while start < len(order):
        stop = min(len(order), start + (batch_size if not bounds else group))
        bounds.append((start, stop))
        start = stop
    for start, stop in bounds:
        tokens = encode_texts(tokenizer, [texts[i] for i in order[start:stop]], max_length, multiple)
        for offset, batch in enumerate(_split_batches(tokens, batch_size, multiple, max_length)):
            if pin:
                batch = {key: value.pin_memory() for key, value in batch.items()}
            yield start + offset * batch_size, batch


@dataclass
class _Failure:
    """An exception raised in the producer thread, carried to the consumer."""

    error: BaseException


_DONE = object()


class _Prefetcher:
    """Runs an iterator in a background thread, ``maxsize`` items ahead, as a context manager.

    Iterating yields the items in order; an exception of the iterator re-raises in the caller
    (same object, so same type, message and traceback, with the caller's frames added). Leaving
    the ``with`` block, normally or by an exception, stops the thread and joins it: a producer
    blocked on the full queue notices the stop within ``_POLL_S``; one inside a tokenizer call
    finishes that call first. A producer that dies without a result cannot hang the caller.
    """

    def __init__(self, items: Iterable[Any], maxsize: int, name: str = TOKENIZER_THREAD_NAME):
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)

    def __enter__(self) -> Iterator[Any]:
        self._thread.start()
        return self._consume()

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as error:  # every failure reaches the caller, none hangs it
            self._put(_Failure(error))

    def _get(self) -> Any:
        while True:
            try:
                return self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if not self._thread.is_alive():
                    try:
                        return self._queue.get_nowait()
                    except queue.Empty:
                        raise RuntimeError(f"{self._thread.name} ended without a result") from None

    def _consume(self) -> Iterator[Any]:
        while True:
            item = self._get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item


class _SortedRows:
    """Vectors in length-sorted order, kept on the device and copied to the host in large chunks.

    ``put`` writes a batch into a preallocated float32 device buffer at its sorted positions
    (no host synchronisation); when the buffer is full, and at ``finish``, its rows go to the
    host in one copy and are scattered to their input rows (``out[order[...]]``).
    """

    def __init__(self, out: np.ndarray, order: np.ndarray, device: torch.device, batch_size: int):
        self.out, self.order = out, order
        row_bytes = out.shape[1] * out.itemsize
        rows = max(batch_size, _DEVICE_CHUNK_BYTES // row_bytes // batch_size * batch_size)
        self.buffer = torch.empty((min(rows, len(order)), out.shape[1]), dtype=torch.float32, device=device)
        self.chunk_start = self.next = 0

    def put(self, start: int, vectors: Tensor) -> None:
        if start != self.next:
            raise RuntimeError(f"batches out of order: expected position {self.next}, got {start}")
        stop = start + len(vectors)
        if stop - self.chunk_start > len(self.buffer):
            self._flush()
        self.buffer[start - self.chunk_start : stop - self.chunk_start].copy_(vectors)
        self.next = stop

    def _flush(self) -> None:
        count = self.next - self.chunk_start
        if count:
            self.out[self.order[self.chunk_start : self.next]] = self.buffer[:count].cpu().numpy()
        self.chunk_start = self.next

    def finish(self) -> np.ndarray:
        if self.next != len(self.order):
            raise RuntimeError(f"encoded {self.next} of {len(self.order)} texts")
        self._flush()
        return self.out


class GearEncoder(TextEncoder):
    """GeAR's bi-encoder as a :class:`gear.encoding.TextEncoder` (retrieval only).

    Encoding path (``_encode``): texts are sorted by decreasing length (each batch pads little;
    :func:`gear.encoding.length_sorted_order`) and cut into batches of ``batch_size``, each
    padded to a multiple of 16 tokens (documents) or 8 (queries) exactly as
    :func:`gear.model.tokens.encode_texts` pads it alone.

    - **Tokenising ahead** (``prefetch=True``, the default): one background thread (named
      :data:`TOKENIZER_THREAD_NAME`) tokenises groups of ``tokenize_group`` texts per tokenizer
      call (the fast tokenizer releases the GIL and spreads a call over its own threads; the
      first group is one batch so the model starts at once), splits them into batches and puts
      them into a bounded queue (two groups deep, so memory stays bounded for any input). On
      CUDA the batches are put in pinned memory there and copied with ``non_blocking=True``.
    - **Vectors stay on the device**: each batch's vectors are written into a preallocated
      float32 buffer at their sorted positions; the buffer goes to the host in one copy per
      ``_DEVICE_CHUNK_BYTES`` (256 MiB, about 87,000 vectors of 768) and at the end, where rows
      are put back in input order. Nothing synchronises the host with the device per batch, so
      the host queues work ahead of the GPU and pauses of the Python thread (tokenising, the
      GIL) do not leave the GPU idle.
    - **Failures**: an exception in the tokenizer thread re-raises in the caller (the same
      exception object and traceback); an exception in the caller (e.g. out of memory) stops the
      thread and joins it before it propagates; the caller never waits on a dead thread.
    - ``prefetch=False``: the same batches tokenised in the calling thread, one group at a time
      (no thread; for debugging and profiling). Both paths give identical vectors.

    The result is float32 ``(len(texts), hidden)``, rows in input order, the same values as
    encoding each batch and copying it to the host at once.

    Example:
        >>> encoder = GearEncoder("results/mini/models/GeAR/qar/model")  # doctest: +SKIP
        >>> encoder.encode_queries(["who wrote hamlet?"]).shape  # doctest: +SKIP
        (1, 384)
    """

    #: tokenise in a background thread (class defaults too: subclasses may skip ``__init__``)
    prefetch: bool = True
    #: texts per tokenizer call, rounded down to whole batches (at least one batch)
    tokenize_group: int = 1024

    def __init__(
        self, model_dir: str | Path, name: str = "GeAR", device: str | None = None, prefetch: bool = True
    ):
        self.model_dir = gear_model_folder(model_dir)  # a hub id: its folder in the HF cache
        self.name = name
        self.model, self.tokenizer = load_gear(self.model_dir, device)
        self.device = next(self.model.parameters()).device
        self.prefetch = prefetch
        self._fingerprint: str | None = None

    @torch.inference_mode()
    def _encode(self, texts: Sequence[str], batch_size: int, queries: bool) -> np.ndarray:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        cfg = self.model.config
        max_length = cfg.max_query_tokens if queries else cfg.max_document_tokens
        embed = self.model.embed_queries if queries else self.model.embed_documents
        multiple = TEXT_PAD_MULTIPLE if queries else DOCUMENT_PAD_MULTIPLE
        out = np.zeros((len(texts), cfg.hidden_size), dtype=np.float32)
        if not len(texts):
            return out
        order = length_sorted_order([len(t) for t in texts])
        batches = _tokenised_batches(
            self.tokenizer,
            texts,
            order,
            batch_size,
            max_length,
            multiple,
            self.tokenize_group,
            pin=self.device.type == "cuda",
        )
        rows = _SortedRows(out, order, self.device, batch_size)

        def run(ready: Iterable[tuple[int, dict[str, Tensor]]]) -> None:
            for start, batch in ready:
                batch = _to(batch, self.device)
                with _autocast(self.device):
                    vectors = embed(batch["input_ids"], batch["attention_mask"])
                rows.put(start, vectors)

        if self.prefetch:
            per_group = max(1, self.tokenize_group // batch_size)
            with _Prefetcher(batches, maxsize=2 * per_group) as ready:
                run(ready)
        else:
            run(batches)
        return rows.finish()

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self._encode(texts, batch_size, queries=True)

    def encode_documents(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self._encode(texts, batch_size, queries=False)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            cfg = self.model.config
            precision = "bf16" if self.device.type == "cuda" else "fp32"
            self._fingerprint = (
                f"gear:{file_sha256(self.model_dir / WEIGHTS_NAME)[:16]}:q{cfg.max_query_tokens}:"
                f"d{cfg.max_document_tokens}:mean:{precision}"
            )
        return self._fingerprint

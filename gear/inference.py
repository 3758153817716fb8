"""Using a trained GeAR (paper §3.5, SPEC 6): retrieval, unit localization, generation.

- **Retrieval**: :class:`GearEncoder`, the bi-encoder alone as a ``gear.encoding.TextEncoder``
  (mean-pooled, L2-normalised embeddings of ``Eq`` and ``Ed``); batches are tokenised ahead in a
  background thread and the vectors stay on the device, copied to the host in large chunks (design
  in its docstring).
- **Localization**: :func:`localize_units` (:func:`unit_scores` for the scores alone). The fusion encoder's cross-attention probabilities at a
  layer (1-based; SPEC: 10 of 12) are reduced over heads (mean or max) and over the query's
  tokens (mean or max, padding excluded; the query's [CLS] and [SEP] count as query tokens) to one
  weight per document token. Tokens map to units by the tokenizer's offset mapping: a token
  belongs to the unit whose span holds its first character; special tokens and padding belong to
  none. A unit's score is the sum (or mean, max) of its tokens' weights; units that no encoded
  token reaches (cut off by truncation) score ``-inf``. Every requested layer comes from one
  forward pass. Beside the scores it returns what uniform attention would give on the same pairs
  (the unit-length ranking) and the mean normalised attention entropy: SPEC 6 reads every GeAR
  localization figure against them. :func:`token_weights` gives the per-token weights of one pair (Figure 3).
- **Generation**: :func:`generate`, greedy decoding from ``[DEC]`` by default, beam search
  (``num_beams > 1``) as an option, batched, with a KV cache (the encoders and the fusion pass run
  once per batch; the decoder's cross-attention keys and values are computed once). Beam scores
  are summed log-probabilities (no length penalty); a finished beam keeps its score.

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

from gear.data import DOCUMENT_PAD_MULTIPLE, TEXT_PAD_MULTIPLE, encode_texts, pad_sequences, padded_length
from gear.encoding import TextEncoder, length_sorted_order
from gear.modeling import WEIGHTS_NAME, GearModel, LayerCache

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


def _device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def load_gear(model_dir: str | Path, device: str | None = None) -> tuple[GearModel, Any]:
    """Load a saved GeAR folder (model in eval mode on ``device``, default CUDA when present) and its tokenizer."""
    from transformers import AutoTokenizer

    model = GearModel.from_pretrained(model_dir, device=_device(device))
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), use_fast=True)
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
    :func:`gear.data.encode_texts` pads it alone: to its own longest text, rounded up to ``multiple``.

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
    :func:`gear.data.encode_texts` pads it alone.

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
        self.model_dir = Path(model_dir)
        self.name = name
        self.model, self.tokenizer = load_gear(model_dir, device)
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
            from gear.io import file_sha256

            cfg = self.model.config
            precision = "bf16" if self.device.type == "cuda" else "fp32"
            self._fingerprint = (
                f"gear:{file_sha256(self.model_dir / WEIGHTS_NAME)[:16]}:q{cfg.max_query_tokens}:"
                f"d{cfg.max_document_tokens}:mean:{precision}"
            )
        return self._fingerprint


# --------------------------------------------------------------------------------------------
# Localization
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------
@torch.inference_mode()
def greedy_decode(model: GearModel, fused_states: Tensor, fused_mask: Tensor, max_new_tokens: int) -> Tensor:
    """Greedy decoding from ``[DEC]``.

    Args:
        fused_states: ``(B, Lq, H)`` fusion encoder output; fused_mask ``(B, Lq)``.

    Returns:
        int64 ``(B, T)`` generated ids (T <= max_new_tokens), padding after each row's ``[SEP]``.
    """
    cfg = model.config
    batch = fused_states.shape[0]
    last = torch.full((batch, 1), cfg.decoder_start_token_id, dtype=torch.long, device=fused_states.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=fused_states.device)
    cache: list[LayerCache] | None = None
    out = []
    for _ in range(max_new_tokens):
        logits, cache = model.decoder_step(last, fused_states if cache is None else None, fused_mask, cache)
        token = logits.argmax(-1).masked_fill(finished, cfg.pad_token_id)
        out.append(token)
        finished |= token == cfg.eos_token_id
        last = token[:, None]
        if bool(finished.all()):
            break
    return (
        torch.stack(out, 1) if out else torch.zeros((batch, 0), dtype=torch.long, device=fused_states.device)
    )


@torch.inference_mode()
def beam_search(
    model: GearModel, fused_states: Tensor, fused_mask: Tensor, max_new_tokens: int, num_beams: int
) -> Tensor:
    """Beam search from ``[DEC]``: ``num_beams`` hypotheses per row, the best returned.

    Scores are summed log-probabilities; a finished beam continues with padding at no cost, so
    its score stays fixed while the others extend. With one beam this is greedy decoding.

    Returns:
        int64 ``(B, T)`` ids of the best beam, padding after its ``[SEP]``.
    """
    cfg = model.config
    batch, device = fused_states.shape[0], fused_states.device
    vocab = cfg.decoder_vocab_size
    beams = num_beams
    states = fused_states.repeat_interleave(beams, 0)
    mask = fused_mask.repeat_interleave(beams, 0)
    scores = torch.zeros(batch, beams, device=device)
    scores[:, 1:] = float("-inf")  # every beam starts identical: expand the first one only
    finished = torch.zeros(batch * beams, dtype=torch.bool, device=device)
    frozen = torch.full((vocab,), float("-inf"), device=device)
    frozen[cfg.pad_token_id] = 0.0
    history = torch.zeros((batch * beams, 0), dtype=torch.long, device=device)
    last = torch.full((batch * beams, 1), cfg.decoder_start_token_id, dtype=torch.long, device=device)
    base = (torch.arange(batch, device=device) * beams)[:, None]
    cache: list[LayerCache] | None = None
    for _ in range(max_new_tokens):
        logits, cache = model.decoder_step(last, states if cache is None else None, mask, cache)
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        log_probs = torch.where(finished[:, None], frozen, log_probs)
        candidates = (scores.reshape(-1, 1) + log_probs).view(batch, beams * vocab)
        scores, flat = candidates.topk(beams, dim=1)
        source = (base + flat // vocab).view(-1)
        token = (flat % vocab).view(-1)
        history = torch.cat([history[source], token[:, None]], 1)
        finished = finished[source] | (token == cfg.eos_token_id)
        # Beams of one row share the cross-attention keys and values: only self-attention is reordered.
        cache = [LayerCache(c.self_k[source], c.self_v[source], c.cross_k, c.cross_v) for c in cache]
        last = token[:, None]
        if bool(finished.all()):
            break
    return history.view(batch, beams, -1)[:, 0]  # topk sorts: beam 0 is the best


def generate(
    model: GearModel,
    tokenizer: Any,
    queries: Sequence[str],
    documents: Sequence[str],
    max_new_tokens: int,
    num_beams: int = 1,
    batch_size: int = 16,
) -> list[str]:
    """Generate the relevant text for each (query, document) pair (greedy, or beam search).

    Returns:
        one string per pair: the tokens before the first ``[SEP]``, special tokens dropped.
    """
    if len(queries) != len(documents):
        raise ValueError(f"generate: {len(queries)} queries but {len(documents)} documents")
    if num_beams < 1 or max_new_tokens < 1:
        raise ValueError("generate: num_beams and max_new_tokens must be at least 1")
    cfg = model.config
    device = next(model.parameters()).device
    texts: list[str] = [""] * len(queries)
    order = length_sorted_order([len(d) for d in documents])
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        query = _to(encode_texts(tokenizer, [queries[i] for i in rows], cfg.max_query_tokens), device)
        docs = _to(
            encode_texts(
                tokenizer, [documents[i] for i in rows], cfg.max_document_tokens, DOCUMENT_PAD_MULTIPLE
            ),
            device,
        )
        with torch.inference_mode(), _autocast(device):
            states = model.document_encoder(docs["input_ids"], docs["attention_mask"]).hidden_states
            fused = model.fuse(
                query["input_ids"], query["attention_mask"], states, docs["attention_mask"]
            ).hidden_states
            if num_beams == 1:
                ids = greedy_decode(model, fused, query["attention_mask"], max_new_tokens)
            else:
                ids = beam_search(model, fused, query["attention_mask"], max_new_tokens, num_beams)
        for row, seq in zip(rows, ids.cpu().tolist(), strict=True):
            if cfg.eos_token_id in seq:
                seq = seq[: seq.index(cfg.eos_token_id)]
            texts[row] = tokenizer.decode(seq, skip_special_tokens=True).strip()
    return texts

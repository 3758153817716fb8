"""GeAR, one model in one file: config, layers, the model, its losses, loading and saving.

GeAR (paper §3.3, SPEC 4) holds three BERT-sized stacks:

- the **query encoder** ``Eq`` (``GearModel.query_encoder``) and the **document encoder** ``Ed``
  (``GearModel.document_encoder``): bidirectional BERT encoders; a text's embedding is the mean of
  its last hidden states over non-padding tokens, L2-normalised for retrieval (the bi-encoder);
- the **fusion encoder**: ``Eq``'s own modules called in a second mode. Every layer of ``Eq`` owns
  one extra cross-attention block, used only in this mode: self-attention (still bidirectional),
  then cross-attention from the query tokens to ``Ed``'s last hidden states, then the feed-forward
  block. transformers' BERT only allows cross-attention in a causal decoder, hence this layer;
- the **text decoder**: causal self-attention, cross-attention to the fusion output, an LM head
  whose output matrix is tied to the decoder's word embeddings; every target starts with a new
  ``[DEC]`` token added to the tokenizer (one new row in the decoder's embedding only: the
  encoders never see it).

Attention goes through ``torch.nn.functional.scaled_dot_product_attention`` with one fused QKV
projection for self-attention and one fused KV projection for cross-attention (BERT's separate
query/key/value weights are concatenated into them when loading). The cross-attention
probabilities that localization needs (SPEC 6) are computed explicitly, and only for the layers a
caller asks for; every other layer keeps the fused kernel.

**Parameters at bert-base size** (hidden 768, 12 layers, 12 heads, FFN 3072, vocabulary 30,522;
``GearConfig()`` defaults; counted exactly by ``tests/gear/test_modeling.py``):

=====================================================  ===========
three BERT stacks without pooler (3 x 108,891,648)     326,674,944
[DEC] row of the decoder's embedding                          768
cross-attention blocks, fusion encoder (12 x 2,363,904) 28,366,848
cross-attention blocks, decoder (12 x 2,363,904)        28,366,848
LM head transform (768x768 dense, LayerNorm) + bias        622,651
total                                                  384,032,059
=====================================================  ===========

The paper (Appendix C) says "2 encoders and 1 decoder the same size as bert-base ... about 330M":
three bert-base checkpoints (109,482,240 each with BERT's pooler, which GeAR does not use) make
328.4M, i.e. the paper's figure counts the three stacks and leaves out the ~57M of the new
cross-attention blocks (each as large as a self-attention block). Nothing here is shrunk to hit
330M: the architecture is the one §3.3 describes.

Loading (:func:`build_from_bert`) maps any Hugging Face BERT checkpoint into all three stacks by
an explicit name mapping and reports what was newly initialised and which checkpoint tensors went
unused. Saving and loading use a Hugging Face style folder (``config.json``,
``model.safetensors``, tokenizer files with ``[DEC]``): :meth:`GearModel.save_pretrained`,
:meth:`GearModel.from_pretrained`. The momentum encoders, queues and temperature used in training
live in ``gear.training.objectives.GearTrainingModule``, not here.

Example:
    >>> model, tokenizer, report = build_from_bert("path/to/bert")  # doctest: +SKIP
    >>> batch = tokenizer(["who wrote it?"], return_tensors="pt")  # doctest: +SKIP
    >>> vectors = model.embed_queries(batch["input_ids"], batch["attention_mask"])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gear.io import FILE_MODE

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_TYPE = "gear"


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------
@dataclass
class GearConfig:
    """Architecture of a GeAR model; saved as ``config.json`` beside the weights."""

    vocab_size: int = 30522  # rows of the encoders' word embeddings (the checkpoint's vocabulary)
    decoder_vocab_size: int = 30523  # rows of the decoder's word embeddings and LM head: vocabulary + [DEC]
    hidden_size: int = 768  # width of every stack
    num_hidden_layers: int = 12  # layers of Eq / Ed (and of the fusion encoder, which is Eq)
    num_decoder_layers: int = 12  # layers of the text decoder
    num_attention_heads: int = 12  # heads of every attention block
    intermediate_size: int = 3072  # width of the feed-forward blocks
    hidden_act: str = "gelu"  # feed-forward activation: gelu (erf), gelu_new / gelu_pytorch_tanh, relu
    hidden_dropout_prob: float = 0.1  # dropout on embeddings and block outputs
    attention_probs_dropout_prob: float = 0.1  # dropout on attention probabilities
    cross_attention_dropout_prob: float | None = (
        None  # dropout inside the new cross-attention blocks (None: as above)
    )
    max_position_embeddings: int = 512  # longest sequence any stack accepts
    type_vocab_size: int = 2  # BERT segment embeddings (GeAR always uses segment 0)
    layer_norm_eps: float = 1e-12  # LayerNorm epsilon
    initializer_range: float = 0.02  # std of the normal init of new weights
    pad_token_id: int = 0  # padding id (its embedding row starts at zero when newly initialised)
    decoder_start_token_id: int = 30522  # id of [DEC], the first decoder input
    eos_token_id: int = 102  # id of [SEP], which ends every target
    max_query_tokens: int = 64  # truncation of queries (training and inference)
    max_document_tokens: int = 512  # truncation of documents (training and inference)
    max_target_tokens: int = 64  # decoder length: [DEC] + target tokens (target + [SEP] as labels)
    extra: dict = field(default_factory=dict)  # free-form provenance (init checkpoint, ...), not architecture

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"GearConfig: hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                f"{self.num_attention_heads}"
            )
        if (
            self.decoder_vocab_size < self.vocab_size
            or self.decoder_start_token_id >= self.decoder_vocab_size
        ):
            raise ValueError(
                f"GearConfig: decoder_vocab_size {self.decoder_vocab_size} must cover the encoder vocabulary "
                f"({self.vocab_size}) and the [DEC] id {self.decoder_start_token_id}"
            )
        for name in ("max_query_tokens", "max_document_tokens", "max_target_tokens"):
            if getattr(self, name) > self.max_position_embeddings:
                raise ValueError(
                    f"GearConfig: {name} {getattr(self, name)} exceeds max_position_embeddings "
                    f"{self.max_position_embeddings}"
                )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(
                f"GearConfig: hidden_act {self.hidden_act!r} is not one of {sorted(ACTIVATIONS)}"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_dict(self) -> dict:
        return {"model_type": MODEL_TYPE, "architectures": ["GearModel"], **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> GearConfig:
        data = dict(data)
        if data.pop("model_type", MODEL_TYPE) != MODEL_TYPE:
            raise ValueError(f"{source}: model_type is not {MODEL_TYPE!r}: not a GeAR model folder")
        data.pop("architectures", None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown GeAR config key(s) {unknown}")
        return cls(**data)


def _gelu_tanh(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


ACTIVATIONS = {"gelu": F.gelu, "gelu_new": _gelu_tanh, "gelu_pytorch_tanh": _gelu_tanh, "relu": F.relu}


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------
def attention_probabilities(q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax attention probabilities, computed explicitly (localization asks for them).

    Args:
        q: ``(B, heads, Lq, d)``; k: ``(B, heads, Lk, d)``.
        mask: bool ``(B, 1, 1, Lk)`` (True = attend) or None.

    Returns:
        float32 ``(B, heads, Lq, Lk)``, rows summing to one.
    """
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return scores.softmax(dim=-1)


def _split_heads(x: Tensor, heads: int) -> Tensor:
    """(B, L, heads * d) -> (B, heads, L, d)."""
    b, length, width = x.shape
    return x.view(b, length, heads, width // heads).transpose(1, 2)


def _merge_heads(x: Tensor) -> Tensor:
    """(B, heads, L, d) -> (B, L, heads * d)."""
    b, heads, length, d = x.shape
    return x.transpose(1, 2).reshape(b, length, heads * d)


class Embeddings(nn.Module):
    """Word + position + segment embeddings, LayerNorm, dropout (BERT's)."""

    def __init__(self, cfg: GearConfig, vocab_size: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, cfg.hidden_size)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, input_ids: Tensor, position_offset: int = 0) -> Tensor:
        """input_ids ``(B, L)`` -> ``(B, L, H)``; positions start at ``position_offset`` (KV cache)."""
        length = input_ids.shape[1]
        positions = torch.arange(position_offset, position_offset + length, device=input_ids.device)
        # Segment 0 everywhere, as BERT with token_type_ids=None: row 0 broadcast over the batch.
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings.weight[0]
        )
        return self.dropout(self.layer_norm(x))


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused QKV projection, then BERT's residual LayerNorm."""

    def __init__(self, cfg: GearConfig, causal: bool):
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.causal = causal
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size)
        self.output = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.attention_dropout = cfg.attention_probs_dropout_prob
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(
        self, hidden: Tensor, mask: Tensor | None, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """hidden ``(B, L, H)``, mask bool ``(B, 1, 1, L)`` or None -> ``(B, L, H)`` and this layer's (k, v).

        A causal layer uses no padding mask: targets are right-padded, so under the causal mask
        no real token ever attends to padding, and the fused kernel's ``is_causal`` path applies.
        """
        b, length, width = hidden.shape
        q, k, v = self.qkv(hidden).view(b, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        # With a cache the new token(s) may see every cached position: no mask is needed for one step.
        is_causal = self.causal and past is None and length > 1
        context = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=None if self.causal else mask,
            dropout_p=self.attention_dropout if self.training else 0.0,
            is_causal=is_causal,
        )
        out = self.layer_norm(hidden + self.dropout(self.output(_merge_heads(context))))
        return out, (k, v)


class CrossAttention(nn.Module):
    """Multi-head attention from one sequence to another's states, fused KV projection, residual LayerNorm.

    New in GeAR (randomly initialised): one per layer of the fusion encoder and of the decoder.
    """

    def __init__(self, cfg: GearConfig):
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.kv = nn.Linear(cfg.hidden_size, 2 * cfg.hidden_size)
        self.output = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        dropout = cfg.cross_attention_dropout_prob
        self.attention_dropout = cfg.attention_probs_dropout_prob if dropout is None else dropout
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob if dropout is None else dropout)

    def keys_values(self, states: Tensor) -> tuple[Tensor, Tensor]:
        """states ``(B, S, H)`` -> k, v ``(B, heads, S, d)`` (cached once per generation)."""
        b, length, width = states.shape
        k, v = self.kv(states).view(b, length, 2, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        return k, v

    def forward(
        self,
        hidden: Tensor,
        keys_values: tuple[Tensor, Tensor],
        mask: Tensor | None,
        return_probabilities: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """hidden ``(B, L, H)`` attends to ``keys_values`` under ``mask`` bool ``(B, 1, 1, S)``.

        Returns:
            ``(B, L, H)`` and, only when ``return_probabilities``, float32 probabilities
            ``(B, heads, L, S)``; otherwise None and the fused kernel does the work.
        """
        q = _split_heads(self.query(hidden), self.heads)
        k, v = keys_values
        probabilities = None
        if return_probabilities:
            probabilities = attention_probabilities(q, k, mask)
            dropped = F.dropout(probabilities, self.attention_dropout, self.training)
            context = torch.matmul(dropped.to(v.dtype), v)
        else:
            context = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.attention_dropout if self.training else 0.0
            )
        out = self.layer_norm(hidden + self.dropout(self.output(_merge_heads(context))))
        return out, probabilities


class FeedForward(nn.Module):
    """BERT's feed-forward block with residual LayerNorm."""

    def __init__(self, cfg: GearConfig):
        super().__init__()
        self.intermediate = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.output = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.activation = ACTIVATIONS[cfg.hidden_act]
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.layer_norm(hidden + self.dropout(self.output(self.activation(self.intermediate(hidden)))))


class LayerCache(NamedTuple):
    """Decoder KV cache of one layer: self-attention (grows per step) and cross-attention (fixed)."""

    self_k: Tensor
    self_v: Tensor
    cross_k: Tensor
    cross_v: Tensor


class GearLayer(nn.Module):
    """A BERT layer of the suite's own: self-attention, optional cross-attention, feed-forward.

    The cross-attention block exists when ``cross_attention`` is set and runs only when the
    caller passes states to attend to (the fusion mode of ``Eq``, or the decoder); otherwise the
    layer is exactly a BERT encoder layer.
    """

    def __init__(self, cfg: GearConfig, cross_attention: bool, causal: bool):
        super().__init__()
        self.self_attention = SelfAttention(cfg, causal)
        self.cross_attention = CrossAttention(cfg) if cross_attention else None
        self.feed_forward = FeedForward(cfg)

    def forward(
        self,
        hidden: Tensor,
        mask: Tensor | None,
        encoder_states: Tensor | None = None,
        encoder_mask: Tensor | None = None,
        return_probabilities: bool = False,
        cache: LayerCache | None = None,
    ) -> tuple[Tensor, Tensor | None, LayerCache | None]:
        past = (cache.self_k, cache.self_v) if cache is not None else None
        hidden, (self_k, self_v) = self.self_attention(hidden, mask, past)
        probabilities, new_cache = None, None
        if encoder_states is not None or cache is not None:
            if self.cross_attention is None:
                raise ValueError(
                    "this stack was built without cross-attention; it cannot attend to other states"
                )
            keys_values = (
                (cache.cross_k, cache.cross_v)
                if cache is not None
                else self.cross_attention.keys_values(encoder_states)
            )
            hidden, probabilities = self.cross_attention(
                hidden, keys_values, encoder_mask, return_probabilities
            )
            new_cache = LayerCache(self_k, self_v, *keys_values)
        return self.feed_forward(hidden), probabilities, new_cache


@dataclass
class StackOutput:
    """What a stack returns.

    hidden_states: ``(B, L, H)`` last layer.
    cross_attentions: 1-based layer -> float32 ``(B, heads, L, S)``, only the layers asked for.
    cache: per-layer KV cache (decoder with ``use_cache``), else None.
    """

    hidden_states: Tensor
    cross_attentions: dict[int, Tensor]
    cache: list[LayerCache] | None = None


def _key_mask(mask: Tensor | None) -> Tensor | None:
    """(B, L) padding mask (1 = token) -> bool (B, 1, 1, L) for attention."""
    return None if mask is None else mask.bool()[:, None, None, :]


class Stack(nn.Module):
    """Embeddings and layers of one BERT-sized stack (Eq / fusion, Ed, decoder, momentum copies)."""

    def __init__(
        self, cfg: GearConfig, vocab_size: int, num_layers: int, cross_attention: bool, causal: bool
    ):
        super().__init__()
        self.embeddings = Embeddings(cfg, vocab_size)
        self.layers = nn.ModuleList(GearLayer(cfg, cross_attention, causal) for _ in range(num_layers))

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        *,
        encoder_states: Tensor | None = None,
        encoder_mask: Tensor | None = None,
        cross_attention_layers: Collection[int] = (),
        cache: Sequence[LayerCache] | None = None,
        use_cache: bool = False,
    ) -> StackOutput:
        """Run the stack.

        Args:
            input_ids: ``(B, L)`` token ids.
            attention_mask: ``(B, L)`` 1 for tokens, 0 for padding (ignored by causal stacks).
            encoder_states: ``(B, S, H)`` states to cross-attend to (fusion mode / decoder).
            encoder_mask: ``(B, S)`` padding mask of ``encoder_states``.
            cross_attention_layers: 1-based layers whose cross-attention probabilities to return.
            cache: KV cache from a previous call (decoder generation); ``encoder_states`` may then be None.
            use_cache: return the KV cache (decoder generation).
        """
        offset = cache[0].self_k.shape[2] if cache is not None else 0
        hidden = self.embeddings(input_ids, offset)
        mask, key_mask = _key_mask(attention_mask), _key_mask(encoder_mask)
        probabilities: dict[int, Tensor] = {}
        new_cache: list[LayerCache] = []
        for index, layer in enumerate(self.layers, start=1):
            hidden, probs, layer_cache = layer(
                hidden,
                mask,
                encoder_states,
                key_mask,
                return_probabilities=index in cross_attention_layers,
                cache=cache[index - 1] if cache is not None else None,
            )
            if probs is not None:
                probabilities[index] = probs
            if use_cache:
                new_cache.append(layer_cache)
        return StackOutput(hidden, probabilities, new_cache if use_cache else None)


class LMHead(nn.Module):
    """BERT's MLM head transform (dense, activation, LayerNorm) and output bias; the output matrix is
    the decoder's word embedding (tied), passed in at call time."""

    def __init__(self, cfg: GearConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.activation = ACTIVATIONS[cfg.hidden_act]
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(cfg.decoder_vocab_size))

    def forward(self, hidden: Tensor, word_embeddings: Tensor) -> Tensor:
        """``(B, T, H)`` -> logits ``(B, T, V)``."""
        return F.linear(self.layer_norm(self.activation(self.dense(hidden))), word_embeddings, self.bias)


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``hidden`` ``(B, L, H)`` over tokens where ``mask`` ``(B, L)`` is set -> float32 ``(B, H)``."""
    weights = mask.to(torch.float32).unsqueeze(-1)
    return (hidden.float() * weights).sum(1) / weights.sum(1).clamp(min=1.0)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
def canonical_safetensors(path: Path) -> None:
    """Make a safetensors file a function of its tensors alone, readable by everyone the umask allows.

    The safetensors writer serialises the metadata from a hash map, so two saves of the same
    tensors differ in their header's key order (and checksums cannot tell that two runs agree);
    it also creates the file 0600. The header is rewritten in place with sorted keys (the same
    bytes, so the same length and offsets) and the mode set as ``gear.io`` sets it for its writes.
    """
    with open(path, "r+b") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
        canonical = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
        if len(canonical) > size:  # cannot happen: the same keys and values, reordered
            raise ValueError(f"{path}: canonical safetensors header longer than the original")
        handle.seek(8)
        handle.write(canonical + b" " * (size - len(canonical)))
    os.chmod(path, FILE_MODE)


class GearModel(nn.Module):
    """GeAR: bi-encoder (``query_encoder``, ``document_encoder``), fusion encoder (the query encoder
    with its cross-attention blocks switched on) and text decoder with a tied LM head."""

    def __init__(self, cfg: GearConfig):
        super().__init__()
        self.config = cfg
        self.query_encoder = Stack(
            cfg, cfg.vocab_size, cfg.num_hidden_layers, cross_attention=True, causal=False
        )
        self.document_encoder = Stack(
            cfg, cfg.vocab_size, cfg.num_hidden_layers, cross_attention=False, causal=False
        )
        self.decoder = Stack(
            cfg, cfg.decoder_vocab_size, cfg.num_decoder_layers, cross_attention=True, causal=True
        )
        self.lm_head = LMHead(cfg)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """BERT's initialisation, for every weight a checkpoint does not provide."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, std)
            if module.weight.shape[0] > self.config.pad_token_id:
                with torch.no_grad():
                    module.weight[self.config.pad_token_id].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, LMHead):
            nn.init.zeros_(module.bias)

    # -- bi-encoder ---------------------------------------------------------------------------
    def embed_queries(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Query embeddings for retrieval: mean pooled, L2-normalised, float32 ``(B, H)``."""
        hidden = self.query_encoder(input_ids, attention_mask).hidden_states
        return F.normalize(mean_pool(hidden, attention_mask), dim=-1)

    def embed_documents(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Document embeddings for retrieval: mean pooled, L2-normalised, float32 ``(B, H)``."""
        hidden = self.document_encoder(input_ids, attention_mask).hidden_states
        return F.normalize(mean_pool(hidden, attention_mask), dim=-1)

    # -- fusion and decoding ------------------------------------------------------------------
    def fuse(
        self,
        query_ids: Tensor,
        query_mask: Tensor,
        document_states: Tensor,
        document_mask: Tensor,
        cross_attention_layers: Collection[int] = (),
    ) -> StackOutput:
        """The fusion encoder: ``Eq`` with cross-attention to ``Ed``'s last hidden states.

        Args:
            query_ids, query_mask: ``(B, Lq)``.
            document_states: ``(B, Ld, H)`` from ``document_encoder``; document_mask ``(B, Ld)``.
            cross_attention_layers: 1-based layers whose probabilities ``(B, heads, Lq, Ld)`` to return.
        """
        return self.query_encoder(
            query_ids,
            query_mask,
            encoder_states=document_states,
            encoder_mask=document_mask,
            cross_attention_layers=cross_attention_layers,
        )

    def decoder_logits(self, target_input: Tensor, fused_states: Tensor, fused_mask: Tensor) -> Tensor:
        """Teacher-forced decoder: target_input ``(B, T)`` -> logits ``(B, T, V)``."""
        hidden = self.decoder(
            target_input, encoder_states=fused_states, encoder_mask=fused_mask
        ).hidden_states
        return self.lm_head(hidden, self.decoder.embeddings.word_embeddings.weight)

    def decoder_step(
        self,
        input_ids: Tensor,
        fused_states: Tensor | None,
        fused_mask: Tensor,
        cache: Sequence[LayerCache] | None,
    ) -> tuple[Tensor, list[LayerCache]]:
        """One incremental decoding step: input_ids ``(B, t)`` -> logits of the last position ``(B, V)``
        and the grown cache. The cross-attention keys and values are computed at the first step
        only and then read from the cache."""
        out = self.decoder(
            input_ids, encoder_states=fused_states, encoder_mask=fused_mask, cache=cache, use_cache=True
        )
        logits = self.lm_head(out.hidden_states[:, -1:], self.decoder.embeddings.word_embeddings.weight)
        return logits[:, 0], out.cache

    def lm_loss_sum(
        self,
        query_ids: Tensor,
        query_mask: Tensor,
        document_states: Tensor,
        document_mask: Tensor,
        target_input: Tensor,
        target_labels: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """L_LM's pieces: summed cross-entropy over target tokens and their count.

        Args:
            target_input: ``(B, T)`` ``[DEC]`` + target tokens (padded).
            target_labels: ``(B, T)`` target tokens + ``[SEP]``, -100 at padding.

        Returns:
            (sum of token losses, number of target tokens), both 0-d float32 tensors on the model's
            device (no host synchronisation: the trainer divides by the global count).
        """
        fused = self.fuse(query_ids, query_mask, document_states, document_mask).hidden_states
        logits = self.decoder_logits(target_input, fused, query_mask)
        loss_sum = F.cross_entropy(
            logits.float().flatten(0, 1), target_labels.flatten(), ignore_index=-100, reduction="sum"
        )
        return loss_sum, (target_labels != -100).sum().to(torch.float32)

    # -- persistence --------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path, tokenizer: Any | None = None) -> None:
        """Write ``config.json``, ``model.safetensors`` (and the tokenizer) into ``folder``.

        Callers wanting an atomic write pass a temporary folder (``gear.io.atomic_dir``).
        """
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_NAME).write_text(
            json.dumps(self.config.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
        tensors = {name: t.detach().to("cpu").contiguous() for name, t in self.state_dict().items()}
        save_file(tensors, str(folder / WEIGHTS_NAME), metadata={"format": "pt", "model_type": MODEL_TYPE})
        canonical_safetensors(folder / WEIGHTS_NAME)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(folder))

    def push_to_hub(
        self,
        repo_id: str,
        tokenizer: Any | None = None,
        private: bool | None = None,
        commit_message: str = "Upload GeAR model",
        extra_files: Sequence[str | Path] = (),
    ) -> str:
        """Publish the model on the Hugging Face hub: the :meth:`save_pretrained` folder (weights,
        ``gear_config.json``, the tokenizer when given) plus ``extra_files`` (e.g. the trained
        folder's ``README.md`` model card and sentence-transformers files), uploaded in one
        commit to ``repo_id`` (created when missing). Needs network and a token
        (``huggingface-cli login`` or ``HF_TOKEN``). Returns the commit's URL."""
        import shutil
        import tempfile

        from huggingface_hub import HfApi

        api = HfApi()
        with tempfile.TemporaryDirectory(prefix="gear_push_") as staging:
            self.save_pretrained(staging, tokenizer)
            for extra in extra_files:
                extra = Path(extra)
                if extra.is_dir():
                    shutil.copytree(extra, Path(staging) / extra.name, dirs_exist_ok=True)
                else:
                    shutil.copy2(extra, Path(staging) / extra.name)
            api.create_repo(repo_id, private=private, exist_ok=True)
            info = api.upload_folder(repo_id=repo_id, folder_path=staging, commit_message=commit_message)
        return str(getattr(info, "commit_url", info))

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, device: str | torch.device | None = None, revision: str | None = None
    ) -> GearModel:
        """Load a folder written by :meth:`save_pretrained` (weights checked strictly), or a hub
        id (``org/name``, at ``revision``) whose files :meth:`push_to_hub` uploaded: it is read
        from the Hugging Face cache, or downloaded there when the hub is reachable
        (:func:`gear_model_folder`)."""
        from safetensors.torch import load_file

        folder = gear_model_folder(folder, revision)
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: missing; {folder} is not a saved GeAR model (save_pretrained)"
                )
        cfg = GearConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")), str(config_path))
        with torch.device("meta"):
            model = cls(cfg)
        state = load_file(str(weights_path), device=str(device or "cpu"))
        try:
            model.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as err:
            raise ValueError(f"{weights_path}: weights do not match {config_path}: {err}") from err
        return model.eval()


def gear_model_folder(name: str | Path, revision: str | None = None) -> Path:
    """The local folder of a GeAR model given as a folder or as a hub id.

    A hub id is looked up in the Hugging Face cache at ``revision`` and downloaded there when
    the hub is reachable (``HF_HUB_OFFLINE`` unset); offline and not cached, the error names the
    ways to provide it (:func:`gear.hub.resolve_model`).

    Raises:
        FileNotFoundError: ``name`` is a path (no hub id can be) and no folder.
        gear.hub.ModelUnavailableError: a hub id that is neither cached nor downloadable.
    """
    from gear.hub import local_model_folder, looks_like_a_path, resolve_model

    local = Path(name).expanduser()
    if local.is_dir():
        return local
    if looks_like_a_path(str(name)) or not str(name).strip():
        raise FileNotFoundError(f"{name}: no such model folder")
    return Path(
        local_model_folder(resolve_model(str(name), allow_downloads=True, revision=revision), revision)
    )


def parameter_breakdown(model: GearModel) -> dict[str, int]:
    """Parameter counts by part: the three BERT stacks, the [DEC] row, cross-attention, LM head."""
    cfg = model.config
    counts = {"bert_stacks": 0, "dec_embedding_row": 0, "cross_attention": 0, "lm_head": 0}
    for name, param in model.named_parameters():
        if ".cross_attention." in name:
            counts["cross_attention"] += param.numel()
        elif name.startswith("lm_head."):
            counts["lm_head"] += param.numel()
        elif name == "decoder.embeddings.word_embeddings.weight":
            extra = (cfg.decoder_vocab_size - cfg.vocab_size) * cfg.hidden_size
            counts["dec_embedding_row"] += extra
            counts["bert_stacks"] += param.numel() - extra
        else:
            counts["bert_stacks"] += param.numel()
    counts["total"] = sum(counts.values())
    return counts


# --------------------------------------------------------------------------------------------
# Loading from a BERT checkpoint
# --------------------------------------------------------------------------------------------
@dataclass
class LoadReport:
    """What :func:`load_bert_weights` did.

    newly_initialised: model parameters (or row ranges, ``name[a:b]``) the checkpoint did not provide.
    unused: checkpoint tensors no model parameter took.
    """

    newly_initialised: list[str]
    unused: list[str]

    def summary(self) -> str:
        return (
            f"newly initialised ({len(self.newly_initialised)}): {', '.join(self.newly_initialised) or '-'}; "
            f"unused checkpoint tensors ({len(self.unused)}): {', '.join(self.unused) or '-'}"
        )


def read_bert_checkpoint(folder: str | Path) -> tuple[dict, dict[str, Tensor]]:
    """A Hugging Face BERT folder's ``config.json`` and its tensors (safetensors or pytorch_model.bin)."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: missing; {folder} is not a Hugging Face model folder")
    bert_cfg = json.loads(config_path.read_text(encoding="utf-8"))
    if bert_cfg.get("model_type") != "bert":
        raise ValueError(
            f"{config_path}: model_type is {bert_cfg.get('model_type')!r}; GeAR initialises from BERT checkpoints "
            "(bert-base-uncased, all-MiniLM-L6-v2, ...)"
        )
    if bert_cfg.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{config_path}: only absolute position embeddings are supported")
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        tensors = load_file(str(folder / "model.safetensors"))
    elif (folder / "pytorch_model.bin").is_file():
        tensors = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise FileNotFoundError(f"{folder}: holds neither model.safetensors nor pytorch_model.bin")
    return bert_cfg, tensors


def config_from_bert(
    bert_cfg: dict, decoder_start_token_id: int, eos_token_id: int, **overrides: Any
) -> GearConfig:
    """A GeAR config whose three stacks have the checkpoint's shape."""
    vocab = int(bert_cfg["vocab_size"])
    values = {
        "vocab_size": vocab,
        "decoder_vocab_size": max(vocab, decoder_start_token_id + 1),
        "hidden_size": bert_cfg["hidden_size"],
        "num_hidden_layers": bert_cfg["num_hidden_layers"],
        "num_decoder_layers": bert_cfg["num_hidden_layers"],
        "num_attention_heads": bert_cfg["num_attention_heads"],
        "intermediate_size": bert_cfg["intermediate_size"],
        "hidden_act": bert_cfg.get("hidden_act", "gelu"),
        "hidden_dropout_prob": bert_cfg.get("hidden_dropout_prob", 0.1),
        "attention_probs_dropout_prob": bert_cfg.get("attention_probs_dropout_prob", 0.1),
        "max_position_embeddings": bert_cfg.get("max_position_embeddings", 512),
        "type_vocab_size": bert_cfg.get("type_vocab_size", 2),
        "layer_norm_eps": bert_cfg.get("layer_norm_eps", 1e-12),
        "initializer_range": bert_cfg.get("initializer_range", 0.02),
        "pad_token_id": bert_cfg.get("pad_token_id", 0) or 0,
        "decoder_start_token_id": decoder_start_token_id,
        "eos_token_id": eos_token_id,
    }
    for name in ("max_query_tokens", "max_document_tokens", "max_target_tokens"):  # small test checkpoints
        values[name] = min(getattr(GearConfig, name), values["max_position_embeddings"])
    values.update(overrides)
    return GearConfig(**values)


def bert_name_map(cfg: GearConfig) -> dict[str, list[str]]:
    """The explicit mapping: GeAR parameter -> BERT checkpoint tensor(s) (un-prefixed names).

    Three sources for a fused QKV weight are concatenated (query, key, value) along the output
    dimension; two (key, value) for a fused KV weight, which no BERT encoder has (cross-attention
    is new). Parameters absent from this map are newly initialised.
    """
    mapping: dict[str, list[str]] = {}
    for stack, layers in (
        ("query_encoder", cfg.num_hidden_layers),
        ("document_encoder", cfg.num_hidden_layers),
        ("decoder", cfg.num_decoder_layers),
    ):
        for ours, theirs in (
            ("word_embeddings.weight", "word_embeddings.weight"),
            ("position_embeddings.weight", "position_embeddings.weight"),
            ("token_type_embeddings.weight", "token_type_embeddings.weight"),
            ("layer_norm.weight", "LayerNorm.weight"),
            ("layer_norm.bias", "LayerNorm.bias"),
        ):
            mapping[f"{stack}.embeddings.{ours}"] = [f"embeddings.{theirs}"]
        for i in range(layers):
            src, dst = f"encoder.layer.{i}", f"{stack}.layers.{i}"
            for kind in ("weight", "bias"):
                mapping[f"{dst}.self_attention.qkv.{kind}"] = [
                    f"{src}.attention.self.{part}.{kind}" for part in ("query", "key", "value")
                ]
                mapping[f"{dst}.self_attention.output.{kind}"] = [f"{src}.attention.output.dense.{kind}"]
                mapping[f"{dst}.self_attention.layer_norm.{kind}"] = [
                    f"{src}.attention.output.LayerNorm.{kind}"
                ]
                mapping[f"{dst}.feed_forward.intermediate.{kind}"] = [f"{src}.intermediate.dense.{kind}"]
                mapping[f"{dst}.feed_forward.output.{kind}"] = [f"{src}.output.dense.{kind}"]
                mapping[f"{dst}.feed_forward.layer_norm.{kind}"] = [f"{src}.output.LayerNorm.{kind}"]
    for kind in ("weight", "bias"):
        mapping[f"lm_head.dense.{kind}"] = ["cls.predictions.transform.dense." + kind]
        mapping[f"lm_head.layer_norm.{kind}"] = ["cls.predictions.transform.LayerNorm." + kind]
    mapping["lm_head.bias"] = ["cls.predictions.bias"]
    return mapping


# The checkpoint's MLM output matrix is tied to its word embeddings, as GeAR's LM head is to the
# decoder's: it is consumed by that tie, not loaded twice.
_TIED_CHECKPOINT_TENSORS = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")


@torch.no_grad()
def load_bert_weights(model: GearModel, tensors: dict[str, Tensor]) -> LoadReport:
    """Copy a BERT checkpoint's tensors into ``model`` by :func:`bert_name_map`.

    The checkpoint may be a bare ``BertModel`` (MiniLM) or carry the ``bert.`` prefix and MLM head
    (bert-base-uncased). Rows the checkpoint lacks (the ``[DEC]`` row of the decoder's embedding
    and LM-head bias) keep their fresh initialisation and are reported.
    """
    # Un-prefixed, modern name -> original name, so the report names tensors as the checkpoint
    # does. Old TensorFlow-converted checkpoints call LayerNorm's weight and bias gamma and beta.
    original = {
        name.removeprefix("bert.")
        .replace("LayerNorm.gamma", "LayerNorm.weight")
        .replace("LayerNorm.beta", "LayerNorm.bias"): name
        for name in tensors
    }
    source = {short: tensors[name] for short, name in original.items()}
    params = dict(model.named_parameters())
    used: set[str] = set()
    fresh: list[str] = []
    for target, sources in bert_name_map(model.config).items():
        if not all(name in source for name in sources):
            fresh.append(target)
            continue
        param = params[target]
        parts = [source[name] for name in sources]
        rows = sum(part.shape[0] for part in parts)
        if any(part.shape[1:] != param.shape[1:] for part in parts) or rows > param.shape[0]:
            shapes = [tuple(part.shape) for part in parts]
            raise ValueError(
                f"checkpoint tensor(s) {sources} of shapes {shapes} do not fit {target} {tuple(param.shape)}"
            )
        start = 0
        for part in parts:  # fused QKV: query, key, value stacked along the output dimension
            param[start : start + part.shape[0]].copy_(part)
            start += part.shape[0]
        if rows < param.shape[0]:  # the decoder's [DEC] row(s), the LM bias entry
            fresh.append(f"{target}[{rows}:{param.shape[0]}]")
        used.update(sources)
    mapped = set(bert_name_map(model.config))
    fresh.extend(name for name in params if name not in mapped)
    if "cls.predictions.bias" in used:
        used.update(name for name in _TIED_CHECKPOINT_TENSORS if name in source)
    unused = sorted(original[name] for name in set(source) - used)
    return LoadReport(newly_initialised=sorted(fresh), unused=unused)


@dataclass
class CrossAttentionInit:
    """How the new cross-attention blocks start (config ``gear.cross_attention_init``).

    The paper does not say how the blocks that no BERT checkpoint provides are initialised; these
    are the suite's choices, made by measurement (``tests/gear/test_learnability.py``,
    ``python -m gear.tools.squad_check``, BENCHMARKS.md "Making GeAR learn", README "Faithfulness
    notes"). BERT's own recipe (every weight normal with std 0.02) leaves a block whose value and
    output projections shrink what it reads by about (0.02 x sqrt(hidden))^2 (40-fold at hidden
    64, 7-fold at MiniLM's 384) and whose attention is uniform: the document reaches the fusion
    states (and the fusion states the decoder) only as a faint average of all its tokens, and the
    LM loss cannot tell which token would have helped. On the tiny GeAR of the learnability
    probes (600 steps of 32), BERT's init reaches exact match 0.03 and localization R@1 0.65 on
    the sentence task where ``values: identity`` reaches 1.0 and 1.0 (the measured table is in
    BENCHMARKS.md "Making GeAR learn").

    Fields:
        values: ``identity`` — the value and output projections start as the identity (zero
            bias), so the block adds the attended states at full strength to its input;
            ``random`` — BERT's normal(0, ``initializer_range``).
        query_key: ``random`` (BERT's init: attention starts uniform); ``similarity`` — query and
            key projections start as ``similarity_scale`` x identity, so attention starts as the
            scaled dot product of query-token and document-token states (both stacks start from
            the same checkpoint, so their states share a space); ``self_attention`` — copied from
            the same layer's pretrained self-attention query and key.
        similarity_scale: the scale of ``query_key: similarity``.
        query_key_std: the standard deviation of ``query_key: random``'s normal init; None: BERT's
            ``initializer_range`` (0.02). Attention logits grow with the square of it (about
            std^2 x |h|^2 for states of norm |h|: 0.05 from MiniLM at 0.02, so attention starts
            uniform), and so does the gradient that could move them away from uniform.
        layer_norm: ``copy`` — each block's LayerNorm starts as the one that precedes it (the
            self-attention's, pretrained), so the fusion states keep the checkpoint's scale;
            ``fresh`` — gain 1, bias 0.
        dropout: dropout on the new blocks' attention probabilities and outputs (the stacks keep
            the checkpoint's).
        lm_head: how the LM head's transform starts when the checkpoint has no MLM head (a
            sentence-transformers checkpoint such as MiniLM; bert-base-uncased brings its own,
            which is then kept and this field does nothing). ``identity`` — dense = identity,
            LayerNorm gain 1 / bias 0, output bias 0, so the decoder's states are read out
            through the tied word embeddings as a pretrained MLM head reads them (MiniLM's last
            layer decodes to its own input token for 56% of SQuAD tokens this way); ``random`` —
            BERT's normal(0, ``initializer_range``), which scrambles that readout: the LM loss
            then cannot tell the fusion's cross-attention which document token would have
            helped. Measured on 48 SQuAD dev (question, paragraph, answer) triples from MiniLM,
            untrained: LM loss with the right paragraphs 16.05 against 17.50 with paragraphs
            shuffled across the batch (``identity``), 11.13 against 11.08 (``random``: the
            document does not reach the loss); both with ``decoder_output_scale`` 1. At its
            0.1, on the 16 mini SQuAD triples of the test: 17.61 against 17.84 (``identity``),
            10.88 against 10.88 (``random``).
        output_scale: the fusion encoder blocks' output projection is multiplied by this after
            the init above (1: the attended document states arrive at full strength).
        decoder_output_scale: the same for the decoder's blocks. At 1, from MiniLM, every target
            position's cross-attention adds the same average of the fused states (a handful of
            query positions, attended near uniformly) at full strength in every layer, and by the
            third layer all positions are one vector (mean pairwise cosine 0.9999; 1.000 after
            an epoch of SQuAD): the decoder can emit only one distribution whatever it has
            generated (on SQuAD, [SEP] first, so every generation was empty). At 0.1 the positions
            stay apart (last layer, untrained: 0.48 on the test's example, 0.90 on 16 SQuAD
            answers against 1.000; after the same epoch 0.22-0.55 by layer) and
            the decoder's distribution depends on position and on the tokens before it; the
            tiny learnability probes learn as at 1 (exact match 1.0 on both tasks). Measured in
            BENCHMARKS.md "Making GeAR learn"; 0 would cut the document off the decoder at
            start.
    """

    values: str = "identity"
    query_key: str = "random"
    similarity_scale: float = 1.0
    query_key_std: float | None = None
    layer_norm: str = "copy"
    dropout: float = 0.0
    lm_head: str = "identity"
    output_scale: float = 1.0
    decoder_output_scale: float = 0.1

    def __post_init__(self) -> None:
        for name, allowed in (
            ("values", ("identity", "random")),
            ("query_key", ("random", "similarity", "self_attention")),
            ("layer_norm", ("copy", "fresh")),
            ("lm_head", ("identity", "random")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"gear.cross_attention_init.{name}: {getattr(self, name)!r} is not one of {allowed}"
                )
        if self.query_key_std is not None and not self.query_key_std > 0.0:
            raise ValueError(
                f"gear.cross_attention_init.query_key_std must be positive or null, got {self.query_key_std}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"gear.cross_attention_init.dropout must be in [0, 1), got {self.dropout}")
        for name in ("output_scale", "decoder_output_scale"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"gear.cross_attention_init.{name} must be in [0, 1], got {getattr(self, name)}"
                )


@torch.no_grad()
def initialise_cross_attention(
    model: GearModel, init: CrossAttentionInit, newly_initialised: Collection[str] = (), seed: int = 0
) -> None:
    """Set the new cross-attention blocks of the fusion encoder and the decoder as ``init`` says
    (after the checkpoint is loaded: ``self_attention`` and ``copy`` read its weights), and the LM
    head's transform when it is among ``newly_initialised`` (the checkpoint had none). ``seed``
    seeds the draws of ``query_key_std``."""
    generator = torch.Generator().manual_seed(seed)
    if init.lm_head == "identity" and "lm_head.dense.weight" in newly_initialised:
        head = model.lm_head
        head.dense.weight.copy_(torch.eye(model.config.hidden_size))
        head.dense.bias.zero_()
        head.layer_norm.weight.fill_(1.0)
        head.layer_norm.bias.zero_()
        head.bias.zero_()
    width = model.config.hidden_size
    eye = torch.eye(width)
    for stack, scale in (
        (model.query_encoder, init.output_scale),
        (model.decoder, init.decoder_output_scale),
    ):
        for layer in stack.layers:
            block, before = layer.cross_attention, layer.self_attention
            if block is None:
                continue
            if init.values == "identity":
                block.kv.weight[width:].copy_(eye)
                block.kv.bias[width:].zero_()
                block.output.weight.copy_(eye)
                block.output.bias.zero_()
            block.output.weight.mul_(scale)
            if init.query_key == "similarity":
                block.query.weight.copy_(eye * init.similarity_scale)
                block.kv.weight[:width].copy_(eye * init.similarity_scale)
                block.query.bias.zero_()
                block.kv.bias[:width].zero_()
            elif init.query_key == "random" and init.query_key_std is not None:
                block.query.weight.normal_(0.0, init.query_key_std, generator=generator)
                block.kv.weight[:width].normal_(0.0, init.query_key_std, generator=generator)
            elif init.query_key == "self_attention":
                block.query.weight.copy_(before.qkv.weight[:width])
                block.query.bias.copy_(before.qkv.bias[:width])
                block.kv.weight[:width].copy_(before.qkv.weight[width : 2 * width])
                block.kv.bias[:width].copy_(before.qkv.bias[width : 2 * width])
            if init.layer_norm == "copy":
                block.layer_norm.load_state_dict(before.layer_norm.state_dict())


def build_from_bert(
    checkpoint: str | Path,
    decoder_start_token: str = "[DEC]",
    seed: int = 0,
    cross_attention_init: CrossAttentionInit | None = None,
    **config_overrides: Any,
) -> tuple[GearModel, Any, LoadReport]:
    """A GeAR model initialised from a Hugging Face BERT folder, its tokenizer with ``[DEC]``, the report.

    Args:
        checkpoint: local folder of a BERT checkpoint (resolve hub ids with ``gear.hub.resolve_model``).
        decoder_start_token: the token added to start every target.
        seed: seeds the initialisation of the new weights (the rest comes from the checkpoint).
        cross_attention_init: how the new cross-attention blocks start (default
            :class:`CrossAttentionInit`'s defaults); its dropout becomes the config's
            ``cross_attention_dropout_prob``.
        config_overrides: GearConfig fields to set (e.g. ``max_document_tokens``, dropout for tests).
    """
    from gear.model.tokens import load_fast_tokenizer

    init = cross_attention_init or CrossAttentionInit()
    config_overrides.setdefault("cross_attention_dropout_prob", init.dropout)

    bert_cfg, tensors = read_bert_checkpoint(checkpoint)
    tokenizer = load_fast_tokenizer(checkpoint)
    if not tokenizer.is_fast:
        raise ValueError(f"{checkpoint}: GeAR needs a fast tokenizer (offset mappings for localization)")
    tokenizer.add_special_tokens({"additional_special_tokens": [decoder_start_token]})
    dec_id = tokenizer.convert_tokens_to_ids(decoder_start_token)
    if tokenizer.sep_token_id is None:
        raise ValueError(f"{checkpoint}: the tokenizer has no [SEP] token to end targets")
    cfg = config_from_bert(bert_cfg, dec_id, tokenizer.sep_token_id, **config_overrides)
    cfg.extra = {**cfg.extra, "init_checkpoint": str(checkpoint), "decoder_start_token": decoder_start_token}
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = GearModel(cfg)
    finally:
        torch.random.set_rng_state(generator_state)
    report = load_bert_weights(model, tensors)
    initialise_cross_attention(model, init, report.newly_initialised, seed=seed)
    cfg.extra["cross_attention_init"] = dataclasses.asdict(init)
    return model, tokenizer, report

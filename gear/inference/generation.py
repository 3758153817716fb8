"""Generation from a trained GeAR: greedy decoding or beam search with a KV cache (paper §3.5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from gear.encoding import length_sorted_order
from gear.inference.encoder import _autocast, _to
from gear.model.modeling import GearModel, LayerCache
from gear.model.tokens import DOCUMENT_PAD_MULTIPLE, encode_texts


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

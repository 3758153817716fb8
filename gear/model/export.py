"""GeAR's bi-encoder as a sentence-transformers model, written into a trained GeAR folder.

``SentenceTransformer(folder)`` then loads GeAR's retrieval half with the sentence-transformers
v5 ``Router`` module: ``encode_query`` routes through the query encoder ``Eq``,
``encode_document`` (and plain ``encode``) through the document encoder ``Ed``; each route is
``Transformer`` (a plain BERT: GeAR's stack without its cross-attention blocks, which retrieval
never runs) -> ``Pooling(mean)`` -> ``Normalize``, truncating at ``max_query_tokens`` /
``max_document_tokens`` as :class:`gear.inference.GearEncoder` does. The embeddings equal the
suite's (``tests/gear/test_export.py``: to 1e-5 on queries and documents).

Files added to the folder (beside GeAR's own ``config.json`` and ``model.safetensors``, which
sentence-transformers does not read once ``modules.json`` is present): ``modules.json``,
``config_sentence_transformers.json``, ``router_config.json``, and one sub-folder per route
module (``query_0_Transformer/`` with BERT weights and the tokenizer, ``query_1_Pooling/``, ...).
The two BERT copies cost about as much disk as the bi-encoder part of ``model.safetensors``
(the suite's choice: a folder any sentence-transformers user can open, without the suite).

Tokenisation matches the suite's: the exported tokenizers keep ``split_special_tokens`` on, so a
literal ``[SEP]`` or ``[DEC]`` in a text is encoded as text (gear.model.tokens); the maximum
lengths are the tokenizers' ``model_max_length``. Loading logs transformers' note that BERT's
pooler is newly initialised: GeAR has none, and mean pooling never reads it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gear.model.modeling import GearConfig, GearModel, bert_name_map, canonical_safetensors

#: sentence-transformers' entry file: its presence makes a folder a SentenceTransformer
MODULES_FILE = "modules.json"


def bert_config(cfg: GearConfig) -> dict:
    """The Hugging Face ``BertConfig`` fields of one of GeAR's encoders."""
    return {
        "model_type": "bert",
        "architectures": ["BertModel"],
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "intermediate_size": cfg.intermediate_size,
        "hidden_act": cfg.hidden_act,
        "hidden_dropout_prob": cfg.hidden_dropout_prob,
        "attention_probs_dropout_prob": cfg.attention_probs_dropout_prob,
        "max_position_embeddings": cfg.max_position_embeddings,
        "type_vocab_size": cfg.type_vocab_size,
        "layer_norm_eps": cfg.layer_norm_eps,
        "initializer_range": cfg.initializer_range,
        "pad_token_id": cfg.pad_token_id,
    }


def bert_tensors(model: GearModel, stack: str) -> dict[str, Tensor]:
    """One encoder stack (``query_encoder`` or ``document_encoder``) as BERT tensors (no pooler).

    The inverse of :func:`gear.model.modeling.bert_name_map`: fused QKV weights are split back
    into query, key and value; the query encoder's cross-attention blocks are left out.
    """
    ours = model.state_dict()
    tensors = {}
    for name, sources in bert_name_map(model.config).items():
        if not name.startswith(f"{stack}."):
            continue
        tensor = ours[name].detach().to("cpu", torch.float32)
        for source, part in zip(sources, tensor.chunk(len(sources), dim=0), strict=True):
            tensors[source] = part.contiguous()
    return tensors


def export_sentence_transformer(model: GearModel, tokenizer: Any, folder: str | Path) -> None:
    """Write GeAR's bi-encoder into ``folder`` as a sentence-transformers Router model (see module doc).

    Callers wanting an atomic write pass a temporary folder (``gear.io.atomic_dir``), as the
    trainer does for the final model.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.router import Router
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel

    cfg, folder = model.config, Path(folder)
    if (folder / MODULES_FILE).exists():
        raise FileExistsError(
            f"{folder / MODULES_FILE}: the folder already holds a sentence-transformers model"
        )
    with tempfile.TemporaryDirectory(prefix="gear-st-") as scratch:
        routes = {}
        for route, stack, max_length in (
            ("query", "query_encoder", cfg.max_query_tokens),
            ("document", "document_encoder", cfg.max_document_tokens),
        ):
            bert = BertModel(BertConfig(**bert_config(cfg)), add_pooling_layer=False)
            bert.load_state_dict(bert_tensors(model, stack), strict=True)
            source = Path(scratch) / route
            bert.save_pretrained(source)
            tokenizer.save_pretrained(source)
            transformer = Transformer(
                str(source), max_seq_length=max_length, processor_kwargs={"split_special_tokens": True}
            )
            routes[route] = [transformer, Pooling(cfg.hidden_size, pooling_mode="mean"), Normalize()]
        router = Router.for_query_document(routes["query"], routes["document"])
        exported = SentenceTransformer(modules=[router], similarity_fn_name="cosine", device="cpu")
        saved = Path(scratch) / "saved"
        exported.save(str(saved), create_model_card=False)
        for item in saved.iterdir():
            target = folder / item.name
            if target.exists():
                raise FileExistsError(
                    f"{target}: exists; the sentence-transformers export would overwrite it"
                )
            shutil.move(str(item), target)
            for weights in target.glob("*.safetensors") if target.is_dir() else ():
                canonical_safetensors(weights)  # same tensors, same bytes (as GeAR's own weights)

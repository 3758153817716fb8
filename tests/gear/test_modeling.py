"""GeAR's model: shapes, loading from BERT checkpoints, attention paths, parameter count, persistence."""

from __future__ import annotations

import json

import pytest
import torch

from gear.config import REPO_ROOT
from gear.model import modeling
from gear.model.modeling import (
    GearConfig,
    GearModel,
    build_from_bert,
    config_from_bert,
    parameter_breakdown,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(**overrides) -> GearConfig:
    values = dict(
        vocab_size=100,
        decoder_vocab_size=101,
        hidden_size=32,
        num_hidden_layers=2,
        num_decoder_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        decoder_start_token_id=100,
        eos_token_id=3,
        max_query_tokens=16,
        max_document_tokens=32,
        max_target_tokens=8,
    )
    values.update(overrides)
    return GearConfig(**values)


def tiny_batch(batch=3, lq=6, ld=10, lt=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(5, 100, (batch, lq), generator=g)
    d = torch.randint(5, 100, (batch, ld), generator=g)
    q_mask = torch.ones(batch, lq, dtype=torch.long)
    d_mask = torch.ones(batch, ld, dtype=torch.long)
    q_mask[0, 4:] = 0  # padding in the first row
    d_mask[0, 7:] = 0
    tgt = torch.randint(5, 100, (batch, lt), generator=g)
    tgt[:, 0] = 100
    labels = torch.roll(tgt, -1, 1)
    labels[:, -1] = 3
    labels[0, 3:] = -100
    return q, q_mask, d, d_mask, tgt, labels


def test_forward_backward_shapes():
    torch.manual_seed(0)
    model = GearModel(tiny_config())
    q, q_mask, d, d_mask, tgt, labels = tiny_batch()
    assert model.embed_queries(q, q_mask).shape == (3, 32)
    emb = model.embed_documents(d, d_mask)
    assert emb.shape == (3, 32) and torch.allclose(emb.norm(dim=-1), torch.ones(3))
    states = model.document_encoder(d, d_mask).hidden_states
    assert states.shape == (3, 10, 32)
    fused = model.fuse(q, q_mask, states, d_mask).hidden_states
    assert fused.shape == (3, 6, 32)
    assert model.decoder_logits(tgt, fused, q_mask).shape == (3, 5, 101)
    loss_sum, tokens = model.lm_loss_sum(q, q_mask, states, d_mask, tgt, labels)
    assert tokens.item() == 3 + 5 + 5
    (loss_sum / tokens + model.embed_queries(q, q_mask).sum() + emb.sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []  # every part (bi-encoder, fusion blocks, decoder, LM head) is trained


def test_padding_does_not_change_embeddings():
    torch.manual_seed(0)
    model = GearModel(tiny_config()).eval()
    ids = torch.randint(5, 100, (1, 7))
    padded = torch.cat([ids, torch.zeros(1, 9, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones(1, 7), torch.zeros(1, 9)], 1).long()
    with torch.no_grad():
        alone = model.embed_documents(ids, torch.ones_like(ids))
        with_padding = model.embed_documents(padded, mask)
    torch.testing.assert_close(alone, with_padding, atol=1e-6, rtol=0)


def test_decoder_is_causal_and_kv_cache_matches_teacher_forcing():
    torch.manual_seed(0)
    model = GearModel(tiny_config()).eval()
    q, q_mask, d, d_mask, tgt, _ = tiny_batch()
    with torch.no_grad():
        states = model.document_encoder(d, d_mask).hidden_states
        fused = model.fuse(q, q_mask, states, d_mask).hidden_states
        full = model.decoder_logits(tgt, fused, q_mask)
        changed = tgt.clone()
        changed[:, -1] = 42
        assert torch.equal(model.decoder_logits(changed, fused, q_mask)[:, :-1], full[:, :-1])
        cache, steps = None, []
        for t in range(tgt.shape[1]):
            logits, cache = model.decoder_step(
                tgt[:, t : t + 1], fused if cache is None else None, q_mask, cache
            )
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_sdpa_path_equals_explicit_probabilities_path():
    torch.manual_seed(0)
    model = GearModel(tiny_config()).eval()
    q, q_mask, d, d_mask, _, _ = tiny_batch()
    with torch.no_grad():
        states = model.document_encoder(d, d_mask).hidden_states
        fast = model.fuse(q, q_mask, states, d_mask)
        explicit = model.fuse(q, q_mask, states, d_mask, cross_attention_layers=[1, 2])
    assert fast.cross_attentions == {}
    torch.testing.assert_close(explicit.hidden_states, fast.hidden_states, atol=1e-6, rtol=1e-6)
    probs = explicit.cross_attentions[2]
    assert probs.shape == (3, 2, 6, 10)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 2, 6))
    assert probs[0, :, :, 7:].abs().max() == 0  # padded document tokens get no attention


def test_attention_probabilities_computed_only_when_asked(monkeypatch):
    torch.manual_seed(0)
    model = GearModel(tiny_config()).eval()
    q, q_mask, d, d_mask, tgt, _ = tiny_batch()
    calls = []
    original = modeling.attention_probabilities

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(modeling, "attention_probabilities", counting)
    with torch.no_grad():
        states = model.document_encoder(d, d_mask).hidden_states
        fused = model.fuse(q, q_mask, states, d_mask).hidden_states
        model.decoder_logits(tgt, fused, q_mask)
        assert calls == []
        out = model.fuse(q, q_mask, states, d_mask, cross_attention_layers=[2])
    assert len(calls) == 1 and set(out.cross_attentions) == {2}


@pytest.mark.slow
def test_loading_minilm_reports_new_weights_and_reproduces_bert(minilm_path):
    from transformers import AutoTokenizer, BertModel

    model, tokenizer, report = build_from_bert(minilm_path, seed=0)
    cfg = model.config
    assert tokenizer.convert_tokens_to_ids("[DEC]") == cfg.decoder_start_token_id == 30522
    assert cfg.decoder_vocab_size == 30523 and cfg.vocab_size == 30522
    cross = {
        f"{stack}.layers.{i}.cross_attention.{part}.{kind}"
        for stack in ("query_encoder", "decoder")
        for i in range(6)
        for part in ("query", "kv", "output", "layer_norm")
        for kind in ("weight", "bias")
    }
    lm_head = {
        "lm_head.bias",
        "lm_head.dense.weight",
        "lm_head.dense.bias",
        "lm_head.layer_norm.weight",
        "lm_head.layer_norm.bias",
    }
    expected_new = cross | lm_head | {"decoder.embeddings.word_embeddings.weight[30522:30523]"}
    assert set(report.newly_initialised) == expected_new
    assert report.unused == ["embeddings.position_ids", "pooler.dense.bias", "pooler.dense.weight"]

    reference = BertModel.from_pretrained(str(minilm_path)).eval()
    model.eval()
    batch = AutoTokenizer.from_pretrained(str(minilm_path))(
        [
            "In what country is Normandy located?",
            "The Normans gave their name to Normandy, a region in France.",
        ],
        padding=True,
        return_tensors="pt",
    )
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        for stack in (model.query_encoder, model.document_encoder):
            ours = stack(ids, mask).hidden_states
            torch.testing.assert_close(ours[mask.bool()], expected[mask.bool()], atol=1e-5, rtol=1e-5)
    state = reference.state_dict()
    layer = model.decoder.layers[3].self_attention.qkv.weight
    torch.testing.assert_close(
        layer,
        torch.cat([state[f"encoder.layer.3.attention.self.{p}.weight"] for p in ("query", "key", "value")]),
        rtol=0,
        atol=0,
    )
    assert torch.equal(
        model.decoder.embeddings.word_embeddings.weight[:30522], state["embeddings.word_embeddings.weight"]
    )


def test_loading_mlm_checkpoint_takes_the_lm_head(tmp_path, minilm_path):
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    mlm = BertForMaskedLM(
        BertConfig(
            vocab_size=30522,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        )
    )
    mlm.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(str(minilm_path)).save_pretrained(tmp_path)
    model, _, report = build_from_bert(tmp_path)
    assert not any(name.startswith("lm_head.") and "[" not in name for name in report.newly_initialised)
    assert "lm_head.bias[30522:30523]" in report.newly_initialised
    assert report.unused == []  # bert.* prefix stripped; cls.predictions.decoder.* consumed by the tie
    torch.testing.assert_close(
        model.lm_head.dense.weight, mlm.cls.predictions.transform.dense.weight, rtol=0, atol=0
    )
    torch.testing.assert_close(model.lm_head.bias[:30522], mlm.cls.predictions.bias, rtol=0, atol=0)


def _bert_stack_params(h, i, v, p, t, layers):
    embeddings = v * h + p * h + t * h + 2 * h
    attention = (3 * h * h + 3 * h) + (h * h + h) + 2 * h
    ffn = (h * i + i) + (i * h + h) + 2 * h
    return embeddings + layers * (attention + ffn)


def test_parameter_count_at_bert_base_size():
    from transformers import BertConfig, BertModel

    bert = BertConfig()  # bert-base: hidden 768, 12 layers, 12 heads, FFN 3072, vocabulary 30,522
    cfg = config_from_bert(
        bert.to_dict() | {"model_type": "bert"}, decoder_start_token_id=30522, eos_token_id=102
    )
    with torch.device("meta"):
        model = GearModel(cfg)
        bert_model = BertModel(bert)
    h, i, v, p, t, n = 768, 3072, 30522, 512, 2, 12
    stack = _bert_stack_params(h, i, v, p, t, n)
    pooler = h * h + h
    assert stack + pooler == sum(x.numel() for x in bert_model.parameters()) == 109_482_240
    cross_block = (h * h + h) + (2 * h * h + 2 * h) + (h * h + h) + 2 * h
    lm_head = (h * h + h) + 2 * h + (v + 1)
    expected = 3 * stack + h + 2 * n * cross_block + lm_head  # + h: the decoder's [DEC] row
    total = sum(x.numel() for x in model.parameters())
    assert total == expected == 384_032_059
    breakdown = parameter_breakdown(model)
    assert breakdown == {
        "bert_stacks": 3 * stack,
        "dec_embedding_row": h,
        "cross_attention": 2 * n * cross_block,
        "lm_head": lm_head,
        "total": total,
    }
    # The paper's "about 330M": three bert-base checkpoints (with pooler) ...
    assert round(3 * (stack + pooler) / 1e6) == 328
    # ... while the new cross-attention blocks add about 57M on top.
    assert round(2 * n * cross_block / 1e6) == 57


def test_save_load_round_trip(tmp_path, tiny_bert_path):
    from gear.inference import load_gear

    model, tokenizer, _ = build_from_bert(tiny_bert_path, seed=3, max_document_tokens=32)
    model.save_pretrained(tmp_path / "m", tokenizer)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model_type"] == "gear"
    loaded, loaded_tokenizer = load_gear(tmp_path / "m", device="cpu")
    assert loaded.config == model.config
    original = model.state_dict()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, original[name]), name
    assert loaded_tokenizer.convert_tokens_to_ids("[DEC]") == loaded.config.decoder_start_token_id
    ids = torch.tensor([[101, 2054, 2003, 102]])
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.embed_queries(ids, torch.ones_like(ids)),
            model.eval().embed_queries(ids, torch.ones_like(ids)),
            rtol=0,
            atol=0,
        )


def test_saved_weights_are_byte_identical_across_processes_and_not_private(tmp_path, tiny_bert_path):
    """The same tensors give the same model.safetensors bytes in every process (the writer orders
    its metadata by a hash map), and the file is not 0600 (issue 16, item 7)."""
    import hashlib
    import os
    import stat
    import subprocess
    import sys

    from safetensors.torch import load_file

    model, _, _ = build_from_bert(tiny_bert_path, seed=3, max_document_tokens=32)
    model.save_pretrained(tmp_path / "m")
    script = (
        "import sys; from gear.model.modeling import GearModel; "
        "GearModel.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])"
    )
    digests = set()
    for i in range(4):  # hash seeds differ per process: the old writer gave 2 orders of its 2 keys
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "m"), str(tmp_path / f"c{i}")], check=True
        )
        digests.add(hashlib.sha256((tmp_path / f"c{i}" / "model.safetensors").read_bytes()).hexdigest())
    assert digests == {hashlib.sha256((tmp_path / "m" / "model.safetensors").read_bytes()).hexdigest()}
    mask = os.umask(0)
    os.umask(mask)
    mode = stat.S_IMODE((tmp_path / "m" / "model.safetensors").stat().st_mode)
    assert mode == 0o666 & ~mask
    reloaded = load_file(str(tmp_path / "c0" / "model.safetensors"))
    assert all(torch.equal(reloaded[k], v) for k, v in model.state_dict().items())


def test_from_pretrained_rejects_mismatched_weights(tmp_path):
    torch.manual_seed(0)
    GearModel(tiny_config()).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["intermediate_size"] = 48
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not match"):
        GearModel.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        GearModel.from_pretrained(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a saved GeAR model"):
        GearModel.from_pretrained(tmp_path / "empty")


def test_build_from_non_bert_checkpoint_fails(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    with pytest.raises(ValueError, match="BERT checkpoints"):
        build_from_bert(tmp_path)


def test_cross_attention_init_from_a_checkpoint(tiny_bert_path):
    """values: identity starts V and O as the identity; layer_norm: copy takes the preceding
    (pretrained) LayerNorm; query_key: self_attention copies the same layer's Q and K; BERT's init
    (values: random) leaves them small and random; a bad value names its field."""
    from gear.model.modeling import CrossAttentionInit

    width = 32
    eye = torch.eye(width)
    model, _, _ = build_from_bert(
        tiny_bert_path, cross_attention_init=CrossAttentionInit(query_key="self_attention")
    )
    assert model.config.extra["cross_attention_init"]["query_key"] == "self_attention"
    for stack, scale in ((model.query_encoder, 1.0), (model.decoder, 0.1)):  # decoder_output_scale
        for layer in stack.layers:
            block, before = layer.cross_attention, layer.self_attention
            assert torch.equal(block.kv.weight[width:], eye)
            assert torch.equal(block.output.weight, scale * eye)
            assert torch.equal(block.layer_norm.weight, before.layer_norm.weight)
            assert torch.equal(block.query.weight, before.qkv.weight[:width])
            assert torch.equal(block.kv.weight[:width], before.qkv.weight[width : 2 * width])
            assert block.dropout.p == 0.0 and block.attention_dropout == 0.0
    bert, _, _ = build_from_bert(
        tiny_bert_path,
        cross_attention_init=CrossAttentionInit(values="random", layer_norm="fresh", dropout=0.1),
    )
    block = bert.query_encoder.layers[0].cross_attention
    assert block.output.weight.std().item() == pytest.approx(0.02, rel=0.2)
    assert torch.equal(block.layer_norm.weight, torch.ones(width)) and block.dropout.p == 0.1
    with pytest.raises(ValueError, match=r"cross_attention_init\.values"):
        CrossAttentionInit(values="zeros")


def test_query_key_std_draws_the_random_query_and_key_at_that_scale(tiny_bert_path):
    """query_key_std sets the std of the random query and key projections (seeded by
    build_from_bert's seed), leaves the values and outputs as the other fields say, and must be
    positive; None keeps BERT's 0.02."""
    from gear.model.modeling import CrossAttentionInit

    width = 32
    wide = CrossAttentionInit(query_key_std=0.3)
    model, _, _ = build_from_bert(tiny_bert_path, cross_attention_init=wide, seed=1)
    again, _, _ = build_from_bert(tiny_bert_path, cross_attention_init=wide, seed=1)
    other, _, _ = build_from_bert(tiny_bert_path, cross_attention_init=wide, seed=2)
    default, _, _ = build_from_bert(tiny_bert_path, seed=1)
    for stack in ("query_encoder", "decoder"):
        block = getattr(model, stack).layers[0].cross_attention
        assert block.query.weight.std().item() == pytest.approx(0.3, rel=0.15)
        assert block.kv.weight[:width].std().item() == pytest.approx(0.3, rel=0.15)
        assert torch.equal(block.kv.weight[width:], torch.eye(width))
        assert torch.equal(block.query.weight, getattr(again, stack).layers[0].cross_attention.query.weight)
        assert not torch.equal(
            block.query.weight, getattr(other, stack).layers[0].cross_attention.query.weight
        )
        plain = getattr(default, stack).layers[0].cross_attention
        assert plain.query.weight.std().item() == pytest.approx(0.02, rel=0.2)
    assert model.config.extra["cross_attention_init"]["query_key_std"] == 0.3
    with pytest.raises(ValueError, match=r"cross_attention_init\.query_key_std"):
        CrossAttentionInit(query_key_std=0.0)


def test_lm_head_starts_as_a_readout_when_the_checkpoint_has_none(tiny_bert_path):
    """A checkpoint without an MLM head (tiny_bert_path is a bare BertModel, as MiniLM is) gets the
    identity transform (lm_head: identity) or BERT's random init (lm_head: random); a checkpoint
    with a head keeps its own (test_loading_mlm_checkpoint_takes_the_lm_head)."""
    from gear.model.modeling import CrossAttentionInit

    model, _, report = build_from_bert(tiny_bert_path)
    assert "lm_head.dense.weight" in report.newly_initialised
    assert torch.equal(model.lm_head.dense.weight, torch.eye(32))
    assert not model.lm_head.dense.bias.any() and not model.lm_head.bias.any()
    assert torch.equal(model.lm_head.layer_norm.weight, torch.ones(32))
    random_head, _, _ = build_from_bert(
        tiny_bert_path, cross_attention_init=CrossAttentionInit(lm_head="random")
    )
    assert random_head.lm_head.dense.weight.std().item() == pytest.approx(0.02, rel=0.2)
    with pytest.raises(ValueError, match=r"cross_attention_init\.lm_head"):
        CrossAttentionInit(lm_head="zeros")


@pytest.mark.slow
def test_the_document_reaches_the_lm_loss_at_init_only_with_a_readout_head(minilm_path):
    """From MiniLM (no MLM head), untrained: with the identity readout the LM loss of real SQuAD
    answers is clearly lower with the right paragraphs than with paragraphs shuffled across the
    batch, so its gradient can tell the fusion's cross-attention where to look; with BERT's random
    head the two losses are the same (the document does not reach the loss)."""
    from gear.model.modeling import CrossAttentionInit

    squad = json.loads((REPO_ROOT / "data_prep/mini/squad/mini-dev.json").read_text())
    rows = [
        (qa["question"], paragraph["context"], qa["answers"][0]["text"])
        for article in squad["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ][:16]

    def losses(head: str) -> tuple[float, float]:
        model, tokenizer, _ = build_from_bert(
            minilm_path, cross_attention_init=CrossAttentionInit(lm_head=head), max_document_tokens=192
        )
        model.eval()
        cfg = model.config
        queries = tokenizer([r[0] for r in rows], return_tensors="pt", padding=True)
        documents = tokenizer(
            [r[1] for r in rows], return_tensors="pt", padding=True, truncation=True, max_length=192
        )
        targets = tokenizer([r[2] for r in rows], add_special_tokens=False)["input_ids"]
        width = max(len(t) for t in targets) + 1
        inputs = torch.zeros(len(rows), width, dtype=torch.long)
        labels = torch.full((len(rows), width), -100)
        for i, target in enumerate(targets):
            inputs[i, : len(target) + 1] = torch.tensor([cfg.decoder_start_token_id, *target])
            labels[i, : len(target) + 1] = torch.tensor([*target, cfg.eos_token_id])
        with torch.no_grad():
            states = model.document_encoder(documents["input_ids"], documents["attention_mask"]).hidden_states
            out = []
            for order in (torch.arange(len(rows)), torch.roll(torch.arange(len(rows)), 1)):
                total, count = model.lm_loss_sum(
                    queries["input_ids"],
                    queries["attention_mask"],
                    states[order],
                    documents["attention_mask"][order],
                    inputs,
                    labels,
                )
                out.append((total / count).item())
        return out[0], out[1]

    right, shuffled = losses("identity")
    print(f"identity head: right {right:.3f} shuffled {shuffled:.3f}")
    assert shuffled - right > 0.15, (right, shuffled)
    right, shuffled = losses("random")
    print(f"random head: right {right:.3f} shuffled {shuffled:.3f}")
    assert abs(shuffled - right) < 0.05, (right, shuffled)


@pytest.mark.parametrize(("decoder_output_scale", "collapsed"), [(0.1, False), (1.0, True)])
def test_decoder_keeps_its_positions_apart_at_init(minilm_path, decoder_output_scale, collapsed):
    """From MiniLM, untrained: with the decoder's cross-attention output at full strength
    (``decoder_output_scale: 1``) the same average of the fused states is added at every target
    position in every layer, and by the last layer every position is one vector (mean pairwise
    cosine above 0.99), so the decoder can only emit one distribution (the end token first: empty
    generations). The configured 0.1 keeps the positions apart."""
    from gear.model.modeling import CrossAttentionInit

    model, tokenizer, _ = build_from_bert(
        minilm_path,
        cross_attention_init=CrossAttentionInit(decoder_output_scale=decoder_output_scale),
        max_document_tokens=128,
    )
    model.eval()
    cfg = model.config
    block = model.decoder.layers[0].cross_attention
    assert torch.equal(block.output.weight, decoder_output_scale * torch.eye(cfg.hidden_size))
    assert torch.equal(
        model.query_encoder.layers[0].cross_attention.output.weight, torch.eye(cfg.hidden_size)
    )
    queries = tokenizer(
        ["Who founded the dynasty?", "When was the river bridged?"], return_tensors="pt", padding=True
    )
    documents = tokenizer(
        [
            "The dynasty was founded by Kublai Khan in 1271. It ruled China for a century.",
            "The river was first bridged in 1750. A ferry served the town before that.",
        ],
        return_tensors="pt",
        padding=True,
    )
    target = tokenizer(
        ["the great khan of the mongol empire"] * 2, add_special_tokens=False, return_tensors="pt"
    )
    inputs = torch.cat([torch.full((2, 1), cfg.decoder_start_token_id), target["input_ids"]], dim=1)
    with torch.no_grad():
        states = model.document_encoder(documents["input_ids"], documents["attention_mask"]).hidden_states
        fused = model.fuse(
            queries["input_ids"], queries["attention_mask"], states, documents["attention_mask"]
        ).hidden_states
        hidden = model.decoder(
            inputs, encoder_states=fused, encoder_mask=queries["attention_mask"]
        ).hidden_states
    unit = torch.nn.functional.normalize(hidden, dim=-1)
    cosines = unit @ unit.transpose(1, 2)
    n = inputs.shape[1]
    mean_cosine = ((cosines.sum((1, 2)) - n) / (n * n - n)).mean().item()
    print(f"decoder_output_scale {decoder_output_scale}: mean cosine {mean_cosine:.4f}")
    if collapsed:
        assert mean_cosine > 0.99, mean_cosine
    else:
        assert mean_cosine < 0.95, mean_cosine
    with pytest.raises(ValueError, match=r"cross_attention_init\.decoder_output_scale"):
        CrossAttentionInit(decoder_output_scale=1.5)


def test_fast_tokenizer_is_what_auto_tokenizer_gives(trained_tiny_gear, minilm_path, tmp_path, monkeypatch):
    """GeAR's folders load BertTokenizerFast directly (no transformers auto module, 1.7-2.5 s of a
    job's start): the same class and the same ids, offsets and special tokens as AutoTokenizer,
    on a saved GeAR (its [DEC] added) and on MiniLM; a folder naming another class goes through
    AutoTokenizer."""
    from transformers import AutoTokenizer

    from gear.model.tokens import load_fast_tokenizer

    texts = [
        "Café Ōsaka: naïve [DEC] façade, 北京 [SEP] 3.5% ½",
        "The Eiffel Tower is located in Paris. It was completed in 1889." * 20,
    ]
    for folder in (trained_tiny_gear, minilm_path):
        with monkeypatch.context() as no_auto:  # the direct path never reaches AutoTokenizer
            no_auto.setattr("transformers.AutoTokenizer", None)
            direct = load_fast_tokenizer(folder)
        auto = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
        assert type(direct) is type(auto)
        assert direct.all_special_tokens == auto.all_special_tokens and len(direct) == len(auto)
        mine = direct(texts, return_offsets_mapping=True, truncation=True, max_length=64)
        theirs = auto(texts, return_offsets_mapping=True, truncation=True, max_length=64)
        assert mine["input_ids"] == theirs["input_ids"]
        assert mine["offset_mapping"] == theirs["offset_mapping"]
    other = tmp_path / "other"
    AutoTokenizer.from_pretrained(str(minilm_path)).save_pretrained(other)
    config = json.loads((other / "tokenizer_config.json").read_text())
    (other / "tokenizer_config.json").write_text(
        json.dumps({**config, "tokenizer_class": "PreTrainedTokenizerFast"})
    )
    assert type(load_fast_tokenizer(other)).__name__ == "PreTrainedTokenizerFast"

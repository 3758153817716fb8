"""Training precision (gear.training.precision): bf16 weights with float32 masters, run on CPU in bf16."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

import gear.training.trainer
from gear.config import ConfigError
from gear.training.precision import StepPrecision, effective_precision
from gear.training.settings import read_sections
from gear.training.step import build_optimizer
from gear.training.trainer import train_gear
from tests.gear.test_train import _assert_bitwise_equal, _weights, collate, tiny_module, tiny_run_config

pytestmark = pytest.mark.usefixtures("one_thread")


def test_precision_values_and_the_cpu_rule():
    assert effective_precision("bf16-master", torch.device("cuda", 0)) == "bf16-master"
    assert effective_precision("bf16", torch.device("cuda")) == "bf16"
    assert effective_precision("bf16-master", torch.device("cpu")) == "fp32"
    with pytest.raises(ConfigError, match=r"train\.precision: 'fp16' is not one of fp32, bf16, bf16-master"):
        effective_precision("fp16", torch.device("cpu"))


def test_config_schema_rejects_an_unknown_precision(mini_config):
    from gear.config import validate_config

    mini_config["train"]["precision"] = "bf16-master"
    validate_config(mini_config)
    mini_config["train"]["precision"] = "half"
    with pytest.raises(ConfigError, match=r"train\.precision"):
        validate_config(mini_config)


def _module_and_batch(tiny_bert_path, mini_config, triples_file, lr=1e-3):
    train_cfg = copy.deepcopy(mini_config["train"])
    train_cfg.update(queue_size=8)
    train_cfg["optimizer"]["lr"] = lr
    training, tokenizer = tiny_module(tiny_bert_path, train_cfg)
    batch = collate(tokenizer, training.model, triples_file, [0, 1, 2, 3])
    return training, batch, train_cfg


def _section(train_cfg):
    gear_cfg = {
        "init_checkpoint": "x",
        "decoder_start_token": "[DEC]",
        "max_query_tokens": 16,
        "max_document_tokens": 64,
        "max_target_tokens": 16,
    }
    return read_sections({"seed": 0, "gear": gear_cfg, "train": train_cfg})[1]


def _step(wrapped, precision, optimizer, batch, lr, training=None):
    """The trainer's step (gear.training.trainer.train_gear's loop body, one micro-batch); ``wrapped`` is the
    training module or its DDP wrapper (then ``training`` is the module)."""
    training = training or wrapped
    with precision.autocast():
        loss, stats, bank = wrapped(batch, 0.4)
    loss.backward()
    training.enqueue(*bank)
    precision.gradients_to_masters()
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    precision.masters_to_weights()
    training.momentum_update(precision)
    training.clamp_temperature()
    return loss.detach(), stats


def test_bf16_master_step_updates_masters_and_copies_them_back(tiny_bert_path, mini_config, triples_file):
    training, batch, train_cfg = _module_and_batch(tiny_bert_path, mini_config, triples_file)
    reference = copy.deepcopy(training)  # the same weights, trained in float32
    before = {k: v.clone() for k, v in training.state_dict().items()}
    precision = StepPrecision(training, "bf16-master", keep_fp32=("temperature",))

    params = dict(training.named_parameters())
    assert params["temperature"].dtype == torch.float32
    assert training.query_queue.dtype == torch.float32  # buffers are not converted
    assert all(p.dtype == torch.bfloat16 for n, p in params.items() if n != "temperature")
    masters = precision.optimizer_parameters()
    assert all(m.dtype == torch.float32 for m in masters)
    with precision.fp32_weights():  # the masters are the original float32 weights, bit for bit
        for name, value in training.state_dict().items():
            assert torch.equal(value, before[name]), name

    section = _section(train_cfg)
    optimizer = build_optimizer(precision.optimizer_parameters(), section.optimizer, torch.device("cpu"))
    loss, stats = _step(training, precision, optimizer, batch, lr=1e-3)
    reference_loss, _, _ = reference(batch, 0.4)

    assert torch.isfinite(loss) and torch.isfinite(stats["lm_sum"])
    assert loss.item() == pytest.approx(reference_loss.item(), rel=0.03)  # bf16 forward of the same weights
    assert all(p.grad is None for p in training.parameters())  # bf16 gradients freed after the copy
    with precision.fp32_weights():
        after = {k: v.clone() for k, v in training.state_dict().items()}
    for name, param in training.named_parameters():
        if name == "temperature":
            continue
        assert torch.equal(param, after[name].to(torch.bfloat16)), name  # weights = masters in bf16
    trained = [n for n, p in reference.named_parameters() if p.requires_grad and not n.startswith("momentum")]
    assert sum(not torch.equal(after[n], before[n]) for n in trained) > 0.9 * len(trained)
    # Momentum masters followed the updated online masters: m = mu m0 + (1 - mu) theta.
    mu = training.momentum
    for name in (
        "momentum_query_encoder.layers.0.self_attention.qkv.weight",
        "momentum_document_encoder.embeddings.word_embeddings.weight",
    ):
        online_name = name.replace("momentum_query_encoder", "model.query_encoder")
        online = after[online_name.replace("momentum_document_encoder", "model.document_encoder")]
        expected = torch.lerp(before[name], online, 1.0 - mu)
        torch.testing.assert_close(after[name], expected, rtol=0, atol=1e-7)


def test_masters_keep_updates_too_small_for_bf16(tiny_bert_path, mini_config, triples_file):
    # At a learning rate of 1e-7 an Adam step moves a weight by ~1e-7, far below bf16's resolution
    # near 0.05 (2^-12): bf16 weights alone would not move at all; the masters accumulate it.
    training, batch, train_cfg = _module_and_batch(tiny_bert_path, mini_config, triples_file, lr=1e-7)
    precision = StepPrecision(training, "bf16-master", keep_fp32=("temperature",))
    optimizer = build_optimizer(
        precision.optimizer_parameters(), _section(train_cfg).optimizer, torch.device("cpu")
    )
    name = "model.document_encoder.layers.0.self_attention.qkv.weight"
    bf16_before = dict(training.named_parameters())[name].detach().clone()
    with precision.fp32_weights():
        master_before = training.state_dict()[name].clone()
    _step(training, precision, optimizer, batch, lr=1e-7)
    with precision.fp32_weights():
        master_after = training.state_dict()[name].clone()
    bf16_after = dict(training.named_parameters())[name].detach()
    moved = master_after != master_before
    assert moved.float().mean() > 0.9
    assert (bf16_after != bf16_before).float().mean() < 0.05


def test_loading_a_state_within_fp32_weights_lands_in_the_masters(tiny_bert_path, mini_config, triples_file):
    training, _, _ = _module_and_batch(tiny_bert_path, mini_config, triples_file)
    state = {k: v.clone() for k, v in training.state_dict().items()}
    name = "model.query_encoder.layers.0.feed_forward.output.weight"
    state[name] = state[name] + 1.0 / 3.0  # not representable in bf16
    precision = StepPrecision(training, "bf16-master", keep_fp32=("temperature",))
    with precision.fp32_weights():
        training.load_state_dict(state, strict=True)
        assert torch.equal(training.state_dict()[name], state[name])
        assert training.state_dict()[name].dtype == torch.float32
    weight = dict(training.named_parameters())[name]
    assert weight.dtype == torch.bfloat16
    assert torch.equal(weight, state[name].to(torch.bfloat16))


@pytest.mark.slow
def test_bf16_master_training_resumes_bitwise_and_saves_float32(
    tmp_path, tiny_bert_path, mini_config, monkeypatch
):
    """The real trainer in bf16-master on CPU (the CPU rule lifted): stop, resume, same bits."""
    from tests.gear.conftest import write_triples

    monkeypatch.setattr(gear.training.trainer, "effective_precision", lambda precision, device: precision)
    triples = write_triples(tmp_path / "triples.jsonl")
    cfg = tiny_run_config(mini_config, tiny_bert_path, precision="bf16-master")
    reference = train_gear(triples, tmp_path / "whole", cfg, "GeAR", "qar")
    out = tmp_path / "stopped"
    train_gear(triples, out, cfg, "GeAR", "qar", max_steps=8)
    final = train_gear(triples, out, cfg, "GeAR", "qar")
    _assert_bitwise_equal(final, reference)
    weights = _weights(final)
    assert all(w.dtype == torch.float32 for w in weights.values())
    # The saved masters are not all bf16-representable: they are the float32 masters, not the bf16 weights.
    assert any(not torch.equal(w, w.to(torch.bfloat16).float()) for w in weights.values() if w.ndim == 2)
    epochs = [json.loads(line) for line in (final / "train_log.jsonl").read_text().splitlines()]
    losses = [r["lm_loss"] for r in epochs if r["event"] == "epoch"]
    assert len(losses) == 2 and all(0 < v < 20 for v in losses)


def _ddp_master_worker(
    rank: int, world: int, init_file: str, tiny_bert_path: str, payload_path: str, out_dir: str
):
    import os

    import torch.distributed as dist

    from gear.training.distributed import no_buffer_sync

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        payload = torch.load(payload_path)
        training, _ = tiny_module(Path(tiny_bert_path), payload["train_cfg"], with_tokenizer=False)
        precision = StepPrecision(training, "bf16-master", keep_fp32=("temperature",))
        optimizer = build_optimizer(
            precision.optimizer_parameters(), _section(payload["train_cfg"]).optimizer, torch.device("cpu")
        )
        ddp = torch.nn.parallel.DistributedDataParallel(training, **no_buffer_sync())
        per_rank = payload["batch"]["query_ids"].shape[0] // world
        local = {k: v[rank * per_rank : (rank + 1) * per_rank] for k, v in payload["batch"].items()}
        _step(ddp, precision, optimizer, local, lr=1e-3, training=training)
        with precision.fp32_weights():
            state = {k: v.clone() for k, v in training.state_dict().items()}
        torch.save(state, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_bf16_master_under_ddp_keeps_replicas_identical(tmp_path, tiny_bert_path, mini_config, triples_file):
    """Two processes (gloo, bf16 gradients reduced by DDP) end the step with the same float32 masters,
    and close to one process taking the same global batch."""
    import torch.multiprocessing as mp

    train_cfg = tiny_run_config(mini_config, tiny_bert_path)["train"]
    training, tokenizer = tiny_module(tiny_bert_path, train_cfg)
    batch = collate(tokenizer, training.model, triples_file, [0, 1, 5, 9, 12, 13, 20, 22])
    initial = {k: v.clone() for k, v in training.state_dict().items()}
    precision = StepPrecision(training, "bf16-master", keep_fp32=("temperature",))
    optimizer = build_optimizer(
        precision.optimizer_parameters(), _section(train_cfg).optimizer, torch.device("cpu")
    )
    _step(training, precision, optimizer, batch, lr=1e-3)
    with precision.fp32_weights():
        single = {k: v.clone() for k, v in training.state_dict().items()}
    payload = tmp_path / "payload.pt"
    torch.save({"train_cfg": train_cfg, "batch": batch}, payload)
    mp.spawn(
        _ddp_master_worker,
        args=(2, str(tmp_path / "init"), str(tiny_bert_path), str(payload), str(tmp_path)),
        nprocs=2,
        join=True,
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name, value in ranks[0].items():
        assert torch.equal(value, ranks[1][name]), name  # DDP kept the replicas identical
        assert value.dtype == single[name].dtype
    # Adam's first step moves each weight by about lr x sign(gradient): bf16 gradients reduced
    # in another order can flip the sign of a near-zero one, a difference of at most 2 x lr.
    for name, value in single.items():
        if value.is_floating_point():
            torch.testing.assert_close(ranks[0][name], value, rtol=0, atol=2.5e-3, msg=name)
    weights = [n for n in initial if n.startswith("model.") and n.endswith(".weight")]
    moved = [n for n in weights if not torch.equal(initial[n], ranks[0][n])]
    assert len(moved) > 0.9 * len(weights)  # the step did train: the comparison is not vacuous

"""GeAR training: schedules, queue, momentum, losses, data order, resumption, two processes."""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gear.config import ConfigError
from gear.io import DataFormatError
from gear.model.modeling import (
    CrossAttentionInit,
    GearModel,
    build_from_bert,
    config_from_bert,
    initialise_cross_attention,
    load_bert_weights,
    mean_pool,
    read_bert_checkpoint,
)
from gear.training.checkpoints import StateStore
from gear.training.distributed import no_buffer_sync
from gear.training.objectives import GearTrainingModule
from gear.training.settings import ScheduleSection, alpha_at, check_queue_size, learning_rate, read_sections
from gear.training.trainer import train_gear
from gear.training.triples import EpochPlan, TripleCollator, TripleFile, doc_id_key

pytestmark = pytest.mark.usefixtures("one_thread")
REPO_ROOT = Path(__file__).resolve().parents[2]


def tiny_run_config(mini_config: dict, tiny_bert_path: Path, **train_overrides) -> dict:
    cfg = mini_config
    cfg["gear"].update(
        init_checkpoint=str(tiny_bert_path), max_query_tokens=16, max_document_tokens=64, max_target_tokens=16
    )
    # A loss record every 5 steps (and at each epoch's end, step 6 of 6): a run stopped at step 8
    # keeps steps 7 and 8 of an open record window in its state.
    cfg["train"].update(
        epochs=2, queue_size=8, checkpoint_every_steps=2, log_every_seconds=0.5, record_every_steps=5
    )
    cfg["train"]["scenarios"]["qar"]["batch_size"] = 4
    cfg["train"]["schedule"]["warmup_steps"] = 2
    cfg["train"].update(train_overrides)
    return cfg


def train_section(train_cfg: dict):
    """The parsed ``train`` section of a tiny run (gear.training.settings.TrainSection)."""
    gear = {
        "init_checkpoint": "x",
        "decoder_start_token": "[DEC]",
        "max_query_tokens": 16,
        "max_document_tokens": 64,
        "max_target_tokens": 16,
    }
    return read_sections({"seed": 0, "gear": gear, "train": train_cfg})[1]


def tiny_module(tiny_bert_path, train_cfg: dict, lm_loss=True, dropout=0.0, with_tokenizer=True):
    overrides = dict(
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        max_query_tokens=16,
        max_document_tokens=64,
        max_target_tokens=16,
    )
    if with_tokenizer:
        model, tokenizer, _ = build_from_bert(tiny_bert_path, seed=0, **overrides)
    else:  # the same model without loading transformers (spawned processes start faster)
        bert_cfg, tensors = read_bert_checkpoint(tiny_bert_path)
        torch.manual_seed(0)
        model = GearModel(
            config_from_bert(bert_cfg, 30522, 102, cross_attention_dropout_prob=0.0, **overrides)
        )
        tokenizer = None
        report = load_bert_weights(model, tensors)
        initialise_cross_attention(model, CrossAttentionInit(), report.newly_initialised)
    _, train = read_sections(
        {
            "seed": 0,
            "gear": {
                "init_checkpoint": "x",
                "decoder_start_token": "[DEC]",
                "max_query_tokens": 16,
                "max_document_tokens": 64,
                "max_target_tokens": 16,
                "localization": {"layer": 1},
            },
            "train": train_cfg,
        }
    )
    return GearTrainingModule(model, train, lm_loss), tokenizer


def collate(tokenizer, model, triples_path, rows):
    dataset = TripleFile(triples_path)
    collator = TripleCollator(
        tokenizer, 16, 64, 16, model.config.decoder_start_token_id, model.config.eos_token_id
    )
    return collator([dataset[i] for i in rows])


# -- schedules and checks ----------------------------------------------------------------------
def test_learning_rate_schedule_boundaries():
    schedule = ScheduleSection(warmup_steps=10, warmup_lr=1e-6, min_lr=1e-6)
    lr, total = 1e-5, 110
    assert learning_rate(0, total, lr, schedule) == pytest.approx(1e-6)
    assert learning_rate(5, total, lr, schedule) == pytest.approx(5.5e-6)
    assert learning_rate(10, total, lr, schedule) == pytest.approx(1e-5)
    assert learning_rate(10 + 99 // 2, total, lr, schedule) < 1e-5
    assert learning_rate(total - 1, total, lr, schedule) == pytest.approx(1e-6)
    midpoint = 10 + 99 / 2
    assert learning_rate(int(midpoint), total, lr, schedule) == pytest.approx(
        1e-6 + 0.5 * 9e-6 * (1 + math.cos(math.pi * (int(midpoint) - 10) / 99))
    )
    no_warmup = ScheduleSection(warmup_steps=0, warmup_lr=1e-6, min_lr=0.0)
    assert learning_rate(0, 50, 1e-4, no_warmup) == pytest.approx(1e-4)
    assert learning_rate(49, 50, 1e-4, no_warmup) == pytest.approx(0.0)


def test_alpha_ramp_boundaries():
    assert alpha_at(0, 100, 0.4, 2) == 0.0
    assert alpha_at(100, 100, 0.4, 2) == pytest.approx(0.2)
    assert alpha_at(200, 100, 0.4, 2) == pytest.approx(0.4)
    assert alpha_at(950, 100, 0.4, 2) == pytest.approx(0.4)
    assert alpha_at(3, 100, 0.4, 0) == 0.4


def test_queue_size_must_be_a_multiple_of_the_global_batch():
    check_queue_size(57600, 48, 16)
    check_queue_size(64, 8, 1)
    with pytest.raises(
        ConfigError, match=r"not a multiple of the global batch: 48 .* x 7 process\(es\) = 336"
    ):
        check_queue_size(57600, 48, 7)


# -- momentum encoders and queues --------------------------------------------------------------
def test_momentum_update_and_queue_wraparound(tiny_bert_path, mini_config):
    module, _ = tiny_module(tiny_bert_path, tiny_run_config(mini_config, tiny_bert_path)["train"])
    assert not any(".cross_attention." in n for n, _ in module.momentum_query_encoder.named_parameters())
    online = module.model.document_encoder.layers[0].feed_forward.output.weight
    twin = module.momentum_document_encoder.layers[0].feed_forward.output.weight
    assert torch.equal(online, twin) and not twin.requires_grad
    with torch.no_grad():
        online.add_(1.0)
    before = twin.clone()
    module.momentum_update()
    torch.testing.assert_close(twin, 0.995 * before + 0.005 * online.detach(), rtol=0, atol=1e-6)
    query_twin = module.momentum_query_encoder.embeddings.word_embeddings.weight
    assert torch.equal(query_twin, module.model.query_encoder.embeddings.word_embeddings.weight)

    width = module.query_queue.shape[1]
    assert module.queue_ptr == 0 and (module.doc_key_queue == -1).all()
    for step in range(3):  # queue of 8, batches of 4: the third batch overwrites the first
        feats = torch.full((4, width), float(step))
        module.enqueue(feats, -feats, torch.arange(4) + 10 * step)
    assert module.queue_ptr == 4
    assert module.doc_key_queue.tolist() == [20, 21, 22, 23, 10, 11, 12, 13]
    assert module.query_queue[:4].eq(2).all() and module.document_queue[4:].eq(-1).all()


def test_contrastive_loss_matches_hand_computation(tiny_bert_path, mini_config, triples_file):
    """alpha 0: cross-entropy against targets spread over same-document entries of batch and queue."""
    train_cfg = tiny_run_config(mini_config, tiny_bert_path)["train"]
    module, tokenizer = tiny_module(tiny_bert_path, train_cfg)
    module.eval()
    batch = collate(tokenizer, module.model, triples_file, [0, 1, 3, 6])  # rows 0 and 1: same document
    model = module.model
    with torch.no_grad():
        q = F.normalize(
            mean_pool(
                model.query_encoder(batch["query_ids"], batch["query_mask"]).hidden_states,
                batch["query_mask"],
            ),
            dim=-1,
        )
        d = F.normalize(
            mean_pool(
                model.document_encoder(batch["document_ids"], batch["document_mask"]).hidden_states,
                batch["document_mask"],
            ),
            dim=-1,
        )
        # one earlier batch in the queue: its first entry shares row 3's document
        queued_keys = torch.tensor([batch["doc_keys"][3].item(), 5, 6, 7])
        module.enqueue(q.flip(0), d.flip(0), queued_keys)
        _, stats, bank = module(batch, alpha=0.0)
    keys = batch["doc_keys"].tolist()
    bank_keys = keys + queued_keys.tolist()
    doc_bank = torch.cat([d, d.flip(0)])
    expected = []
    for i in range(4):
        logits = [float(q[i] @ doc_bank[j]) / 0.07 for j in range(8)]
        logits = np.array(logits[:8])
        log_p = logits - np.log(np.exp(logits).sum())
        positives = [j for j in range(8) if bank_keys[j] == keys[i]]
        expected.append(-np.mean([log_p[j] for j in positives]))
    q_bank = torch.cat([q, q.flip(0)])
    for i in range(4):
        logits = np.array([float(d[i] @ q_bank[j]) / 0.07 for j in range(8)])
        log_p = logits - np.log(np.exp(logits).sum())
        positives = [j for j in range(8) if bank_keys[j] == keys[i]]
        expected.append(-np.mean([log_p[j] for j in positives]))
    assert stats["cl"].item() == pytest.approx(np.mean(expected), rel=1e-5)
    assert keys[0] == keys[1] and len({keys[0], keys[2], keys[3]}) == 3
    assert torch.equal(bank[2], batch["doc_keys"])


def test_queue_slots_not_filled_are_masked(tiny_bert_path, mini_config, triples_file):
    train_cfg = tiny_run_config(mini_config, tiny_bert_path)["train"]
    module, tokenizer = tiny_module(tiny_bert_path, train_cfg)
    module.eval()
    batch = collate(tokenizer, module.model, triples_file, [0, 3, 6, 9])
    with torch.no_grad():
        empty_queue, _, _ = module(batch, alpha=0.3)
        module.query_queue.normal_()  # garbage in unfilled slots must not matter
        module.document_queue.normal_()
        garbage_queue, _, _ = module(batch, alpha=0.3)
    assert torch.equal(empty_queue, garbage_queue)


def test_gear_cl_variant_skips_fusion_and_decoder(tiny_bert_path, mini_config, triples_file):
    train_cfg = tiny_run_config(mini_config, tiny_bert_path)["train"]
    module, tokenizer = tiny_module(tiny_bert_path, train_cfg, lm_loss=False)
    batch = collate(tokenizer, module.model, triples_file, [0, 3, 6, 9])
    loss, stats, _ = module(batch, alpha=0.0)
    loss.backward()
    assert set(stats) == {"cl"}
    for name, param in module.model.named_parameters():
        frozen = ".cross_attention." in name or name.startswith(("decoder.", "lm_head."))
        assert (param.grad is None) == frozen, name


def test_loss_decreases_on_real_text(tiny_bert_path, mini_config, triples_file):
    from gear.training.step import build_optimizer

    train_cfg = tiny_run_config(mini_config, tiny_bert_path)["train"]
    module, tokenizer = tiny_module(tiny_bert_path, train_cfg, dropout=0.1)
    batch = collate(tokenizer, module.model, triples_file, list(range(0, 24, 3)))
    optimizer = build_optimizer(
        module,
        train_section(train_cfg).optimizer,
        torch.device("cpu"),
    )
    for group in optimizer.param_groups:
        group["lr"] = 3e-3
    history = []
    for _ in range(12):
        loss, stats, _ = module(batch, alpha=0.0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        module.momentum_update()
        history.append((stats["cl"].item(), (stats["lm_sum"] / stats["lm_tokens"]).item()))
    (cl_first, lm_first), (cl_last, lm_last) = history[0], history[-1]
    assert lm_first == pytest.approx(math.log(30523), abs=0.3)  # an untrained LM head: ~uniform
    assert lm_last < lm_first - 1.0
    assert cl_last < 0.5 * cl_first
    assert all(b[1] < a[1] for a, b in itertools.pairwise(history))


# -- data --------------------------------------------------------------------------------------
def test_epoch_plan_is_deterministic_bucketed_and_sliced_per_rank():
    lengths = np.random.default_rng(0).integers(10, 1000, size=103)
    plan = EpochPlan(lengths, global_batch=8, micro_batches_per_epoch=12, seed=7, chunk_batches=4)
    first = plan.epoch_batches(0)
    assert first.shape == (12, 8)
    assert np.array_equal(first, EpochPlan(lengths, 8, 12, 7, 4).epoch_batches(0))
    assert not np.array_equal(first, plan.epoch_batches(1))
    assert len(np.unique(first)) == 96  # no triple twice in an epoch
    # within a batch, lengths come from one sorted chunk: far less spread than random batches
    spread = np.mean([np.ptp(lengths[b]) for b in first])
    random_spread = np.mean(
        [np.ptp(lengths[b]) for b in np.random.default_rng(1).permutation(96).reshape(12, 8)]
    )
    assert spread < 0.7 * random_spread
    ranks = [plan.rank_batches(0, r, 2, start=3) for r in range(2)]
    assert np.array_equal(np.concatenate(ranks, axis=1), first[3:])


def test_collator_builds_decoder_targets(tiny_bert_path, triples_file):
    _, tokenizer, _ = build_from_bert(
        tiny_bert_path, max_query_tokens=16, max_document_tokens=64, max_target_tokens=16
    )
    dataset = TripleFile(triples_file)
    triple = dict(dataset[0], target="France [DEC]")
    batch = TripleCollator(tokenizer, 16, 64, 16, 30522, 102)([triple, dataset[1]])
    answer = tokenizer("France [DEC]", add_special_tokens=False, split_special_tokens=True)["input_ids"]
    assert 30522 not in answer  # a literal "[DEC]" in text is text, not the control token
    n = len(answer)
    assert batch["target_input"][0, : n + 1].tolist() == [30522, *answer]
    assert batch["target_labels"][0, : n + 1].tolist() == [*answer, 102]
    assert (batch["target_labels"][0, n + 1 :] == -100).all()
    assert batch["document_ids"].shape[1] % 16 == 0 and batch["query_ids"].shape[1] % 8 == 0
    assert batch["doc_keys"][0].item() == doc_id_key("doc-Normans") == batch["doc_keys"][1].item()


def test_triple_file_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"query_id": "a", "query": "q", "doc_id": "d", "document": "x", "target": "t"}\n\n'
        '{"query_id": "b", "query": "q", "doc_id": 3, "document": "x", "target": "t"}\n{oops\n'
    )
    dataset = TripleFile(path)
    assert len(dataset) == 3 and dataset[0]["target"] == "t"
    with pytest.raises(DataFormatError, match=r"bad.jsonl:3: field 'doc_id' should be str"):
        dataset[1]
    with pytest.raises(DataFormatError, match=r"bad.jsonl:4:2: malformed JSON"):
        dataset[2]
    # CR LF line ends, blank lines of spaces, no final newline: all read
    crlf = tmp_path / "crlf.jsonl"
    row = '{"query_id": "a", "query": "q", "doc_id": "d", "document": "x", "target": "t"}'
    crlf.write_bytes(f"{row}\r\n \r\n\r\n{row}".encode())
    dataset = TripleFile(crlf, chunk_bytes=7)  # newlines found across chunk borders
    assert len(dataset) == 2 and dataset[1]["query_id"] == "a" and dataset.line_number(1) == 4


def test_triple_file_fingerprint_covers_every_byte(tmp_path):
    """A same-size edit in the middle of a large file changes the fingerprint (the resume key):
    the old one hashed only the first and last MiB."""
    from gear.io import file_sha256

    row = '{"query_id": "q%07d", "query": "q", "doc_id": "d", "document": "%s", "target": "t"}\n'
    path = tmp_path / "big.jsonl"
    path.write_text("".join(row % (i, "x" * 200) for i in range(12_000)))  # about 3 MB
    before = TripleFile(path, chunk_bytes=1 << 16).fingerprint()
    assert before == {"size": path.stat().st_size, "triples": 12_000, "sha256": file_sha256(path)}
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 200] = data[middle : middle + 200].replace(b"x", b"y")
    path.write_bytes(bytes(data))
    after = TripleFile(path, chunk_bytes=1 << 16).fingerprint()
    assert after["size"] == before["size"] and after["sha256"] != before["sha256"]


# -- end to end: resumption and corrupt checkpoints ---------------------------------------------
def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _assert_bitwise_equal(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def _epoch_records(model_dir: Path) -> list[dict]:
    return [
        r
        for r in map(json.loads, (model_dir / "train_log.jsonl").read_text().splitlines())
        if r["event"] == "epoch"
    ]


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory, tiny_bert_path, _mini_config):
    from tests.gear.conftest import write_triples

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("uninterrupted")
    triples = write_triples(root / "triples.jsonl")
    cfg = tiny_run_config(copy.deepcopy(_mini_config), tiny_bert_path)
    model_dir = train_gear(triples, root / "out", cfg, "GeAR", "qar")
    return triples, cfg, model_dir


@pytest.mark.slow
def test_epoch_end_states_follow_checkpoint_at_epoch_end(tmp_path, uninterrupted_run, caplog):
    """``train.checkpoint_at_epoch_end`` (paper: true, mini: false) decides the states at epoch
    ends; with a period longer than the run, a run killed in epoch 2 resumes from epoch 1's end
    and ends bitwise as the uninterrupted run; none is written at the last step."""
    triples, cfg, reference = uninterrupted_run
    for at_epoch_end, expected in ((False, ["step_8"]), (True, ["step_6", "step_8"])):
        changed = copy.deepcopy(cfg)
        changed["train"].update(checkpoint_every_steps=100, checkpoint_at_epoch_end=at_epoch_end)
        out = tmp_path / f"at_epoch_end_{at_epoch_end}"
        train_gear(triples, out, changed, "GeAR", "qar", max_steps=8)  # the stop writes step 8
        assert sorted(p.name for p in (out / "state").glob("step_*")) == expected
    # A kill at step 8 leaves epoch 1's end (step 6) as the newest state: resume from it.
    shutil.rmtree(out / "state" / "step_8")
    shutil.rmtree(out / "model")
    caplog.set_level(logging.INFO, logger="gear.training")
    final = train_gear(triples, out, changed, "GeAR", "qar")
    assert re.search(r"resuming from \S+step_6 at step 6", caplog.text), caplog.text[-2000:]
    _assert_bitwise_equal(final, reference)
    assert not list((out / "state").glob("step_*"))


@pytest.mark.slow
def test_resume_after_a_stop_gives_bitwise_identical_weights(tmp_path, uninterrupted_run):
    triples, cfg, reference = uninterrupted_run
    out = tmp_path / "out"
    # The progress line's period (wall time) differs between the runs, as a slow and a fast
    # machine's would: the training log must not show it.
    stopped = copy.deepcopy(cfg)
    stopped["train"]["log_every_seconds"] = 0.0
    train_gear(triples, out, stopped, "GeAR", "qar", max_steps=8)  # stops inside epoch 2
    assert sorted(p.name for p in (out / "epochs").iterdir()) == ["epoch_1"]
    assert sorted(p.name for p in (out / "state").glob("step_*")) == ["step_6", "step_8"]
    resumed = copy.deepcopy(cfg)
    resumed["train"]["log_every_seconds"] = 60.0
    final = train_gear(triples, out, resumed, "GeAR", "qar")
    _assert_bitwise_equal(final, reference)
    _assert_bitwise_equal(out / "epochs" / "epoch_1", reference.parent / "epochs" / "epoch_1")
    assert sorted(p.name for p in (out / "epochs").iterdir()) == ["epoch_1", "epoch_2"]
    # Issue 16, item 6: the whole training log, step records included, equals the uninterrupted one.
    records = [json.loads(line) for line in (final / "train_log.jsonl").read_text().splitlines()]
    assert [(r["event"], r["step"]) for r in records] == [
        ("steps", 5),
        ("steps", 6),
        ("epoch", 6),
        ("steps", 10),
        ("steps", 12),
        ("epoch", 12),
    ]
    assert (final / "train_log.jsonl").read_bytes() == (reference / "train_log.jsonl").read_bytes()
    config = json.loads((final / "train_config.json").read_text())
    assert config["steps"] == 12 and config["variant"] == "GeAR"
    assert json.loads((final / "gear_config.json").read_text())["max_document_tokens"] == 64


@pytest.mark.slow
def test_corrupt_state_checkpoint_is_skipped(tmp_path, uninterrupted_run, caplog):
    triples, cfg, reference = uninterrupted_run
    caplog.set_level(logging.INFO, logger="gear.training")
    out = tmp_path / "out"
    train_gear(triples, out, cfg, "GeAR", "qar", max_steps=5)
    newest = out / "state" / "step_5" / "state.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated by a crash or a full disk
    final = train_gear(triples, out, cfg, "GeAR", "qar")
    assert "skipping state checkpoint" in caplog.text and "step_5" in caplog.text
    assert "resuming from" in caplog.text and "step_4" in caplog.text
    _assert_bitwise_equal(final, reference)


def test_state_of_another_configuration_is_not_resumed(tmp_path):
    store = StateStore(tmp_path, fingerprint="a")
    store.save(3, {"x": torch.ones(2)})
    assert store.newest()[0] == 3
    assert StateStore(tmp_path, fingerprint="b").newest() is None
    (tmp_path / "step_3" / "manifest.json").unlink()  # the manifest is written last
    assert store.newest() is None


def test_state_store_hashes_each_checkpoint_once_per_process(tmp_path, monkeypatch):
    import gear.training.checkpoints

    calls = []
    real = gear.training.checkpoints.file_sha256
    monkeypatch.setattr(
        gear.training.checkpoints, "file_sha256", lambda path: calls.append(path) or real(path)
    )
    store = StateStore(tmp_path, fingerprint="a")
    for step in range(1, 5):
        store.save(step, {"x": torch.full((4,), float(step))})
    assert len(calls) == 4  # one hash per written state, none for the clean-ups after each save
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_3", "step_4"]
    assert store.newest()[0] == 4 and len(calls) == 4
    state = tmp_path / "step_4" / "state.pt"
    state.write_bytes(state.read_bytes()[:-10])  # damaged after this process verified it
    assert StateStore(tmp_path, fingerprint="a").newest()[0] == 3  # a new process hashes again


# -- two processes against one ------------------------------------------------------------------
def _ddp_worker(
    rank: int, world: int, init_file: str, tiny_bert_path: str, payload_path: str, out_dir: str
) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        payload = torch.load(payload_path)
        module, _ = tiny_module(Path(tiny_bert_path), payload["train_cfg"], with_tokenizer=False)
        module.enqueue(*payload["queued"])
        ddp = torch.nn.parallel.DistributedDataParallel(module, **no_buffer_sync())
        per_rank = payload["batch"]["query_ids"].shape[0] // world
        local = {k: v[rank * per_rank : (rank + 1) * per_rank] for k, v in payload["batch"].items()}
        loss, stats, bank = ddp(local, alpha=0.3)
        loss.backward()
        cl = stats["cl"].clone()
        dist.all_reduce(cl)
        lm = torch.stack([stats["lm_sum"], stats["lm_tokens"]])
        dist.all_reduce(lm)
        torch.save(
            {
                "cl": cl / world,
                "lm": lm[0] / lm[1],
                "bank": bank,
                "grads": {n: p.grad for n, p in module.named_parameters() if p.grad is not None},
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_match_one_process_on_the_same_global_batch(
    tmp_path, tiny_bert_path, mini_config, triples_file
):
    import torch.multiprocessing as mp

    train_cfg = tiny_run_config(mini_config, tiny_bert_path)["train"]
    module, tokenizer = tiny_module(tiny_bert_path, train_cfg)
    twin, _ = tiny_module(tiny_bert_path, train_cfg, with_tokenizer=False)
    for name, tensor in twin.state_dict().items():  # what the spawned processes build
        assert torch.equal(tensor, module.state_dict()[name]), name
    batch = collate(tokenizer, module.model, triples_file, [0, 1, 5, 9, 12, 13, 20, 22])
    g = torch.Generator().manual_seed(1)
    width = module.query_queue.shape[1]
    queued = (
        F.normalize(torch.randn(8, width, generator=g), dim=-1),
        F.normalize(torch.randn(8, width, generator=g), dim=-1),
        batch["doc_keys"].flip(0),
    )
    module.enqueue(*queued)
    loss, stats, bank = module(batch, alpha=0.3)
    loss.backward()
    reference = {n: p.grad for n, p in module.named_parameters() if p.grad is not None}
    payload = tmp_path / "payload.pt"
    torch.save({"train_cfg": train_cfg, "batch": batch, "queued": queued}, payload)
    mp.spawn(
        _ddp_worker,
        args=(2, str(tmp_path / "init"), str(tiny_bert_path), str(payload), str(tmp_path)),
        nprocs=2,
        join=True,
    )
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result["cl"].item() == pytest.approx(stats["cl"].item(), rel=1e-5)
        assert result["lm"].item() == pytest.approx((stats["lm_sum"] / stats["lm_tokens"]).item(), rel=1e-5)
        for got, want in zip(result["bank"], bank, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        assert result["grads"].keys() == reference.keys()
        for name, grad in reference.items():
            torch.testing.assert_close(result["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow
def test_torchrun_training_matches_single_process(tmp_path, tiny_bert_path, mini_config, triples_file):
    """gear.training.trainer under torchrun (2 processes, gloo) ends where one process with the same global batch does."""
    import shutil

    from gear.training.trainer import launch_training

    checkpoint = tmp_path / "no_dropout"
    shutil.copytree(tiny_bert_path, checkpoint)
    bert = json.loads((checkpoint / "config.json").read_text())
    bert.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # ranks draw other dropout masks
    (checkpoint / "config.json").write_text(json.dumps(bert))
    cfg = tiny_run_config(mini_config, checkpoint, epochs=1, queue_size=16)
    # The key biases have an exactly zero gradient (softmax ignores a constant per query), so Adam
    # turns float rounding into whole steps of its rate; at the new blocks' 10x rate the rounding
    # difference between one and two processes reaches 2e-6 on them. One rate keeps 1e-6.
    cfg["train"]["optimizer"]["new_parameters_lr_multiplier"] = 1.0
    single = copy.deepcopy(cfg)
    single["train"]["scenarios"]["qar"]["batch_size"] = 8
    one = launch_training(triples_file, tmp_path / "one", single, variant="GeAR", scenario="qar")
    two = launch_training(
        triples_file,
        tmp_path / "two",
        cfg,
        variant="GeAR",
        scenario="qar",
        processes=2,
        threads=2,
        log_file=tmp_path / "torchrun.log",
    )
    assert json.loads((two / "train_config.json").read_text())["world_size"] == 2
    a, b = _weights(one), _weights(two)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6, msg=name)
    assert a["lm_head.bias"].abs().sum() > 0  # new (zero-initialised) and trained: the runs did train
    assert _epoch_records(one)[0]["lm_loss"] == pytest.approx(_epoch_records(two)[0]["lm_loss"], rel=1e-5)


def test_new_parameters_and_temperature_get_their_own_rates(tiny_bert_path, mini_config):
    """build_optimizer gives the parameters a checkpoint lacks and the temperature their
    multipliers; the training loop scales every group's scheduled rate by its multiplier."""
    from gear.model.modeling import build_from_bert
    from gear.training.objectives import GearTrainingModule
    from gear.training.precision import StepPrecision
    from gear.training.step import build_optimizer, new_parameter_names

    train_cfg = tiny_run_config(mini_config, tiny_bert_path)["train"]
    train = train_section(train_cfg)
    train.optimizer.new_parameters_lr_multiplier, train.optimizer.temperature_lr_multiplier = 10.0, 0.1
    model, _, report = build_from_bert(tiny_bert_path)
    module = GearTrainingModule(model, train, True)
    precision = StepPrecision(module, "fp32", ("temperature",))
    new = new_parameter_names(report.newly_initialised)
    assert "model.query_encoder.layers.0.cross_attention.query.weight" in new
    assert not any("[" in name for name in new)  # the [DEC] row of a pretrained embedding is not "new"
    optimizer = build_optimizer(
        precision.named_optimizer_parameters(), train.optimizer, torch.device("cpu"), new
    )
    rate_of = {
        id(p): (group["lr_multiplier"], group["weight_decay"])
        for group in optimizer.param_groups
        for p in group["params"]
    }
    named = dict(module.named_parameters())
    lr, decay = train.optimizer.lr, train.optimizer.weight_decay
    assert rate_of[id(named["model.query_encoder.layers.0.cross_attention.query.weight"])] == (10.0, decay)
    assert rate_of[id(named["model.query_encoder.layers.0.cross_attention.query.bias"])] == (10.0, 0.0)
    assert rate_of[id(named["model.query_encoder.layers.0.self_attention.qkv.weight"])] == (1.0, decay)
    assert rate_of[id(named["temperature"])] == (0.1, 0.0)
    assert all(group["lr"] == pytest.approx(lr * group["lr_multiplier"]) for group in optimizer.param_groups)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == sum(
        p.requires_grad for p in module.parameters()
    )


@pytest.mark.slow
def test_a_rerun_of_a_finished_run_trains_afresh(tmp_path, uninterrupted_run, caplog, monkeypatch):
    """Snakemake's --forcerun deletes the outputs and reruns: a finished run leaves no state to
    resume (no state is written at the last step, and the others are removed); one killed before
    that clean-up resumes from its newest state and ends with the same weights; a state at the
    step a run stops at (max_steps) is not resumed by the same run again (that trained 0 steps and
    republished the old weights); nor are states written by other training code (the code is part
    of the resume fingerprint)."""
    import gear.training.trainer

    triples, cfg, reference = uninterrupted_run
    # A run that reaches its last step removes its resume states once its model is written.
    assert not list((reference.parent / "state").glob("step_*"))
    # One killed between writing its model and that clean-up keeps them: a run whose clean-up
    # does nothing stands in for it. None is at the last step (12).
    out = tmp_path / "out"
    with monkeypatch.context() as killed_before_cleanup:
        killed_before_cleanup.setattr(StateStore, "clear", lambda self: None)
        train_gear(triples, out, cfg, "GeAR", "qar")
    assert sorted(p.name for p in (out / "state").glob("step_*")) == ["step_10", "step_8"]
    shutil.rmtree(out / "model")
    shutil.rmtree(out / "epochs")
    caplog.set_level(logging.INFO, logger="gear.training")
    final = train_gear(triples, out, cfg, "GeAR", "qar")
    assert re.search(r"resuming from \S+step_10 at step 10", caplog.text), caplog.text[-2000:]
    assert not list((out / "state").glob("step_*"))
    steps = [r["step"] for r in map(json.loads, (final / "train_log.jsonl").read_text().splitlines())]
    assert steps[0] < 12 and json.loads((final / "train_config.json").read_text())["steps"] == 12
    _assert_bitwise_equal(final, reference)

    # A run stopped by max_steps keeps its state at that step; the same stop again trains afresh.
    caplog.clear()
    stopped_twice = tmp_path / "stopped_twice"
    first = train_gear(triples, stopped_twice, cfg, "GeAR", "qar", max_steps=4)
    first_weights = (first / "model.safetensors").read_bytes()
    shutil.rmtree(first)
    again = train_gear(triples, stopped_twice, cfg, "GeAR", "qar", max_steps=4)
    assert "holds a finished run (step 4 of 4): training afresh" in caplog.text
    assert "resuming" not in caplog.text
    assert (again / "model.safetensors").read_bytes() == first_weights

    # A stopped run resumes under the same code, and not under other code.
    caplog.clear()
    train_gear(triples, tmp_path / "stopped", cfg, "GeAR", "qar", max_steps=8)
    monkeypatch.setattr(gear.training.trainer, "training_code_fingerprint", lambda: "other code")
    train_gear(triples, tmp_path / "stopped", cfg, "GeAR", "qar")
    assert "written under another configuration" in caplog.text and "resuming" not in caplog.text


@pytest.mark.slow
def test_a_damaged_epoch_model_is_never_published(tmp_path, uninterrupted_run):
    """Epoch models are checked against the checksums written with them before every publish:
    a truncated one (a crash, a full disk) fails with a message naming it, not silently."""
    from gear.training.checkpoints import CheckpointError

    triples, cfg, reference = uninterrupted_run
    assert (reference.parent / "epochs" / "epoch_1" / "epoch_manifest.json").is_file()
    out = tmp_path / "out"
    train_gear(triples, out, cfg, "GeAR", "qar", max_steps=8)  # epoch 1 kept and published
    (kept,) = (out / "state").glob("epochs-*/epoch_1")
    weights = kept / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])  # the hard-linked published copy with it
    with pytest.raises(CheckpointError, match=r"epoch_1: model\.safetensors does not match its checksum"):
        train_gear(triples, out, cfg, "GeAR", "qar")
    shutil.rmtree(kept.parent)  # what the message says to do: retrain
    shutil.rmtree(out / "state", ignore_errors=True)
    final = train_gear(triples, out, cfg, "GeAR", "qar")
    _assert_bitwise_equal(final, reference)
    _assert_bitwise_equal(out / "epochs" / "epoch_1", reference.parent / "epochs" / "epoch_1")


@pytest.mark.slow
def test_training_continues_from_a_saved_gear_model(tmp_path, uninterrupted_run, caplog):
    """``gear.init_checkpoint`` naming a saved GeAR folder trains that model further: it starts
    from the folder's weights, keeps the rate groups of the BERT start it came from, and its
    resume fingerprint covers the folder's weights, not only its name."""
    from gear.io import is_gear_folder
    from gear.training.settings import read_sections as sections
    from gear.training.trainer import _initial_model

    triples, cfg, reference = uninterrupted_run
    start = tmp_path / "start"
    shutil.copytree(reference.parent / "epochs" / "epoch_1", start)
    assert is_gear_folder(start) and not is_gear_folder(cfg["gear"]["init_checkpoint"])
    continued = copy.deepcopy(cfg)
    continued["gear"]["init_checkpoint"] = str(start)
    continued["gear"]["max_document_tokens"] = 48
    model, _, report = _initial_model(continued, sections(continued)[0], 0, log_it=False)
    saved = _weights(start)
    assert all(torch.equal(t, saved[name]) for name, t in model.state_dict().items())
    _, _, bert_report = build_from_bert(cfg["gear"]["init_checkpoint"])
    assert report.newly_initialised == bert_report.newly_initialised
    assert "query_encoder.layers.0.cross_attention.query.weight" in report.newly_initialised
    assert model.config.max_document_tokens == 48 and model.config.extra["continued_from"] == str(start)

    caplog.set_level(logging.INFO, logger="gear.training")
    out = tmp_path / "out"
    train_gear(triples, out, continued, "GeAR", "qar", max_steps=4)
    assert "continued from the saved GeAR model" in caplog.text
    # The same folder name with other weights: the stopped run is not resumed.
    shutil.copy2(reference / "model.safetensors", start / "model.safetensors")
    caplog.clear()
    final = train_gear(triples, out, continued, "GeAR", "qar")
    assert "written under another configuration" in caplog.text and "resuming" not in caplog.text
    assert not torch.equal(_weights(final)["lm_head.bias"], _weights(reference)["lm_head.bias"])


def test_continuing_needs_the_bert_start_recorded(tmp_path, tiny_bert_path, mini_config):
    from gear.training.settings import read_sections as sections
    from gear.training.trainer import _initial_model

    model, tokenizer, _ = build_from_bert(tiny_bert_path)
    model.save_pretrained(tmp_path / "gear", tokenizer)
    config = json.loads((tmp_path / "gear" / "config.json").read_text())
    del config["extra"]["init_checkpoint"]  # e.g. a config written by hand
    (tmp_path / "gear" / "config.json").write_text(json.dumps(config))
    cfg = tiny_run_config(mini_config, tiny_bert_path)
    cfg["gear"]["init_checkpoint"] = str(tmp_path / "gear")
    with pytest.raises(ConfigError, match=r"extra\.init_checkpoint is missing"):
        _initial_model(cfg, sections(cfg)[0], 0, log_it=False)

"""Operator counts (gear.tools.opcount): what a step dispatches, and what bf16-master saves."""

from __future__ import annotations

import torch

from gear.model.modeling import GearModel
from gear.tools.bench.common import bench_config
from gear.tools.bench.train import random_training_batch
from gear.tools.opcount import count_operators
from gear.training.objectives import GearTrainingModule
from gear.training.precision import StepPrecision
from gear.training.settings import read_sections


def _linear_step(layer: torch.nn.Linear, x: torch.Tensor) -> None:
    layer(x).float().sum().backward()


def test_counts_forward_and_backward_operators():
    layer = torch.nn.Linear(8, 4)
    counts = count_operators(lambda: _linear_step(layer, torch.ones(3, 8)))
    assert counts.by_name["aten.addmm"] == 1  # forward
    assert counts.by_name.get("aten.mm", 0) >= 1  # backward: the weight gradient
    assert counts.casts == 0
    assert counts.total == sum(v for k, v in counts.by_name.items()) - counts.views
    assert counts.top(1)[0][1] >= 1


def test_autocast_casts_weights_that_bf16_weights_do_not_need():
    layer = torch.nn.Linear(8, 4)
    x = torch.ones(3, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = count_operators(lambda: _linear_step(layer, x))
    layer_bf16, x_bf16 = torch.nn.Linear(8, 4).to(torch.bfloat16), x.to(torch.bfloat16)
    pure = count_operators(lambda: _linear_step(layer_bf16, x_bf16))
    assert pure.casts == 2  # the explicit .float() of the output, and its gradient back to bf16
    assert autocast.casts >= pure.casts + 3  # + input, weight and bias cast to bf16


def test_bf16_master_step_dispatches_fewer_casts_than_autocast(mini_config):

    cfg = bench_config("tiny", max_query_tokens=64, max_document_tokens=64, max_target_tokens=64)
    counts = {}
    for mode in ("bf16", "bf16-master"):
        torch.manual_seed(0)
        mini_config["train"]["queue_size"] = 8
        training = GearTrainingModule(GearModel(cfg), read_sections(mini_config)[1], lm_loss=True)
        precision = StepPrecision(training, mode, keep_fp32=("temperature",))
        batch = random_training_batch(cfg, 2, 16, 64, 16, 0)

        def forward_backward(training=training, precision=precision, batch=batch):
            with precision.autocast():
                loss, _, _ = training(batch, 0.4)
            loss.backward()

        counts[mode] = count_operators(forward_backward)
    weights = sum(1 for p in training.parameters() if p.ndim == 2)
    # autocast casts each matrix at least once; bf16 weights are never cast.
    assert counts["bf16"].casts - counts["bf16-master"].casts >= weights
    assert counts["bf16-master"].total < counts["bf16"].total


def test_a_value_read_back_counts_as_a_host_sync():
    x = torch.arange(6.0)
    assert count_operators(lambda: x.sum()).host_syncs == 0
    assert count_operators(lambda: x.sum().item()).host_syncs == 1
    assert count_operators(lambda: x[x > 2]).host_syncs == 1  # data-dependent size


def test_gear_training_step_never_waits_for_the_device(mini_config):
    """gear.training.trainer's claim: no host synchronisation in a step (the optimizer's own aside)."""

    mini_config["train"]["queue_size"] = 8
    cfg = bench_config("tiny", max_query_tokens=64, max_document_tokens=64, max_target_tokens=64)
    torch.manual_seed(0)
    training = GearTrainingModule(GearModel(cfg), read_sections(mini_config)[1], lm_loss=True)
    precision = StepPrecision(training, "bf16-master", keep_fp32=("temperature",))
    batch = random_training_batch(cfg, 2, 16, 64, 16, 0)

    def step():
        with precision.autocast():
            loss, _, bank = training(batch, 0.4)
        loss.backward()
        training.enqueue(*bank)
        precision.gradients_to_masters()
        precision.masters_to_weights()
        training.momentum_update(precision)
        training.clamp_temperature()

    counts = count_operators(step)
    assert counts.total > 500 and counts.host_syncs == 0

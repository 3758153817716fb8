"""Snakemake glue for the evaluate_{model}_{scenario} rules: see gear.evaluation.evaluate.run_model."""

import torch

from baselines.registry import load_entry
from gear.evaluation.evaluate import run_model
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
params, inputs = snakemake.params, snakemake.input  # noqa: F821
datasets = {d: (inputs[f"{d}_corpus"], inputs[f"{d}_queries"]) for d in params.datasets}
run_model(
    load_entry(params.registry, params.model, params.entry),
    params.cfg,
    params.scenario,
    datasets,
    dict(snakemake.output.items()),  # noqa: F821
)

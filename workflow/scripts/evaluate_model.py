"""Snakemake glue for the evaluate_{model}_{scenario} rules: see gear.evaluation.evaluate.run_model."""

import torch

from gear.evaluation.evaluate import run_model
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
inputs = snakemake.input  # noqa: F821
datasets = {d: (inputs[f"{d}_corpus"], inputs[f"{d}_queries"]) for d in snakemake.params.datasets}  # noqa: F821
run_model(
    snakemake.params.entry,  # noqa: F821
    snakemake.params.cfg,  # noqa: F821
    snakemake.params.scenario,  # noqa: F821
    datasets,
    dict(snakemake.output.items()),  # noqa: F821
)

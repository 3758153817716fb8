"""Snakemake glue for rule epoch_analysis: see gear.evaluation.evaluate.run_epoch_analysis."""

import torch

from baselines.registry import load_entry
from gear.evaluation.evaluate import run_epoch_analysis
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
params, wildcards = snakemake.params, snakemake.wildcards  # noqa: F821
run_epoch_analysis(
    load_entry(params.registry, wildcards.model, params.entry),
    params.cfg,
    wildcards.scenario,
    snakemake.input.epochs,  # noqa: F821
    snakemake.input.corpus,  # noqa: F821
    snakemake.input.queries,  # noqa: F821
    snakemake.output.json,  # noqa: F821
)

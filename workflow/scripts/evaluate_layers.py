"""Snakemake glue for rule layer_analysis: see gear.evaluate.run_layer_analysis."""

import torch

from gear.evaluate import run_layer_analysis
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
run_layer_analysis(
    snakemake.params.entry,  # noqa: F821
    snakemake.params.cfg,  # noqa: F821
    snakemake.wildcards.dataset,  # noqa: F821
    snakemake.input.corpus,  # noqa: F821
    snakemake.input.queries,  # noqa: F821
    snakemake.output.json,  # noqa: F821
)

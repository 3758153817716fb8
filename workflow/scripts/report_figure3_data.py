"""Snakemake glue for rule figure_3_data: see gear.evaluation.figure3_data.figure3_data."""

import torch

from gear.evaluation.figure3_data import figure3_data
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
torch.set_num_threads(max(1, snakemake.threads))  # noqa: F821
figure3_data(
    snakemake.input.model,  # noqa: F821
    snakemake.params.dataset,  # noqa: F821
    snakemake.input.corpus,  # noqa: F821
    snakemake.input.queries,  # noqa: F821
    snakemake.params.localization,  # noqa: F821
    snakemake.params.top_tokens,  # noqa: F821
    snakemake.params.generation,  # noqa: F821
    snakemake.params.seed,  # noqa: F821
    snakemake.output[0],  # noqa: F821
)

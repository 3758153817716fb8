"""Snakemake glue for rule explain_data: see gear.evaluation.explain_data.explain_data."""

import torch

from gear.evaluation.explain_data import explain_data
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
torch.set_num_threads(max(1, snakemake.threads))  # noqa: F821
explain_data(
    snakemake.input.model,  # noqa: F821
    snakemake.wildcards.dataset,  # noqa: F821
    snakemake.input.corpus,  # noqa: F821
    snakemake.input.queries,  # noqa: F821
    snakemake.input.run,  # noqa: F821
    snakemake.params.explain,  # noqa: F821
    snakemake.params.localization,  # noqa: F821
    snakemake.params.top_tokens,  # noqa: F821
    snakemake.params.generation,  # noqa: F821
    snakemake.params.seed,  # noqa: F821
    snakemake.output[0],  # noqa: F821
    model_name=snakemake.params.model_name,  # noqa: F821
)

"""Snakemake glue for rule evaluate_retrieval: see gear.evaluate.run_retrieval."""

import torch

from gear.evaluate import run_retrieval
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
run_retrieval(
    snakemake.params.entry,  # noqa: F821
    snakemake.params.cfg,  # noqa: F821
    snakemake.wildcards.dataset,  # noqa: F821
    snakemake.input.corpus,  # noqa: F821
    snakemake.input.queries,  # noqa: F821
    snakemake.output.json,  # noqa: F821
    snakemake.output.run,  # noqa: F821
)

"""Snakemake glue for rule rir_postprocess: data_prep.rir.postprocess.postprocess_rewrites."""

from pathlib import Path

import torch

from data_prep.rir.postprocess import postprocess_rewrites
from gear.hub import ModelSource
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
postprocess_rewrites(
    snakemake.input.documents,  # noqa: F821
    snakemake.input.rewrites,  # noqa: F821
    Path(snakemake.output.corpus).parent,  # noqa: F821
    snakemake.output.train,  # noqa: F821
    snakemake.params.filter,  # noqa: F821
    snakemake.params.split,  # noqa: F821
    snakemake.params.seed,  # noqa: F821
    snakemake.params.max_document_tokens,  # noqa: F821
    model_source=ModelSource(snakemake.params.model_paths, snakemake.params.allow_downloads),  # noqa: F821
)

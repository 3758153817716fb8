"""Snakemake glue for rule rir_rewrite: data_prep.rir.rewrite.rewrite_candidates."""

from data_prep.rir.rewrite import rewrite_candidates
from gear.hub import ModelSource
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
rewrite_candidates(
    snakemake.input[0],  # noqa: F821
    snakemake.output[0],  # noqa: F821
    snakemake.params.cache,  # noqa: F821
    snakemake.params.rewrite,  # noqa: F821
    snakemake.params.seed,  # noqa: F821
    model_source=ModelSource(snakemake.params.model_paths, snakemake.params.allow_downloads),  # noqa: F821
)

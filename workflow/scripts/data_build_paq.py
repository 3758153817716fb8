"""Snakemake glue for rule build_paq: data_prep.paq.build_paq."""

from pathlib import Path

from data_prep.paq import build_paq
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
build_paq(
    snakemake.input.metadata,  # noqa: F821
    snakemake.input.passages,  # noqa: F821
    Path(snakemake.output.corpus).parent,  # noqa: F821
    snakemake.output.train,  # noqa: F821
    snakemake.params.data,  # noqa: F821
    snakemake.params.seed,  # noqa: F821
    model_paths=snakemake.params.model_paths,  # noqa: F821
    allow_downloads=snakemake.params.allow_downloads,  # noqa: F821
)

"""Snakemake glue for rule build_beir: data_prep.beir.build_beir."""

from pathlib import Path

from data_prep.beir import build_beir
from gear.hub import ModelSource
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
build_beir(
    Path(snakemake.input.corpus).parent,  # noqa: F821
    Path(snakemake.output.corpus).parent,  # noqa: F821
    snakemake.params.data,  # noqa: F821
    snakemake.wildcards.dataset,  # noqa: F821
    split=snakemake.params.split,  # noqa: F821
    model_source=ModelSource(snakemake.params.model_paths, snakemake.params.allow_downloads),  # noqa: F821
)

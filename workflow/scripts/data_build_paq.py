"""Snakemake glue for rule build_paq: data_prep.paq.build_paq."""

from pathlib import Path

from data_prep.download import verify_download
from data_prep.paq import build_paq
from gear.hub import ModelSource
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
for raw in (snakemake.input.metadata, snakemake.input.passages):  # noqa: F821
    verify_download(raw)  # a downloaded file still has the sums its download recorded
build_paq(
    snakemake.input.metadata,  # noqa: F821
    snakemake.input.passages,  # noqa: F821
    Path(snakemake.output.corpus).parent,  # noqa: F821
    snakemake.output.train,  # noqa: F821
    snakemake.params.data,  # noqa: F821
    snakemake.params.seed,  # noqa: F821
    model_source=ModelSource(snakemake.params.model_paths, snakemake.params.allow_downloads),  # noqa: F821
)

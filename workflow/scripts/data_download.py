"""Snakemake glue for the download_* rules: data_prep.download.download_file."""

from data_prep.download import download_file
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
download_file(
    snakemake.params.url,  # noqa: F821
    snakemake.output[0],  # noqa: F821
    sha256=snakemake.params.sha256,  # noqa: F821
    pinned_by=snakemake.params.pinned_by,  # noqa: F821
)

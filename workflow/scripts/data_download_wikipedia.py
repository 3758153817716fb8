"""Snakemake glue for rule download_wikipedia: data_prep.download.download_wikipedia."""

from data_prep.download import download_wikipedia
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
download_wikipedia(snakemake.params.dataset, snakemake.params.config_name, snakemake.output[0])  # noqa: F821

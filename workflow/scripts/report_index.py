"""Snakemake glue for rule report_index: see gear.report.pages.write_index."""

from gear.logs import setup_logging
from gear.report.pages import write_index

setup_logging(snakemake.log[0])  # noqa: F821
write_index(snakemake.output[0], snakemake.params.sections, snakemake.params.title)  # noqa: F821

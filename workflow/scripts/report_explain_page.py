"""Snakemake glue for rule explain_page: see gear.report.explain.write_explain_page."""

from gear.io import read_json
from gear.logs import setup_logging
from gear.report.explain import write_explain_page

setup_logging(snakemake.log[0])  # noqa: F821
write_explain_page(read_json(snakemake.input[0]), snakemake.output[0])  # noqa: F821

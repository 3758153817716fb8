"""Snakemake glue for rule table_significance: see gear.report.tables.jobs.make_significance_tables."""

from gear.logs import setup_logging
from gear.report.tables.jobs import make_significance_tables

setup_logging(snakemake.log[0])  # noqa: F821
make_significance_tables(
    {task: snakemake.input[task] for task in snakemake.params.tasks},  # noqa: F821
    snakemake.params.metrics,  # noqa: F821
    snakemake.params.reference,  # noqa: F821
    snakemake.params.models,  # noqa: F821
    snakemake.params.bootstrap,  # noqa: F821
    {fmt: snakemake.output[fmt] for fmt in ("md", "tex", "csv", "html")},  # noqa: F821
    paper_path=snakemake.input.paper,  # noqa: F821
)

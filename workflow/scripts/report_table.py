"""Snakemake glue for rules table_1, table_2, table_3: see gear.report.tables.jobs.make_metric_table."""

from gear.logs import setup_logging
from gear.report.tables.jobs import make_metric_table

setup_logging(snakemake.log[0])  # noqa: F821
make_metric_table(
    snakemake.params.table,  # noqa: F821
    snakemake.input.results,  # noqa: F821
    snakemake.params.models,  # noqa: F821
    snakemake.params.metrics,  # noqa: F821
    snakemake.params.tolerance,  # noqa: F821
    snakemake.params.show_ci,  # noqa: F821
    {fmt: snakemake.output[fmt] for fmt in ("md", "tex", "csv", "html")},  # noqa: F821
    paper_path=snakemake.input.paper,  # noqa: F821
)

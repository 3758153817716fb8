"""Snakemake glue for rule table_stats (Tables 5-7): see gear.report.tables.jobs.make_stats_tables."""

from gear.logs import setup_logging
from gear.report.tables.jobs import make_stats_tables

setup_logging(snakemake.log[0])  # noqa: F821
make_stats_tables(
    snakemake.input.stats,  # noqa: F821
    dict(zip(snakemake.params.scenarios, snakemake.input.train, strict=True)),  # noqa: F821
    {
        f"table_{n}": {fmt: snakemake.output[f"t{n}_{fmt}"] for fmt in ("md", "tex", "csv", "html")}  # noqa: F821
        for n in (5, 6, 7)
    },
    paper_path=snakemake.input.paper,  # noqa: F821
)

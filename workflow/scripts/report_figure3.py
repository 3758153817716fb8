"""Snakemake glue for rule figure_3_draw: see gear.report.figures.draw_figure3."""

from gear.io import atomic_open, read_json
from gear.logs import setup_logging
from gear.report.figures import draw_figure3, render_figure3_html

setup_logging(snakemake.log[0])  # noqa: F821
data = read_json(snakemake.input[0])  # noqa: F821
draw_figure3(data, [snakemake.output.png, snakemake.output.pdf], dpi=snakemake.params.dpi)  # noqa: F821
with atomic_open(snakemake.output.html) as handle:  # noqa: F821
    handle.write(render_figure3_html(data))

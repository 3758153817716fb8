"""Snakemake glue for rule figure_4_layers (Figure 4c): see gear.report.figures.draw_layer_figure."""

from gear.io import read_json
from gear.logs import setup_logging
from gear.report.figures import draw_layer_figure

setup_logging(snakemake.log[0])  # noqa: F821
draw_layer_figure(
    [read_json(path) for path in snakemake.input],  # noqa: F821
    snakemake.params.chosen_layer,  # noqa: F821
    [snakemake.output.png, snakemake.output.pdf],  # noqa: F821
    dpi=snakemake.params.dpi,  # noqa: F821
)

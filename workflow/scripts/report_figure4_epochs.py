"""Snakemake glue for rule figure_4_epochs (Figure 4a / 4b): see gear.report.figures.draw_epoch_figure."""

from gear.io import read_json
from gear.logs import setup_logging
from gear.report.figures import draw_epoch_figure

setup_logging(snakemake.log[0])  # noqa: F821
draw_epoch_figure(
    read_json(snakemake.input[0]),  # noqa: F821
    [snakemake.output.png, snakemake.output.pdf],  # noqa: F821
    dpi=snakemake.params.dpi,  # noqa: F821
    figure_label=f"Figure 4{snakemake.wildcards.panel}",  # noqa: F821
)

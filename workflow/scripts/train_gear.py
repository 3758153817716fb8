"""Snakemake glue for rule train_gear: see gear.training.trainer.train_gear (torchrun when resources.gpu > 1)."""

from pathlib import Path

from gear.logs import setup_logging
from gear.training.trainer import launch_training

setup_logging(snakemake.log[0])  # noqa: F821
launch_training(
    snakemake.input.triples,  # noqa: F821
    Path(snakemake.output.model).parent,  # noqa: F821
    snakemake.params.cfg,  # noqa: F821
    variant=snakemake.wildcards.model,  # noqa: F821
    scenario=snakemake.wildcards.scenario,  # noqa: F821
    processes=int(getattr(snakemake.resources, "gpu", 1) or 1),  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    log_file=snakemake.log[0],  # noqa: F821
)

"""Snakemake glue for rule train_bge_rt: see baselines.retrain_bge.retrain_bge."""

from baselines.retrain_bge import retrain_bge
from gear.hub import local_model_folder
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
retrain_bge(
    snakemake.input.triples,  # noqa: F821
    snakemake.output.model,  # noqa: F821
    local_model_folder(snakemake.params.start_checkpoint, snakemake.params.start_revision),  # noqa: F821
    snakemake.params.bge_rt,  # noqa: F821
    snakemake.params.seed,  # noqa: F821
    work_dir=snakemake.params.work_dir,  # noqa: F821
    checkpoint_every_steps=snakemake.params.checkpoint_every_steps,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
)

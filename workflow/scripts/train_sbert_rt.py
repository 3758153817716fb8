"""Snakemake glue for rule train_sbert_rt: see baselines.retrain_sbert.retrain_sbert."""

import torch

from baselines.retrain_sbert import retrain_sbert
from gear.hub import local_model_folder
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
retrain_sbert(
    snakemake.input.triples,  # noqa: F821
    snakemake.output.model,  # noqa: F821
    local_model_folder(snakemake.params.start_checkpoint, snakemake.params.start_revision),  # noqa: F821
    snakemake.params.sbert_rt,  # noqa: F821
    snakemake.params.seed,  # noqa: F821
    work_dir=snakemake.params.work_dir,  # noqa: F821
    checkpoint_every_steps=snakemake.params.checkpoint_every_steps,  # noqa: F821
)

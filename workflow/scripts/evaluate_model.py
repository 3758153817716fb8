"""Snakemake glue for the evaluate_{model}_{scenario} rules: see gear.evaluation.evaluate.run_model."""

import torch

from gear.evaluation.evaluate import run_model
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
inputs = dict(snakemake.input.items())  # noqa: F821
datasets = {
    key[: -len("_corpus")]: (path, inputs[key[: -len("_corpus")] + "_queries"])
    for key, path in inputs.items()
    if key.endswith("_corpus")
}
run_model(
    snakemake.params.entry,  # noqa: F821
    snakemake.params.cfg,  # noqa: F821
    snakemake.params.scenario,  # noqa: F821
    datasets,
    dict(snakemake.output.items()),  # noqa: F821
)

"""Snakemake glue for rule rir_preprocess: data_prep.rir.preprocess.preprocess_wikipedia."""

from data_prep.download import verify_download
from data_prep.rir.preprocess import preprocess_wikipedia
from gear.hub import ModelSource
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
verify_download(snakemake.input[0])  # noqa: F821 (a downloaded dump still has its recorded sums)
preprocess_wikipedia(
    snakemake.input[0],  # noqa: F821
    snakemake.output.documents,  # noqa: F821
    snakemake.output.stats,  # noqa: F821
    snakemake.params.preprocess,  # noqa: F821
    snakemake.params.token_counter,  # noqa: F821
    snakemake.params.splitter,  # noqa: F821
    model_source=ModelSource(snakemake.params.model_paths, snakemake.params.allow_downloads),  # noqa: F821
    workers=snakemake.threads,  # noqa: F821
)

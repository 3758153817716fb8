"""Snakemake glue for rule build_qa: data_prep.squad.build_squad / data_prep.dpr.build_dpr."""

from pathlib import Path

from data_prep.download import verify_download
from data_prep.dpr import build_dpr
from data_prep.squad import build_squad
from gear.hub import ModelSource
from gear.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
dataset = snakemake.wildcards.dataset  # noqa: F821
data = snakemake.params.data  # noqa: F821
options = {"model_source": ModelSource(snakemake.params.model_paths, snakemake.params.allow_downloads)}  # noqa: F821
out_dir = Path(snakemake.output.corpus).parent  # noqa: F821
for raw in [snakemake.input.source, *snakemake.input.extra]:  # noqa: F821
    verify_download(raw)  # a downloaded file still has the sums its download recorded
if data[dataset]["format"] == "squad":
    build_squad(snakemake.input.source, out_dir, data, extra_corpus=snakemake.input.extra, **options)  # noqa: F821
else:
    build_dpr(snakemake.input.source, out_dir, data, dataset, **options)  # noqa: F821

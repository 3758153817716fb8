# GeAR reproducibility suite: every table and figure of "GeAR: Generation Augmented Retrieval".
#   snakemake --cores all reproduce_all                                  # embedded mini benchmark
#   snakemake --cores all reproduce_all --configfile config/paper.yaml   # paper scale
# The config is validated and every model resolved before any job runs (workflow/rules/common.smk).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/mini.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/gear.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/reports.smk"


rule reproduce_all:
    default_target: True
    input:
        all_report_targets(),

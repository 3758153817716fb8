# Shared by every rule file: the validated config, the output layout, the selected models.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir)))

from baselines.registry import load_registry, run_models
from gear.config import validate_config
from gear.layout import DATASETS, Layout, scenario_of
from gear.workflow.plan import plan_models, software_problem

validate_config(config, source=", ".join(map(str, workflow.configfiles)) or "config")
L = Layout.from_config(config)
REGISTRY = load_registry(config["registry"])
# evaluate.models, then evaluate.extra_models (a config merged onto mini.yaml adds models there).
MODELS = run_models(REGISTRY, config["evaluate"], variants=config["train"]["variants"])
EVAL_DATASETS = config["evaluate"]["datasets"]
# Unavailable models stop a run before its first job (onstart); a dry run loads none, so it
# plans the DAG and warns.
RESOLVED, MODELS_UNAVAILABLE = plan_models(config, MODELS)
# Software the selected models need and this environment lacks (FlagEmbedding under transformers 5).
SOFTWARE_UNAVAILABLE = software_problem(MODELS)
for problem in (MODELS_UNAVAILABLE, SOFTWARE_UNAVAILABLE):
    if problem is not None:
        print(
            f"WARNING: a run (not a dry run) would stop here: {problem}",
            file=sys.stderr,
        )


onstart:
    for problem in (MODELS_UNAVAILABLE, SOFTWARE_UNAVAILABLE):
        if problem is not None:
            raise problem

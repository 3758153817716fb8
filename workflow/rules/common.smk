# Shared by every rule file: the validated config, the output layout, the selected models.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir)))

from baselines.registry import load_registry, select_models
from gear.config import validate_config
from gear.layout import DATASETS, Layout, scenario_of
from gear.plan import check_models

validate_config(config, source=", ".join(map(str, workflow.configfiles)) or "config")
L = Layout.from_config(config)
REGISTRY = load_registry(config["registry"])
MODELS = select_models(REGISTRY, config["evaluate"]["models"])
EVAL_DATASETS = config["evaluate"]["datasets"]
RESOLVED = check_models(config, MODELS)

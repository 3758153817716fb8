"""Planning the evaluation jobs of ``workflow/rules/evaluate.smk``: which jobs a run has, their inputs and outputs.

One job per (model, scenario) evaluates a model on every data set of the scenario
(:func:`gear.evaluation.evaluate.run_model`); one epoch-analysis job per GeAR variant and
scenario. :class:`EvaluationPlan` answers the rule file's questions so that it holds rules only
and this logic is tested without Snakemake.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from baselines.registry import ModelEntry, gear_folder_path, trained_model_dir
from gear.layout import Layout, dataset_tasks, scenario_of


def model_input(entry, scenario: str, layout: Layout) -> Path | None:
    """The model folder an evaluation of ``entry`` reads (a rule input): the trained one, or a
    ``gear_folder`` entry's saved folder where it exists (checked when the workflow starts,
    ``gear.workflow.plan``);
    None for pretrained models (resolved when the workflow starts)."""
    if entry.trained_by_suite:
        return trained_model_dir(entry, scenario, layout)
    if entry.kind == "gear_folder":
        # A missing folder is no input: the run's start then stops with the planning check's
        # message (gear.workflow.plan), which names the entry, instead of Snakemake's missing input.
        folder = gear_folder_path(entry, scenario)
        return folder if folder.exists() else None
    return None


def has_layer_analysis(entry) -> bool:
    """GeAR models (trained or saved) that localize by cross-attention get Figure 4c's analysis."""
    return entry.is_gear and "localization" in entry.tasks


def has_epoch_analysis(entry) -> bool:
    """GeAR variants the suite trains, with localization and generation, get Figure 4a/b (a saved
    ``gear_folder`` model has no epochs of this run)."""
    return entry.kind == "gear" and {"localization", "generation"} <= set(entry.tasks)


def evaluation_targets(cfg: dict, models: Sequence, layout: Layout) -> list[Path]:
    """Every evaluation output of a run: results JSON per (model, data set, task the entry lists
    and the data set supports), run files with their qrels, layer analyses (``evaluate.layer_analysis``) and epoch analyses
    (``evaluate.epoch_analysis``) of the GeAR variants.

    Args:
        cfg: the validated run config.
        models: the selected registry entries (``MODELS`` of common.smk).
        layout: the run's :class:`~gear.layout.Layout`.
    """
    section = cfg["evaluate"]
    targets: list[Path] = []
    for entry in models:
        for dataset in section["datasets"]:
            for task in job_tasks(entry, dataset):
                targets.append(layout.eval_json(entry.name, dataset, task))
                if task == "retrieval":
                    targets += [layout.run_file(entry.name, dataset), layout.qrels_file(entry.name, dataset)]
        if has_layer_analysis(entry):
            targets += [
                layout.layers_json(entry.name, d)
                for d in section["layer_analysis"]
                if d in section["datasets"]
            ]
        if has_epoch_analysis(entry):
            targets += [
                layout.epochs_json(entry.name, scenario) for scenario in sorted(section["epoch_analysis"])
            ]
    return targets


def job_tasks(entry, dataset: str) -> list[str]:
    """The tasks of ``entry`` (registry ``tasks``) that ``dataset`` supports
    (:func:`gear.layout.dataset_tasks`: a BEIR set has retrieval only)."""
    return [task for task in entry.tasks if task in dataset_tasks(dataset)]


def scenario_datasets(cfg: dict, scenario: str) -> list[str]:
    """The evaluated data sets (``evaluate.datasets``) whose models are trained on ``scenario``."""
    return [d for d in cfg["evaluate"]["datasets"] if scenario_of(d) == scenario]


def model_job_outputs(entry, cfg: dict, scenario: str, layout: Layout) -> dict[str, Path]:
    """Every file one evaluation job of ``entry`` on ``scenario`` writes, by a readable key
    (``{dataset}_{task}``, ``{dataset}_run``, ``{dataset}_qrels``, ``{dataset}_layers``)."""
    outputs: dict[str, Path] = {}
    layer_sets = cfg["evaluate"]["layer_analysis"]
    for dataset in scenario_datasets(cfg, scenario):
        for task in job_tasks(entry, dataset):
            outputs[f"{dataset}_{task}"] = layout.eval_json(entry.name, dataset, task)
            if task == "retrieval":
                outputs[f"{dataset}_run"] = layout.run_file(entry.name, dataset)
                outputs[f"{dataset}_qrels"] = layout.qrels_file(entry.name, dataset)
        if has_layer_analysis(entry) and dataset in layer_sets:
            outputs[f"{dataset}_layers"] = layout.layers_json(entry.name, dataset)
    return outputs


#: ``evaluate`` keys that select jobs and are no setting of a job: left out of its params
JOB_SELECTION_KEYS = ("models", "extra_models", "datasets", "layer_analysis")


def job_config(cfg: dict, entry: ModelEntry | None = None) -> dict:
    """The config sections an evaluation job of ``entry`` needs (a rule's ``params``), so that
    editing an unrelated section (training, reports, another model's settings) reruns nothing.

    Kept: what :func:`baselines.registry.build_encoder` reads (``model_paths``,
    ``allow_downloads``), the output roots, the ``evaluate`` section without the lists that only
    select jobs, and ``gear.localization`` for GeAR entries.
    """
    keys = ("allow_downloads", "model_paths", "results_dir", "reports_dir")
    subset = {key: cfg[key] for key in keys}
    subset["evaluate"] = {k: v for k, v in cfg["evaluate"].items() if k not in JOB_SELECTION_KEYS}
    if entry is None or entry.is_gear:
        subset["gear"] = {"localization": cfg["gear"]["localization"]}
    return subset


class EvaluationPlan:
    """What the evaluation rules of ``workflow/rules/evaluate.smk`` ask, so that the rule file holds
    rules only and this logic is tested: one job per (model, scenario) with its inputs and
    outputs, and one epoch-analysis job per GeAR variant and scenario.

    Args:
        cfg: the validated run config.
        models: the selected registry entries (``MODELS`` of common.smk).
        layout: the run's layout (``L``).
    """

    def __init__(self, cfg: dict, models: Sequence, layout: Layout):
        self.cfg = cfg
        self.models = {entry.name: entry for entry in models}
        self.layout = layout

    @staticmethod
    def choice(names) -> str:
        """A regular expression matching exactly ``names`` (none: a pattern that never matches)."""
        names = list(names)
        return "|".join(re.escape(name) for name in names) if names else "(?!)"

    def jobs(self) -> list[tuple[str, str]]:
        """``(model, scenario)`` of every evaluation job (scenarios with at least one data set)."""
        scenarios = [s for s in ("qar", "rir") if scenario_datasets(self.cfg, s)]
        return [(name, scenario) for name in self.models for scenario in scenarios]

    def job_inputs(self, model: str, scenario: str) -> dict[str, str]:
        """Each data set's corpus and queries and, for a model the suite trains, its folder."""
        inputs = {}
        for dataset in scenario_datasets(self.cfg, scenario):
            inputs[f"{dataset}_corpus"] = str(self.layout.corpus(dataset))
            inputs[f"{dataset}_queries"] = str(self.layout.queries(dataset))
        folder = model_input(self.models[model], scenario, self.layout)
        if folder is not None:
            inputs["model"] = str(folder)
        return inputs

    def job_datasets(self, scenario: str) -> list[str]:
        """The data sets of a job (a rule param): its inputs are ``{dataset}_corpus`` and ``{dataset}_queries``."""
        return scenario_datasets(self.cfg, scenario)

    def job_outputs(self, model: str, scenario: str) -> dict[str, str]:
        """:func:`model_job_outputs` as strings."""
        outputs = model_job_outputs(self.models[model], self.cfg, scenario, self.layout)
        return {key: str(path) for key, path in outputs.items()}

    def model_pattern(self, task: str) -> str:
        """Models with an epoch analysis (``task="epochs"``) or listing ``task`` in the registry."""
        if task == "epochs":
            return self.choice(n for n, e in self.models.items() if has_epoch_analysis(e))
        return self.choice(n for n, e in self.models.items() if task in e.tasks)

    def epoch_inputs(self, wildcards) -> dict[str, str]:
        """The epoch checkpoints of a GeAR variant and the scenario's test set (``evaluate.epoch_analysis``)."""
        entry = self.models[wildcards.model]
        dataset = self.cfg["evaluate"]["epoch_analysis"][wildcards.scenario]
        return {
            "epochs": str(self.layout.model_root(entry.variant, wildcards.scenario) / "epochs"),
            "corpus": str(self.layout.corpus(dataset)),
            "queries": str(self.layout.queries(dataset)),
        }

    def entry_digest(self, model) -> str:
        """The registry entry's :meth:`~baselines.registry.ModelEntry.digest` (a rule param: editing
        the entry reruns its jobs, editing another entry does not); ``model`` is a name or wildcards.
        The job loads the entry itself by name (``baselines.registry.load_entry``)."""
        name = model if isinstance(model, str) else model.model
        return self.models[name].digest()

    def job_config(self, model) -> dict:
        """The config sections the job reads (a rule param): :func:`job_config`."""
        name = model if isinstance(model, str) else model.model
        return job_config(self.cfg, self.models[name])

    def targets(self) -> list[str]:
        """Every evaluation output (:func:`evaluation_targets`) as strings."""
        return [str(path) for path in evaluation_targets(self.cfg, list(self.models.values()), self.layout)]

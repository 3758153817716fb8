"""What a run needs before it starts: the models to resolve and the checks that fail early.

The Snakefile resolves the run's models with :func:`plan_models` while it plans the DAG and raises
the collected error in its ``onstart`` handler, so a model that cannot be had fails a run before
any job starts, with a message naming it and the fix, while a dry run (``snakemake -n``, which
loads no model) still plans and only warns. :func:`software_problem` does the same for software
the selected models need and this environment lacks: FlagEmbedding, which the BGE-family entries
run and which does not import under transformers 5.
"""

from __future__ import annotations

from dataclasses import dataclass

from baselines.adapters import FLAG_EMBEDDING_KINDS, flag_embedding_problem
from baselines.registry import PRETRAINED_KINDS, ModelEntry, saved_gear_folder
from gear.hub import ModelSource, ModelUnavailableError
from gear.layout import scenario_of


@dataclass(frozen=True)
class ModelNeed:
    """A model the run will load, and why."""

    model: str
    revision: str | None
    purpose: str


def required_models(cfg: dict, entries: list[ModelEntry]) -> list[ModelNeed]:
    """Every hub model the run's config and selected registry entries will load."""
    revisions = cfg.get("model_revisions", {})

    def need(model: str, purpose: str, revision: str | None = None) -> ModelNeed:
        return ModelNeed(model, revision or revisions.get(model), purpose)

    needs = [need(cfg["data"]["token_counter"], "data.token_counter")]
    datasets = cfg["evaluate"]["datasets"]
    if "rir" in datasets:
        needs.append(need(cfg["data"]["rir"]["filter"]["model"], "data.rir.filter.model"))
        rewrite = cfg["data"]["rir"]["rewrite"]
        if rewrite["backend"] == "transformers":
            needs.append(need(rewrite["model"], "data.rir.rewrite.model"))
    kinds = {entry.kind for entry in entries}
    if "gear" in kinds:
        needs.append(need(cfg["gear"]["init_checkpoint"], "gear.init_checkpoint"))
    if kinds & {"sbert_rt", "bge_rt"}:
        needs.append(need(cfg["baselines"]["start_checkpoint"], "baselines.start_checkpoint"))
    for entry in entries:
        if entry.kind in PRETRAINED_KINDS:
            needs.append(need(entry.model, f"registry entry {entry.name}", entry.revision))
    return needs


def plan_models(cfg: dict, entries: list[ModelEntry]) -> tuple[dict[str, str], ModelUnavailableError | None]:
    """Resolve every required model and check every saved GeAR folder (``gear_folder`` entries, for
    each evaluated scenario), collecting the failures instead of raising.

    Returns:
        (model id -> local folder, or the hub id where downloads are allowed; an unavailable
        model maps to its own id) and one error listing every unavailable model, or None.
    """
    resolved, failures = {}, []
    source = ModelSource.from_config(cfg)
    for item in required_models(cfg, entries):
        if item.model in resolved:
            continue
        try:
            resolved[item.model] = source.resolve(item.model, item.revision)
        except ModelUnavailableError as err:
            resolved[item.model] = item.model
            failures.append(f"- needed by {item.purpose}: {err}")
    scenarios = sorted({scenario_of(d) for d in cfg["evaluate"]["datasets"]})
    for entry in entries:
        if entry.kind == "gear_folder":
            for scenario in scenarios:
                try:
                    saved_gear_folder(entry, scenario)
                except FileNotFoundError as err:
                    failures.append(f"- {err}")
    if failures:
        return resolved, ModelUnavailableError(
            "models this run needs are unavailable:\n" + "\n".join(failures)
        )
    return resolved, None


def check_models(cfg: dict, entries: list[ModelEntry]) -> dict[str, str]:
    """Resolve every required model; raise one error listing each that cannot be had.

    Returns:
        model id -> local folder (or the hub id, where downloads are allowed).
    """
    resolved, error = plan_models(cfg, entries)
    if error is not None:
        raise error
    return resolved


def software_problem(entries: list[ModelEntry]) -> RuntimeError | None:
    """One error naming the selected entries whose software this environment lacks, or None.

    Today that is FlagEmbedding (kinds ``flag_embedding`` and ``bge_rt``): it does not import under
    transformers 5 (:func:`baselines.adapters.flag_embedding_problem` says why and what to do).
    """
    flag = sorted(entry.name for entry in entries if entry.kind in FLAG_EMBEDDING_KINDS)
    problem = flag_embedding_problem() if flag else None
    if problem is None:
        return None
    return RuntimeError(
        f"registry entries {', '.join(flag)} of evaluate.models need FlagEmbedding: {problem}"
    )

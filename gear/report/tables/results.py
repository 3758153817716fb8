"""Reading the run's results files for the tables: metrics per task, results JSON, values and intervals."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from gear.io import DataFormatError, read_json, require_fields
from gear.layout import DATASETS, QA_DATASETS

# --------------------------------------------------------------------------------------------
# Results files
# --------------------------------------------------------------------------------------------


def task_metrics(task: str, dataset: str, evaluate_cfg: Mapping) -> list[str]:
    """The metric names a results JSON holds for a task and data set (ARCHITECTURE.md).

    Args:
        evaluate_cfg: the config's ``evaluate`` section (``retrieval.k``, ``localization.k_qa`` /
            ``k_rir``).
    """
    if task == "retrieval":
        k = evaluate_cfg["retrieval"]["k"]
        return [f"R@{k}", f"M@{k}"]
    if task == "localization":
        k = evaluate_cfg["localization"]["k_qa" if dataset in QA_DATASETS else "k_rir"]
        return [f"R@{k}", f"M@{k}"]
    if task == "generation":
        return ["EM", "F1"] if dataset in QA_DATASETS else ["ROUGE-1", "ROUGE-L"]
    raise ValueError(f"unknown task {task!r}")


def load_results(paths: Iterable[str | os.PathLike], task: str) -> dict[tuple[str, str], dict]:
    """Read result JSONs of one task, keyed by ``(model, dataset)`` as the files say.

    Raises:
        DataFormatError: a file lacks a field, belongs to another task, or repeats a key.
    """
    results: dict[tuple[str, str], dict] = {}
    sources: dict[tuple[str, str], str] = {}
    for path in paths:
        obj = read_json(path)
        if not isinstance(obj, dict):
            raise DataFormatError(f"{path}: expected a JSON object")
        require_fields(obj, {"model": str, "dataset": str, "task": str, "metrics": dict}, str(path))
        if obj["task"] != task:
            raise DataFormatError(f"{path}: task is {obj['task']!r}, expected {task!r}")
        key = (obj["model"], obj["dataset"])
        if key in results:
            raise DataFormatError(
                f"{path}: a second result for model {key[0]} on {key[1]} (first: {sources[key]})"
            )
        obj["_source"] = str(path)
        results[key] = obj
        sources[key] = str(path)
    return results


def metric_value(result: dict, metric: str) -> float:
    source = result.get("_source", f"{result['model']}/{result['dataset']}")
    if metric not in result["metrics"]:
        raise DataFormatError(f"{source}: metric {metric!r} missing; it has {sorted(result['metrics'])}")
    value = result["metrics"][metric]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise DataFormatError(f"{source}: metrics.{metric} = {value!r} is not a fraction in [0, 1]")
    return float(value)


def metric_ci(result: dict, metric: str) -> tuple[float, float] | None:
    ci = (result.get("ci") or {}).get(metric)
    if ci is None:
        return None
    if not (isinstance(ci, (list, tuple)) and len(ci) == 2):
        raise DataFormatError(f"{result.get('_source')}: ci.{metric} should be [low, high], got {ci!r}")
    return float(ci[0]), float(ci[1])


def ordered_datasets(*collections: Iterable[str]) -> list[str]:
    wanted = {d for c in collections for d in c}
    return [d for d in DATASETS if d in wanted] + sorted(wanted - set(DATASETS))

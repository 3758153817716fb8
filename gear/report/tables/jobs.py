"""What the workflow's scripts and ``workflow/rules/reports.smk`` call: one function per table job."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from gear.layout import dataset_tasks
from gear.report.tables.cells import Table
from gear.report.tables.metric_tables import build_metric_table
from gear.report.tables.paper import PAPER_NUMBERS, PaperNumbers
from gear.report.tables.results import load_results, task_metrics
from gear.report.tables.significance import build_significance_tables
from gear.report.tables.stats import build_stats_tables, count_lines, load_stats
from gear.report.tables.text import TASK_OF_TABLE
from gear.report.tables.writers import write_tables

# --------------------------------------------------------------------------------------------
# Jobs: what the workflow's scripts call
# --------------------------------------------------------------------------------------------


def make_metric_table(
    table: str,
    result_paths: Iterable[str | os.PathLike],
    run_models: Sequence[Sequence[str]],
    metrics: Mapping[str, Sequence[str]],
    tolerance: float,
    show_ci: bool,
    outputs: Mapping[str, str | os.PathLike],
    paper_path: str | os.PathLike = PAPER_NUMBERS,
) -> Table:
    """Read the results of Table 1, 2 or 3's task, build the table, write it (see :func:`build_metric_table`).

    Args:
        result_paths: every result JSON of the task in the run.
        run_models: ``(name, group)`` of the run's models having the task.
        outputs: format (md, tex, csv, html) -> path.
    """
    paper = PaperNumbers.load(paper_path)
    results = load_results(result_paths, TASK_OF_TABLE[table])
    built = build_metric_table(
        table, paper, [tuple(m) for m in run_models], metrics, results, tolerance, show_ci
    )
    write_tables(built, outputs)
    return built


def make_stats_tables(
    stats_paths: Iterable[str | os.PathLike],
    train_paths: Mapping[str, str | os.PathLike],
    outputs: Mapping[str, Mapping[str, str | os.PathLike]],
    paper_path: str | os.PathLike = PAPER_NUMBERS,
) -> list[Table]:
    """Tables 5-7 from the ``stats.json`` files and the training triples files.

    Args:
        stats_paths: ``R/data/{dataset}/stats.json`` of every evaluated data set.
        train_paths: scenario -> ``R/data/train/{scenario}.jsonl`` (its lines are counted).
        outputs: ``"table_5"`` / ``"table_6"`` / ``"table_7"`` -> format -> path.
    """
    paper = PaperNumbers.load(paper_path)
    train = {scenario: count_lines(path) for scenario, path in train_paths.items()}
    tables = build_stats_tables(load_stats(stats_paths), train, paper)
    for table in tables:
        write_tables(table, outputs[table.key])
    return tables


def make_significance_tables(
    result_paths: Mapping[str, Iterable[str | os.PathLike]],
    metrics: Mapping[str, Mapping[str, Sequence[str]]],
    reference: str,
    models: Sequence[str],
    bootstrap: Mapping,
    outputs: Mapping[str, str | os.PathLike],
    paper_path: str | os.PathLike = PAPER_NUMBERS,
) -> list[Table]:
    """The significance tables of every task, written into one set of files.

    Args:
        result_paths: task -> its result JSONs.
        metrics: task -> data set -> metric names.
        reference: the model compared with all others (GeAR).
        models: the run's model names, in row order.
        bootstrap: the config's ``evaluate.bootstrap`` (``resamples``, ``seed``, ``confidence``).
        outputs: format -> path.
    """
    paper = PaperNumbers.load(paper_path)
    results = {task: load_results(paths, task) for task, paths in result_paths.items()}
    tables = build_significance_tables(
        results,
        metrics,
        reference,
        models,
        int(bootstrap["resamples"]),
        int(bootstrap["seed"]),
        float(bootstrap["confidence"]),
        paper.dataset_labels,
    )
    write_tables(
        tables,
        outputs,
        page_title=f"Significance: {reference} against each model",
        empty_message=f"No model besides {reference} was evaluated on the same task: nothing to compare.",
    )
    return tables


def task_datasets(task: str, datasets: Sequence[str]) -> list[str]:
    """The evaluated data sets that have ``task`` (a BEIR set has retrieval only: it is a column
    block of Table 1 and absent from Tables 2 and 3)."""
    return [d for d in datasets if task in dataset_tasks(d)]


def task_inputs(task: str, models: Sequence, datasets: Sequence[str], layout) -> list[Path]:
    """Result JSONs a task's table reads: every model having the task, on every evaluated data set
    having it (:func:`task_datasets`)."""
    return [
        layout.eval_json(m.name, d, task)
        for m in models
        if task in m.tasks
        for d in task_datasets(task, datasets)
    ]


def task_models(task: str, models: Sequence) -> list[tuple[str, str]]:
    """``(name, group)`` of the models having a task, in the run's order."""
    return [(m.name, m.group) for m in models if task in m.tasks]


def task_metric_names(task: str, datasets: Sequence[str], evaluate_cfg: Mapping) -> dict[str, list[str]]:
    """Data set -> the metric names of a task (:func:`task_metrics`), for the data sets having it."""
    return {d: task_metrics(task, d, evaluate_cfg) for d in task_datasets(task, datasets)}

"""Fixture results for the report tests, written in the real formats (ARCHITECTURE.md).

``write_results`` fills a results folder the way the evaluation stage does: one result JSON per
(model, data set, task) with per-query arrays whose means and bootstrap intervals come from
:mod:`gear.evaluation.metrics`, stats.json files, training triples, layer and epoch analyses. Values are
drawn from a seeded generator around chosen means, so a test knows what each table must show.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gear.evaluation.metrics import summarize
from gear.io import write_json
from gear.layout import QA_DATASETS, Layout

N_QUERIES = 60


def per_query_values(metric: str, mean: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Per-query values whose mean is exactly ``mean`` (within 1/n): 0/1 for recall and EM,
    fractions for MRR, F1 and ROUGE."""
    hits = round(mean * n)
    values = np.zeros(n)
    values[:hits] = 1.0
    if metric.startswith("M@") or metric in ("F1", "ROUGE-1", "ROUGE-L"):
        # Spread the same total over fractional values: keeps the mean, looks like MRR / F1.
        values = np.full(n, mean)
        noise = rng.uniform(-min(mean, 1 - mean), min(mean, 1 - mean), size=n // 2)
        values[: n // 2] += noise
        values[n // 2 : n // 2 * 2] -= noise
    return rng.permutation(values)


def result_json(
    model: str, dataset: str, task: str, means: dict[str, float], seed: int = 0, n: int = N_QUERIES
) -> dict:
    rng = np.random.default_rng(seed)
    qids = [f"{dataset}-q{i:03d}" for i in range(n)]
    per_query = {metric: per_query_values(metric, mean, n, rng) for metric, mean in means.items()}
    metrics, ci = summarize(per_query, resamples=200, seed=12345, confidence=0.95)
    out = {
        "model": model,
        "dataset": dataset,
        "task": task,
        "scenario": "rir" if dataset == "rir" else "qar",
        "metrics": metrics,
        "ci": ci,
        "per_query": {"query_id": qids, **{k: v.tolist() for k, v in per_query.items()}},
        "n_queries": n,
        "skipped": {},
        "provenance": {
            "config_hash": "test",
            "git_commit": "test",
            "packages": {},
            "seed": 42,
            "wall_time_s": 0.1,
        },
    }
    if task == "generation":
        out["per_query"]["prediction"] = [f"answer {i}" for i in range(n)]
    return out


def metric_names(task: str, dataset: str) -> list[str]:
    if task == "retrieval":
        return ["R@5", "M@5"]
    if task == "localization":
        return ["R@1", "M@1"] if dataset in QA_DATASETS else ["R@3", "M@3"]
    return ["EM", "F1"] if dataset in QA_DATASETS else ["ROUGE-1", "ROUGE-L"]


def write_results(layout: Layout, models, datasets, skip=(), means=None) -> dict:
    """Write a result JSON for every (model entry, data set, task of the entry).

    Args:
        models: registry entries (``name``, ``tasks``).
        skip: ``(model, dataset, task)`` triples not to write (a run that did not evaluate them).
        means: ``(model, dataset, task) -> {metric: mean}`` overrides; the default mean is a
            deterministic function of the names.

    Returns:
        ``(model, dataset, task) -> the written JSON``.
    """
    written = {}
    for m_index, entry in enumerate(models):
        for d_index, dataset in enumerate(datasets):
            for task in entry.tasks:
                if (entry.name, dataset, task) in skip:
                    continue
                chosen = (means or {}).get((entry.name, dataset, task))
                if chosen is None:
                    base = 0.55 + 0.05 * m_index + 0.02 * d_index
                    chosen = {
                        m: min(0.95, base + 0.03 * j) for j, m in enumerate(metric_names(task, dataset))
                    }
                obj = result_json(entry.name, dataset, task, chosen, seed=100 * m_index + d_index)
                write_json(layout.eval_json(entry.name, dataset, task), obj)
                written[(entry.name, dataset, task)] = obj
    return written


def write_stats(layout: Layout, datasets) -> None:
    for i, dataset in enumerate(datasets):
        write_json(
            layout.stats(dataset),
            {
                "dataset": dataset,
                "documents": 100 + 10 * i,
                "queries": 40 + i,
                "units": 900,
                "fine_grained_queries": 30 + i,
                "queries_without_relevant_unit": i,
                "truncated_documents": 0,
                "max_document_tokens": 512,
                "skipped": {},
            },
        )


def write_train(layout: Layout, scenario: str, n: int) -> None:
    path = layout.train_triples(scenario)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"query_id": f"t{i}", "query": "q", "doc_id": "d", "document": "text", "target": "a"}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def epochs_json(scenario: str, epochs: int = 4) -> dict:
    loc_k = "1" if scenario == "qar" else "3"
    gen = ("EM", "F1") if scenario == "qar" else ("ROUGE-1", "ROUGE-L")
    steps = np.linspace(0, 1, epochs)
    return {
        "model": "GeAR",
        "scenario": scenario,
        "dataset": "paq" if scenario == "qar" else "rir",
        "epochs": list(range(1, epochs + 1)),
        "localization": {
            f"R@{loc_k}": (0.4 + 0.4 * steps).tolist(),
            f"M@{loc_k}": (0.5 + 0.4 * steps).tolist(),
        },
        "generation": {gen[0]: (0.3 + 0.5 * steps).tolist(), gen[1]: (0.35 + 0.5 * steps**0.8).tolist()},
    }


def layers_json(dataset: str, n_layers: int = 6, chosen: int = 5) -> dict:
    k = "1" if dataset in QA_DATASETS else "3"
    x = np.arange(1, n_layers + 1)
    recall = 0.3 + 0.5 * np.sin(x / n_layers * 2.4)
    return {
        "model": "GeAR",
        "dataset": dataset,
        "layers": x.tolist(),
        "metrics": {f"R@{k}": recall.tolist(), f"M@{k}": (recall + 0.05).tolist()},
        "chosen_layer": chosen,
    }


def figure3_fixture() -> dict:
    text = (
        "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, "
        'a region in France. Their leader was Rollo <b>&amp;</b> "others".'
    )

    def spans(words):
        out = []
        for rank, word in enumerate(words, start=1):
            start = text.index(word)
            out.append(
                {
                    "rank": rank,
                    "token": word.lower(),
                    "start": start,
                    "end": start + len(word),
                    "text": word,
                    "weight": 1.0 / rank,
                }
            )
        return out

    return {
        "dataset": "squad",
        "layer": 5,
        "top_tokens": 4,
        "document": {
            "doc_id": "squad-1",
            "title": "Normans <i>",
            "text": text,
            "units": [[0, 108], [109, len(text)]],
        },
        "queries": [
            {
                "query_id": "q1",
                "text": "In what country is Normandy?",
                "target": "France",
                "generated": "france",
                "top": spans(["France", "region", "Normandy", "10th"]),
            },
            {
                "query_id": "q2",
                "text": "When <script>?",
                "target": "10th and 11th centuries",
                "generated": "10th & 11th",
                "top": spans(["10th", "11th", "centuries", "Rollo"]),
            },
        ],
    }


def explain_fixture() -> dict:
    gold_text = "Paris is the capital of France. It has <many> museums & parks. The Seine flows through it."
    units = [[0, 31], [32, 62], [63, len(gold_text)]]
    offsets = [
        [0, 0],
        [0, 5],
        [6, 8],
        [9, 12],
        [13, 20],
        [21, 23],
        [24, 30],
        [30, 31],
        [39, 45],
        [63, 66],
        [67, 72],
        [0, 0],
    ]
    weights = [0.0, 0.3, 0.01, 0.02, 0.25, 0.01, 0.4, 0.01, 0.05, 0.02, 0.03, 0.9]
    return {
        "dataset": "squad",
        "model": "GeAR",
        "layer": 5,
        "top_documents": 2,
        "top_tokens": 3,
        "queries": [
            {
                "query_id": "squad-q1",
                "text": "What is the capital of <France>?",
                "answers": ["Paris"],
                "target": "Paris",
                "relevant_units": [0],
                "generated": "paris <b>",
                "retrieved": [
                    {
                        "rank": 1,
                        "doc_id": "d-other",
                        "score": 0.91,
                        "title": "Lyon",
                        "text": "Lyon is a city & more.",
                        "gold": False,
                    },
                    {
                        "rank": 2,
                        "doc_id": "d-paris",
                        "score": 0.88,
                        "title": "Paris",
                        "text": gold_text,
                        "gold": True,
                    },
                ],
                "gold_rank": 2,
                "run_depth": 20,
                "gold_document": {"doc_id": "d-paris", "title": "Paris", "text": gold_text, "units": units},
                "token_weights": {"offsets": offsets, "weights": weights},
                "unit_scores": [0.7, 0.2, None],
                "length_scores": [8.0, 12.0, None],  # the gold unit is not the longest
                "attention_entropy": 0.8,
            }
        ],
    }


@pytest.fixture()
def layout(tmp_path) -> Layout:
    return Layout(tmp_path / "results", tmp_path / "reports")


@pytest.fixture(scope="session")
def registry():
    from baselines.registry import load_registry
    from gear.config import REPO_ROOT

    return load_registry(Path(REPO_ROOT) / "config" / "baselines.yaml")

"""A real-data check of the evaluation: pretrained all-MiniLM-L6-v2 on the real SQuAD v1.1 dev set.

Builds the normalised SQuAD test set with the suite's own builder (``data_prep.squad.build_squad``:
every paragraph a document, every question a query; 2,067 paragraphs and 10,570 questions for the
official dev file), then evaluates the registry's ``MiniLM`` entry exactly as the workflow does:

- retrieval over all paragraphs: R@k / MRR@k (``evaluate.retrieval.k``, the paper's 5);
- sentence-similarity localization inside the gold paragraph: R@1 / M@1 (``evaluate.localization.k_qa``);

each with its 95% percentile bootstrap interval, and the wall time of each stage. Results go to
``OUT/eval/MiniLM/squad/{retrieval,localization}.json`` (the suite's result format) and a summary
to ``OUT/summary.json``; a Markdown table for BENCHMARKS.md is printed.

Usage::

    python -m gear.tools.squad_baseline --squad /work/shared/data/squad/dev-v1.1.json \\
        [--config config/mini.yaml] [--out results/squad_baseline] [--threads 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from baselines.registry import build_encoder, load_registry
from data_prep.squad import build_squad
from gear.config import REPO_ROOT, load_config
from gear.evaluation.dataset import EvalDataset
from gear.evaluation.localization import BiEncoderUnitScorer, evaluate_localization
from gear.evaluation.retrieval import evaluate_retrieval
from gear.evaluation.settings import EvaluateSettings
from gear.hub import ModelSource
from gear.io import write_json
from gear.layout import Layout
from gear.logs import setup_logging

log = logging.getLogger("gear.tools.squad_baseline")


def run_squad_baseline(
    squad: str | Path, config: str | Path, out: str | Path, threads: int, model: str = "MiniLM"
) -> dict:
    """Build SQuAD from ``squad``, evaluate registry entry ``model`` on it; return the summary.

    Args:
        squad: a SQuAD JSON file (v1.1 dev).
        config: run config whose ``data``, ``evaluate``, ``model_paths`` and ``registry`` are used.
        out: output folder (the run's ``results_dir`` for this check).
        threads: torch threads.
        model: registry entry to evaluate.
    """
    import torch

    torch.set_num_threads(threads)
    squad, out = Path(squad), Path(out)
    if not squad.is_file():
        raise FileNotFoundError(f"{squad}: no such SQuAD file (the official dev-v1.1.json)")
    cfg = load_config(config)
    cfg["results_dir"], cfg["reports_dir"] = str(out), str(out / "reports")
    layout = Layout.from_config(cfg)
    settings = EvaluateSettings.from_config(cfg["evaluate"])
    registry = load_registry(
        REPO_ROOT / cfg["registry"] if not Path(cfg["registry"]).is_absolute() else cfg["registry"]
    )
    timings: dict[str, float] = {}

    def clock() -> tuple[float, float]:
        return time.time(), time.process_time()

    def record(stage: str, since: tuple[float, float]) -> None:
        timings[f"{stage}_s"] = round(time.time() - since[0], 1)
        timings[f"{stage}_cpu_s"] = round(time.process_time() - since[1], 1)

    started = clock()
    stats = build_squad(
        squad, layout.dataset_dir("squad"), cfg["data"], model_source=ModelSource(cfg["model_paths"])
    )
    record("build_dataset", started)
    data = EvalDataset.load("squad", layout.corpus("squad"), layout.queries("squad"))

    started = clock()
    encoder = build_encoder(registry[model], cfg, "qar", layout, device="cpu")
    record("load_model", started)

    started = clock()
    retrieval = evaluate_retrieval(
        encoder,
        data,
        settings,
        out_json=layout.eval_json(model, "squad", "retrieval"),
        run_file=layout.run_file(model, "squad"),
        qrels_file=layout.qrels_file(model, "squad"),
        cache_root=None,  # encode afresh: the wall time is the point of this check
        provenance_config=cfg,
        model_name=model,
    )
    record("retrieval", started)

    started = clock()
    localization = evaluate_localization(
        BiEncoderUnitScorer(encoder, settings.batch_size),
        data,
        settings,
        out_json=layout.eval_json(model, "squad", "localization"),
        provenance_config=cfg,
        model_name=model,
    )
    record("localization", started)

    summary = {
        "command": " ".join(
            shlex.quote(a)
            for a in [sys.executable.split("/")[-1], "-m", "gear.tools.squad_baseline", *sys.argv[1:]]
        ),
        "model": model,
        "model_entry": registry[model].model,
        "squad": str(squad),
        "documents": stats["documents"],
        "queries": stats["queries"],
        "units": stats["units"],
        "queries_without_relevant_unit": stats["queries_without_relevant_unit"],
        "retrieval": {
            "metrics": retrieval["metrics"],
            "ci": retrieval["ci"],
            "n_queries": retrieval["n_queries"],
        },
        "localization": {
            "metrics": localization["metrics"],
            "ci": localization["ci"],
            "n_queries": localization["n_queries"],
            "skipped": localization["skipped"],
        },
        "bootstrap": retrieval["bootstrap"],
        "timings": timings,
        "threads": threads,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "provenance": retrieval["provenance"],
    }
    write_json(out / "summary.json", summary)
    return summary


def markdown(summary: dict) -> str:
    """A Markdown table of the summary, for BENCHMARKS.md."""
    rows = ["| task | metric | value | 95% CI | queries |", "|---|---|---|---|---|"]
    for task in ("retrieval", "localization"):
        part = summary[task]
        for name, value in part["metrics"].items():
            low, high = part["ci"][name]
            rows.append(f"| {task} | {name} | {value:.4f} | [{low:.4f}, {high:.4f}] | {part['n_queries']} |")
    t = summary["timings"]
    rows.append("")
    rows.append(
        f"{summary['documents']} documents, {summary['queries']} queries, {summary['units']} units; "
        f"{summary['localization']['skipped']['no_relevant_unit']} queries without a relevant unit skipped "
        f"for localization. Wall time (CPU time of all threads) with {summary['threads']} torch threads: "
        f"building the data set {t['build_dataset_s']} s ({t['build_dataset_cpu_s']} s), retrieval "
        f"{t['retrieval_s']} s ({t['retrieval_cpu_s']} s), localization {t['localization_s']} s "
        f"({t['localization_cpu_s']} s)."
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--squad", required=True, help="SQuAD v1.1 dev JSON (dev-v1.1.json)")
    parser.add_argument("--config", default=str(REPO_ROOT / "config" / "mini.yaml"), help="run config")
    parser.add_argument("--out", default=str(REPO_ROOT / "results" / "squad_baseline"), help="output folder")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--model", default="MiniLM", help="registry entry to evaluate (default MiniLM)")
    args = parser.parse_args(argv)
    setup_logging(Path(args.out) / "squad_baseline.log")
    summary = run_squad_baseline(args.squad, args.config, args.out, args.threads, args.model)
    print(markdown(summary))


if __name__ == "__main__":
    main()

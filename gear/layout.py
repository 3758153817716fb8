"""Where every artifact of a run lives: the one place that knows the output paths.

Snakemake rules, package functions and tests all ask this module for paths, so the layout is
written down once. ``R`` is the run's ``results_dir`` and ``P`` its ``reports_dir``::

    R/raw/...                                   downloaded native files (paper scale)
    R/data/{dataset}/corpus.jsonl               normalised corpus   (see data_prep/normalized.py)
    R/data/{dataset}/queries.jsonl              normalised queries
    R/data/{dataset}/stats.json                 Tables 5-7 statistics
    R/data/train/{scenario}.jsonl               training triples (qar: PAQ, rir: synthesized)
    R/data/rir_work/                            RIR synthesis intermediates and the LLM cache
    R/models/{model}/{scenario}/model/          a trained model, Hugging Face style folder
    R/models/{model}/{scenario}/epochs/epoch_{e}/   GeAR's per-epoch checkpoints (Figure 4a/b)
    R/models/{model}/{scenario}/state/          resumable training state (step checkpoints)
    R/cache/embeddings/                         encoded corpora, keyed by model and data hash
    R/eval/{model}/{dataset}/{task}.json        metrics, per-query scores, provenance
    R/eval/{model}/{dataset}/run.tsv            retrieval run (TREC format, top depth)
    R/analysis/layers/{model}/{dataset}.json    localization by cross-attention layer (Figure 4c)
    R/analysis/epochs/{model}/{scenario}.json   localization and generation per epoch (Figure 4a/b)
    R/logs/{stage}/{job}.log                    one log per job
    R/benchmarks/{stage}/{job}.tsv              wall time and peak memory per job (gear.tools.bench workflow)
    P/...                                       tables, figures, HTML pages

Datasets and scenarios: the QA test sets (SQuAD, NQ, TriviaQA, PAQ) are evaluated with models
trained on the QAR scenario (PAQ triples); the RIR test set with models trained on RIR.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

QA_DATASETS = ("squad", "nq", "triviaqa", "paq")
DATASETS = (*QA_DATASETS, "rir")
SCENARIOS = ("qar", "rir")
TASKS = ("retrieval", "localization", "generation")
SCENARIO_OF = {"squad": "qar", "nq": "qar", "triviaqa": "qar", "paq": "qar", "rir": "rir"}


def scenario_of(dataset: str) -> str:
    """The training scenario whose models a test set is evaluated with."""
    try:
        return SCENARIO_OF[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}") from None


@dataclass(frozen=True)
class Layout:
    """Paths of one run. Build it with ``Layout.from_config(cfg)``."""

    results: Path
    reports: Path

    @classmethod
    def from_config(cls, cfg: dict) -> Layout:
        return cls(Path(cfg["results_dir"]), Path(cfg["reports_dir"]))

    # data
    def dataset_dir(self, dataset: str) -> Path:
        return self.results / "data" / dataset

    def corpus(self, dataset: str) -> Path:
        return self.dataset_dir(dataset) / "corpus.jsonl"

    def queries(self, dataset: str) -> Path:
        return self.dataset_dir(dataset) / "queries.jsonl"

    def stats(self, dataset: str) -> Path:
        return self.dataset_dir(dataset) / "stats.json"

    def train_triples(self, scenario: str) -> Path:
        return self.results / "data" / "train" / f"{scenario}.jsonl"

    def rir_work(self) -> Path:
        return self.results / "data" / "rir_work"

    # models
    def model_root(self, model: str, scenario: str) -> Path:
        return self.results / "models" / model / scenario

    def final_model(self, model: str, scenario: str) -> Path:
        return self.model_root(model, scenario) / "model"

    def epoch_dir(self, model: str, scenario: str, epoch: int) -> Path:
        return self.model_root(model, scenario) / "epochs" / f"epoch_{epoch}"

    def train_state(self, model: str, scenario: str) -> Path:
        return self.model_root(model, scenario) / "state"

    # evaluation
    def embedding_cache(self) -> Path:
        return self.results / "cache" / "embeddings"

    def eval_json(self, model: str, dataset: str, task: str) -> Path:
        return self.results / "eval" / model / dataset / f"{task}.json"

    def run_file(self, model: str, dataset: str) -> Path:
        return self.results / "eval" / model / dataset / "run.tsv"

    def layers_json(self, model: str, dataset: str) -> Path:
        return self.results / "analysis" / "layers" / model / f"{dataset}.json"

    def epochs_json(self, model: str, scenario: str) -> Path:
        return self.results / "analysis" / "epochs" / model / f"{scenario}.json"

    # logs and per-job benchmarks (Snakemake's `benchmark:` wall time, memory, CPU time)
    def log(self, stage: str, name: str) -> Path:
        return self.results / "logs" / stage / f"{name}.log"

    def benchmark(self, stage: str, name: str) -> Path:
        return self.results / "benchmarks" / stage / f"{name}.tsv"

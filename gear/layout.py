"""Where every artifact of a run lives: the one place that knows the output paths.

Snakemake rules, package functions and tests all ask this module for paths, so the layout is
written down once. ``R`` is the run's ``results_dir`` and ``P`` its ``reports_dir``::

    R/raw/...                                   downloaded native files (paper scale)
    R/data/{dataset}/corpus.jsonl               normalised corpus   (see data_prep/normalized.py)
    R/data/{dataset}/queries.jsonl              normalised queries
    R/data/{dataset}/stats.json                 Tables 5-7 statistics
    R/data/{dataset}/beir/                      the same test set in BEIR layout (corpus.jsonl,
                                                queries.jsonl, qrels/test.tsv)
    R/data/train/{scenario}.jsonl               training triples (qar: PAQ, rir: synthesized)
    R/data/rir_work/                            RIR synthesis intermediates and the LLM cache
    R/models/{model}/{scenario}/model/          a trained model, Hugging Face style folder
    R/models/{model}/{scenario}/epochs/epoch_{e}/   GeAR's per-epoch checkpoints (Figure 4a/b)
    R/models/{model}/{scenario}/state/          resumable training state (step checkpoints)
    R/cache/embeddings/                         encoded corpora, keyed by model and data hash
    R/eval/{model}/{dataset}/{task}.json        metrics, per-query scores, provenance
    R/eval/{model}/{dataset}/run.tsv            retrieval run (TREC format, top depth)
    R/eval/{model}/{dataset}/qrels.tsv          its relevance judgments (TREC qrels format)
    R/analysis/layers/{model}/{dataset}.json    localization by cross-attention layer (Figure 4c)
    R/analysis/epochs/{model}/{scenario}.json   localization and generation per epoch (Figure 4a/b)
    R/logs/{stage}/{job}.log                    one log per job
    R/benchmarks/{stage}/{job}.tsv              wall time and peak memory per job (gear.tools.bench workflow)
    P/...                                       tables, figures, HTML pages

Datasets and scenarios: the QA test sets (SQuAD, NQ, TriviaQA, PAQ) are evaluated with models
trained on the QAR scenario (PAQ triples); the RIR test set with models trained on RIR.

BEIR data sets a config adds (``data.beir``, see ``data_prep/beir.py``) are named ``beir-{name}``
and are evaluated for retrieval only (BEIR has no answers or sentence labels to localize or
generate), with the QAR models: the suite's choice, BEIR's queries being questions, claims or
keywords for documents, as PAQ's questions are for passages, not sentence rewrites as in RIR.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

QA_DATASETS = ("squad", "nq", "triviaqa", "paq")
DATASETS = (*QA_DATASETS, "rir")
SCENARIOS = ("qar", "rir")
TASKS = ("retrieval", "localization", "generation")
SCENARIO_OF = {"squad": "qar", "nq": "qar", "triviaqa": "qar", "paq": "qar", "rir": "rir"}
BEIR_PREFIX = "beir-"
BEIR_NAME = re.compile(r"beir-[a-z0-9][a-z0-9_-]*")


def is_beir(dataset: str) -> bool:
    """Whether ``dataset`` names a BEIR data set added by the config (``beir-{name}``)."""
    return BEIR_NAME.fullmatch(dataset) is not None


def scenario_of(dataset: str) -> str:
    """The training scenario whose models a test set is evaluated with (BEIR sets: ``qar``)."""
    if dataset in SCENARIO_OF:
        return SCENARIO_OF[dataset]
    if is_beir(dataset):
        return "qar"
    raise ValueError(
        f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}, or a BEIR data set named "
        f"beir-{{name}} (lower-case letters, digits, '-', '_') declared under data.beir"
    )


def dataset_tasks(dataset: str) -> tuple[str, ...]:
    """The tasks a test set supports: all three, or retrieval alone for a BEIR set (no answers,
    no relevant sentences: nothing to localize or generate)."""
    scenario_of(dataset)  # fails on an unknown name
    return ("retrieval",) if is_beir(dataset) else TASKS


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

    def beir_dir(self, dataset: str) -> Path:
        """The test set in BEIR layout: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv``."""
        return self.dataset_dir(dataset) / "beir"

    def beir_files(self, dataset: str) -> dict[str, Path]:
        """The BEIR export's files by key (``beir_corpus``, ``beir_queries``, ``beir_qrels``)."""
        folder = self.beir_dir(dataset)
        return {
            "beir_corpus": folder / "corpus.jsonl",
            "beir_queries": folder / "queries.jsonl",
            "beir_qrels": folder / "qrels" / "test.tsv",
        }

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

    def qrels_file(self, model: str, dataset: str) -> Path:
        """TREC qrels beside the run file, so ``trec_eval qrels.tsv run.tsv`` runs as is."""
        return self.results / "eval" / model / dataset / "qrels.tsv"

    def layers_json(self, model: str, dataset: str) -> Path:
        return self.results / "analysis" / "layers" / model / f"{dataset}.json"

    def epochs_json(self, model: str, scenario: str) -> Path:
        return self.results / "analysis" / "epochs" / model / f"{scenario}.json"

    # logs and per-job benchmarks (Snakemake's `benchmark:` wall time, memory, CPU time)
    def log(self, stage: str, name: str) -> Path:
        return self.results / "logs" / stage / f"{name}.log"

    def benchmark(self, stage: str, name: str) -> Path:
        return self.results / "benchmarks" / stage / f"{name}.tsv"

"""The generation evaluator: GeAR's decoder, EM / F1 (QA) or ROUGE (RIR)."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from gear.evaluation.dataset import EvalDataset, generation_sample
from gear.evaluation.metrics import (
    qa_generation_metrics,
    rouge_metrics,
)
from gear.evaluation.results import build_result, format_metrics, result_provenance
from gear.evaluation.settings import EvaluateSettings, GenerationSettings
from gear.inference import generate
from gear.io import DataFormatError, write_json
from gear.layout import scenario_of

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------

Generator = Callable[[Sequence[str], Sequence[str]], list[str]]


class GearGenerator:
    """GeAR's decoder (``gear.inference.generate``) with the config's decoding settings."""

    def __init__(self, model, tokenizer, generation: GenerationSettings):
        self.model = model
        self.tokenizer = tokenizer
        self.generation = generation

    def __call__(self, queries: Sequence[str], documents: Sequence[str]) -> list[str]:
        return generate(
            self.model,
            self.tokenizer,
            list(queries),
            list(documents),
            max_new_tokens=self.generation.max_new_tokens,
            num_beams=self.generation.num_beams,
            batch_size=self.generation.batch_size,
        )


def generation_metrics(dataset: str, predictions: Sequence[str], queries: Sequence) -> dict[str, np.ndarray]:
    """QA: ``EM`` / ``F1`` over each query's ``answers``; RIR: ``ROUGE-1`` / ``ROUGE-L`` against ``target``."""
    if scenario_of(dataset) == "qar":
        empty = [q.query_id for q in queries if not q.answers]
        if empty:
            raise DataFormatError(
                f"{dataset}: queries without gold answers cannot score generation: {empty[:5]}"
            )
        return qa_generation_metrics(predictions, [q.answers for q in queries])
    return rouge_metrics(predictions, [q.target for q in queries])


def evaluate_generation(
    generator: Generator,
    data: EvalDataset,
    settings: EvaluateSettings,
    *,
    out_json: str | Path,
    model_name: str = "GeAR",
    provenance_config: dict | None = None,
) -> dict:
    """Generate for the ``fine_grained`` queries and write EM / F1 (QA) or ROUGE (RIR) with intervals.

    Args:
        generator: ``(queries, documents) -> texts``, e.g. :class:`GearGenerator`.
        data: the test set (each query is given its gold document).
        settings: the ``evaluate`` section.
        out_json: result path (``Layout.eval_json(model, dataset, "generation")``); the
            predictions go into ``per_query.prediction``.
    """
    started = time.time()
    queries, skipped = generation_sample(data)
    predictions = (
        generator([q.text for q in queries], [data.gold(q).text for q in queries]) if queries else []
    )
    if len(predictions) != len(queries):
        raise ValueError(f"{model_name}: {len(predictions)} generations for {len(queries)} queries")
    per_query = generation_metrics(data.name, predictions, queries)
    result = build_result(
        model=model_name,
        dataset=data.name,
        task="generation",
        query_ids=[q.query_id for q in queries],
        per_query=per_query,
        skipped=skipped,
        bootstrap=settings.bootstrap,
        provenance_block=result_provenance(
            provenance_config, settings, started, generation=dataclasses.asdict(settings.generation)
        ),
        extra_per_query={"prediction": list(predictions)},
    )
    write_json(out_json, result)
    log.info("%s on %s generation: %s", model_name, data.name, format_metrics(result["metrics"]))
    return result

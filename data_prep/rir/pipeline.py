"""The RIR synthesis end to end: pre-processing, rewriting, post-processing (paper Appendix A).

The Snakemake workflow runs the three steps as separate rules (``rir_preprocess``,
``rir_rewrite``, ``rir_postprocess``) so that a change to the filter does not rerun the LLM;
:func:`build_rir` chains them for scripts and tests. Intermediates live in ``work_dir``
(``L.rir_work()``):

- ``preprocessed.jsonl`` / ``preprocess_stats.json``: documents that passed the filters, with
  their units, token counts and candidate sentences;
- ``rewrite_cache.jsonl``: every rewrite obtained so far (persistent across runs);
- ``rewrites.jsonl``: the selected candidates with their rewrites.
"""

from __future__ import annotations

import os
from pathlib import Path

from data_prep.rir.postprocess import SimilarityFilter, postprocess_rewrites
from data_prep.rir.preprocess import preprocess_wikipedia
from data_prep.rir.rewrite import RewriteBackend, rewrite_candidates
from gear.hub import ModelSource

PREPROCESSED = "preprocessed.jsonl"
PREPROCESS_STATS = "preprocess_stats.json"
REWRITE_CACHE = "rewrite_cache.jsonl"
REWRITES = "rewrites.jsonl"


def work_paths(work_dir: str | os.PathLike) -> dict[str, Path]:
    """The intermediate files of the synthesis inside ``work_dir``."""
    work_dir = Path(work_dir)
    return {
        "preprocessed": work_dir / PREPROCESSED,
        "preprocess_stats": work_dir / PREPROCESS_STATS,
        "cache": work_dir / REWRITE_CACHE,
        "rewrites": work_dir / REWRITES,
    }


def build_rir(
    wikipedia: str | os.PathLike,
    work_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    train_out: str | os.PathLike,
    data_cfg: dict,
    seed: int,
    *,
    model_source: ModelSource | None = None,
    backend: RewriteBackend | None = None,
    similarity: SimilarityFilter | None = None,
    workers: int = 1,
) -> dict:
    """Synthesize the RIR data: test set in ``out_dir``, training triples in ``train_out``.

    Args:
        wikipedia: the Wikipedia dump (JSON Lines ``{id, url, title, text}``, optionally compressed).
        work_dir: folder of the intermediates (``L.rir_work()``).
        out_dir: test-set folder (``L.dataset_dir("rir")``).
        train_out: training triples (``L.train_triples("rir")``).
        data_cfg: the config's ``data`` section (``rir``, ``splitter``, ``token_counter``,
            ``max_document_tokens``).
        seed: the run's seed.
        model_source: where models come from (:class:`gear.hub.ModelSource`); default: local only.
        backend: a rewrite backend to use instead of the configured one.
        similarity: a relevance filter to use instead of the configured model.
        workers: pre-processing processes.

    Returns:
        ``{"preprocess": ..., "rewrite": ..., "postprocess": ...}`` statistics.
    """
    rir = data_cfg["rir"]
    paths = work_paths(work_dir)
    pre = preprocess_wikipedia(
        wikipedia,
        paths["preprocessed"],
        paths["preprocess_stats"],
        rir["preprocess"],
        data_cfg["token_counter"],
        data_cfg.get("splitter"),
        model_source=model_source,
        workers=workers,
    )
    rewrite = rewrite_candidates(
        paths["preprocessed"],
        paths["rewrites"],
        paths["cache"],
        rir["rewrite"],
        seed,
        backend=backend,
        model_source=model_source,
    )
    post = postprocess_rewrites(
        paths["preprocessed"],
        paths["rewrites"],
        out_dir,
        train_out,
        rir["filter"],
        rir["split"],
        seed,
        data_cfg["max_document_tokens"],
        model_source=model_source,
        similarity=similarity,
    )
    return {"preprocess": pre, "rewrite": rewrite, "postprocess": post}

"""The retrieval evaluator: exact search over the corpus, R@k and M@k, a TREC run file and its qrels.

A dense model (a :class:`~gear.encoding.TextEncoder`) is searched by inner product over its cached
vectors; a lexical one (a :class:`LexicalRetriever`, e.g. ``baselines.lexical.BM25Retriever``)
ranks the texts itself. Both give ``(scores, ids)`` in the same shape and order, so the run file
and the metrics are computed alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from gear.encoding import TextEncoder
from gear.evaluation.dataset import EvalDataset
from gear.evaluation.embeddings import encode_texts
from gear.evaluation.metrics import (
    retrieval_metrics,
)
from gear.evaluation.results import build_result, format_metrics, result_provenance
from gear.evaluation.search import SearchSettings, search, write_qrels, write_run
from gear.evaluation.settings import EvaluateSettings
from gear.io import write_json

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Retrieval
# --------------------------------------------------------------------------------------------


class LexicalRetriever(Protocol):
    """A retriever that ranks texts itself (no vectors), such as BM25."""

    name: str

    def fingerprint(self) -> str:
        """What its scores depend on (recorded in the result's provenance)."""

    def search(
        self, documents: Sequence[str], queries: Sequence[str], depth: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``(n_queries, depth)``, as ``gear.evaluation.search.search`` returns them."""


def evaluate_retrieval(
    encoder: TextEncoder | LexicalRetriever,
    data: EvalDataset,
    settings: EvaluateSettings,
    *,
    out_json: str | Path,
    run_file: str | Path | None = None,
    qrels_file: str | Path | None = None,
    cache_root: str | Path | None = None,
    search_settings: SearchSettings | None = None,
    provenance_config: dict | None = None,
    model_name: str | None = None,
) -> dict:
    """Retrieve for every query of ``data`` and write ``R@k`` / ``M@k`` with intervals.

    Args:
        encoder: the model: a dense encoder, or a :class:`LexicalRetriever`.
        data: the test set; each query's relevant document is its ``doc_id``.
        settings: the ``evaluate`` section (depth, k, batch size, bootstrap).
        out_json: result path (``Layout.eval_json(model, dataset, "retrieval")``).
        run_file: TREC run path (``Layout.run_file``), written when given.
        qrels_file: TREC qrels path (``Layout.qrels_file``, beside the run file), written when
            given: each query's relevant documents, so ``trec_eval qrels run`` scores the run.
        cache_root: embedding cache folder (``Layout.embedding_cache()``); None encodes in memory.
        search_settings: shard size, RAM budget, GPU choice.
        provenance_config: the config the result is computed under (hashed into provenance).
        model_name: name in the result (default ``encoder.name``).

    Returns:
        the result object written to ``out_json``.
    """
    started = time.time()
    search_settings = search_settings or SearchSettings()
    name = model_name or encoder.name
    texts = [doc.text for doc in data.documents]
    query_texts = [q.text for q in data.queries]
    if isinstance(encoder, TextEncoder):
        store = encode_texts(
            encoder, texts, cache_root, batch_size=settings.batch_size, shard_size=search_settings.shard_size
        )
        query_vectors = encode_texts(
            encoder, query_texts, None, kind="queries", batch_size=settings.batch_size
        )
        scores, ids = search(store, query_vectors, settings.retrieval.depth, search_settings)
    else:
        scores, ids = encoder.search(texts, query_texts, settings.retrieval.depth)
    if run_file is not None:
        write_run(
            run_file,
            [q.query_id for q in data.queries],
            [d.doc_id for d in data.documents],
            ids,
            scores,
            name,
        )
    if qrels_file is not None:
        write_qrels(qrels_file, [(q.query_id, q.judgments()) for q in data.queries])
    gold = [[data.position[doc_id] for doc_id in q.judgments()] for q in data.queries]
    per_query = retrieval_metrics(ids, scores, gold, settings.retrieval.k)
    result = build_result(
        model=name,
        dataset=data.name,
        task="retrieval",
        query_ids=[q.query_id for q in data.queries],
        per_query=per_query,
        skipped={},
        bootstrap=settings.bootstrap,
        provenance_block=result_provenance(
            provenance_config,
            settings,
            started,
            encoder_fingerprint=encoder.fingerprint(),
            documents=len(texts),
            depth=settings.retrieval.depth,
        ),
    )
    write_json(out_json, result)
    log.info("%s on %s retrieval: %s", name, data.name, format_metrics(result["metrics"]))
    return result

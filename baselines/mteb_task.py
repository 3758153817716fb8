"""The suite's encoders in mteb: a local retrieval task and a wrapper, no downloads.

The adapters of :mod:`baselines.adapters` (and GeAR's bi-encoder) are
:class:`gear.encoding.TextEncoder` objects; :class:`MtebEncoder` hands any of them to mteb 2.x
unchanged (it implements mteb's ``EncoderProtocol``: queries go to ``encode_queries``, documents
to ``encode_documents``, so each model's own prefixes and instructions apply as in the suite).
:func:`local_retrieval_task` builds an ``AbsTaskRetrieval`` from one of the suite's normalised
test sets (``R/data/{dataset}/corpus.jsonl`` + ``queries.jsonl``; the qrels are each query's
``doc_id`` with relevance 1), read from disk, so mteb scores the same queries and documents the
suite evaluates. This lets anyone check the suite's retrieval numbers against mteb's evaluator,
or run an mteb task on a model of the registry.

mteb is an optional extra (``pip install -e '.[mteb]'``; the test command installs it): the
workflow never uses it. Without it, these functions raise an ImportError that says so.

Example:
    >>> from baselines.mteb_task import evaluate_local
    >>> scores = evaluate_local(encoder, "results/mini/data/squad")  # doctest: +SKIP
    >>> scores["recall_at_5"]  # doctest: +SKIP
    0.91
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gear.encoding import TextEncoder
from gear.io import DataFormatError, iter_jsonl, require_fields

#: cut-offs mteb reports (R@5/M@5 are the paper's retrieval columns)
K_VALUES = (1, 3, 5, 10, 20, 100)


def require_mteb():
    """The mteb module.

    Raises:
        ImportError: mteb is not installed; the message names the extra that installs it.
    """
    try:
        import mteb
    except ImportError as err:
        raise ImportError(
            "baselines.mteb_task needs mteb, which the main install leaves out: "
            "install the extra with pip install -e '.[mteb]' (the test command, "
            "pip install -r requirements-test.txt -e '.[mteb]', includes it)"
        ) from err
    return mteb


def read_local_retrieval(dataset_dir: str | Path, with_titles: bool = False) -> dict[str, Any]:
    """A normalised test set as mteb's retrieval split: corpus, queries, relevant_docs.

    Args:
        dataset_dir: folder holding ``corpus.jsonl`` and ``queries.jsonl`` (ARCHITECTURE.md).
        with_titles: give mteb each document's title (mteb prepends it to the text). False keeps
            the text alone, as the suite's localization units index into it.

    Returns:
        ``{"corpus": Dataset(id, text, title), "queries": Dataset(id, text),
        "relevant_docs": {query_id: {doc_id: relevance}}, "top_ranked": None}``: each query's
        ``relevant_docs`` where the set has them (BEIR imports), else ``{doc_id: 1}``.

    Raises:
        DataFormatError: a missing field, or a query whose ``doc_id`` is not in the corpus.
    """
    from datasets import Dataset

    dataset_dir = Path(dataset_dir)
    corpus_file, queries_file = dataset_dir / "corpus.jsonl", dataset_dir / "queries.jsonl"
    ids, texts, titles = [], [], []
    for number, row in iter_jsonl(corpus_file):
        require_fields(row, {"doc_id": str, "title": str, "text": str}, f"{corpus_file}:{number}")
        ids.append(row["doc_id"])
        texts.append(row["text"])
        titles.append(row["title"] if with_titles else "")
    known = set(ids)
    query_ids, query_texts, relevant = [], [], {}
    for number, row in iter_jsonl(queries_file):
        where = f"{queries_file}:{number}"
        require_fields(row, {"query_id": str, "text": str, "doc_id": str}, where)
        # several graded relevant documents where the set has them (BEIR imports), else doc_id
        judged = row.get("relevant_docs") or {row["doc_id"]: 1}
        for doc_id in (row["doc_id"], *judged):
            if doc_id not in known:
                raise DataFormatError(f"{where}: doc_id {doc_id!r} is not in {corpus_file}")
        query_ids.append(row["query_id"])
        query_texts.append(row["text"])
        relevant[row["query_id"]] = dict(judged)
    if not ids or not query_ids:
        raise DataFormatError(f"{dataset_dir}: empty corpus or no queries")
    return {
        "corpus": Dataset.from_dict({"id": ids, "text": texts, "title": titles}),
        "queries": Dataset.from_dict({"id": query_ids, "text": query_texts}),
        "relevant_docs": relevant,
        "top_ranked": None,
    }


def local_retrieval_task(
    dataset_dir: str | Path,
    name: str | None = None,
    with_titles: bool = False,
    k_values: Sequence[int] = K_VALUES,
):
    """An mteb ``AbsTaskRetrieval`` over a normalised test set on disk (no hub access).

    Args:
        dataset_dir: folder holding ``corpus.jsonl`` and ``queries.jsonl``.
        name: the task's name in mteb's results (default ``GeARLocal-{folder name}``).
        with_titles: see :func:`read_local_retrieval`.
        k_values: cut-offs of the reported metrics.

    Returns:
        a task instance; ``mteb.evaluate(model, task, cache=None)`` runs it.
    """
    require_mteb()
    from mteb import TaskMetadata
    from mteb.abstasks.retrieval import AbsTaskRetrieval

    dataset_dir = Path(dataset_dir)
    task_name = name or f"GeARLocal-{dataset_dir.name}"
    metadata = TaskMetadata(
        name=task_name,
        description=f"Retrieval on the GeAR suite's normalised test set in {dataset_dir}",
        reference=None,
        dataset={"path": str(dataset_dir), "revision": "local"},
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score="recall_at_5",
        date=None,
        domains=None,
        task_subtypes=None,
        license=None,
        annotations_creators=None,
        dialect=None,
        sample_creation=None,
        bibtex_citation="",
    )

    class LocalRetrievalTask(AbsTaskRetrieval):
        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            if self.data_loaded:
                return
            self.dataset = {"default": {"test": read_local_retrieval(dataset_dir, with_titles)}}
            self.data_loaded = True

    LocalRetrievalTask.metadata = metadata
    LocalRetrievalTask.k_values = tuple(k_values)
    LocalRetrievalTask.__name__ = LocalRetrievalTask.__qualname__ = task_name.replace("-", "_")
    return LocalRetrievalTask()


class MtebEncoder:
    """Any :class:`TextEncoder` as an mteb 2.x encoder (``mteb.EncoderProtocol``).

    mteb hands texts over in a DataLoader with a ``prompt_type``; queries go to
    ``encoder.encode_queries`` and everything else to ``encoder.encode_documents``. mteb's own
    task prompts are not applied: the encoder applies its registry prefixes itself. The vectors
    are unit length, so mteb's cosine scoring is the suite's inner product.
    """

    def __init__(self, encoder: TextEncoder, batch_size: int = 32):
        require_mteb()
        from mteb.models.model_meta import ModelMeta, ScoringFunction

        self.encoder = encoder
        self.batch_size = batch_size
        self.mteb_model_meta = ModelMeta.create_empty(
            overwrites={
                "name": f"gear-suite/{encoder.name}",
                "revision": encoder.fingerprint(),
                "similarity_fn_name": ScoringFunction.COSINE,
                "framework": ["PyTorch"],
            }
        )

    def encode(
        self, inputs, *, task_metadata=None, hf_split=None, hf_subset=None, prompt_type=None, **kwargs
    ):
        """Embed every text of ``inputs`` (a DataLoader of ``{"text": [...]}`` batches).

        Returns:
            float32 ``(n, dim)`` unit vectors in the DataLoader's order.
        """
        from mteb.types import PromptType

        texts = [text for batch in inputs for text in batch["text"]]
        batch_size = int(kwargs.get("batch_size") or self.batch_size)
        if prompt_type == PromptType.query:
            return self.encoder.encode_queries(texts, batch_size=batch_size)
        return self.encoder.encode_documents(texts, batch_size=batch_size)

    def similarity(self, embeddings1, embeddings2):
        from mteb.similarity_functions import cos_sim

        return cos_sim(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1, embeddings2):
        from mteb.similarity_functions import pairwise_cos_sim

        return pairwise_cos_sim(embeddings1, embeddings2)


def evaluate_local(
    encoder: TextEncoder, dataset_dir: str | Path, batch_size: int = 32, with_titles: bool = False
) -> dict[str, float]:
    """Run mteb's retrieval evaluator on a normalised test set with one of the suite's encoders.

    Returns:
        mteb's scores for the ``test`` split (``recall_at_5``, ``mrr_at_5``, ``ndcg_at_10``, ...).
    """
    mteb = require_mteb()
    task = local_retrieval_task(dataset_dir, with_titles=with_titles)
    result = mteb.evaluate(
        MtebEncoder(encoder, batch_size),
        task,
        cache=None,
        encode_kwargs={"batch_size": batch_size},
        show_progress_bar=False,
        co2_tracker=False,
    )
    (task_result,) = result.task_results
    (scores,) = task_result.scores["test"]
    return {key: value for key, value in scores.items() if isinstance(value, int | float | np.floating)}

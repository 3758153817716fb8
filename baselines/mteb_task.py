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

A trained GeAR is an mteb model of its own: :func:`gear_mteb_model` loads a GeAR folder
(``R/models/GeAR/{scenario}/model``) with :func:`gear_model_meta`, its ``ModelMeta`` (name,
revision = the weights' SHA-256, framework PyTorch, English, embedding size, token limit,
parameters of the bi-encoder, no prompts: GeAR encodes queries and documents without an
instruction) and a ``loader``, so ``gear_model_meta(folder).load_model()`` works as for any model
of mteb's registry, and ``mteb.evaluate(gear_mteb_model(folder), tasks)`` runs any mteb task.

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
from safetensors import safe_open

from gear.encoding import TextEncoder
from gear.inference import GearEncoder
from gear.io import DataFormatError, file_sha256, iter_jsonl, read_json, require_fields
from gear.model.modeling import CONFIG_NAME, WEIGHTS_NAME, GearConfig

#: cut-offs mteb reports (R@5/M@5 are the paper's retrieval columns)
K_VALUES = (1, 3, 5, 10, 20, 100)
#: the paper, for GeAR's ModelMeta (authors and identifiers left out: ../shared/paper has none)
GEAR_CITATION = """@misc{gear,
  title = {GeAR: Generation Augmented Retrieval},
  note = {arXiv preprint (v1, the version this suite reproduces); ACL 2025}
}"""


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

    def __init__(self, encoder: TextEncoder, batch_size: int = 32, meta=None):
        require_mteb()
        from mteb.models.model_meta import ModelMeta, ScoringFunction

        self.encoder = encoder
        self.batch_size = batch_size
        self.mteb_model_meta = meta or ModelMeta.create_empty(
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


def gear_model_meta(model_dir: str | Path, name: str = "gear-suite/GeAR"):
    """mteb's ``ModelMeta`` of a trained GeAR folder, read from its files (nothing is loaded).

    Args:
        model_dir: a GeAR model folder (``config.json``, ``model.safetensors``, tokenizer files).
        name: the model's name in mteb's results (``organization/model``).

    Returns:
        a ``ModelMeta`` whose ``loader`` is :func:`gear_mteb_model` on ``model_dir``.
    """
    require_mteb()
    from mteb.models.model_meta import ModelMeta, ScoringFunction

    model_dir = Path(model_dir)
    weights = model_dir / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{model_dir}: no {WEIGHTS_NAME}; not a saved GeAR model folder")
    config_path = model_dir / CONFIG_NAME
    config = GearConfig.from_dict(read_json(config_path), str(config_path))
    bi_encoder = _bi_encoder_parameters(weights)
    return ModelMeta(
        loader=_load_gear_for_mteb,
        loader_kwargs={"model_dir": str(model_dir)},
        name=name,
        revision=file_sha256(weights)[:16],
        release_date=None,
        languages=["eng-Latn"],
        n_parameters=bi_encoder,
        memory_usage_mb=round(bi_encoder * 4 / 2**20, 1),  # float32 weights
        max_tokens=config.max_document_tokens,
        embed_dim=config.hidden_size,
        license=None,
        open_weights=None,
        public_training_code=None,
        public_training_data=None,
        framework=["PyTorch"],
        reference=None,
        similarity_fn_name=ScoringFunction.COSINE,
        use_instructions=False,  # no prompts: queries and documents are encoded as they are
        training_datasets=None,  # PAQ (QAR) or synthesized RIR triples: no mteb task
        adapted_from=str(config.extra.get("init_checkpoint"))
        if config.extra.get("init_checkpoint")
        else None,
        modalities=["text"],
        model_type=["dense"],
        citation=GEAR_CITATION,
    )


def _bi_encoder_parameters(weights: Path) -> int:
    """Parameters of the query and document encoders (what retrieval runs), from the weights file."""
    total = 0
    with safe_open(str(weights), framework="pt") as handle:
        for key in handle.keys():
            if key.startswith(("query_encoder.", "document_encoder.")):
                total += int(np.prod(handle.get_slice(key).get_shape()))
    return total


def _load_gear_for_mteb(name: str, revision: str | None = None, *, model_dir: str, **kwargs):
    """mteb's loader signature (``loader(name, revision=..., **loader_kwargs)``)."""
    model = gear_mteb_model(model_dir, name=name, device=kwargs.get("device"))
    if revision is not None and revision != model.mteb_model_meta.revision:
        raise ValueError(
            f"{model_dir}: weights revision {model.mteb_model_meta.revision}, but {revision} was asked for"
        )
    return model


def gear_mteb_model(
    model_dir: str | Path, name: str = "gear-suite/GeAR", device: str | None = None, batch_size: int = 32
) -> MtebEncoder:
    """A trained GeAR as an mteb model: its bi-encoder (``gear.inference.GearEncoder``) with
    :func:`gear_model_meta`.

    Example:
        >>> model = gear_mteb_model("results/mini/models/GeAR/qar/model")  # doctest: +SKIP
        >>> mteb.evaluate(model, mteb.get_tasks(["SciFact"]))  # doctest: +SKIP
    """
    encoder = GearEncoder(model_dir, name=name.rsplit("/", 1)[-1], device=device)
    return MtebEncoder(encoder, batch_size, meta=gear_model_meta(model_dir, name))


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

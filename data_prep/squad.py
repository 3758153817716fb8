"""SQuAD test set: the official SQuAD JSON (v1.1, and v2.0 too) to the normalised form.

Construction (the paper does not state how it got its 20,239 documents and 5,928 queries):

- documents are the paragraphs (``context``) with their article title (underscores of the
  Wikipedia page name read as spaces); identical paragraphs are merged and ids are
  ``squad-{hash of title and text}`` (SQuAD paragraphs carry no id);
- queries are the questions, ``query_id = squad-{SQuAD id}``; ``answers`` are the distinct answer
  texts in file order, ``target`` the first; relevant units follow SPEC 2;
- skipped and counted in ``stats["skipped"]``: paragraphs whose context is empty
  (``empty_document``, with their questions as ``query_on_empty_document``), questions with an
  empty text (``empty_question``), without answers (``no_answer``), SQuAD 2.0's unanswerable
  ones (``unanswerable``), and exact repeats of a question already read (``duplicate_query``).
  A query id that reappears with a different question or answers is an error.

On the paper's figures: SQuAD 2.0 has 19,035 training and 1,204 development paragraphs (20,239
together) and 5,928 answerable development questions, exactly Table 6's SQuAD row. The paper's
set is therefore most likely the SQuAD 2.0 dev questions that have an answer, retrieved from the
paragraphs of train and dev. :func:`build_squad` reproduces that when given the 2.0 dev file as
``source`` and the 2.0 train file in ``extra_corpus`` (its paragraphs join the corpus, its questions
are not read). With the default config (v1.1 dev alone) the set has 2,067 documents and 10,570
queries.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from data_prep.normalized import (
    DocumentStore,
    Query,
    SentenceSplitter,
    SkipCounter,
    finish_dataset,
    load_token_counter,
    qa_query,
)
from gear.hub import ModelSource
from gear.io import DataFormatError, read_json, require_fields

log = logging.getLogger(__name__)


def _articles(path: Path) -> list[dict]:
    data = read_json(path)
    if not isinstance(data, dict) or "data" not in data:
        raise DataFormatError(f"{path}: expected a SQuAD JSON object with a 'data' list of articles")
    if not isinstance(data["data"], list):
        raise DataFormatError(f"{path}: field 'data' should be a list, got {type(data['data']).__name__}")
    return data["data"]


def _paragraphs(path: Path, articles: list[dict]):
    """Yield ``(where, title, paragraph)`` with the fields checked."""
    for a, article in enumerate(articles):
        where = f"{path}: data[{a}]"
        if not isinstance(article, dict):
            raise DataFormatError(f"{where}: expected an object, got {type(article).__name__}")
        require_fields(article, {"paragraphs": list}, where)
        title = article.get("title", "")
        if not isinstance(title, str):
            raise DataFormatError(f"{where}: field 'title' should be str, got {type(title).__name__}")
        for p, paragraph in enumerate(article["paragraphs"]):
            p_where = f"{where}.paragraphs[{p}]"
            if not isinstance(paragraph, dict):
                raise DataFormatError(f"{p_where}: expected an object, got {type(paragraph).__name__}")
            require_fields(paragraph, {"context": str, "qas": list}, p_where)
            yield p_where, title.replace("_", " "), paragraph


def _answers(qa: dict, where: str) -> list[str]:
    answers = qa.get("answers", [])
    if not isinstance(answers, list):
        raise DataFormatError(f"{where}: field 'answers' should be a list, got {type(answers).__name__}")
    texts: list[str] = []
    for i, answer in enumerate(answers):
        if not isinstance(answer, dict):
            raise DataFormatError(f"{where}.answers[{i}]: expected an object, got {type(answer).__name__}")
        require_fields(answer, {"text": str}, f"{where}.answers[{i}]")
        if answer["text"].strip() and answer["text"] not in texts:
            texts.append(answer["text"])
    return texts


def build_squad(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    data_cfg: dict,
    *,
    extra_corpus: Sequence[str | os.PathLike] = (),
    model_source: ModelSource | None = None,
) -> dict:
    """Build the SQuAD test set in ``out_dir`` (``corpus.jsonl``, ``queries.jsonl``, ``stats.json``).

    Args:
        source: SQuAD JSON file whose questions become the queries.
        out_dir: output folder (``L.dataset_dir("squad")``).
        data_cfg: the config's ``data`` section (``splitter``, ``token_counter``,
            ``max_document_tokens`` are read).
        extra_corpus: further SQuAD JSON files whose paragraphs join the corpus as distractors.
        model_source: where models come from (:class:`gear.hub.ModelSource`, built from the
            config), to resolve the tokenizer; default: local folders and caches only.

    Returns:
        the statistics written to ``stats.json``.

    Raises:
        DataFormatError: malformed JSON (file and line), a missing or wrongly typed field (file
            and JSON path), a query id repeated with other content, an empty corpus or query set.
    """
    source = Path(source)
    splitter = SentenceSplitter.from_config(data_cfg.get("splitter"))
    counter = load_token_counter(data_cfg["token_counter"], model_source)
    store = DocumentStore("squad", splitter)
    skipped = SkipCounter()
    queries: list[Query] = []
    seen: dict[str, tuple[Any, str]] = {}

    articles = _articles(source)
    total = sum(len(a.get("paragraphs", [])) for a in articles if isinstance(a, dict))
    for where, title, paragraph in tqdm(
        _paragraphs(source, articles), total=total, desc="squad paragraphs", mininterval=10
    ):
        context = paragraph["context"]
        if not context.strip():
            skipped.add("empty_document")
            skipped.add("query_on_empty_document", len(paragraph["qas"]))
            continue
        doc_id = store.add(title, context)
        document = store.get(doc_id)
        for q, qa in enumerate(paragraph["qas"]):
            q_where = f"{where}.qas[{q}]"
            if not isinstance(qa, dict):
                raise DataFormatError(f"{q_where}: expected an object, got {type(qa).__name__}")
            require_fields(qa, {"id": str, "question": str}, q_where)
            if qa.get("is_impossible") is True:
                skipped.add("unanswerable")
                continue
            answers = _answers(qa, q_where)
            question = qa["question"].strip()
            query_id = f"squad-{qa['id']}"
            content = (question, answers, doc_id)
            if query_id in seen:
                if seen[query_id][0] != content:
                    raise DataFormatError(
                        f"{q_where}: query id {qa['id']!r} already used at {seen[query_id][1]} with a "
                        "different question, answers or paragraph; ids must be unique"
                    )
                skipped.add("duplicate_query")
                continue
            seen[query_id] = (content, q_where)
            if not question:
                skipped.add("empty_question")
                continue
            if not answers:
                skipped.add("no_answer")
                continue
            queries.append(qa_query(query_id, question, document, answers))
    question_docs = len(store.documents)
    for extra in extra_corpus:
        extra = Path(extra)
        for _, title, paragraph in _paragraphs(extra, _articles(extra)):
            if paragraph["context"].strip():
                store.add(title, paragraph["context"])
            else:
                skipped.add("empty_document")
    stats = finish_dataset(
        "squad",
        out_dir,
        store,
        queries,
        counter,
        data_cfg["max_document_tokens"],
        skipped,
        source=str(source),
        extra_corpus=[str(p) for p in extra_corpus],
        documents_with_questions=question_docs,
        tokenizer=data_cfg["token_counter"],
    )
    log.info("squad: %d documents, %d queries", stats["documents"], stats["queries"])
    return stats

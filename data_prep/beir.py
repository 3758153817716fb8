"""Any BEIR-format data set as a test set of the suite: a BEIR folder to the normalised form.

Input: a folder in BEIR's layout (``corpus.jsonl``, ``queries.jsonl``, ``qrels/{split}.tsv``; the
files may be gzipped or bzip2-ed, as :func:`~data_prep.normalized.iter_jsonl_any` reads them):

- ``corpus.jsonl``: ``{"_id", "text", "title"?}`` per line (further fields such as ``metadata``
  are ignored);
- ``queries.jsonl``: ``{"_id", "text"}`` per line (queries of every split may be listed);
- ``qrels/{split}.tsv``: ``query-id<TAB>corpus-id<TAB>score``, with or without that header line.

A config adds one under ``data.beir`` (the name must be ``beir-{name}``, see
:func:`gear.layout.is_beir`) and lists its name in ``evaluate.datasets``; rule ``build_beir``
(``workflow/rules/data.smk``) calls :func:`build_beir`.

Construction choices (BEIR is beyond the paper; made here so that the suite's numbers on a BEIR
set are BEIR's retrieval task on the same judgments):

- every corpus document is kept, in file order, with its own ``_id`` (no prefix) and no merging
  of identical documents (merging would change which documents are judged relevant); ids must
  be unique and hold no white space (TREC and BEIR files are split on it);
- a judgment with score >= 1 is relevant (trec_eval's default ``relevance_level``), with its
  grade kept in the query's ``relevant_docs``; scores <= 0 are not relevant and counted
  (``non_relevant_judgment``);
- the test queries are those of ``queries.jsonl`` with at least one relevant judgment in the
  split, in file order; the others are counted (``not_in_split``, ``no_relevant_document``);
  a query's ``doc_id`` is its highest-graded relevant document (the first judged among equals);
- BEIR has no answers nor sentence labels: queries get no answers, no relevant units, an empty
  target and ``fine_grained: false``, and such a set is evaluated for retrieval only
  (:func:`gear.layout.dataset_tasks`);
- documents keep ``title`` and ``text`` apart, and the suite encodes ``text`` alone, as for every
  test set (``gear.evaluation.evaluate``): numbers can differ from BEIR leaderboards that encode
  ``title + " " + text``.

Errors name the file and line: a malformed line, a missing or wrongly typed field, a duplicate
id, a judgment naming an unknown query or document, a non-integer score.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from tqdm import tqdm

from data_prep.normalized import (
    CORPUS_FILE,
    QUERIES_FILE,
    DatasetWriter,
    Document,
    Query,
    SentenceSplitter,
    SkipCounter,
    dataset_stats,
    iter_jsonl_any,
    load_token_counter,
    open_binary,
)
from gear.hub import ModelSource
from gear.io import DataFormatError

log = logging.getLogger(__name__)

_WHITE_SPACE = re.compile(r"\s")


def beir_files(folder: str | os.PathLike, split: str = "test") -> dict[str, Path]:
    """The three files of a BEIR folder that :func:`build_beir` reads (rule inputs)."""
    folder = Path(folder)
    return {
        "corpus": folder / CORPUS_FILE,
        "queries": folder / QUERIES_FILE,
        "qrels": folder / "qrels" / f"{split}.tsv",
    }


def _record_id(obj: dict, where: str) -> str:
    value = obj.get("_id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise DataFormatError(f"{where}: field '_id' should be a non-empty string, got {value!r}")
    if _WHITE_SPACE.search(value):
        raise DataFormatError(
            f"{where}: _id {value!r} contains white space, which TREC and BEIR files cannot hold"
        )
    return value


def _text_field(obj: dict, name: str, where: str, required: bool = True) -> str:
    if name not in obj:
        if required:
            raise DataFormatError(f"{where}: missing field '{name}'")
        return ""
    value = obj[name]
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise DataFormatError(f"{where}: field '{name}' should be str, got {type(value).__name__}")
    return value


def read_beir_corpus(path: str | os.PathLike) -> list[tuple[str, str, str]]:
    """``(id, title, text)`` of every document of a BEIR ``corpus.jsonl``, in file order."""
    path = Path(path)
    documents, seen = [], {}
    for line, obj in tqdm(iter_jsonl_any(path), desc=f"{path.name}", unit="doc", mininterval=30):
        where = f"{path}:{line}"
        doc_id = _record_id(obj, where)
        if doc_id in seen:
            raise DataFormatError(f"{where}: duplicate _id {doc_id!r} (first at line {seen[doc_id]})")
        seen[doc_id] = line
        documents.append(
            (doc_id, _text_field(obj, "title", where, required=False), _text_field(obj, "text", where))
        )
    return documents


def read_beir_queries(path: str | os.PathLike) -> dict[str, str]:
    """Query id -> text of a BEIR ``queries.jsonl``, in file order."""
    path = Path(path)
    queries, seen = {}, {}
    for line, obj in iter_jsonl_any(path):
        where = f"{path}:{line}"
        query_id = _record_id(obj, where)
        if query_id in seen:
            raise DataFormatError(f"{where}: duplicate _id {query_id!r} (first at line {seen[query_id]})")
        seen[query_id] = line
        queries[query_id] = _text_field(obj, "text", where)
    return queries


def read_beir_qrels(path: str | os.PathLike) -> list[tuple[int, str, str, int]]:
    """``(line, query id, document id, score)`` of every judgment of a BEIR qrels TSV file.

    The header ``query-id<TAB>corpus-id<TAB>score`` is optional; a repeated (query, document)
    pair is an error.
    """
    path = Path(path)
    judgments, seen = [], {}
    with open_binary(path) as handle:
        for line, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DataFormatError(f"{path}:{line}: not valid UTF-8 ({err.reason})") from err
            if not text.strip():
                continue
            fields = text.split("\t")
            if line == 1 and fields[0].strip() == "query-id":
                continue
            if len(fields) != 3:
                raise DataFormatError(
                    f"{path}:{line}: expected 3 tab-separated fields 'query-id corpus-id score', got {len(fields)}"
                )
            query_id, doc_id, score = (f.strip() for f in fields)
            try:
                grade = int(score)
            except ValueError:
                raise DataFormatError(f"{path}:{line}: score {score!r} is not an integer") from None
            key = (query_id, doc_id)
            if key in seen:
                raise DataFormatError(
                    f"{path}:{line}: query {query_id!r} judges document {doc_id!r} twice (first at line {seen[key]})"
                )
            seen[key] = line
            judgments.append((line, query_id, doc_id, grade))
    return judgments


def build_beir(
    folder: str | os.PathLike,
    out_dir: str | os.PathLike,
    data_cfg: dict,
    dataset: str,
    split: str = "test",
    model_source: ModelSource | None = None,
) -> dict:
    """Normalise a BEIR folder into ``out_dir`` (corpus, queries, stats and the BEIR export).

    Args:
        folder: the BEIR data set folder (config ``data.beir.{dataset}.path``).
        out_dir: ``R/data/{dataset}``.
        data_cfg: the config's ``data`` section (``splitter``, ``token_counter``,
            ``max_document_tokens``).
        dataset: the test set's name, ``beir-{name}``.
        split: the qrels file read, ``qrels/{split}.tsv`` (config ``data.beir.{dataset}.split``).
        model_source: where the token counter comes from.

    Returns:
        the statistics written to ``stats.json``.

    Raises:
        DataFormatError: a bad record (the message names the file and line), or no query with a
            relevant judgment.
    """
    files = beir_files(folder, split)
    for name, path in files.items():
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: the BEIR {name} file of {dataset} is missing (config data.beir.{dataset})"
            )
    skipped = SkipCounter()

    raw_documents = read_beir_corpus(files["corpus"])
    texts = read_beir_queries(files["queries"])
    known_documents = {doc_id for doc_id, _, _ in raw_documents}
    judged: dict[str, dict[str, int]] = {}
    for line, query_id, doc_id, grade in read_beir_qrels(files["qrels"]):
        where = f"{files['qrels']}:{line}"
        if query_id not in texts:
            raise DataFormatError(f"{where}: query {query_id!r} is not in {files['queries']}")
        if doc_id not in known_documents:
            raise DataFormatError(f"{where}: document {doc_id!r} is not in {files['corpus']}")
        judged.setdefault(query_id, {})
        if grade >= 1:
            judged[query_id][doc_id] = grade
        else:
            skipped.add("non_relevant_judgment")

    queries: list[Query] = []
    for query_id, text in texts.items():
        if query_id not in judged:
            skipped.add("not_in_split")
            continue
        relevant = judged[query_id]
        if not relevant:
            skipped.add("no_relevant_document")
            continue
        best = max(relevant.values())
        gold = next(doc_id for doc_id, grade in relevant.items() if grade == best)
        queries.append(Query(query_id, text, gold, [], [], "", False, relevant))
    if not queries:
        raise DataFormatError(
            f"{files['qrels']}: no query of {files['queries']} has a relevant judgment (score >= 1)"
        )

    # the records are checked: the splitter and the tokenizer now
    splitter = SentenceSplitter.from_config(data_cfg.get("splitter"))
    counter = load_token_counter(data_cfg["token_counter"], model_source)
    documents = [
        Document(doc_id, title, text, splitter.split(text))
        for doc_id, title, text in tqdm(
            raw_documents, desc=f"{dataset} sentences", unit="doc", mininterval=30
        )
    ]
    extra: dict[str, Any] = {
        "source": {"format": "beir", "path": str(folder), "split": split},
        "tokenizer": data_cfg["token_counter"],
        "relevant_judgments": sum(len(q.relevant_docs or {}) for q in queries),
    }
    stats = dataset_stats(
        dataset, documents, queries, counter, data_cfg["max_document_tokens"], skipped, **extra
    )
    with DatasetWriter(out_dir) as writer:
        for document in documents:
            writer.add_document(document)
        for query in queries:
            writer.add_query(query)
        writer.commit(stats)
    log.info("%s: %d documents, %d queries", dataset, stats["documents"], stats["queries"])
    return stats

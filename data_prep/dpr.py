"""NQ and TriviaQA test sets: DPR's retriever JSON to the normalised form.

Input: DPR's ``biencoder-{nq,trivia}-dev.json`` (plain or gzipped), a list of
``{dataset, question, answers, positive_ctxs, negative_ctxs, hard_negative_ctxs}`` with each
context ``{title, text, score, title_score, passage_id}``.

Construction choices (the paper names the data sets, not how it built its corpora of 64,501 NQ
and 104,160 TriviaQA documents):

- the corpus is every positive, negative and hard-negative context of every entry (entries
  skipped below still contribute their contexts as distractors); identical contexts (same title
  and text) are merged; ids are ``{nq,triviaqa}-{passage_id}`` (DPR's Wikipedia passage id),
  or a hash of title and text when a context has none;
- each question's gold document is its first positive context with a non-empty text;
- ``query_id`` is ``{dataset}-{hash of the question}`` (DPR gives no question id); the answers
  are the entry's distinct answers, the target the first;
- skipped and counted: questions with no positive context (``no_positive_ctx``; DPR's TriviaQA
  has many), with an empty text (``empty_question``) or no answer (``no_answer``), exact repeats
  (``duplicate_query``), and contexts with an empty text (``empty_document``). A question text
  repeated with other answers or another gold passage keeps both, the second with a longer id
  (``repeated_question_text`` in the statistics).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from pathlib import Path
from typing import Any

from tqdm import tqdm

from data_prep.normalized import (
    DocumentStore,
    Query,
    SentenceSplitter,
    SkipCounter,
    content_hash,
    finish_dataset,
    load_token_counter,
    qa_query,
)
from gear.hub import ModelSource
from gear.io import DataFormatError, read_json, require_fields

log = logging.getLogger(__name__)

CONTEXT_KINDS = ("positive_ctxs", "negative_ctxs", "hard_negative_ctxs")
DATASET_PREFIX = {"nq": "nq", "triviaqa": "triviaqa"}


def read_json_any(path: str | os.PathLike) -> Any:
    """Read a JSON file, gzipped or not (by its magic bytes); errors name the file and line."""
    path = Path(path)
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    if not gzipped:
        return read_json(path)
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as err:
        raise DataFormatError(f"{path}: not a valid gzip file ({err})") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataFormatError(f"{path}:{line}: not valid UTF-8 ({err.reason} at byte {err.start})") from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}:{err.lineno}:{err.colno}: malformed JSON: {err.msg}") from err


def _contexts(entry: dict, kind: str, where: str) -> list[dict]:
    contexts = entry.get(kind, [])
    if not isinstance(contexts, list):
        raise DataFormatError(f"{where}: field '{kind}' should be a list, got {type(contexts).__name__}")
    for i, ctx in enumerate(contexts):
        c_where = f"{where}.{kind}[{i}]"
        if not isinstance(ctx, dict):
            raise DataFormatError(f"{c_where}: expected an object, got {type(ctx).__name__}")
        require_fields(ctx, {"title": str, "text": str}, c_where)
        pid = ctx.get("passage_id", ctx.get("psg_id"))
        if pid is not None and not isinstance(pid, str | int):
            raise DataFormatError(
                f"{c_where}: field 'passage_id' should be a string, got {type(pid).__name__}"
            )
    return contexts


def build_dpr(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    data_cfg: dict,
    dataset: str,
    *,
    model_source: ModelSource | None = None,
) -> dict:
    """Build the NQ or TriviaQA test set in ``out_dir``.

    Args:
        source: DPR retriever JSON (``.json`` or gzipped).
        out_dir: output folder (``L.dataset_dir(dataset)``).
        data_cfg: the config's ``data`` section (``splitter``, ``token_counter``,
            ``max_document_tokens`` are read).
        dataset: ``"nq"`` or ``"triviaqa"`` (the id prefix and the name in the statistics).
        model_source: where models come from (:class:`gear.hub.ModelSource`, built from the
            config), to resolve the tokenizer; default: local folders and caches only.

    Returns:
        the statistics written to ``stats.json``.

    Raises:
        DataFormatError: malformed JSON (file and line), a missing or wrongly typed field (file
            and entry), an empty corpus or query set.
    """
    if dataset not in DATASET_PREFIX:
        raise ValueError(f"build_dpr: dataset must be one of {sorted(DATASET_PREFIX)}, got {dataset!r}")
    source = Path(source)
    prefix = DATASET_PREFIX[dataset]
    splitter = SentenceSplitter.from_config(data_cfg.get("splitter"))
    counter = load_token_counter(data_cfg["token_counter"], model_source)
    store = DocumentStore(prefix, splitter)
    skipped = SkipCounter()
    queries: list[Query] = []
    seen: dict[str, tuple] = {}
    repeated_text = 0

    entries = read_json_any(source)
    if not isinstance(entries, list):
        raise DataFormatError(f"{source}: expected a JSON list of DPR entries, got {type(entries).__name__}")
    for e, entry in enumerate(tqdm(entries, desc=f"{dataset} entries", mininterval=10)):
        where = f"{source}: [{e}]"
        if not isinstance(entry, dict):
            raise DataFormatError(f"{where}: expected an object, got {type(entry).__name__}")
        require_fields(entry, {"question": str, "answers": list}, where)
        if not all(isinstance(a, str) for a in entry["answers"]):
            raise DataFormatError(f"{where}: field 'answers' should be a list of strings")
        gold = None
        for kind in CONTEXT_KINDS:
            for ctx in _contexts(entry, kind, where):
                if not ctx["text"].strip():
                    skipped.add("empty_document")
                    continue
                pid = ctx.get("passage_id", ctx.get("psg_id"))
                doc_id = store.add(ctx["title"], ctx["text"], str(pid) if pid not in (None, "") else None)
                if kind == "positive_ctxs" and gold is None:
                    gold = doc_id
        question = entry["question"].strip()
        answers = list(dict.fromkeys(a for a in entry["answers"] if a.strip()))
        if gold is None:
            skipped.add("no_positive_ctx")
            continue
        if not question:
            skipped.add("empty_question")
            continue
        if not answers:
            skipped.add("no_answer")
            continue
        query_id = f"{prefix}-{content_hash(question)}"
        content = (answers, gold)
        if query_id in seen and seen[query_id] != content:
            repeated_text += 1
            query_id = f"{query_id}-{content_hash(question, *answers, gold, length=8)}"
        if query_id in seen:
            skipped.add("duplicate_query")
            continue
        seen[query_id] = content
        document = store.get(gold)
        queries.append(qa_query(query_id, question, document, answers))
    extra: dict[str, Any] = {"source": str(source), "tokenizer": data_cfg["token_counter"]}
    if repeated_text:
        extra["repeated_question_text"] = repeated_text
    stats = finish_dataset(
        dataset, out_dir, store, queries, counter, data_cfg["max_document_tokens"], skipped, **extra
    )
    log.info("%s: %d documents, %d queries", dataset, stats["documents"], stats["queries"])
    return stats

"""RIR synthesis, step 1: pre-processing a Wikipedia dump (paper Appendix A, SPEC 3.1).

Input: JSON Lines in WikiExtractor's ``--json`` layout, ``{id, url, title, text}`` per article
(plain, ``.gz`` or ``.bz2``), streamed with bounded memory.

Per document, sentence by sentence (pysbd units of the raw text, the suite's splitter), with
token counts of the ``data.token_counter`` tokenizer (bert-base-uncased at paper scale; no
special tokens counted):

1. A sentence is dropped when it has **repeated line breaks**. pysbd ends a sentence at every
   line break, so the paper's sentences that run across line breaks (headings, list items or
   table cells glued to prose) come out of pysbd as separate line fragments. The operational
   rule is therefore: a sentence is dropped if its text contains a line break, or if a line break
   follows it and it does not end with sentence-final punctuation (``.``, ``!``, ``?``, possibly
   followed by closing quotes or brackets): headings, list items, captions, table rows.
2. A sentence is dropped when it has **repeated phrases**: a sequence of 1 to
   ``repeated_phrase_words`` white-space separated words (4 by default; compared in lower case,
   punctuation attached) directly followed by itself ("the the", "restrictions on restrictions
   on", "[citation needed][citation needed]" glued or not), or when the whole sentence (lower
   case, white space collapsed) repeats an earlier sentence of the document. Adjacent repeats
   are dump artifacts; a phrase used twice at a distance is ordinary prose and is kept (on
   SQuAD's Wikipedia paragraphs this rule fires on 0.2% of sentences, a 3-gram-anywhere rule
   on 5%, mostly sound prose).
3. Kept sentences are added while the document's token count stays within ``max_tokens``; the
   first sentence that would exceed it ends the document (the paper's "until ... the token count
   reaches 500").
4. Documents with fewer than ``min_sentences`` kept sentences or fewer than ``min_tokens`` tokens
   are dropped.
5. **Candidate sentences**: ``candidate_min_tokens`` to ``candidate_max_tokens`` tokens (both
   inclusive), whose first word and subject are not in ``pronouns``. Operationally (no parser):
   the first word of the sentence, and, when the sentence has a comma, the first word after its
   first comma (the subject after an introductory phrase, as in "In 1990, he moved ..."), are
   both not pronouns (case-insensitive). Documents with fewer than ``min_candidates`` candidates
   are dropped.
6. Identical documents (same title and text) and repeated article ids are kept once (first
   occurrence); later ones are counted as ``duplicate_document`` / ``duplicate_id``.

The pre-processed document is the kept sentences in order, joined by a line break where the
source had one between them and by a space otherwise; its units are those sentences, so unit
spans index into the document's text.

Speed: pysbd costs about 3 ms per 1,000 characters, and Wikipedia articles run to 100k
characters, while a document stops at 500 tokens. Text is therefore split in blocks of about
``block_chars`` characters cut at line breaks (pysbd always ends a sentence there, so a cut at a
line break changes no sentence), and later blocks are split only while the document is still
short of ``max_tokens``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import time
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_prep.normalized import (
    SentenceSplitter,
    SkipCounter,
    TokenCounter,
    content_hash,
    iter_jsonl_any,
    load_token_counter,
    load_tokenizer_from,
)
from gear.config import dataclass_from_mapping
from gear.hub import ModelSource
from gear.io import DataFormatError, atomic_path, require_fields, write_json

log = logging.getLogger(__name__)

_WORD = re.compile(r"[^\W_]+")
_SPACE = re.compile(r"\s*")
_FINAL_PUNCTUATION = re.compile(r"[.!?][\"'”’»)\]]*$")


@dataclass
class PreprocessConfig:
    """``data.rir.preprocess`` (paper Appendix A) plus the suite's operational choices."""

    max_tokens: int = 500  # a document ends once its tokens would exceed this
    min_sentences: int = 3  # drop documents with fewer kept sentences
    min_tokens: int = 200  # drop documents with fewer tokens
    candidate_min_tokens: int = 8  # candidate sentences: at least this many tokens ...
    candidate_max_tokens: int = 20  # ... and at most this many
    pronouns: tuple[str, ...] = (
        "this",
        "these",
        "it",
        "that",
        "those",
        "they",
        "he",
        "she",
        "we",
        "you",
        "i",
    )
    min_candidates: int = 3  # drop documents with fewer candidate sentences
    repeated_phrase_words: int = 4  # suite's choice: longest directly repeated word sequence checked
    block_chars: int = 6000  # suite's choice: characters split per pysbd call (speed only)


@dataclass
class PreprocessedDocument:
    """A document that passed pre-processing (one line of ``preprocessed.jsonl``)."""

    doc_id: str
    title: str
    text: str
    units: list[tuple[int, int]]
    unit_tokens: list[int]
    candidates: list[int]

    def to_json(self) -> dict:
        return {
            "doc_id": self.doc_id,
            "title": self.title,
            "text": self.text,
            "units": [list(u) for u in self.units],
            "unit_tokens": self.unit_tokens,
            "candidates": self.candidates,
        }


@dataclass
class _Outcome:
    """What pre-processing one article gave: a document or a reason, and sentence counts."""

    document: PreprocessedDocument | None
    reason: str | None
    sentence_counts: dict[str, int] = field(default_factory=dict)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def has_repeated_phrase(sentence: str, max_words: int) -> bool:
    """Whether 1 to ``max_words`` white-space words are directly followed by themselves (rule 2)."""
    words = sentence.lower().split()
    for n in range(1, max_words + 1):
        for i in range(len(words) - 2 * n + 1):
            if words[i : i + n] == words[i + n : i + 2 * n]:
                return True
    return False


def is_line_fragment(text: str, sentence: tuple[int, int]) -> bool:
    """The 'repeated line breaks' rule (module docstring, rule 1).

    Args:
        text: the whole article text.
        sentence: the sentence's span in ``text``.
    """
    start, end = sentence
    body = text[start:end]
    if "\n" in body or "\r" in body:
        return True
    after = _SPACE.match(text, end).group()
    ends_line = "\n" in after or end + len(after) == len(text)
    return ends_line and not _FINAL_PUNCTUATION.search(body)


def starts_with_pronoun(sentence: str, pronouns: frozenset[str]) -> bool:
    """The first-word-or-subject rule (module docstring, rule 5)."""
    words = _words(sentence)
    if not words or words[0] in pronouns:
        return True
    comma = sentence.find(",")
    if comma >= 0:
        after = _words(sentence[comma + 1 :])
        if after and after[0] in pronouns:
            return True
    return False


def _blocks(text: str, block_chars: int) -> Iterator[tuple[int, str]]:
    """``(offset, block)`` pieces of ``text`` of about ``block_chars``, cut just after a line break."""
    start = 0
    while start < len(text):
        end = start + block_chars
        if end >= len(text):
            yield start, text[start:]
            return
        cut = text.rfind("\n", start, end)
        if cut <= start:
            cut = text.find("\n", end)
            if cut < 0:
                yield start, text[start:]
                return
        yield start, text[start : cut + 1]
        start = cut + 1


class DocumentPreprocessor:
    """Applies the pre-processing rules to one article at a time.

    Args:
        cfg: the thresholds.
        splitter: the suite's sentence splitter.
        counter: a :class:`data_prep.normalized.TokenCounter` (bert-base-uncased's tokenizer at
            paper scale).
    """

    def __init__(self, cfg: PreprocessConfig, splitter: SentenceSplitter, counter):
        self.cfg = cfg
        self.splitter = splitter
        self.counter = counter
        self.pronouns = frozenset(p.lower() for p in cfg.pronouns)

    def __call__(self, doc_id: str, title: str, text: str) -> _Outcome:
        cfg = self.cfg
        counts = {"sentences": 0, "line_break": 0, "repeated_phrase": 0}
        kept: list[tuple[int, int]] = []
        kept_tokens: list[int] = []
        seen_sentences: set[str] = set()
        total = 0
        full = False
        for offset, block in _blocks(text, cfg.block_chars):
            spans = [(offset + s, offset + e) for s, e in self.splitter.split(block)]
            if not spans:
                continue
            sentence_texts = [text[s:e] for s, e in spans]
            tokens = self.counter.count(sentence_texts)
            for span, sentence, n_tokens in zip(spans, sentence_texts, tokens.tolist()):
                counts["sentences"] += 1
                if is_line_fragment(text, span):
                    counts["line_break"] += 1
                    continue
                normalised = " ".join(sentence.lower().split())
                if normalised in seen_sentences or has_repeated_phrase(sentence, cfg.repeated_phrase_words):
                    counts["repeated_phrase"] += 1
                    continue
                if total + n_tokens > cfg.max_tokens:
                    full = True
                    break
                seen_sentences.add(normalised)
                kept.append(span)
                kept_tokens.append(n_tokens)
                total += n_tokens
            if full:
                break
        if not kept:
            return _Outcome(None, "no_sentence", counts)
        if len(kept) < cfg.min_sentences:
            return _Outcome(None, "too_few_sentences", counts)
        if total < cfg.min_tokens:
            return _Outcome(None, "too_few_tokens", counts)
        document_text, units = _join_sentences(text, kept)
        candidates = [
            i
            for i, (n_tokens, (s, e)) in enumerate(zip(kept_tokens, units))
            if cfg.candidate_min_tokens <= n_tokens <= cfg.candidate_max_tokens
            and not starts_with_pronoun(document_text[s:e], self.pronouns)
        ]
        if len(candidates) < cfg.min_candidates:
            return _Outcome(None, "too_few_candidates", counts)
        document = PreprocessedDocument(doc_id, title, document_text, units, kept_tokens, candidates)
        return _Outcome(document, None, counts)


def _join_sentences(text: str, spans: list[tuple[int, int]]) -> tuple[str, list[tuple[int, int]]]:
    """Kept sentences joined by a line break where the source had one between them, else a space."""
    parts: list[str] = []
    units: list[tuple[int, int]] = []
    length = 0
    previous_end = None
    for start, end in spans:
        if previous_end is not None:
            separator = "\n" if "\n" in text[previous_end:start] else " "
            parts.append(separator)
            length += 1
        parts.append(text[start:end])
        units.append((length, length + end - start))
        length += end - start
        previous_end = end
    return "".join(parts), units


# --------------------------------------------------------------------------------------------
# streaming driver


def iter_articles(path: str | os.PathLike) -> Iterator[tuple[int, str, str, str]]:
    """Stream ``(line, id, title, text)`` from a WikiExtractor-style JSON Lines dump.

    Raises:
        DataFormatError: malformed JSON, non-UTF-8 bytes, a missing or wrongly typed field (file
            and line).
    """
    path = Path(path)
    for line, obj in iter_jsonl_any(path):
        where = f"{path}:{line}"
        for name in ("id", "title", "text"):
            if name not in obj:
                raise DataFormatError(
                    f"{where}: missing field '{name}' (expected WikiExtractor --json lines)"
                )
        if not isinstance(obj["id"], str | int) or isinstance(obj["id"], bool):
            raise DataFormatError(f"{where}: field 'id' should be a string, got {type(obj['id']).__name__}")
        for name in ("title", "text"):
            if not isinstance(obj[name], str):
                raise DataFormatError(
                    f"{where}: field '{name}' should be str, got {type(obj[name]).__name__}"
                )
        yield line, str(obj["id"]), obj["title"], obj["text"]


_WORKER: DocumentPreprocessor | None = None


def _init_worker(cfg: PreprocessConfig, splitter_cfg: dict, tokenizer_path: str) -> None:
    global _WORKER

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _WORKER = DocumentPreprocessor(
        cfg, SentenceSplitter.from_config(splitter_cfg), TokenCounter(load_tokenizer_from(tokenizer_path))
    )


def _work(batch: list[tuple[int, str, str, str]]) -> list[_Outcome]:
    assert _WORKER is not None
    return [
        _WORKER(f"rir-{doc_id}", title, text) if text.strip() else _Outcome(None, "empty_text")
        for _, doc_id, title, text in batch
    ]


def _batched(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def preprocess_wikipedia(
    source: str | os.PathLike,
    out_path: str | os.PathLike,
    stats_path: str | os.PathLike,
    preprocess_cfg: dict | PreprocessConfig,
    token_counter: str,
    splitter_cfg: dict | None = None,
    *,
    model_source: ModelSource | None = None,
    workers: int = 1,
    batch_documents: int = 64,
    limit: int | None = None,
) -> dict:
    """Pre-process a Wikipedia dump into ``out_path`` (one :class:`PreprocessedDocument` a line).

    Args:
        source: JSON Lines dump (``{id, url, title, text}``; ``.gz`` / ``.bz2`` allowed).
        out_path: ``L.rir_work() / "preprocessed.jsonl"``, written atomically.
        stats_path: statistics JSON, written atomically.
        preprocess_cfg: ``data.rir.preprocess``.
        token_counter: ``data.token_counter`` (bert-base-uncased at paper scale).
        splitter_cfg: ``data.splitter``.
        model_source: where models come from (:class:`gear.hub.ModelSource`); default: local only.
        workers: processes splitting and counting in parallel (1: in this process).
        batch_documents: articles handed to a worker at a time.
        limit: stop after this many articles (benchmarks, smoke runs).

    Returns:
        the statistics (articles read, documents kept, skips by reason, sentence counts, rate).

    Raises:
        DataFormatError: malformed input (file and line), or no document survives.
    """
    started = time.time()
    cfg = (
        preprocess_cfg
        if isinstance(preprocess_cfg, PreprocessConfig)
        else dataclass_from_mapping(PreprocessConfig, preprocess_cfg, "data.rir.preprocess")
    )
    cfg.pronouns = tuple(cfg.pronouns)
    model_source = model_source or ModelSource()
    tokenizer_path = model_source.resolve(token_counter)
    load_token_counter(token_counter, model_source)  # fail here, not in a worker
    skipped = SkipCounter()
    sentence_counts = {"sentences": 0, "line_break": 0, "repeated_phrase": 0}
    id_hashes, content_hashes = array("Q"), array("Q")
    articles = kept = 0
    tokens_kept = 0

    def articles_stream():
        for n, article in enumerate(iter_articles(source)):
            if limit is not None and n >= limit:
                return
            yield article

    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            batches = _batched(articles_stream(), batch_documents)
            if workers > 1:
                pool = multiprocessing.get_context("fork").Pool(
                    workers, initializer=_init_worker, initargs=(cfg, splitter_cfg or {}, tokenizer_path)
                )
                results = pool.imap(_work, batches, chunksize=1)
            else:
                _init_worker(cfg, splitter_cfg or {}, tokenizer_path)
                pool, results = None, map(_work, batches)
            try:
                with tqdm(desc="rir pre-processing", unit="doc", mininterval=10) as progress:
                    for outcomes in results:
                        for outcome in outcomes:
                            articles += 1
                            for key, value in outcome.sentence_counts.items():
                                sentence_counts[key] += value
                            if outcome.document is None:
                                skipped.add(outcome.reason or "unknown")
                                continue
                            document = outcome.document
                            id_hashes.append(_hash64(document.doc_id))
                            content_hashes.append(_hash64(document.title, document.text))
                            handle.write(json.dumps(document.to_json(), ensure_ascii=False) + "\n")
                            kept += 1
                            tokens_kept += sum(document.unit_tokens)
                        progress.update(len(outcomes))
            finally:
                if pool is not None:
                    pool.terminate()
        drop = _duplicate_rows(id_hashes, content_hashes, skipped)
        if drop.size:
            _drop_rows(tmp, drop)
        kept -= int(drop.size)
        if kept == 0:
            raise DataFormatError(
                f"{source}: no document survived pre-processing ({articles} articles read; skipped: {skipped.as_dict()})"
            )
    elapsed = time.time() - started
    stats = {
        "source": str(source),
        "articles": articles,
        "documents": kept,
        "skipped": skipped.as_dict(),
        "sentences": sentence_counts,
        "mean_document_tokens": round(tokens_kept / max(kept, 1), 1),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()},
        "tokenizer": token_counter,
        "workers": workers,
        "wall_time_s": round(elapsed, 1),
        "articles_per_s": round(articles / max(elapsed, 1e-9), 1),
    }
    write_json(stats_path, stats)
    log.info(
        "rir pre-processing: %d of %d articles kept (%.0f articles/s)",
        kept,
        articles,
        stats["articles_per_s"],
    )
    return stats


def _hash64(*parts: str) -> int:
    return int(content_hash(*parts), 16)


def _duplicate_rows(id_hashes: array, content_hashes: array, skipped: SkipCounter) -> np.ndarray:
    """Row numbers of later repeats of an id or of a (title, text); counted in ``skipped``."""
    drop = set()
    for hashes, reason in ((id_hashes, "duplicate_id"), (content_hashes, "duplicate_document")):
        values = np.frombuffer(hashes, dtype=np.uint64) if len(hashes) else np.zeros(0, dtype=np.uint64)
        _, first = np.unique(values, return_index=True)
        repeats = np.setdiff1d(np.arange(len(values)), first)
        new = set(repeats.tolist()) - drop
        skipped.add(reason, len(new))
        drop |= new
    return np.array(sorted(drop), dtype=np.int64)


def _drop_rows(path: Path, rows: np.ndarray) -> None:
    """Rewrite ``path`` without the given 0-based rows (streamed)."""
    doomed = set(rows.tolist())
    tmp = path.with_name(path.name + ".dedup")
    with open(path, encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as dst:
        for number, line in enumerate(src):
            if number not in doomed:
                dst.write(line)
    os.replace(tmp, path)


def read_preprocessed(path: str | os.PathLike) -> Iterator[PreprocessedDocument]:
    """Stream the documents of ``preprocessed.jsonl``; errors name the file and line."""
    path = Path(path)
    for line, obj in iter_jsonl_any(path):
        require_fields(
            obj,
            {
                "doc_id": str,
                "title": str,
                "text": str,
                "units": list,
                "unit_tokens": list,
                "candidates": list,
            },
            f"{path}:{line}",
        )
        yield PreprocessedDocument(
            obj["doc_id"],
            obj["title"],
            obj["text"],
            [tuple(u) for u in obj["units"]],
            obj["unit_tokens"],
            obj["candidates"],
        )

"""PAQ: the QAR training triples and the PAQ test sample, streamed from the released files.

Inputs: PAQ's QA-pair metadata (``PAQ.metadata.jsonl``, plain or gzipped; one line per question:
``{question, subsets, answer: [...], passage_score, answers: [{passage_id, offset, text,
extractor}, ...]}``) and DPR's Wikipedia passages (``psgs_w100.tsv``, header ``id  text  title``,
ids ascending as DPR ships them).

Selection, deterministic in ``seed`` and independent of memory (the 65M metadata lines are read
four times as streams, never held):

1. A record's gold passage is its first ``answers[].passage_id``; its generation target is its
   first ``answer``. ``query_id = paq-{hash of the question}``, ``doc_id = paq-{passage id}``.
2. Test documents: the ``test_documents`` distinct gold passages with the smallest seeded hash
   (a uniform random sample without replacement, kept in a bounded heap).
3. Test queries: among records whose gold passage is a test document, the ``test_queries`` with
   the smallest seeded question hash.
4. Training triples: among the other records (gold passage not a test document, question not
   a test question), the ``train_triples`` with the smallest seeded hash (the k-th smallest hash
   is found with a buffer of at most 2k 64-bit hashes). So no test query and no test document
   ever occurs in training. Records beyond what exists are simply all taken.
5. One pass over the passages joins texts: the training records are sorted by passage id on
   disk (sorted chunks merged), then merged with the ascending passage file. Training triples
   are therefore written in passage-id order; the trainer shuffles them.

The test corpus is the test documents (texts from ``psgs_w100.tsv``; identical passages merged),
split into units with the suite's splitter; relevant units follow SPEC 2 with the record's
``answer`` list.

Why Table 6 shows 932,601 PAQ documents rather than 1M: the paper does not say. It is what
sampling 1M *records* (questions) and keeping their distinct passages would give: PAQ has several
questions per passage, and 1M records drawn uniformly from questions spread evenly over P
passages cover P(1 - exp(-1M / P)) distinct passages, which is 932,601 for P of about 7M (fewer
passages if the questions are spread unevenly). We cannot confirm it. This builder samples
distinct passages, so it yields ``test_documents`` documents (fewer only if identical passages
are merged or passages are missing from the passage file).

Skipped and counted: metadata lines with an empty question (``empty_question``), no answer
(``no_answer``), or no passage (``no_passage``); repeated questions among the test candidates
(``duplicate_query``); records whose passage is not in the passage file (``passage_not_found``),
and passages with an empty text (``empty_document``).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import heapq
import io
import json
import logging
import os
import re
import tempfile
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_prep.normalized import (
    DatasetWriter,
    Document,
    Query,
    SentenceSplitter,
    SkipCounter,
    content_hash,
    iter_jsonl_any,
    load_token_counter,
    open_binary,
    relevant_units,
)
from gear.hub import ModelSource
from gear.io import DataFormatError, atomic_open

log = logging.getLogger(__name__)

CHUNK_RECORDS = 500_000  # training records per sorted temporary chunk
BATCH_DOCUMENTS = 512  # test documents split and token-counted together


@dataclass(frozen=True)
class PaqRecord:
    """One usable metadata line."""

    line: int
    question: str
    answers: tuple[str, ...]
    passage_id: int


def _hash64(seed: int, tag: str, key: str | int) -> int:
    """A seeded 64-bit hash: the random key of every sampling decision (order independent)."""
    digest = hashlib.blake2b(f"{seed}\x00{tag}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _passage_id(value: object, where: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)  # DPR ids are decimal strings ("123") in PAQ
    except (TypeError, ValueError):
        raise DataFormatError(f"{where}: passage_id should be a decimal id, got {value!r}") from None


def iter_paq_records(path: str | os.PathLike, skipped: SkipCounter | None = None) -> Iterator[PaqRecord]:
    """Stream the usable records of a PAQ metadata file (plain or gzipped).

    Raises:
        DataFormatError: malformed JSON, or a missing or wrongly typed field (file and line).
    """
    path = Path(path)
    skipped = skipped if skipped is not None else SkipCounter()
    for line, obj in iter_jsonl_any(path):
        where = f"{path}:{line}"
        question, answer, provenance = obj.get("question"), obj.get("answer"), obj.get("answers")
        if question is None or answer is None or provenance is None:
            missing = [k for k in ("question", "answer", "answers") if obj.get(k) is None]
            raise DataFormatError(f"{where}: missing field(s) {missing}")
        if not isinstance(question, str):
            raise DataFormatError(f"{where}: field 'question' should be str, got {type(question).__name__}")
        if not isinstance(answer, list) or not all(isinstance(a, str) for a in answer):
            raise DataFormatError(f"{where}: field 'answer' should be a list of strings")
        if not isinstance(provenance, list) or not all(isinstance(a, dict) for a in provenance):
            raise DataFormatError(f"{where}: field 'answers' should be a list of objects")
        answers = tuple(dict.fromkeys(a for a in answer if a.strip()))
        if not question.strip():
            skipped.add("empty_question")
            continue
        if not answers:
            skipped.add("no_answer")
            continue
        if not provenance or "passage_id" not in provenance[0]:
            skipped.add("no_passage")
            continue
        yield PaqRecord(line, question.strip(), answers, _passage_id(provenance[0]["passage_id"], where))


_UNDECODABLE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of bytes that are not UTF-8


def iter_passages(path: str | os.PathLike) -> Iterator[tuple[int, str, str]]:
    """Stream ``(id, text, title)`` from a DPR passage TSV, checking ids ascend.

    Raises:
        DataFormatError: a bad header or row, a non-numeric id, or ids out of order (file and line).
    """
    path = Path(path)
    with open_binary(path) as raw:
        # Undecodable bytes become lone surrogates and are reported with the row's own line: a
        # strict decoder fails while reading ahead of the CSV reader's line counter.
        text_stream = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
        reader = csv.reader(text_stream, delimiter="\t")
        previous = None
        try:
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:3]] != ["id", "text", "title"]:
                raise DataFormatError(
                    f"{path}:1: expected the header 'id<TAB>text<TAB>title', got {header!r}"
                )
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if len(row) < 3:
                    raise DataFormatError(f"{path}:{line}: expected 3 tab-separated fields, got {len(row)}")
                if _UNDECODABLE.search(row[0]) or _UNDECODABLE.search(row[1]) or _UNDECODABLE.search(row[2]):
                    raise DataFormatError(f"{path}:{line}: not valid UTF-8")
                pid = _passage_id(row[0], f"{path}:{line}")
                if previous is not None and pid <= previous:
                    raise DataFormatError(
                        f"{path}:{line}: passage id {pid} does not follow {previous}: ids must ascend, as in "
                        "DPR's psgs_w100.tsv (sort the file by its numeric id, header first)"
                    )
                previous = pid
                yield pid, row[1], row[2]
        except UnicodeDecodeError as err:
            raise DataFormatError(f"{path}:{reader.line_num + 1}: not valid UTF-8 ({err.reason})") from err
        except csv.Error as err:
            raise DataFormatError(f"{path}:{reader.line_num}: malformed TSV row ({err})") from err


class _SmallestK:
    """The k items with the smallest hash, distinct by key (a bounded max-heap)."""

    def __init__(self, k: int):
        self.k = k
        self._heap: list[tuple[int, object, object]] = []  # (-hash, key, item)
        self._keys: set = set()

    def offer(self, h: int, key: object, item: object) -> bool:
        """Offer an item; return False when ``key`` is already held."""
        if key in self._keys:
            return False
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, (-h, key, item))
            self._keys.add(key)
        elif h < -self._heap[0][0]:
            _, old, _ = heapq.heapreplace(self._heap, (-h, key, item))
            self._keys.discard(old)
            self._keys.add(key)
        return True

    def items(self) -> list:
        return [item for _, _, item in sorted(self._heap, key=lambda e: -e[0])]

    def keys(self) -> set:
        return set(self._keys)


class _KthSmallest:
    """Threshold such that exactly the k smallest of a stream of 64-bit hashes lie at or below it."""

    def __init__(self, k: int):
        self.k = k
        self._buffer = array("Q")
        self.threshold = np.iinfo(np.uint64).max

    def offer(self, h: int) -> None:
        if h <= self.threshold:
            self._buffer.append(h)
            if len(self._buffer) >= 2 * self.k + 1024:
                self._shrink()

    def _shrink(self) -> None:
        values = np.frombuffer(self._buffer, dtype=np.uint64)
        if len(values) > self.k:
            kept = np.partition(values, self.k - 1)[: self.k]
            self.threshold = int(kept.max())
            self._buffer = array("Q", kept.tobytes())

    def finish(self) -> int:
        self._shrink()
        return int(self.threshold)


def _write_sorted_chunk(rows: list[tuple[int, str, str]], folder: Path, index: int) -> Path:
    rows.sort()
    path = folder / f"chunk{index:05d}.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def _read_chunk(path: Path) -> Iterator[tuple[int, str, str]]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            pid, query_hash, payload = json.loads(line)
            yield pid, query_hash, payload


def build_paq(
    metadata: str | os.PathLike,
    passages: str | os.PathLike,
    out_dir: str | os.PathLike,
    train_out: str | os.PathLike,
    data_cfg: dict,
    seed: int,
    *,
    model_source: ModelSource | None = None,
) -> dict:
    """Write the PAQ test set to ``out_dir`` and the QAR training triples to ``train_out``.

    Args:
        metadata: PAQ metadata JSONL (or ``.gz``).
        passages: DPR ``psgs_w100.tsv`` (or ``.gz``), ids ascending.
        out_dir: test-set folder (``L.dataset_dir("paq")``).
        train_out: training triples file (``L.train_triples("qar")``).
        data_cfg: the config's ``data`` section (``paq.train_triples``, ``paq.test_documents``,
            ``paq.test_queries``, ``splitter``, ``token_counter``, ``max_document_tokens``).
        seed: the run's seed.
        model_source: where models come from (:class:`gear.hub.ModelSource`, built from the
            config), to resolve the tokenizer; default: local folders and caches only.

    Returns:
        the statistics written to ``stats.json`` (with a ``train`` block for the triples).

    Raises:
        DataFormatError: malformed input (file and line), or an empty test set.
    """
    started = time.time()
    metadata, passages = Path(metadata), Path(passages)
    paq_cfg = data_cfg["paq"]
    n_docs, n_queries, n_train = paq_cfg["test_documents"], paq_cfg["test_queries"], paq_cfg["train_triples"]
    splitter = SentenceSplitter.from_config(data_cfg.get("splitter"))
    counter = load_token_counter(data_cfg["token_counter"], model_source)
    max_tokens = data_cfg["max_document_tokens"]
    skipped = SkipCounter()

    # pass 1: the test documents
    test_docs = _SmallestK(n_docs)
    records = 0
    for record in tqdm(
        iter_paq_records(metadata, skipped), desc="paq pass 1/4 (test documents)", mininterval=30
    ):
        records += 1
        pid = record.passage_id
        test_docs.offer(_hash64(seed, "document", pid), pid, pid)
    test_doc_ids = test_docs.keys()
    if not test_doc_ids:
        raise DataFormatError(f"{metadata}: no usable PAQ record (skipped: {skipped.as_dict()})")

    # pass 2: the test queries, and the training threshold
    test_queries = _SmallestK(n_queries)
    train_threshold = _KthSmallest(n_train)
    on_test_docs = 0
    for record in tqdm(iter_paq_records(metadata), desc="paq pass 2/4 (test queries)", mininterval=30):
        if record.passage_id in test_doc_ids:
            on_test_docs += 1
            if not test_queries.offer(_hash64(seed, "query", record.question), record.question, record):
                skipped.add("duplicate_query")
        else:
            train_threshold.offer(_hash64(seed, "train", record.question))
    threshold = train_threshold.finish()
    chosen_queries: list[PaqRecord] = test_queries.items()
    test_questions = {r.question for r in chosen_queries}

    with contextlib.ExitStack() as stack:
        Path(train_out).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix=".paq_sort.", dir=Path(train_out).parent))
        )
        # pass 3: the training records, sorted by passage id in chunks on disk
        chunks, rows, eligible = [], [], 0
        for record in tqdm(
            iter_paq_records(metadata), desc="paq pass 3/4 (training records)", mininterval=30
        ):
            if record.passage_id in test_doc_ids or record.question in test_questions:
                continue
            eligible += 1
            if _hash64(seed, "train", record.question) <= threshold:
                query_id = f"paq-{content_hash(record.question)}"
                rows.append((record.passage_id, query_id, json.dumps([record.question, record.answers[0]])))
                if len(rows) >= CHUNK_RECORDS:
                    chunks.append(_write_sorted_chunk(rows, tmp, len(chunks)))
                    rows = []
        if rows:
            chunks.append(_write_sorted_chunk(rows, tmp, len(chunks)))
        del rows

        # pass 4: join with the passages; write the test corpus and the training triples
        queries_by_pid: dict[int, list[PaqRecord]] = {}
        for record in chosen_queries:
            queries_by_pid.setdefault(record.passage_id, []).append(record)
        train_stream = heapq.merge(*(_read_chunk(c) for c in chunks))
        writer = stack.enter_context(DatasetWriter(out_dir))
        train_handle = stack.enter_context(atomic_open(train_out))
        corpus = _TestCorpusWriter(writer, splitter, counter, max_tokens)
        pending = next(train_stream, None)
        train_written, train_missing, docs_found = 0, 0, set()
        for pid, text, title in tqdm(iter_passages(passages), desc="paq pass 4/4 (passages)", mininterval=30):
            while pending is not None and pending[0] < pid:
                train_missing += 1
                pending = next(train_stream, None)
            while pending is not None and pending[0] == pid:
                if text.strip():
                    question, target = json.loads(pending[2])
                    train_handle.write(
                        json.dumps(
                            {
                                "query_id": pending[1],
                                "query": question,
                                "doc_id": f"paq-{pid}",
                                "document": text,
                                "target": target,
                            },
                            ensure_ascii=False,
                        )
                        + "\n"
                    )
                    train_written += 1
                else:
                    skipped.add("empty_document")
                pending = next(train_stream, None)
            if pid in test_doc_ids:
                docs_found.add(pid)
                if not text.strip():
                    skipped.add("empty_document")
                    skipped.add("query_on_empty_document", len(queries_by_pid.get(pid, [])))
                    continue
                corpus.add(pid, title, text, queries_by_pid.get(pid, []))
        while pending is not None:
            train_missing += 1
            pending = next(train_stream, None)
        corpus.flush()
        missing_docs = len(test_doc_ids - docs_found)
        skipped.add(
            "passage_not_found",
            train_missing + sum(len(queries_by_pid.get(p, [])) for p in test_doc_ids - docs_found),
        )
        if missing_docs:
            log.warning("%d test passages are not in %s", missing_docs, passages)
        stats = {
            "dataset": "paq",
            "documents": writer.documents,
            "queries": len(corpus.queries),
            "units": writer.units,
            "fine_grained_queries": len(corpus.queries),
            "queries_without_relevant_unit": sum(not q.relevant_units for q in corpus.queries),
            "truncated_documents": corpus.truncated,
            "max_document_tokens": max_tokens,
            "document_tokens": corpus.token_summary(),
            "skipped": skipped.as_dict(),
            "merged_identical_documents": corpus.merged,
            "test_documents_requested": n_docs,
            "test_queries_requested": n_queries,
            "test_documents_not_in_passages": missing_docs,
            "metadata_records": records,
            "records_on_test_documents": on_test_docs,
            "train": {
                "file": str(train_out),
                "triples": train_written,
                "requested": n_train,
                "eligible_records": eligible,
                "order": "passage id",
            },
            "metadata": str(metadata),
            "passages": str(passages),
            "seed": seed,
            "tokenizer": data_cfg["token_counter"],
            "wall_time_s": round(time.time() - started, 1),
        }
        for query in sorted(corpus.queries, key=lambda q: q.query_id):
            writer.add_query(query)
        if train_written == 0:
            raise DataFormatError(
                f"{metadata}: no training triple could be formed (eligible records: {eligible}); "
                "are there more distinct passages than data.paq.test_documents?"
            )
        writer.commit(stats)
    log.info(
        "paq: %d test documents, %d test queries, %d training triples",
        stats["documents"],
        stats["queries"],
        train_written,
    )
    return stats


class _TestCorpusWriter:
    """Buffers test documents so that splitting and token counting run in batches.

    Only a hash per kept document stays in memory (to merge identical passages); a merged
    twin's queries are remapped to the kept document, whose units equal the twin's.
    """

    def __init__(self, writer: DatasetWriter, splitter: SentenceSplitter, counter, max_tokens: int):
        self.writer, self.splitter, self.counter, self.max_tokens = writer, splitter, counter, max_tokens
        self.queries: list[Query] = []
        self.truncated = 0
        self.merged = 0
        self._by_content: dict[str, str] = {}
        self._buffer: list[tuple[str, str, str, list[PaqRecord], bool]] = []
        self._token_counts: list[np.ndarray] = []

    def add(self, pid: int, title: str, text: str, records: list[PaqRecord]) -> None:
        key = content_hash(title, text)
        doc_id = self._by_content.get(key)
        is_new = doc_id is None
        if is_new:
            doc_id = f"paq-{pid}"
            self._by_content[key] = doc_id
        else:
            self.merged += 1
            if not records:
                return
        self._buffer.append((doc_id, title, text, records, is_new))
        if len(self._buffer) >= BATCH_DOCUMENTS:
            self.flush()

    def flush(self) -> None:
        new = [entry for entry in self._buffer if entry[4]]
        counts = self.counter.count([text for _, _, text, _, _ in new], add_special_tokens=True)
        self._token_counts.append(counts)
        self.truncated += int((counts > self.max_tokens).sum())
        for doc_id, title, text, records, is_new in self._buffer:
            units = self.splitter.split(text)
            if is_new:
                self.writer.add_document(Document(doc_id, title, text, units))
            for record in records:
                self.queries.append(
                    Query(
                        query_id=f"paq-{content_hash(record.question)}",
                        text=record.question,
                        doc_id=doc_id,
                        answers=list(record.answers),
                        relevant_units=relevant_units(text, units, record.answers),
                        target=record.answers[0],
                        fine_grained=True,
                    )
                )
        self._buffer = []

    def token_summary(self) -> dict:
        counts = np.concatenate(self._token_counts) if self._token_counts else np.zeros(0, dtype=np.int64)
        if len(counts) == 0:
            return {"mean": 0.0, "median": 0.0, "max": 0}
        return {
            "mean": round(float(counts.mean()), 2),
            "median": float(np.median(counts)),
            "max": int(counts.max()),
        }

"""The normalised test-set form every builder writes, and the pieces builders share.

A test set is three files in ``R/data/{dataset}/`` (ARCHITECTURE.md, "Normalised test set"):

- ``corpus.jsonl``: one :class:`Document` per line, ``units`` being sentence spans ``[start, end)``
  into the raw ``text``;
- ``queries.jsonl``: one :class:`Query` per line;
- ``stats.json``: the statistics of the paper's Tables 5-7 plus the suite's own counts;

and the same test set in BEIR layout in ``R/data/{dataset}/beir/`` (:class:`DatasetWriter` writes
both in one pass, so BEIR tools, mteb and Pyserini read exactly what the suite evaluates):
``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``) and
``qrels/test.tsv`` (header ``query-id	corpus-id	score``; each query's relevant documents,
:meth:`Query.judgments`).

Shared here, so that every data set is built the same way:

- :class:`SentenceSplitter`: the suite's one splitter (pysbd, English, ``clean=False``) with its own
  span recovery (see :func:`recover_spans`): every non-space character of a text belongs to exactly
  one unit, spans are sorted, disjoint and trimmed of white space.
- :func:`relevant_units`: SPEC 2's rule, every unit containing a gold answer ignoring case and runs
  of white space.
- :class:`DocumentStore`: merges identical documents (same title and text: one id is kept, the
  queries are remapped) and derives stable ids from source ids or a hash of the content.
- :class:`TokenCounter`: the ``data.token_counter`` tokenizer (resolved with
  :func:`gear.hub.resolve_model`), counting in batches with the fast tokenizer.
- :class:`DatasetWriter` / :func:`write_dataset`: the three files and the BEIR export written into
  a temporary folder and moved into place only when everything succeeded, so a failure leaves no
  partial output.

Adding a data set: a module ``data_prep/{name}.py`` with ``build_{name}(source, out_dir, data_cfg)``
that reads the native format, feeds a :class:`DocumentStore`, builds :class:`Query` objects with
:func:`relevant_units`, and ends with :func:`finish_dataset`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from gear.hub import ModelSource, bert_tokenizer_config
from gear.io import (
    DataFormatError,
    disk_full_error,
    iter_jsonl,
    parse_jsonl_lines,
    require_fields,
    write_json,
)

log = logging.getLogger(__name__)

CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"
STATS_FILE = "stats.json"
BEIR_DIR = "beir"
BEIR_QRELS = Path("qrels") / "test.tsv"
BEIR_QRELS_HEADER = "query-id\tcorpus-id\tscore"
_WHITE_SPACE = re.compile(r"\s")


@dataclass
class Document:
    """One retrievable document.

    Attributes:
        doc_id: stable id, unique in its corpus (e.g. ``squad-3f2a...``).
        title: title (may be empty).
        text: raw text; ``units`` index into it.
        units: sentence spans ``(start, end)`` into ``text``, sorted and disjoint.
    """

    doc_id: str
    title: str
    text: str
    units: list[tuple[int, int]]

    def to_json(self) -> dict:
        return {
            "doc_id": self.doc_id,
            "title": self.title,
            "text": self.text,
            "units": [list(u) for u in self.units],
        }

    def unit_texts(self) -> list[str]:
        return [self.text[s:e] for s, e in self.units]


@dataclass
class Query:
    """One test query with its gold document and units.

    Attributes:
        query_id: stable id, unique in its data set.
        text: the query (a question for QA, keywords for RIR).
        doc_id: the gold document.
        answers: gold answers (QA) or ``[sentence]`` (RIR).
        relevant_units: indices into the gold document's ``units``; empty when no unit contains an
            answer (the query is then skipped for localization and counted).
        target: generation target (QA: the first answer; RIR: the sentence).
        fine_grained: whether the query belongs to the localization / generation sample.
        relevant_docs: every relevant document with its graded relevance (at least 1), for test
            sets whose queries have several (BEIR imports); None means ``{doc_id: 1}``, and the
            field is then left out of ``queries.jsonl``.
    """

    query_id: str
    text: str
    doc_id: str
    answers: list[str]
    relevant_units: list[int]
    target: str
    fine_grained: bool
    relevant_docs: dict[str, int] | None = None

    def to_json(self) -> dict:
        row = dataclasses.asdict(self)
        if self.relevant_docs is None:
            del row["relevant_docs"]
        return row

    def judgments(self) -> dict[str, int]:
        """Relevant document -> graded relevance: ``relevant_docs``, else ``{doc_id: 1}``."""
        return dict(self.relevant_docs) if self.relevant_docs is not None else {self.doc_id: 1}


# --------------------------------------------------------------------------------------------
# sentence splitting


def recover_spans(text: str, sentences: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans of ``sentences`` (the splitter's output, in order) inside ``text``.

    pysbd's own ``char_span`` searches each sentence with a regular expression over the whole
    text (quadratic) and silently drops a sentence it cannot find. Here each sentence is looked
    for from the end of the previous one: exactly (only white space skipped), else with any run
    of white space matching any other, else a little further ahead. A sentence that cannot be
    placed is left out, and any non-space text not covered by a span is then appended to the
    preceding unit (or prepended to the first), so every non-space character of ``text`` belongs
    to exactly one unit. Spans never start or end with white space.

    Returns:
        sorted, disjoint ``(start, end)`` pairs; empty for a text of only white space.
    """
    spans: list[tuple[int, int]] = []
    cursor = 0
    unplaced = 0  # characters of sentences not found yet: how far ahead a match may still be
    for sentence in sentences:
        sentence = sentence.strip()
        if not sentence:
            continue
        start = text.find(sentence, cursor)
        if start >= 0 and not text[cursor:start].strip():
            end = start + len(sentence)
        else:
            pattern = r"\s*" + r"\s+".join(re.escape(word) for word in sentence.split())
            match = re.compile(pattern).match(text, cursor)
            if match:
                start, end = match.start() + (len(match.group()) - len(match.group().lstrip())), match.end()
            elif start >= 0 and len(text[cursor:start].strip()) <= unplaced + 50:
                end = start + len(sentence)
            else:
                unplaced += len(sentence)
                continue
        spans.append((start, end))
        cursor = end
        unplaced = 0
    return _cover_gaps(text, spans)


def _cover_gaps(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Extend spans over uncovered non-space text (see :func:`recover_spans`)."""
    stripped = text.strip()
    if not stripped:
        return []
    first = len(text) - len(text.lstrip())
    last = len(text.rstrip())
    if not spans:
        return [(first, last)]
    out: list[list[int]] = []
    for start, end in spans:
        if not out:
            out.append([min(start, first), end])
            continue
        gap = text[out[-1][1] : start]
        if gap.strip():
            # non-space text between two units belongs to the earlier one, trimmed
            out[-1][1] = out[-1][1] + len(gap.rstrip())
        out.append([start, end])
    if text[out[-1][1] : last].strip():
        out[-1][1] = last
    return [(s, e) for s, e in out]


class SentenceSplitter:
    """The suite's one sentence splitter: pysbd on the raw text, spans into that text.

    Args:
        language: pysbd language code (config ``data.splitter.language``).
        clean: must be False (config ``data.splitter.clean``): pysbd's cleaning rewrites the text,
            and unit spans must index into the raw text.

    Example:
        >>> SentenceSplitter().split("It rained. Then it stopped.")
        [(0, 10), (11, 27)]
    """

    def __init__(self, language: str = "en", clean: bool = False):
        import pysbd

        if clean:
            raise ValueError(
                "data.splitter.clean must be false: pysbd's cleaning rewrites the text, and unit "
                "spans must index into the raw document text (SPEC 2)"
            )
        self.language = language
        self._segmenter = pysbd.Segmenter(language=language, clean=False, char_span=False)

    @classmethod
    def from_config(cls, splitter_cfg: dict | None) -> SentenceSplitter:
        splitter_cfg = splitter_cfg or {}
        return cls(splitter_cfg.get("language", "en"), splitter_cfg.get("clean", False))

    def sentences(self, text: str) -> list[str]:
        """pysbd's sentences (not trimmed) of ``text``."""
        if not text.strip():
            return []
        return self._segmenter.processor(text).process()

    def split(self, text: str) -> list[tuple[int, int]]:
        """Sentence spans ``(start, end)`` into ``text``; see :func:`recover_spans`."""
        return recover_spans(text, self.sentences(text))


# --------------------------------------------------------------------------------------------
# relevant units

_WHITESPACE = re.compile(r"\s+")


def normalise_for_match(text: str) -> str:
    """Lower case, runs of white space collapsed to one space, trimmed (SPEC 2's matching)."""
    return _WHITESPACE.sub(" ", text).strip().lower()


def relevant_units(text: str, units: Sequence[tuple[int, int]], answers: Sequence[str]) -> list[int]:
    """Indices of the units that contain at least one answer, ignoring case and white-space runs.

    An answer that spans a unit boundary is in no unit; empty answers match nothing.
    """
    needles = [n for n in (normalise_for_match(a) for a in answers) if n]
    if not needles:
        return []
    found = []
    for index, (start, end) in enumerate(units):
        unit = normalise_for_match(text[start:end])
        if any(needle in unit for needle in needles):
            found.append(index)
    return found


def qa_query(query_id: str, text: str, document: Document, answers: list[str]) -> Query:
    """A QA query on its gold ``document``: relevant units by SPEC 2, the first answer as the
    generation target, in the localization / generation sample (every QA query is)."""
    return Query(
        query_id=query_id,
        text=text,
        doc_id=document.doc_id,
        answers=answers,
        relevant_units=relevant_units(document.text, document.units, answers),
        target=answers[0],
        fine_grained=True,
    )


# --------------------------------------------------------------------------------------------
# token counting


class TokenCounter:
    """Counts tokens of texts with a Hugging Face tokenizer, in batches (no per-token Python).

    Args:
        tokenizer: a (preferably fast) ``PreTrainedTokenizerBase``.
        batch_size: texts tokenized per call.
    """

    def __init__(self, tokenizer: Any, batch_size: int = 1000):
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        # length warnings ("longer than the specified maximum") are expected: we only count
        if isinstance(tokenizer, BertBackendTokenizer):
            self._input_ids = tokenizer.input_ids
        else:
            self.tokenizer.model_max_length = int(1e9)
            self._input_ids = self._transformers_input_ids

    def count(self, texts: Sequence[str], add_special_tokens: bool = False) -> np.ndarray:
        """Token count of each text; ``add_special_tokens`` adds [CLS]/[SEP] as a model would.

        Returns:
            int64 array of shape ``(len(texts),)``.
        """
        counts = np.zeros(len(texts), dtype=np.int64)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            encoded = self._input_ids(batch, add_special_tokens)
            counts[start : start + len(batch)] = [len(ids) for ids in encoded]
        return counts

    def _transformers_input_ids(self, texts: list[str], add_special_tokens: bool) -> list[list[int]]:
        return self.tokenizer(
            texts,
            add_special_tokens=add_special_tokens,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )["input_ids"]


class BertBackendTokenizer:
    """A BERT folder's ``tokenizer.json`` through the ``tokenizers`` library alone.

    What transformers' ``BertTokenizerFast`` runs underneath, without importing transformers (and
    with it torch and scikit-learn): a data job then starts counting after 0.05 s of imports
    instead of about 5 s (BENCHMARKS.md, issue 19). :meth:`from_folder` takes a folder only where
    that gives the same ids as ``AutoTokenizer``: AutoTokenizer would build ``BertTokenizerFast``
    there (:func:`gear.hub.bert_tokenizer_config`), and the JSON's normalizer has the lower-casing,
    accent and Chinese-character settings that ``BertTokenizerFast`` would impose.
    ``tests/data_prep/test_normalized.py`` compares the two on every text of the mini data.
    """

    def __init__(self, backend: Any):
        self.backend = backend
        self.backend.no_truncation()  # counting: the whole text, as AutoTokenizer's truncation=False
        self.backend.no_padding()

    @classmethod
    def from_folder(cls, folder: str | Path) -> BertBackendTokenizer | None:
        """The folder's tokenizer, or None where only transformers reproduces it exactly."""
        json_file = Path(folder) / "tokenizer.json"
        config = bert_tokenizer_config(folder)
        if config is None or not json_file.is_file():
            return None
        normalizer = json.loads(json_file.read_text(encoding="utf-8")).get("normalizer") or {}
        lowercase = config.get("do_lower_case", True)
        expected = {
            "type": "BertNormalizer",
            "lowercase": lowercase,
            # None: the normalizer strips accents when it lower-cases
            "strip_accents": config.get("strip_accents"),
            "handle_chinese_chars": config.get("tokenize_chinese_chars", True),
        }
        if any(normalizer.get(key) != value for key, value in expected.items()):
            return None
        import tokenizers

        return cls(tokenizers.Tokenizer.from_file(str(json_file)))

    def input_ids(self, texts: list[str], add_special_tokens: bool) -> list[list[int]]:
        return [e.ids for e in self.backend.encode_batch(texts, add_special_tokens=add_special_tokens)]


@functools.lru_cache(maxsize=4)
def load_tokenizer_from(path: str) -> Any:
    """A fast tokenizer from a local folder (or hub id), loaded once per process: a BERT folder's
    through ``tokenizers`` alone (:class:`BertBackendTokenizer`), any other through transformers."""
    light = BertBackendTokenizer.from_folder(path) if Path(path).is_dir() else None
    if light is not None:
        return light
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
    if not tokenizer.is_fast:
        log.warning("tokenizer %s has no fast version: token counting will be slow", path)
    return tokenizer


def load_token_counter(name: str, model_source: ModelSource | None = None) -> TokenCounter:
    """The ``data.token_counter`` tokenizer, resolved like every model of the suite.

    Args:
        name: hub id, local folder or ``model_paths`` key (config ``data.token_counter``).
        model_source: where models come from (default: local folders and caches only).

    Raises:
        gear.hub.ModelUnavailableError: the tokenizer cannot be had offline.
    """
    return TokenCounter(load_tokenizer_from((model_source or ModelSource()).resolve(name)))


# --------------------------------------------------------------------------------------------
# documents: merging and stable ids


def content_hash(*parts: str, length: int = 16) -> str:
    """Hex hash of text parts (separated so that ("ab", "c") and ("a", "bc") differ)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()[:length]


class DocumentStore:
    """Collects a corpus, merging identical documents and giving each a stable id.

    A document's identity is its (title, text). The id is ``{prefix}-{source_id}`` when the
    source gives one (DPR passage ids), else ``{prefix}-{hash of title and text}``. When two
    different documents claim the same source id, the later one gets
    ``{prefix}-{source_id}-{hash}`` and the conflict is counted (``conflicting_source_id``).

    Args:
        prefix: data-set prefix of the ids (``squad``, ``nq``, ...).
        splitter: the sentence splitter.
    """

    def __init__(self, prefix: str, splitter: SentenceSplitter):
        self.prefix = prefix
        self.splitter = splitter
        self.documents: list[Document] = []
        self._by_content: dict[tuple[str, str], str] = {}
        self._by_id: dict[str, Document] = {}
        self.merged = 0
        self.conflicting_ids = 0

    def add(self, title: str, text: str, source_id: str | None = None) -> str:
        """Add a document (or find its identical twin); return its doc_id."""
        key = (title, text)
        known = self._by_content.get(key)
        if known is not None:
            self.merged += 1
            return known
        if source_id:
            doc_id = f"{self.prefix}-{source_id}"
            if doc_id in self._by_id:
                self.conflicting_ids += 1
                doc_id = f"{doc_id}-{content_hash(title, text, length=8)}"
        else:
            doc_id = f"{self.prefix}-{content_hash(title, text)}"
        document = Document(doc_id, title, text, self.splitter.split(text))
        self._by_content[key] = doc_id
        self._by_id[doc_id] = document
        self.documents.append(document)
        return doc_id

    def get(self, doc_id: str) -> Document:
        return self._by_id[doc_id]


# --------------------------------------------------------------------------------------------
# reading


def open_binary(path: str | os.PathLike) -> IO[bytes]:
    """Open a file for reading bytes, decompressing gzip or bzip2 (recognised by magic bytes)."""
    import bz2
    import gzip

    path = Path(path)
    with open(path, "rb") as handle:
        magic = handle.read(3)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    if magic == b"BZh":
        return bz2.open(path, "rb")
    return open(path, "rb")


def iter_jsonl_any(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Like :func:`gear.io.iter_jsonl` (``(line, object)``, errors name file and line), but also
    reads gzip and bzip2 files, streaming."""
    path = Path(path)
    with open_binary(path) as handle:
        try:
            yield from parse_jsonl_lines(path, handle)
        except (OSError, EOFError) as err:
            raise DataFormatError(
                f"{path}: cannot be read to the end ({err}); is the compressed file truncated?"
            ) from err


def _where(path: Path, line: int) -> str:
    return f"{path}:{line}"


def _check_units(units: Any, text: str, where: str) -> list[tuple[int, int]]:
    if not isinstance(units, list):
        raise DataFormatError(f"{where}: field 'units' should be a list of [start, end] pairs")
    out = []
    previous_end = 0
    for index, unit in enumerate(units):
        if (
            not isinstance(unit, list | tuple)
            or len(unit) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in unit)
        ):
            raise DataFormatError(f"{where}: units[{index}] should be a [start, end] pair of integers")
        start, end = unit
        if not previous_end <= start < end <= len(text):
            raise DataFormatError(
                f"{where}: units[{index}] = {list(unit)} is not a sorted, disjoint, non-empty span "
                f"inside the text (length {len(text)})"
            )
        previous_end = end
        out.append((start, end))
    return out


def load_corpus(path: str | os.PathLike) -> list[Document]:
    """Read ``corpus.jsonl``; errors name the file and line.

    Raises:
        DataFormatError: malformed line, missing or wrongly typed field, bad unit span, duplicate id.
    """
    path = Path(path)
    documents, seen = [], {}
    for line, obj in iter_jsonl(path):
        where = _where(path, line)
        require_fields(obj, {"doc_id": str, "title": str, "text": str, "units": list}, where)
        if obj["doc_id"] in seen:
            raise DataFormatError(
                f"{where}: duplicate doc_id {obj['doc_id']!r} (first at line {seen[obj['doc_id']]})"
            )
        seen[obj["doc_id"]] = line
        units = _check_units(obj["units"], obj["text"], where)
        documents.append(Document(obj["doc_id"], obj["title"], obj["text"], units))
    return documents


def load_queries(path: str | os.PathLike) -> list[Query]:
    """Read ``queries.jsonl``; errors name the file and line.

    Raises:
        DataFormatError: malformed line, missing or wrongly typed field, duplicate id.
    """
    path = Path(path)
    queries, seen = [], {}
    for line, obj in iter_jsonl(path):
        where = _where(path, line)
        require_fields(
            obj,
            {
                "query_id": str,
                "text": str,
                "doc_id": str,
                "answers": list,
                "relevant_units": list,
                "target": str,
                "fine_grained": bool,
            },
            where,
        )
        if obj["query_id"] in seen:
            raise DataFormatError(
                f"{where}: duplicate query_id {obj['query_id']!r} (first at line {seen[obj['query_id']]})"
            )
        seen[obj["query_id"]] = line
        if not all(isinstance(a, str) for a in obj["answers"]):
            raise DataFormatError(f"{where}: field 'answers' should be a list of strings")
        if not all(isinstance(u, int) and not isinstance(u, bool) for u in obj["relevant_units"]):
            raise DataFormatError(f"{where}: field 'relevant_units' should be a list of integers")
        queries.append(
            Query(
                obj["query_id"],
                obj["text"],
                obj["doc_id"],
                list(obj["answers"]),
                list(obj["relevant_units"]),
                obj["target"],
                obj["fine_grained"],
                _check_relevant_docs(obj, where),
            )
        )
    return queries


def _check_relevant_docs(obj: dict, where: str) -> dict[str, int] | None:
    """The optional ``relevant_docs`` field: a non-empty object of doc_id -> integer grade >= 1
    that includes ``doc_id``."""
    if "relevant_docs" not in obj:
        return None
    docs = obj["relevant_docs"]
    if (
        not isinstance(docs, dict)
        or not docs
        or not all(isinstance(g, int) and not isinstance(g, bool) and g >= 1 for g in docs.values())
    ):
        raise DataFormatError(
            f"{where}: field 'relevant_docs' should be a non-empty object of doc_id -> integer relevance >= 1"
        )
    if obj["doc_id"] not in docs:
        raise DataFormatError(f"{where}: doc_id {obj['doc_id']!r} is not among its relevant_docs")
    return dict(docs)


# --------------------------------------------------------------------------------------------
# writing


class DatasetWriter:
    """Streams a test set into a temporary folder; :meth:`commit` moves it into ``out_dir``.

    Used as a context manager: leaving the block with an exception (or without ``commit``)
    deletes the temporary folder, so nothing partial ever appears in ``out_dir``.

    Example:
        >>> with DatasetWriter("results/mini/data/squad") as writer:  # doctest: +SKIP
        ...     writer.add_document(doc)
        ...     writer.add_query(query)
        ...     writer.commit(stats)
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.documents = 0
        self.queries = 0
        self.units = 0
        self._doc_ids: set[str] = set()
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> DatasetWriter:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=".building.", dir=self.out_dir))
        (self._tmp / BEIR_DIR / BEIR_QRELS).parent.mkdir(parents=True)

        def open_output(name: str | Path) -> IO[str]:
            return self._stack.enter_context(open(self._tmp / name, "w", encoding="utf-8"))

        self._corpus = open_output(CORPUS_FILE)
        self._queries = open_output(QUERIES_FILE)
        self._beir_corpus = open_output(Path(BEIR_DIR) / CORPUS_FILE)
        self._beir_queries = open_output(Path(BEIR_DIR) / QUERIES_FILE)
        self._beir_qrels = open_output(Path(BEIR_DIR) / BEIR_QRELS)
        self._beir_qrels.write(BEIR_QRELS_HEADER + "\n")
        self._committed = False
        return self

    def _check_id(self, kind: str, value: str) -> None:
        # TREC run and qrels files and BEIR's qrels are split on white space
        if not value or _WHITE_SPACE.search(value):
            raise DataFormatError(
                f"{kind} {value!r} is empty or contains white space, which TREC and BEIR files "
                f"cannot hold (while writing {self.out_dir})"
            )

    def add_document(self, document: Document) -> None:
        if document.doc_id in self._doc_ids:
            raise DataFormatError(f"duplicate doc_id {document.doc_id!r} while writing {self.out_dir}")
        self._check_id("doc_id", document.doc_id)
        self._doc_ids.add(document.doc_id)
        self._corpus.write(json.dumps(document.to_json(), ensure_ascii=False) + "\n")
        beir = {"_id": document.doc_id, "title": document.title, "text": document.text}
        self._beir_corpus.write(json.dumps(beir, ensure_ascii=False) + "\n")
        self.documents += 1
        self.units += len(document.units)

    def add_query(self, query: Query) -> None:
        self._check_id("query_id", query.query_id)
        self._queries.write(json.dumps(query.to_json(), ensure_ascii=False) + "\n")
        self._beir_queries.write(
            json.dumps({"_id": query.query_id, "text": query.text}, ensure_ascii=False) + "\n"
        )
        for doc_id, grade in query.judgments().items():
            self._beir_qrels.write(f"{query.query_id}\t{doc_id}\t{grade}\n")
        self.queries += 1

    def commit(self, stats: dict) -> None:
        """Check the set is not empty, write ``stats.json`` and move the three files into place."""
        if self.documents == 0:
            raise DataFormatError(f"{self.out_dir}: the corpus is empty (no usable document in the input)")
        if self.queries == 0:
            raise DataFormatError(f"{self.out_dir}: no usable query in the input")
        for handle in (self._corpus, self._queries, self._beir_corpus, self._beir_queries, self._beir_qrels):
            handle.flush()
            os.fsync(handle.fileno())
        self._stack.close()
        write_json(self._tmp / STATS_FILE, stats)
        # stats last: a reader that sees the new stats.json also sees the new corpus, queries and
        # BEIR export
        for name in (CORPUS_FILE, QUERIES_FILE):
            os.replace(self._tmp / name, self.out_dir / name)
        _replace_folder(self._tmp / BEIR_DIR, self.out_dir / BEIR_DIR)
        os.replace(self._tmp / STATS_FILE, self.out_dir / STATS_FILE)
        self._committed = True

    def __exit__(self, exc_type, exc, traceback) -> None:
        close_error = None
        try:
            self._stack.close()  # flushes what is buffered: fails again on a full disk
        except OSError as err:
            close_error = err
        shutil.rmtree(self._tmp, ignore_errors=True)
        cause = exc if exc is not None else close_error
        if cause is not None and (full := disk_full_error(cause, self.out_dir)) is not None:
            raise full from cause  # names the output folder, not the bare "No space left"
        if close_error is not None and exc is None:
            raise close_error


def _replace_folder(new: Path, old: Path) -> None:
    """Move folder ``new`` to ``old``'s place; an existing ``old`` is renamed aside, then removed."""
    if old.exists():
        aside = old.with_name(f".{old.name}.old")
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(old, aside)
        os.replace(new, old)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(new, old)


def write_dataset(
    out_dir: str | os.PathLike, documents: Iterable[Document], queries: Iterable[Query], stats: dict
) -> None:
    """Write ``corpus.jsonl``, ``queries.jsonl``, ``stats.json`` and the BEIR export ``beir/`` into
    ``out_dir``, all or nothing.

    Raises:
        DataFormatError: the corpus or the query set is empty, or two documents share an id.
    """
    with DatasetWriter(out_dir) as writer:
        for document in documents:
            writer.add_document(document)
        for query in queries:
            writer.add_query(query)
        writer.commit(stats)


# --------------------------------------------------------------------------------------------
# statistics


@dataclass
class SkipCounter:
    """Counts skipped input items by reason (``stats["skipped"]``)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str, n: int = 1) -> None:
        if n:
            self.counts[reason] = self.counts.get(reason, 0) + n

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


def dataset_stats(
    dataset: str,
    documents: Sequence[Document],
    queries: Sequence[Query],
    token_counter: TokenCounter,
    max_document_tokens: int,
    skipped: SkipCounter,
    **extra: Any,
) -> dict:
    """Statistics of a test set (Tables 5-7 and the suite's own counts).

    ``truncated_documents`` counts documents whose tokens, [CLS] and [SEP] included (what a
    BERT-style model sees), exceed ``max_document_tokens``.
    """
    counts = token_counter.count([d.text for d in documents], add_special_tokens=True)
    units = np.array([len(d.units) for d in documents], dtype=np.int64)
    return {
        "dataset": dataset,
        "documents": len(documents),
        "queries": len(queries),
        "units": int(units.sum()),
        "fine_grained_queries": sum(q.fine_grained for q in queries),
        "queries_without_relevant_unit": sum(not q.relevant_units for q in queries),
        "truncated_documents": int((counts > max_document_tokens).sum()),
        "max_document_tokens": max_document_tokens,
        "document_tokens": _summary(counts),
        "units_per_document": _summary(units),
        "skipped": skipped.as_dict(),
        **extra,
    }


def _summary(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {"mean": 0.0, "median": 0.0, "max": 0}
    return {
        "mean": round(float(values.mean()), 2),
        "median": float(np.median(values)),
        "max": int(values.max()),
    }


def finish_dataset(
    dataset: str,
    out_dir: str | os.PathLike,
    store: DocumentStore,
    queries: Sequence[Query],
    token_counter: TokenCounter,
    max_document_tokens: int,
    skipped: SkipCounter,
    **extra: Any,
) -> dict:
    """Statistics of an in-memory test set, then :func:`write_dataset`; returns the statistics."""
    if store.merged:
        extra.setdefault("merged_identical_documents", store.merged)
    if store.conflicting_ids:
        extra.setdefault("conflicting_source_ids", store.conflicting_ids)
    stats = dataset_stats(
        dataset, store.documents, queries, token_counter, max_document_tokens, skipped, **extra
    )
    write_dataset(out_dir, store.documents, queries, stats)
    return stats

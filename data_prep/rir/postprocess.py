"""RIR synthesis, step 3: cleaning, relevance filtering and the train/test split (SPEC 3.3-3.4).

1. **Keyword clean-up** of each rewrite (paper: "de-duplicate the keywords ... then reorder
   them"): the rewrite is split on commas (line breaks count as commas, since chat models
   sometimes answer with one keyword a line); each keyword is stripped of white space, enclosing
   quotes and a trailing full stop; empty keywords and repeats (case-insensitive; the first
   spelling is kept) are dropped; the order is shuffled by a generator seeded with the run's seed
   and the query id; the keywords are joined with ", ". An empty result is counted
   (``empty_query``) and dropped.
2. **Relevance filter**: the query and its document are embedded with the filter model
   (``data.rir.filter.model``, BGE at paper scale), loaded with
   ``sentence_transformers.SentenceTransformer`` from its resolved folder so that its own pooling
   and normalisation are used; ``query_instruction`` is prepended to queries. A triple is kept
   when the cosine similarity is at least ``threshold`` (else ``below_threshold``). The
   similarity distribution of all scored triples is recorded in the statistics.
3. **Split by document**: among documents with at least one kept triple, the
   ``round(test_fraction * n)`` documents with the smallest seeded hash of their id (at least one,
   and at least one left for training) form the test split; the rest train. No test document
   is seen in training.
4. **Outputs**: training triples (ARCHITECTURE.md format; target = the sentence) from training
   documents; test queries from test documents (``answers = [sentence]``, ``relevant_units =
   [unit]``, ``target`` = the sentence), of which the ``localization_queries`` with the smallest
   seeded hash of their id are ``fine_grained``; the test corpus is every pre-processed document
   (``test_corpus: all``: training documents act as distractors, as Table 6's 2.3M RIR test
   documents suggest) or the test documents only (``test_corpus: test``).

Streams throughout: memory holds one block of documents, one 64-bit hash per document with a
kept triple and one per test query.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_prep.normalized import DatasetWriter, Document, Query, iter_jsonl_any
from data_prep.rir.preprocess import PreprocessedDocument, read_preprocessed
from gear.config import dataclass_from_mapping
from gear.hub import ModelSource
from gear.io import DataFormatError, atomic_open, require_fields

log = logging.getLogger(__name__)

BLOCK_DOCUMENTS = 256  # documents scored together
_QUOTES = "\"'“”‘’`«»"


@dataclass
class FilterConfig:
    """``data.rir.filter``."""

    model: str = "BAAI/bge-base-en-v1.5"  # embedding model of the relevance filter
    threshold: float = 0.5  # keep triples with cosine similarity >= this
    query_instruction: str = ""  # prepended to queries before embedding
    batch_size: int = 64  # texts embedded per batch


@dataclass
class SplitConfig:
    """``data.rir.split``."""

    test_fraction: float = 0.05  # share of documents (with kept triples) in the test split
    localization_queries: int = 10000  # test queries marked fine_grained
    test_corpus: str = "all"  # all: every pre-processed document; test: test documents only


def _hash64(seed: int, tag: str, key: str) -> int:
    digest = hashlib.blake2b(f"{seed}\x00{tag}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def clean_query(rewrite: str, seed: int, query_id: str) -> str:
    """Keyword clean-up of a rewrite (module docstring, step 1)."""
    keywords, seen = [], set()
    for piece in re.split(r"[,\n]", rewrite):
        keyword = piece.strip().strip(_QUOTES).strip()
        if keyword.endswith(".") and not keyword.endswith(".."):
            keyword = keyword[:-1].rstrip()
        folded = keyword.casefold()
        if keyword and folded not in seen:
            seen.add(folded)
            keywords.append(keyword)
    random.Random(f"{seed}:shuffle:{query_id}").shuffle(keywords)
    return ", ".join(keywords)


def rir_query_id(doc_id: str, unit: int) -> str:
    """Stable id of the query written from unit ``unit`` of ``doc_id``."""
    return f"{doc_id}-u{unit}"


class SimilarityFilter:
    """Cosine similarity of (query, document) pairs under a sentence-transformers model.

    Args:
        model_path: resolved folder of the filter model.
        query_instruction: prepended to every query.
        batch_size: texts per encoding batch.
        device: torch device (default: CUDA when available).
    """

    def __init__(
        self, model_path: str, query_instruction: str = "", batch_size: int = 64, device: str | None = None
    ):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(model_path, device=device)
        self.query_instruction = query_instruction
        self.batch_size = batch_size

    def similarities(self, queries: list[str], documents: list[str], pairs: list[int]) -> np.ndarray:
        """Cosine similarity of ``queries[i]`` and ``documents[pairs[i]]``.

        Returns:
            float32 array of shape ``(len(queries),)``.
        """
        if not queries:
            return np.zeros(0, dtype=np.float32)
        q = self.model.encode(
            [self.query_instruction + text for text in queries],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        d = self.model.encode(
            documents,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.einsum("nd,nd->n", q, d[np.asarray(pairs)]).astype(np.float32)


def _iter_rewrites(path: Path) -> Iterator[dict]:
    for line, obj in iter_jsonl_any(path):
        require_fields(obj, {"doc_id": str, "unit": int, "sentence": str, "rewrite": str}, f"{path}:{line}")
        yield obj


def _grouped(preprocessed: Path, rewrites: Path) -> Iterator[tuple[PreprocessedDocument, list[dict]]]:
    """Walk the two files together (rewrites are in the order of the pre-processed documents)."""
    pending = _iter_rewrites(rewrites)
    row = next(pending, None)
    for document in read_preprocessed(preprocessed):
        rows = []
        while row is not None and row["doc_id"] == document.doc_id:
            rows.append(row)
            row = next(pending, None)
        yield document, rows
    if row is not None:
        raise DataFormatError(
            f"{rewrites}: rewrite for {row['doc_id']!r} does not follow the order of {preprocessed}; "
            "the two files are from different runs: rerun the rewriting step"
        )


class _Histogram:
    """Similarity distribution in 0.01 bins over [-1, 1] (bounded memory)."""

    def __init__(self):
        self.edges = np.linspace(-1.0, 1.0, 201)
        self.counts = np.zeros(200, dtype=np.int64)
        self.n, self.total = 0, 0.0

    def add(self, values: np.ndarray) -> None:
        self.counts += np.histogram(np.clip(values, -1, 1), bins=self.edges)[0]
        self.n += len(values)
        self.total += float(values.sum())

    def summary(self, threshold: float) -> dict:
        if self.n == 0:
            return {"n": 0}
        cumulative = np.cumsum(self.counts) / self.n

        def quantile(q: float) -> float:
            return round(float(self.edges[1:][np.searchsorted(cumulative, q)]), 2)

        return {
            "n": self.n,
            "mean": round(self.total / self.n, 4),
            **{f"p{int(q * 100):02d}": quantile(q) for q in (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)},
            "kept_at_threshold": round(
                float(self.counts[self.edges[:-1] >= threshold - 1e-9].sum()) / self.n, 4
            ),
            "kept_at": {
                f"{t:.2f}": round(float(self.counts[self.edges[:-1] >= t - 1e-9].sum()) / self.n, 4)
                for t in (0.2, 0.3, 0.4, 0.5, 0.6)
            },
        }


def _smallest_threshold(hashes: list[int], k: int) -> int:
    """Largest hash among the ``k`` smallest (-1 when k is 0)."""
    if k <= 0 or not hashes:
        return -1
    values = np.array(hashes, dtype=np.uint64)
    return int(np.partition(values, k - 1)[k - 1])


def postprocess_rewrites(
    preprocessed: str | os.PathLike,
    rewrites: str | os.PathLike,
    out_dir: str | os.PathLike,
    train_out: str | os.PathLike,
    filter_cfg: dict | FilterConfig,
    split_cfg: dict | SplitConfig,
    seed: int,
    max_document_tokens: int,
    *,
    model_source: ModelSource | None = None,
    similarity: SimilarityFilter | None = None,
) -> dict:
    """Clean, filter and split the rewrites; write the RIR test set and training triples.

    Args:
        preprocessed: ``preprocessed.jsonl``.
        rewrites: ``rewrites.jsonl`` (same document order).
        out_dir: test-set folder (``L.dataset_dir("rir")``).
        train_out: training triples (``L.train_triples("rir")``).
        filter_cfg: ``data.rir.filter``.
        split_cfg: ``data.rir.split``.
        seed: the run's seed.
        max_document_tokens: ``data.max_document_tokens`` (truncated-document count).
        model_source: where models come from (:class:`gear.hub.ModelSource`); default: local only.
        similarity: a ready filter to use instead of loading ``filter_cfg.model`` (tests).

    Returns:
        the statistics written to ``stats.json``.

    Raises:
        DataFormatError: mismatched or malformed inputs, or no triple survives the filter.
    """
    started = time.time()
    preprocessed, rewrites = Path(preprocessed), Path(rewrites)
    fcfg = (
        filter_cfg
        if isinstance(filter_cfg, FilterConfig)
        else dataclass_from_mapping(FilterConfig, filter_cfg, "data.rir.filter")
    )
    scfg = (
        split_cfg
        if isinstance(split_cfg, SplitConfig)
        else dataclass_from_mapping(SplitConfig, split_cfg, "data.rir.split")
    )
    if scfg.test_corpus not in ("all", "test"):
        raise ValueError(f"data.rir.split.test_corpus must be 'all' or 'test', got {scfg.test_corpus!r}")
    if similarity is None:
        similarity = SimilarityFilter(
            (model_source or ModelSource()).resolve(fcfg.model), fcfg.query_instruction, fcfg.batch_size
        )
    skipped: dict[str, int] = {"empty_query": 0, "below_threshold": 0}
    histogram = _Histogram()
    doc_hashes: list[int] = []
    documents_total = 0

    with contextlib.ExitStack() as stack:
        Path(train_out).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix=".rir_post.", dir=Path(train_out).parent))
        )
        kept_path = tmp / "kept.jsonl"
        # pass 1: clean and score; kept triples to a temporary file
        with open(kept_path, "w", encoding="utf-8") as kept_file:
            block: list[tuple[PreprocessedDocument, list[dict]]] = []

            def score_block() -> None:
                queries, pairs, rows = [], [], []
                for position, (document, group) in enumerate(block):
                    for row in group:
                        query_id = rir_query_id(document.doc_id, row["unit"])
                        query = clean_query(row["rewrite"], seed, query_id)
                        if not query:
                            skipped["empty_query"] += 1
                            continue
                        queries.append(query)
                        pairs.append(position)
                        rows.append((document.doc_id, query_id, row["unit"], row["sentence"], query))
                scores = similarity.similarities(queries, [d.text for d, _ in block], pairs)
                histogram.add(scores)
                with_kept = set()
                for (doc_id, query_id, unit, sentence, query), score in zip(rows, scores.tolist()):
                    if score < fcfg.threshold:
                        skipped["below_threshold"] += 1
                        continue
                    kept_file.write(
                        json.dumps(
                            [doc_id, query_id, unit, sentence, query, round(score, 4)], ensure_ascii=False
                        )
                        + "\n"
                    )
                    with_kept.add(doc_id)
                doc_hashes.extend(_hash64(seed, "split", doc_id) for doc_id in with_kept)

            for document, group in tqdm(
                _grouped(preprocessed, rewrites), desc="rir filtering", unit="doc", mininterval=10
            ):
                documents_total += 1
                for row in group:
                    if not 0 <= row["unit"] < len(document.units):
                        raise DataFormatError(
                            f"{rewrites}: unit {row['unit']} is not a unit of {document.doc_id}"
                        )
                block.append((document, group))
                if len(block) >= BLOCK_DOCUMENTS:
                    score_block()
                    block = []
            if block:
                score_block()
        if not doc_hashes:
            raise DataFormatError(
                f"no RIR triple survived the filter (threshold {fcfg.threshold} under {fcfg.model}; similarity "
                f"distribution {histogram.summary(fcfg.threshold)}); lower data.rir.filter.threshold or check the rewrites"
            )

        # the split: smallest seeded hashes of the documents with kept triples
        n = len(doc_hashes)
        n_test = min(max(round(scfg.test_fraction * n), 1), n - 1) if n > 1 else 1
        test_threshold = _smallest_threshold(doc_hashes, n_test)

        def is_test(doc_id: str) -> bool:
            return _hash64(seed, "split", doc_id) <= test_threshold

        # pass 2: which test queries are fine-grained
        test_query_hashes = []
        for line in open(kept_path, encoding="utf-8"):
            doc_id, query_id = json.loads(line)[:2]
            if is_test(doc_id):
                test_query_hashes.append(_hash64(seed, "localization", query_id))
        fine_threshold = _smallest_threshold(
            test_query_hashes, min(scfg.localization_queries, len(test_query_hashes))
        )

        # pass 3: write everything
        writer = stack.enter_context(DatasetWriter(out_dir))
        train_handle = stack.enter_context(atomic_open(train_out))
        kept_rows = _iter_kept(kept_path)
        row = next(kept_rows, None)
        counts = {"train_triples": 0, "train_documents": 0, "test_documents": 0, "truncated": 0, "fine": 0}
        for document in read_preprocessed(preprocessed):
            group = []
            while row is not None and row[0] == document.doc_id:
                group.append(row)
                row = next(kept_rows, None)
            test = bool(group) and is_test(document.doc_id)
            if test or scfg.test_corpus == "all":
                writer.add_document(Document(document.doc_id, document.title, document.text, document.units))
                counts["truncated"] += int(sum(document.unit_tokens) + 2 > max_document_tokens)
            if not group:
                continue
            if test:
                counts["test_documents"] += 1
                for _, query_id, unit, sentence, query, _score in group:
                    fine = _hash64(seed, "localization", query_id) <= fine_threshold
                    counts["fine"] += fine
                    writer.add_query(
                        Query(query_id, query, document.doc_id, [sentence], [unit], sentence, fine)
                    )
            else:
                counts["train_documents"] += 1
                for _, query_id, _unit, sentence, query, _score in group:
                    train_handle.write(
                        json.dumps(
                            {
                                "query_id": query_id,
                                "query": query,
                                "doc_id": document.doc_id,
                                "document": document.text,
                                "target": sentence,
                            },
                            ensure_ascii=False,
                        )
                        + "\n"
                    )
                    counts["train_triples"] += 1
        stats = {
            "dataset": "rir",
            "documents": writer.documents,
            "queries": writer.queries,
            "units": writer.units,
            "fine_grained_queries": counts["fine"],
            "queries_without_relevant_unit": 0,
            "truncated_documents": counts["truncated"],
            "max_document_tokens": max_document_tokens,
            "skipped": {k: v for k, v in sorted(skipped.items()) if v},
            "preprocessed_documents": documents_total,
            "documents_with_triples": n,
            "test_documents": counts["test_documents"],
            "test_corpus": scfg.test_corpus,
            "train": {
                "file": str(train_out),
                "triples": counts["train_triples"],
                "documents": counts["train_documents"],
            },
            "filter": {
                "model": fcfg.model,
                "threshold": fcfg.threshold,
                "query_instruction": fcfg.query_instruction,
            },
            "similarity": histogram.summary(fcfg.threshold),
            "seed": seed,
            "wall_time_s": round(time.time() - started, 1),
        }
        writer.commit(stats)
    log.info(
        "rir: %d test documents in a corpus of %d, %d test queries, %d training triples",
        stats["test_documents"],
        stats["documents"],
        stats["queries"],
        stats["train"]["triples"],
    )
    return stats


def _iter_kept(path: Path) -> Iterator[list]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)

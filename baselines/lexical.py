"""BM25, the lexical baseline every IR suite has (beyond the paper, which compares dense models only).

:class:`BM25Retriever` (registry ``kind: bm25``) ranks with the ``bm25s`` library, in two ways:

- retrieval (Table 1): one BM25 index over the test set's corpus (each document's ``text``, as the
  dense models encode it); :meth:`BM25Retriever.search` returns the top ``depth`` documents of
  every query, in the same shape and order as ``gear.evaluation.search.search`` (score
  descending, then corpus position ascending; ``-1`` / ``-inf`` where the corpus is smaller).
- sentence localization (Table 2): :meth:`BM25Retriever.score_units` scores each unit (sentence)
  of a query's gold document against the query, with the document's own units as the collection
  (document frequencies and the average length are those of the document's sentences: a term in
  every sentence of the document does not tell its sentences apart, however rare it is elsewhere).

The paper has no BM25, so every setting here is the suite's choice, made to match what a
Pyserini user expects of "BM25" (Anserini's defaults), as far as bm25s offers it:

- scoring: bm25s's ``method="lucene"`` (Lucene's BM25, the one Anserini runs) with Anserini's
  default ``k1 = 0.9``, ``b = 0.4`` (bm25s's own defaults are 1.5 / 0.75); the registry entry can
  change all three.
- tokenisation: bm25s's tokenizer: lower-cased, words matched by ``(?u)\\b\\w\\w+\\b`` (runs of two or
  more word characters; single letters and digits are dropped), bm25s's documented default English
  stopwords (``stopwords="en"``: 33 words, the words of Lucene's English stop set), then PyStemmer's
  ``english`` Snowball stemmer (Porter2; Anserini stems with the original Porter, so a few stems
  differ). Queries and documents are tokenised alike. ``stemmer: none`` / ``stopwords: none`` in the
  entry switch either off.
- a query with no term in the collection scores every document 0 (all tied: ranked by position,
  and for the metrics pessimistically, ``gear.evaluation.metrics``).

Example:
    >>> bm25 = BM25Retriever(BM25Settings(), name="BM25")  # doctest: +SKIP
    >>> scores, ids = bm25.search(["Paris is the capital of France."], ["capital of france"], depth=1)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import bm25s
import numpy as np
import Stemmer

from gear.io import stable_hash

#: the tokeniser's word pattern (bm25s's default, written out so that the fingerprint records it)
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")


@dataclass(frozen=True)
class BM25Settings:
    """A ``bm25`` registry entry's ``bm25:`` mapping (every key optional).

    Attributes:
        k1: term-frequency saturation (Anserini's default 0.9).
        b: length normalisation (Anserini's default 0.4).
        method: bm25s's scoring variant (``lucene``, ``robertson``, ``atire``, ``bm25l``, ``bm25+``).
        stemmer: a PyStemmer language (``english``) or ``none``.
        stopwords: ``en`` (bm25s's English list) or ``none``.
    """

    k1: float = 0.9
    b: float = 0.4
    method: str = "lucene"
    stemmer: str = "english"
    stopwords: str = "en"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"bm25.method {self.method!r} is not one of {METHODS}")
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ValueError(f"bm25: k1 {self.k1} must be >= 0 and b {self.b} within [0, 1]")


class BM25Retriever:
    """BM25 over texts with bm25s (see the module docstring for every choice).

    Args:
        settings: scoring and tokenisation.
        name: the registry name (results and run files carry it).
    """

    kind = "bm25"

    def __init__(self, settings: BM25Settings | None = None, name: str = "BM25"):
        self.settings = settings or BM25Settings()
        self.name = name
        language = self.settings.stemmer
        self._stem = None if language == "none" else Stemmer.Stemmer(language)
        self._stopwords = None if self.settings.stopwords == "none" else self.settings.stopwords

    def fingerprint(self) -> str:
        """What the scores depend on: the settings, the token pattern and the bm25s version."""
        payload = {**asdict(self.settings), "pattern": TOKEN_PATTERN, "bm25s": bm25s.__version__}
        return f"bm25-{stable_hash(json.loads(json.dumps(payload)))}"

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Each text as its list of (stemmed) terms."""
        if not texts:
            return []
        return bm25s.tokenize(
            list(texts),
            lower=True,
            token_pattern=TOKEN_PATTERN,
            stopwords=self._stopwords,
            stemmer=self._stem,
            return_ids=False,
            show_progress=False,
        )

    def _index(self, documents: Sequence[str]) -> bm25s.BM25:
        index = bm25s.BM25(k1=self.settings.k1, b=self.settings.b, method=self.settings.method)
        # An empty token list for a document with no term keeps corpus positions aligned.
        index.index(self.tokenize(documents), show_progress=False)
        return index

    @staticmethod
    def _scores(index: bm25s.BM25, terms: list[str], count: int) -> np.ndarray:
        known = [term for term in terms if term in index.vocab_dict]
        if not known:
            return np.zeros(count, dtype=np.float32)
        return np.asarray(index.get_scores(known), dtype=np.float32)

    def search(
        self, documents: Sequence[str], queries: Sequence[str], depth: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The top ``depth`` documents of each query.

        Args:
            documents: the corpus texts (positions are the returned ids).
            queries: the query texts.
            depth: results per query.

        Returns:
            ``(scores, ids)``, each ``(n_queries, depth)``: float32 BM25 scores and int64 corpus
            positions, best first (ties by position); ``-inf`` / ``-1`` fill the slots a corpus
            smaller than ``depth`` leaves empty.
        """
        if depth < 1:
            raise ValueError(f"depth must be positive, got {depth}")
        index = self._index(documents)
        scores = np.full((len(queries), depth), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), depth), -1, dtype=np.int64)
        for row, terms in enumerate(self.tokenize(queries)):
            row_scores = self._scores(index, terms, len(documents))
            found = top_positions(row_scores, depth)
            ids[row, : len(found)] = found
            scores[row, : len(found)] = row_scores[found]
        return scores, ids

    def score_units(
        self, queries: Sequence[str], documents: Sequence[str], units: Sequence[Sequence[tuple[int, int]]]
    ) -> list[np.ndarray]:
        """BM25 score of every unit ``text[start:end]`` of each query's document, the document's
        units being the collection; one float32 array per (query, document) pair."""
        out = []
        indexes: dict[tuple[str, tuple], bm25s.BM25] = {}  # a document shared by several queries: one index
        for terms, document, spans in zip(self.tokenize(queries), documents, units, strict=True):
            key = (document, tuple(map(tuple, spans)))
            if key not in indexes:
                indexes[key] = self._index([document[start:end] for start, end in spans])
            out.append(self._scores(indexes[key], terms, len(spans)))
        return out


def top_positions(scores: np.ndarray, depth: int) -> np.ndarray:
    """Positions of the ``depth`` highest scores, by score descending then position ascending
    (of equal scores at the cut, the lowest positions are kept)."""
    count = min(depth, len(scores))
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    cut = np.partition(scores, len(scores) - count)[len(scores) - count]
    above = np.flatnonzero(scores > cut)
    tied = np.flatnonzero(scores == cut)[: count - len(above)]
    chosen = np.concatenate([above, tied])
    return chosen[np.lexsort((chosen, -scores[chosen]))].astype(np.int64)

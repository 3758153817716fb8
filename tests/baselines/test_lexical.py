"""BM25 (``kind: bm25``): tokenisation, Lucene's scoring with the entry's k1 / b, ranking and ties,
sentence scores within a document, and the registry's lexical kind."""

from __future__ import annotations

import math

import numpy as np
import pytest

from baselines.lexical import BM25Retriever, BM25Settings
from baselines.registry import REGISTRY_SCHEMA, build_encoder, build_lexical, load_registry
from gear.config import REPO_ROOT, ConfigError, load_yaml, validate_against_schema

DOCUMENTS = [
    "Paris is the capital of France and its largest city.",
    "The Loire is the longest river of France.",
    "Hamlet is a tragedy written by William Shakespeare.",
    "Rivers of France: the Seine flows through Paris, the Rhone through Lyon.",
]


def lucene_bm25(query: list[str], documents: list[list[str]], k1: float, b: float) -> np.ndarray:
    """Lucene's BM25 (Kamphuis et al. 2020) written out: idf log(1 + (N - df + 0.5) / (df + 0.5)),
    term weight tf / (tf + k1 (1 - b + b |d| / avg|d|)), summed over the query's distinct terms
    that occur in the collection (bm25s drops repeated and unknown query terms alike)."""
    n = len(documents)
    average = sum(map(len, documents)) / n
    scores = np.zeros(n)
    vocabulary = {term for document in documents for term in document}
    for term in set(query) & vocabulary:
        df = sum(term in document for document in documents)
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for i, document in enumerate(documents):
            tf = document.count(term)
            scores[i] += idf * tf / (tf + k1 * (1 - b + b * len(document) / average))
    return scores


def test_tokenisation_lowercases_drops_stopwords_and_stems():
    bm25 = BM25Retriever()
    assert bm25.tokenize(["The Rivers of France are flowing"]) == [["river", "franc", "flow"]]
    plain = BM25Retriever(BM25Settings(stemmer="none", stopwords="none"))
    assert plain.tokenize(["The Rivers of France"]) == [["the", "rivers", "of", "france"]]
    assert bm25.tokenize([]) == []


@pytest.mark.parametrize("k1, b", [(0.9, 0.4), (1.5, 0.75)])
def test_search_scores_are_lucene_bm25_with_the_entry_settings(k1, b):
    bm25 = BM25Retriever(BM25Settings(k1=k1, b=b))
    query = "rivers of France flowing through Paris"
    expected = lucene_bm25(bm25.tokenize([query])[0], bm25.tokenize(DOCUMENTS), k1, b)
    scores, ids = bm25.search(DOCUMENTS, [query], depth=4)
    np.testing.assert_allclose(scores[0], expected[ids[0]], rtol=1e-5)
    assert list(ids[0]) == sorted(range(4), key=lambda i: (-expected[i], i))


def test_search_ties_by_position_pads_and_handles_queries_without_known_terms():
    bm25 = BM25Retriever()
    scores, ids = bm25.search(DOCUMENTS[:2], ["france", "the of", "xylophone"], depth=3)
    # "france" occurs once in each: the shorter document (1) first; the third slot is empty.
    assert list(ids[0]) == [1, 0, -1] and scores[0, 2] == -np.inf
    # No term of the collection: every document scores 0, in corpus order.
    assert list(ids[1][:2]) == [0, 1] and list(scores[1][:2]) == [0.0, 0.0]
    assert list(ids[2][:2]) == [0, 1]
    # Equal scores at the cut: the lowest positions are kept.
    _, ids = bm25.search(DOCUMENTS, ["xylophone"], depth=2)
    assert list(ids[0]) == [0, 1]


def test_units_are_scored_with_the_document_sentences_as_the_collection():
    bm25 = BM25Retriever()
    document = " ".join(DOCUMENTS)
    spans, start = [], 0
    for sentence in DOCUMENTS:
        spans.append((start, start + len(sentence)))
        start += len(sentence) + 1
    (scores,) = bm25.score_units(["which river flows through Lyon"], [document], [spans])
    expected = lucene_bm25(
        bm25.tokenize(["which river flows through Lyon"])[0], bm25.tokenize(DOCUMENTS), 0.9, 0.4
    )
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert int(np.argmax(scores)) == 3


def test_registry_lexical_kind(tmp_path):
    registry = load_registry(REPO_ROOT / "config" / "baselines.yaml")
    entry = registry["BM25"]
    assert entry.lexical and not entry.trained_by_suite and entry.pooling is None
    retriever = build_lexical(entry)
    assert retriever.settings == BM25Settings(k1=0.9, b=0.4) and retriever.name == "BM25"
    with pytest.raises(ValueError, match="encodes nothing; build_lexical"):
        build_encoder(entry, {}, "qar", None)
    with pytest.raises(ConfigError, match="MiniLM: kind 'sentence_transformers' is not lexical"):
        build_lexical(registry["MiniLM"])
    # The schema: BM25 settings are checked, and a lexical model has no generation.
    data = load_yaml(REPO_ROOT / "config" / "baselines.yaml")
    data["models"]["BM25"]["bm25"]["stemmer"] = "klingon"
    data["models"]["BM25"]["tasks"] = ["retrieval", "generation"]
    with pytest.raises(ConfigError) as err:
        validate_against_schema(data, REGISTRY_SCHEMA, "my_registry.yaml")
    assert "models.BM25.bm25.stemmer: 'klingon'" in str(err.value)
    assert "models.BM25.tasks[1]: 'generation'" in str(err.value)

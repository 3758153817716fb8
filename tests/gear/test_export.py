"""What a trained GeAR folder offers beyond the suite: the sentence-transformers export and the
model card (fixture ``trained_tiny_gear``: a real ``train_gear`` run)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gear.inference import GearEncoder

pytestmark = pytest.mark.usefixtures("one_thread")

# The long query passes max_query_tokens (16) and the long document max_document_tokens (64), so
# truncation is checked too; "[SEP]" and "[DEC]" must be encoded as text, as the suite does.
QUERIES = [
    "who wrote hamlet?",
    "what [SEP] is [DEC] this",
    "which river flows north through Germany and the Netherlands to the North Sea, and where does it begin?",
]
DOCUMENTS = [
    "Hamlet is a tragedy written by William Shakespeare.",
    "x",
    "The Rhine is a European river that begins in the Swiss canton of Graubunden and flows north "
    "through Germany and the Netherlands to the North Sea. " * 3,
]


def test_sentence_transformer_gives_the_suites_gear_embeddings(trained_tiny_gear):
    from sentence_transformers import SentenceTransformer

    suite = GearEncoder(trained_tiny_gear, device="cpu")
    exported = SentenceTransformer(str(trained_tiny_gear), device="cpu")
    queries, documents = exported.encode_query(QUERIES), exported.encode_document(DOCUMENTS)
    np.testing.assert_allclose(queries, suite.encode_queries(QUERIES), atol=1e-5)
    np.testing.assert_allclose(documents, suite.encode_documents(DOCUMENTS), atol=1e-5)
    np.testing.assert_allclose(exported.encode(DOCUMENTS), documents, atol=1e-6)  # default route
    # The routes differ: the same long text is cut at 16 tokens as a query, 64 as a document.
    assert np.abs(exported.encode_query(DOCUMENTS[2:]) - exported.encode_document(DOCUMENTS[2:])).max() > 1e-3


def test_trained_folder_has_a_model_card_with_the_runs_facts(trained_tiny_gear, tiny_bert_path):
    card = (trained_tiny_gear / "README.md").read_text(encoding="utf-8")
    train_config = json.loads((trained_tiny_gear / "train_config.json").read_text())
    log = [json.loads(line) for line in (trained_tiny_gear / "train_log.jsonl").read_text().splitlines()]
    assert card.startswith("---\nlibrary_name: ")
    assert f"**Base model:** `{tiny_bert_path}`" in card
    assert f"| triples | {train_config['data']['triples']} |" in card and "| triples | 24 |" in card
    assert f"| SHA-256 | {train_config['data']['sha256']} |" in card
    assert "| optimizer steps | 3 of 3 |" in card and "| localization layer (1-based) | 2 |" in card
    assert "| learning rate | 0.0001 |" in card
    final = [r for r in log if r["event"] == "epoch"][-1]
    assert f"| final epoch mean cl_loss | {final['cl_loss']:.6g} |" in card
    assert f"| final epoch mean lm_loss | {final['lm_loss']:.6g} |" in card
    assert "## Not in this card" in card and "Evaluation results" in card

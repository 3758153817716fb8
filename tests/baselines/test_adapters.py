"""Adapters against a direct transformers computation on the MiniLM weights (a BERT).

Every adapter kind is pointed at the MiniLM folder; the expected vectors are computed one text at
a time with AutoModel (no padding), with the prefix, pooling and truncation written out by hand.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from baselines.adapters import (
    EncoderSpec,
    FlagEmbeddingEncoder,
    HFEncoder,
    SentenceTransformerEncoder,
    flag_embedding_problem,
    spec_fingerprint,
)
from tests.baselines.helpers import reference_embeddings

BGE_INSTRUCTION = "Represent this sentence for searching relevant passages: "
LONG = " ".join(["the normans were a people who gave their name to normandy in northern france"] * 6)
QUERIES = ["who wrote hamlet", "what is the capital of france", LONG]
DOCUMENTS = ["Hamlet is a tragedy by William Shakespeare.", LONG, "Paris is the capital of France."]
MAX_LENGTH = 24  # shorter than LONG (with or without prefix), so truncation is exercised


def spec(path, **changes) -> EncoderSpec:
    base = EncoderSpec("Test", str(path), None, "mean", "", "", MAX_LENGTH)
    return dataclasses.replace(base, **changes)


def assert_matches(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    np.testing.assert_allclose(np.linalg.norm(actual, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(actual, expected, atol=2e-5)


def test_hf_encoder_mean_pooling_with_e5_prefixes(minilm_path, minilm_reference):
    encoder = HFEncoder(spec(minilm_path, query_prefix="query: ", document_prefix="passage: "), device="cpu")
    queries = encoder.encode_queries(QUERIES, batch_size=2)
    documents = encoder.encode_documents(DOCUMENTS, batch_size=2)
    assert_matches(
        queries, reference_embeddings(minilm_reference, ["query: " + q for q in QUERIES], "mean", MAX_LENGTH)
    )
    assert_matches(
        documents,
        reference_embeddings(minilm_reference, ["passage: " + d for d in DOCUMENTS], "mean", MAX_LENGTH),
    )
    # the prefix really is part of the input
    unprefixed = reference_embeddings(minilm_reference, QUERIES[:1], "mean", MAX_LENGTH)
    assert not np.allclose(queries[:1], unprefixed, atol=1e-3)


def test_hf_encoder_cls_pooling(minilm_path, minilm_reference):
    encoder = HFEncoder(spec(minilm_path, pooling="cls"), device="cpu")
    assert_matches(
        encoder.encode_documents(DOCUMENTS),
        reference_embeddings(minilm_reference, DOCUMENTS, "cls", MAX_LENGTH),
    )


#: FlagEmbedding 1.4.2 does not import under transformers 5 (tests/baselines/test_flag_embedding_env.py)
needs_flag_embedding = pytest.mark.skipif(
    flag_embedding_problem() is not None, reason=f"{flag_embedding_problem()}"
)


@needs_flag_embedding
def test_flag_embedding_bge_instruction_on_queries_only_and_cls(minilm_path, minilm_reference):
    encoder = FlagEmbeddingEncoder(
        spec(minilm_path, pooling="cls", query_prefix=BGE_INSTRUCTION), device="cpu"
    )
    queries = encoder.encode_queries(QUERIES, batch_size=2)
    documents = encoder.encode_documents(DOCUMENTS, batch_size=2)
    assert_matches(
        queries,
        reference_embeddings(minilm_reference, [BGE_INSTRUCTION + q for q in QUERIES], "cls", MAX_LENGTH),
    )
    assert_matches(documents, reference_embeddings(minilm_reference, DOCUMENTS, "cls", MAX_LENGTH))


def test_sentence_transformers_applies_configured_prefix_and_own_pooling(minilm_path, minilm_reference):
    encoder = SentenceTransformerEncoder(spec(minilm_path, query_prefix="query: "), device="cpu")
    assert_matches(
        encoder.encode_queries(QUERIES, batch_size=2),
        reference_embeddings(minilm_reference, ["query: " + q for q in QUERIES], "mean", MAX_LENGTH),
    )
    assert_matches(
        encoder.encode_documents(DOCUMENTS),
        reference_embeddings(minilm_reference, DOCUMENTS, "mean", MAX_LENGTH),
    )


def test_sentence_transformers_pooling_must_match_the_entry(minilm_path):
    with pytest.raises(ValueError, match=r"registry entry Test: pooling 'cls'.*pools with \['mean'\]"):
        SentenceTransformerEncoder(spec(minilm_path, pooling="cls"), device="cpu")


def test_length_sorted_batching_returns_rows_in_input_order(minilm_path):
    encoder = HFEncoder(spec(minilm_path, max_length=64), device="cpu")
    texts = [
        "a",
        LONG,
        "a medium sized sentence about bees",
        "xy",
        "another text of some middling length here",
    ]
    batched = encoder.encode_documents(texts, batch_size=2)
    one_by_one = np.concatenate([encoder.encode_documents([text], batch_size=1) for text in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=2e-5)
    np.testing.assert_allclose(encoder.encode_documents(texts[::-1], batch_size=3)[::-1], batched, atol=2e-5)


@pytest.mark.parametrize(
    "adapter",
    [HFEncoder, SentenceTransformerEncoder, pytest.param(FlagEmbeddingEncoder, marks=needs_flag_embedding)],
)
def test_empty_input_gives_an_empty_matrix(minilm_path, adapter):
    encoder = adapter(
        spec(minilm_path, pooling="cls" if adapter is FlagEmbeddingEncoder else "mean"), device="cpu"
    )
    assert encoder.encode_queries([]).shape == (0, 384)
    assert encoder.encode_documents([]).dtype == np.float32


@pytest.mark.parametrize("adapter", [HFEncoder, SentenceTransformerEncoder])
def test_max_length_beyond_the_model_positions_fails(minilm_path, adapter):
    with pytest.raises(ValueError, match="registry entry Test: max_length 1024 exceeds the 512 positions"):
        adapter(spec(minilm_path, max_length=1024), device="cpu")


def test_fingerprint_changes_with_every_setting(minilm_path, tmp_path):
    base = spec(minilm_path)
    variants = [
        base,
        dataclasses.replace(base, query_prefix="query: "),
        dataclasses.replace(base, document_prefix="passage: "),
        dataclasses.replace(base, pooling="cls"),
        dataclasses.replace(base, max_length=MAX_LENGTH + 1),
        dataclasses.replace(base, revision="abc"),
        dataclasses.replace(base, path=str(tmp_path)),
    ]
    prints = [spec_fingerprint("hf_encoder", item, "float32") for item in variants]
    assert len(set(prints)) == len(prints)
    assert spec_fingerprint("hf_encoder", base, "float32") == prints[0]  # deterministic
    assert spec_fingerprint("flag_embedding", base, "float32") != prints[0]
    assert spec_fingerprint("hf_encoder", base, "bfloat16") != prints[0]
    # the registry name is not part of it
    assert spec_fingerprint("hf_encoder", dataclasses.replace(base, name="Other"), "float32") == prints[0]


def test_fingerprint_follows_the_weights_file(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"0" * 10)
    before = spec_fingerprint("sbert_rt", spec(folder), "float32")
    weights.write_bytes(b"0" * 11)  # retrained in place
    assert spec_fingerprint("sbert_rt", spec(folder), "float32") != before


def test_adapters_report_their_settings_in_the_fingerprint(minilm_path):
    plain = HFEncoder(spec(minilm_path), device="cpu")
    prefixed = HFEncoder(spec(minilm_path, query_prefix="query: "), device="cpu")
    assert plain.fingerprint() != prefixed.fingerprint()
    assert plain.fingerprint() == spec_fingerprint("hf_encoder", spec(minilm_path), "float32")

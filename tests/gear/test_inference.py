"""Using a GeAR model: bi-encoder, unit localization from cross-attention, generation."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

import gear.inference.encoder
from gear.encoding import length_sorted_order
from gear.inference import (
    GearEncoder,
    LocalizationConfig,
    beam_search,
    generate,
    greedy_decode,
    load_gear,
    localize_units,
    scores_of_units,
    token_weights,
    unit_scores,
)
from gear.inference.encoder import TOKENIZER_THREAD_NAME, _tokenised_batches
from gear.model.tokens import DOCUMENT_PAD_MULTIPLE, TEXT_PAD_MULTIPLE, encode_texts

pytestmark = pytest.mark.usefixtures("one_thread")

DOCUMENT = (
    "The Normans were the people who gave their name to Normandy. "
    "They descended from Norse raiders from Denmark, Iceland and Norway. "
    "Their identity emerged in the first half of the 10th century and evolved over the following centuries. "
    "Their language was later replaced by French."
)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for end in [i + 1 for i, ch in enumerate(text) if ch == "."]:
        spans.append((start, end))
        start = end + 1
    return spans


def test_scores_of_units_hand_built():
    # tokens: [CLS] t1 t2 | t3 | t4 (gap) | t5 [SEP] pad ; units: [0,10) [11,20) [30,40) [50,60)
    offsets = np.array([[0, 0], [0, 4], [5, 9], [11, 19], [21, 25], [30, 35], [0, 0]])
    special = np.array([True, False, False, False, False, False, True])
    weights = np.array([0.9, 0.1, 0.2, 0.3, 0.8, 0.4, 0.7, 0.0])  # one more: padding position
    units = [(11, 20), (0, 10), (30, 40), (50, 60)]  # any order
    np.testing.assert_allclose(
        scores_of_units(weights, offsets, special, units, "sum"), [0.3, 0.3, 0.4, -np.inf]
    )
    np.testing.assert_allclose(
        scores_of_units(weights, offsets, special, units, "mean"), [0.3, 0.15, 0.4, -np.inf]
    )
    np.testing.assert_allclose(
        scores_of_units(weights, offsets, special, units, "max"), [0.3, 0.2, 0.4, -np.inf]
    )
    with pytest.raises(ValueError, match="overlap"):
        scores_of_units(weights, offsets, special, [(0, 12), (11, 20)], "sum")


def test_localization_config_is_validated():
    assert LocalizationConfig(layer=10).unit_reduction == "sum"
    with pytest.raises(ValueError, match="1-based"):
        LocalizationConfig(layer=0)
    with pytest.raises(ValueError, match="head_reduction"):
        LocalizationConfig(layer=1, head_reduction="median")


@pytest.fixture(scope="module")
def tiny(tiny_gear_path):
    return load_gear(tiny_gear_path, device="cpu")


def test_unit_scores_sum_token_weights_and_respect_truncation(tiny):
    model, tokenizer = tiny
    # 32 tokens ([CLS] + 30 + [SEP]) end inside DOCUMENT's third sentence; the fourth is cut off
    assert model.config.max_document_tokens == 32
    units = sentence_spans(DOCUMENT)
    long_tail = DOCUMENT + " " + "Extra words." * 1
    queries = ["Where did the Norse come from?", "Who gave their name to Normandy?"]
    documents = [DOCUMENT, long_tail]
    unit_lists = [units, sentence_spans(long_tail)]
    localization = LocalizationConfig(layer=2)
    scores = unit_scores(model, tokenizer, queries, documents, unit_lists, [1, 2], localization, batch_size=1)
    assert set(scores) == {1, 2}
    first = scores[2][0]
    assert first.shape == (4,) and np.isfinite(first[:3]).all() and first[3] == -np.inf
    assert scores[2][1][-1] == -np.inf
    assert not np.allclose(scores[1][0][:3], first[:3])  # each layer its own attention

    weights = token_weights(model, tokenizer, queries[0], DOCUMENT, localization)
    assert len(weights.tokens) == len(weights.offsets) == len(weights.weights) == 30  # 32 minus [CLS], [SEP]
    assert "[CLS]" not in weights.tokens and "[SEP]" not in weights.tokens
    starts = np.array([s for s, _ in weights.offsets])
    for index, (start, end) in enumerate(units[:3]):
        inside = (starts >= start) & (starts < end)
        assert first[index] == pytest.approx(float(weights.weights[inside].sum()), rel=1e-5)
    assert DOCUMENT[weights.offsets[1][0] : weights.offsets[1][1]].lower() == weights.tokens[1]

    batched = unit_scores(model, tokenizer, queries, documents, unit_lists, [2], localization, batch_size=2)
    np.testing.assert_allclose(batched[2][0], first, rtol=1e-5)
    maxed = unit_scores(
        model,
        tokenizer,
        queries[:1],
        documents[:1],
        unit_lists[:1],
        [2],
        LocalizationConfig(layer=2, head_reduction="max", query_reduction="max", unit_reduction="max"),
    )
    assert maxed[2][0][0] <= 1.0 and maxed[2][0][0] > first[0] / 20
    with pytest.raises(ValueError, match=r"outside 1\.\.2"):
        unit_scores(model, tokenizer, queries, documents, unit_lists, [3], localization)


def test_uniform_attention_is_exactly_the_unit_length_ranking(tiny):
    """With the fusion encoder's query projection zeroed, every query token attends uniformly: the
    localization scores are then the units' token counts (the ``uniform`` reference) scaled by
    1 / document length, and the normalised entropy is 1. The trained model's is not."""
    import copy

    model, tokenizer = tiny
    queries = ["Where did the Norse come from?", "Who gave their name to Normandy?"]
    documents = [DOCUMENT, "Short one. A much longer second sentence follows it here."]
    units = [sentence_spans(d) for d in documents]
    localization = LocalizationConfig(layer=2)
    flat = copy.deepcopy(model)
    with torch.no_grad():
        for layer in flat.query_encoder.layers:
            layer.cross_attention.query.weight.zero_()
            layer.cross_attention.query.bias.zero_()
    found = localize_units(flat, tokenizer, queries, documents, units, [1, 2], localization)
    for i in range(2):
        reached = np.isfinite(found.uniform[i])
        assert found.uniform[i][0] > 1 and (found.uniform[i][~reached] == -np.inf).all()
        ratio = found.by_layer[2][i][reached] / found.uniform[i][reached]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)
        np.testing.assert_allclose(found.entropy[1][i], 1.0, atol=1e-5)
    assert found.uniform[1].tolist() == [3.0, 9.0]  # tokens of "short one." and "a much ... here."
    trained = localize_units(model, tokenizer, queries, documents, units, [2], localization)
    assert (trained.entropy[2] < 1.0).all() and trained.uniform[0].tolist() == found.uniform[0].tolist()


def test_generate_returns_strings_and_greedy_equals_one_beam(tiny):
    model, tokenizer = tiny
    queries = ["Where did the Norse come from?", "What did the Normans name?", "When did it emerge?"]
    documents = [DOCUMENT, DOCUMENT[:80], DOCUMENT[60:]]
    texts = generate(model, tokenizer, queries, documents, max_new_tokens=5, batch_size=2)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    assert generate(model, tokenizer, queries, documents, max_new_tokens=5, num_beams=3)[0] is not None

    torch.manual_seed(0)
    fused = torch.randn(3, 7, model.config.hidden_size)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, 4:] = 0
    greedy = greedy_decode(model, fused, mask, max_new_tokens=6)
    assert greedy.shape == (3, 6)
    assert torch.equal(beam_search(model, fused, mask, max_new_tokens=6, num_beams=1), greedy)
    beams = beam_search(model, fused, mask, max_new_tokens=6, num_beams=4)
    assert beams.shape[0] == 3 and beams.shape[1] <= 6


def test_beam_search_finds_a_better_or_equal_sequence(tiny):
    """Beam search's best hypothesis scores at least as high as the greedy one."""
    model, _ = tiny
    torch.manual_seed(1)
    fused = torch.randn(2, 5, model.config.hidden_size)
    mask = torch.ones(2, 5, dtype=torch.long)

    def log_prob(sequence):
        total, cache, last = torch.zeros(2), None, torch.full((2, 1), model.config.decoder_start_token_id)
        finished = torch.zeros(2, dtype=torch.bool)
        for t in range(sequence.shape[1]):
            logits, cache = model.decoder_step(last, fused if cache is None else None, mask, cache)
            step = torch.log_softmax(logits, -1).gather(1, sequence[:, t : t + 1])[:, 0]
            total += torch.where(finished, 0.0, step)
            finished |= sequence[:, t] == model.config.eos_token_id
            last = sequence[:, t : t + 1]
        return total

    with torch.no_grad():
        greedy = greedy_decode(model, fused, mask, 4)
        beam = beam_search(model, fused, mask, 4, num_beams=5)
        assert (log_prob(beam) >= log_prob(greedy) - 1e-5).all()


def test_gear_encoder_embeddings(tiny_gear_path):
    encoder = GearEncoder(tiny_gear_path, device="cpu")
    docs = encoder.encode_documents([DOCUMENT, "short text", DOCUMENT[:50]], batch_size=2)
    assert docs.shape == (3, 32) and docs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, rtol=1e-5)
    alone = encoder.encode_documents(["short text"])
    np.testing.assert_allclose(alone[0], docs[1], atol=1e-5)  # padding in a batch changes nothing
    queries = encoder.encode_queries(["who were the normans?"])
    assert queries.shape == (1, 32)
    assert encoder.fingerprint() == GearEncoder(tiny_gear_path, device="cpu").fingerprint()
    assert encoder.fingerprint().startswith("gear:")


# --------------------------------------------------------------------------------------------
# GearEncoder's encoding path: tokenising ahead in a thread, vectors kept on the device
# --------------------------------------------------------------------------------------------
TEXTS = [
    DOCUMENT,
    DOCUMENT[:50],
    "short text",
    "who were the normans?",
    DOCUMENT[100:],
    "a",
    DOCUMENT + " " + DOCUMENT,
    "Normandy",
    DOCUMENT[:120],
    "Their language was later replaced by French.",
    "x y z",
    DOCUMENT[30:90],
]


class TokenizerFailure(RuntimeError):
    pass


class CountingTokenizer:
    """The real tokenizer, counting calls and their threads; raises on call ``fail_on`` (1-based)."""

    def __init__(self, inner, fail_on: int | None = None):
        self.inner, self.fail_on = inner, fail_on
        self.threads: list[str] = []

    def __call__(self, *args, **kwargs):
        self.threads.append(threading.current_thread().name)
        if len(self.threads) == self.fail_on:
            raise TokenizerFailure(f"tokenizer failed on call {self.fail_on}")
        return self.inner(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def producer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == TOKENIZER_THREAD_NAME]


def reference_vectors(encoder: GearEncoder, texts, batch_size: int, queries: bool) -> np.ndarray:
    """The encoding path before prefetching: tokenise, embed and copy to the host batch by batch."""
    cfg = encoder.model.config
    max_length = cfg.max_query_tokens if queries else cfg.max_document_tokens
    multiple = TEXT_PAD_MULTIPLE if queries else DOCUMENT_PAD_MULTIPLE
    embed = encoder.model.embed_queries if queries else encoder.model.embed_documents
    out = np.zeros((len(texts), cfg.hidden_size), dtype=np.float32)
    order = length_sorted_order([len(t) for t in texts])
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = encode_texts(encoder.tokenizer, [texts[i] for i in rows], max_length, multiple)
        batch = {key: value.to(encoder.device) for key, value in batch.items()}
        cuda = encoder.device.type == "cuda"
        with torch.inference_mode(), torch.autocast(encoder.device.type, torch.bfloat16, enabled=cuda):
            out[rows] = embed(batch["input_ids"], batch["attention_mask"]).float().cpu().numpy()
    return out


@pytest.fixture()
def encoder(tiny_gear_path):
    return GearEncoder(tiny_gear_path, device="cpu")


@pytest.mark.parametrize("group_texts", [1, 5, 1024])
@pytest.mark.parametrize("batch_size", [1, 4, 5, 32])
def test_tokenised_batches_are_encode_texts_batches(tiny, batch_size, group_texts):
    _, tokenizer = tiny
    order = length_sorted_order([len(t) for t in TEXTS])
    batches = list(
        _tokenised_batches(
            tokenizer, TEXTS, order, batch_size, 32, DOCUMENT_PAD_MULTIPLE, group_texts, pin=False
        )
    )
    assert [start for start, _ in batches] == list(range(0, len(TEXTS), batch_size))
    for start, batch in batches:
        expected = encode_texts(
            tokenizer, [TEXTS[i] for i in order[start : start + batch_size]], 32, DOCUMENT_PAD_MULTIPLE
        )
        assert batch.keys() == expected.keys()
        for key in expected:
            assert batch[key].dtype == expected[key].dtype and batch[key].is_contiguous()
            assert torch.equal(batch[key], expected[key]), (start, key)


@pytest.mark.parametrize("queries", [False, True])
@pytest.mark.parametrize("batch_size", [1, 4, 5, 32])  # 12 texts: divides, does not, one batch
def test_prefetch_gives_the_sequential_vectors(encoder, batch_size, queries):
    encode = encoder.encode_queries if queries else encoder.encode_documents
    reference = reference_vectors(encoder, TEXTS, batch_size, queries)
    for group in (1024, 3):  # one tokenizer call for all; several, not whole batches
        encoder.tokenize_group = group
        encoder.prefetch = True
        ahead = encode(TEXTS, batch_size=batch_size)
        encoder.prefetch = False
        inline = encode(TEXTS, batch_size=batch_size)
        assert ahead.dtype == np.float32 and ahead.shape == (len(TEXTS), encoder.model.config.hidden_size)
        assert np.array_equal(ahead, inline) and np.array_equal(ahead, reference)
    assert not producer_threads()


def test_vectors_reach_the_host_in_chunks(encoder, monkeypatch):
    # a device buffer of 3 vectors: with batches of 2 it is flushed after every batch
    monkeypatch.setattr(
        gear.inference.encoder, "_DEVICE_CHUNK_BYTES", 3 * encoder.model.config.hidden_size * 4
    )
    expected = reference_vectors(encoder, TEXTS, 2, queries=False)
    for batch_size in (2, 5):  # 5: one batch per buffer
        assert np.array_equal(
            encoder.encode_documents(TEXTS, batch_size=batch_size),
            reference_vectors(encoder, TEXTS, batch_size, queries=False),
        )
    assert np.array_equal(encoder.encode_documents(TEXTS, batch_size=2), expected)


def test_tokenising_runs_in_the_producer_thread_only_with_prefetch(encoder):
    counting = encoder.tokenizer = CountingTokenizer(encoder.tokenizer)
    encoder.tokenize_group = 4
    encoder.encode_documents(TEXTS, batch_size=2)
    assert counting.threads == [TOKENIZER_THREAD_NAME] * 4  # groups of 2 (first), 4, 4, 2 texts
    counting.threads.clear()
    encoder.prefetch = False
    encoder.encode_documents(TEXTS, batch_size=2)
    assert counting.threads == [threading.current_thread().name] * 4


@pytest.mark.parametrize("prefetch", [True, False])
def test_empty_input(encoder, prefetch):
    encoder.prefetch = prefetch
    for vectors in (encoder.encode_documents([]), encoder.encode_queries([], batch_size=3)):
        assert vectors.shape == (0, 32) and vectors.dtype == np.float32
    assert not producer_threads()


@pytest.mark.parametrize("fail_on", [1, 3])
def test_a_tokenizer_error_reaches_the_caller(encoder, fail_on):
    encoder.tokenizer = CountingTokenizer(encoder.tokenizer, fail_on=fail_on)
    encoder.tokenize_group = 2  # one batch per tokenizer call: 6 calls
    with pytest.raises(TokenizerFailure, match=f"tokenizer failed on call {fail_on}") as raised:
        encoder.encode_documents(TEXTS, batch_size=2)
    # the original traceback: it ends in the wrapper's __call__, run by the producer thread
    assert raised.traceback[-1].name == "__call__"
    assert encoder.tokenizer.threads[-1] == TOKENIZER_THREAD_NAME
    assert not producer_threads()
    encoder.tokenizer = encoder.tokenizer.inner  # the encoder still works afterwards
    assert np.array_equal(
        encoder.encode_documents(TEXTS, batch_size=2), reference_vectors(encoder, TEXTS, 2, False)
    )


def test_a_model_error_stops_the_producer(encoder, monkeypatch):
    calls = []
    embed = encoder.model.embed_documents

    def failing(input_ids, attention_mask):
        calls.append(len(input_ids))
        if len(calls) == 2:
            time.sleep(0.3)  # the producer fills the bounded queue and blocks on it
            raise MemoryError("out of memory (simulated)")
        return embed(input_ids, attention_mask)

    monkeypatch.setattr(encoder.model, "embed_documents", failing)
    counting = encoder.tokenizer = CountingTokenizer(encoder.tokenizer)
    encoder.tokenize_group = 1  # queue of 2 batches; 12 batches of 1 text
    with pytest.raises(MemoryError, match="simulated"):
        encoder.encode_documents(TEXTS, batch_size=1)
    assert calls == [1, 1]
    assert not producer_threads()
    assert len(counting.threads) == 5  # 2 consumed, 2 queued, 1 held by the blocked put: then it stopped
    encoder.tokenizer = counting.inner
    monkeypatch.undo()
    assert np.array_equal(
        encoder.encode_documents(TEXTS, batch_size=1), reference_vectors(encoder, TEXTS, 1, False)
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_encoding_pins_batches_and_matches_the_reference(tiny_gear_path, tiny, monkeypatch):
    _, tokenizer = tiny
    order = length_sorted_order([len(t) for t in TEXTS])
    batches = list(_tokenised_batches(tokenizer, TEXTS, order, 4, 32, DOCUMENT_PAD_MULTIPLE, 8, pin=True))
    assert all(value.is_pinned() for _, batch in batches for value in batch.values())
    encoder = GearEncoder(tiny_gear_path, device="cuda")
    for batch_size in (4, 5):
        reference = reference_vectors(encoder, TEXTS, batch_size, queries=False)
        ahead = encoder.encode_documents(TEXTS, batch_size=batch_size)
        encoder.prefetch = False
        inline = encoder.encode_documents(TEXTS, batch_size=batch_size)
        encoder.prefetch = True
        assert ahead.dtype == np.float32 and np.array_equal(ahead, inline)
        np.testing.assert_allclose(ahead, reference, atol=1e-6)
    monkeypatch.setattr(
        gear.inference.encoder, "_DEVICE_CHUNK_BYTES", 3 * encoder.model.config.hidden_size * 4
    )
    np.testing.assert_allclose(
        encoder.encode_queries(TEXTS, batch_size=2), reference_vectors(encoder, TEXTS, 2, True), atol=1e-6
    )
    assert not producer_threads()

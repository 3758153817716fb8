"""Using a GeAR model: bi-encoder, unit localization from cross-attention, generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gear.inference import (
    GearEncoder,
    LocalizationConfig,
    beam_search,
    generate,
    greedy_decode,
    load_gear,
    scores_of_units,
    token_weights,
    unit_scores,
)

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

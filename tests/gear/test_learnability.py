"""GeAR learns what the paper says it learns, on synthetic tasks, through the suite's own trainer.

Each test trains a tiny GeAR (random 2-layer BERT start) with ``gear.training.trainer.train_gear`` under
config/mini.yaml's cross-attention init and losses, then measures with the suite's localization,
generation and metrics (``gear.tools.learnability``). Each also has its broken-mechanism control: the
same training with every query paired with another query's document, which must stay near
chance, so that a pass cannot come from the query alone.
"""

from __future__ import annotations

import pytest

from gear.tools.learnability import ProbeSettings, run_probe

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("two_threads")]


def probe(tmp_path, mini_config, minilm_path, **settings):
    return run_probe(ProbeSettings(**settings), mini_config, tmp_path, minilm_path)


def test_document_reaches_the_decoder(tmp_path, mini_config, minilm_path):
    """(a) copy: the query names a category, the answer is the document's word of it."""
    result = probe(tmp_path, mini_config, minilm_path, task="copy", steps=500)
    assert result["initial"]["EM"] < 0.05, result
    assert result["trained"]["EM"] >= 0.95, result


def test_copy_fails_without_the_right_document(tmp_path, mini_config, minilm_path):
    """Control for (a): documents shuffled across queries, the category prior is all there is."""
    result = probe(tmp_path, mini_config, minilm_path, task="copy", steps=500, shuffle_documents=True)
    assert result["trained"]["EM"] < 0.3, result


def test_cross_attention_localizes_and_generates(tmp_path, mini_config, minilm_path):
    """(b) localization and (c) generation on documents of four sentences, held-out documents."""
    result = probe(tmp_path, mini_config, minilm_path, task="sentences", steps=600)
    initial, trained = result["initial"], result["trained"]
    # Before training nothing localizes: R@1 is at chance (0.25) and no better than unit length.
    assert initial["loc_R@1"] < 0.4, result
    assert trained["length_R@1"] < 0.4 and trained["random_R@1"] < 0.4, result
    assert trained["loc_R@1"] >= 0.90, result
    assert trained["EM"] >= 0.8, result
    assert trained["entropy"] < initial["entropy"], result


def test_localization_fails_without_the_right_document(tmp_path, mini_config, minilm_path):
    """Control for (b) and (c): with shuffled documents, attention has nothing to find."""
    result = probe(tmp_path, mini_config, minilm_path, task="sentences", steps=600, shuffle_documents=True)
    assert result["trained"]["loc_R@1"] < 0.45, result
    assert result["trained"]["EM"] < 0.1, result

"""The learnability probes' tasks and tiny model (gear.tools.learnability), without training."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from gear.tools.learnability import ProbeSettings, copy_task, sentence_task, tiny_bert


def test_task_vocabulary_tokenises_every_task_text_as_minilm_does(tmp_path, minilm_path):
    """The probes' small vocabulary changes no token: every query, document and target of both
    tasks tokenises to the same tokens as under MiniLM's (bert-base-uncased's) 30,522, none unknown."""
    folder = tiny_bert(tmp_path / "tiny", minilm_path, ProbeSettings())
    small = AutoTokenizer.from_pretrained(str(folder))
    full = AutoTokenizer.from_pretrained(str(minilm_path))
    assert len(small) < 200 and small.pad_token_id == 0
    rows = sentence_task(40, 1) + sentence_task(10, 2, filler_sentences=4) + copy_task(40, 1)
    for row in rows:
        for key in ("query", "document", "target"):
            tokens = small.tokenize(row[key])
            assert tokens == full.tokenize(row[key]) and "[UNK]" not in tokens, row[key]


def test_the_full_vocabulary_is_still_available(tmp_path, minilm_path):
    folder = tiny_bert(tmp_path / "tiny", minilm_path, ProbeSettings(vocabulary="tokenizer"))
    assert len(AutoTokenizer.from_pretrained(str(folder))) == 30522
    with pytest.raises(ValueError, match="vocabulary"):
        tiny_bert(tmp_path / "other", minilm_path, ProbeSettings(vocabulary="bpe"))

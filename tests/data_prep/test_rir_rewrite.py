"""RIR rewriting: candidate draw, the offline and transformers backends, the resumable cache."""

from __future__ import annotations

import pytest

from data_prep.rir.preprocess import preprocess_wikipedia, read_preprocessed
from data_prep.rir.rewrite import (
    KeywordBackend,
    RewriteCache,
    RewriteConfig,
    TransformersBackend,
    cache_key,
    keyword_query,
    rewrite_candidates,
    select_candidates,
)
from gear.io import read_jsonl


class CountingKeywords(KeywordBackend):
    """The real offline backend, recording which sentences it was asked for."""

    def __init__(self):
        self.asked: list[str] = []

    def rewrite(self, sentences, on_result):
        self.asked.extend(sentences)
        super().rewrite(sentences, on_result)


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory, module_config):
    import random

    from tests.data_prep.synthetic import make_article, write_wiki

    folder = tmp_path_factory.mktemp("rewrite")
    rng = random.Random(5)
    source = write_wiki(
        folder / "wiki.jsonl",
        [{"id": str(i), "url": "", "title": f"A{i}", "text": make_article(rng)} for i in range(4)],
    )
    data = module_config["data"]
    preprocess_wikipedia(
        source, folder / "pre.jsonl", folder / "s.json", data["rir"]["preprocess"], data["token_counter"]
    )
    return folder / "pre.jsonl"


@pytest.fixture(scope="module")
def module_config():
    from gear.config import load_config
    from tests.conftest import REPO_ROOT

    return load_config(REPO_ROOT / "config" / "mini.yaml")


def test_keyword_rule():
    assert (
        keyword_query("The Eiffel Tower was completed in 1889 in Paris.")
        == "Eiffel Tower, completed, 1889, Paris"
    )
    assert (
        keyword_query("In the U.S., the well-known mill (built 1820) closed.")
        == "U.S, well-known mill, built 1820, closed"
    )
    assert keyword_query("It is what it is.") == ""


def test_candidate_draw_is_seeded_per_document(preprocessed):
    documents = list(read_preprocessed(preprocessed))
    draws = [select_candidates(d, 3, seed=1) for d in documents]
    assert draws == [select_candidates(d, 3, seed=1) for d in reversed(documents)][::-1]
    assert all(len(draw) == 3 and set(draw) <= set(d.candidates) for draw, d in zip(draws, documents))
    assert draws != [select_candidates(d, 3, seed=2) for d in documents]


def test_rewrite_output_and_cache_resume(tmp_path, preprocessed, mini_config):
    cfg = RewriteConfig(**{**mini_config["data"]["rir"]["rewrite"], "batch_size": 2})
    backend = CountingKeywords()
    stats = rewrite_candidates(
        preprocessed, tmp_path / "rewrites.jsonl", tmp_path / "cache.jsonl", cfg, 42, backend=backend
    )
    rows = read_jsonl(tmp_path / "rewrites.jsonl")
    assert (
        stats["sentences"] == len(rows) == 12 and stats["sent_to_backend"] == 12 and stats["cache_hits"] == 0
    )
    assert all(row["rewrite"] == keyword_query(row["sentence"]) for row in rows)
    documents = {d.doc_id: d for d in read_preprocessed(preprocessed)}
    for row in rows:
        start, end = documents[row["doc_id"]].units[row["unit"]]
        assert documents[row["doc_id"]].text[start:end] == row["sentence"]

    # a rerun sends nothing
    again = CountingKeywords()
    assert (
        rewrite_candidates(
            preprocessed, tmp_path / "r2.jsonl", tmp_path / "cache.jsonl", cfg, 42, backend=again
        )["cache_hits"]
        == 12
    )
    assert (
        again.asked == []
        and (tmp_path / "r2.jsonl").read_bytes() == (tmp_path / "rewrites.jsonl").read_bytes()
    )

    # a crash cut the cache: the lost entries (and only they) are asked again
    lines = (tmp_path / "cache.jsonl").read_text().splitlines()
    (tmp_path / "cache.jsonl").write_text("\n".join(lines[:7]) + "\n" + lines[7][:20])
    resumed = CountingKeywords()
    stats = rewrite_candidates(
        preprocessed, tmp_path / "r3.jsonl", tmp_path / "cache.jsonl", cfg, 42, backend=resumed
    )
    assert stats["cache_hits"] == 7 and len(resumed.asked) == 5
    assert (tmp_path / "r3.jsonl").read_bytes() == (tmp_path / "rewrites.jsonl").read_bytes()
    assert len(RewriteCache(tmp_path / "cache.jsonl")) == 12

    # another prompt is another key
    other = CountingKeywords()
    cfg.prompt = "Write keywords."
    rewrite_candidates(preprocessed, tmp_path / "r4.jsonl", tmp_path / "cache.jsonl", cfg, 42, backend=other)
    assert len(other.asked) == 12


def test_cache_keys_cover_backend_prompt_and_sentence():
    keys = {
        cache_key(*parts)
        for parts in [("a", "p", "s"), ("b", "p", "s"), ("a", "q", "s"), ("a", "p", "t"), ("ap", "", "s")]
    }
    assert len(keys) == 5


@pytest.fixture(scope="module")
def tiny_causal_lm(tmp_path_factory, minilm_path):
    """A real Llama-architecture model with a tiny random config and the bert-base vocabulary."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny_lm")
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    tokenizer.eos_token = "[SEP]"
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("chat", [False, True])
def test_transformers_backend_generates_in_batches(tiny_causal_lm, chat, mini_config):
    cfg = RewriteConfig(
        **{
            **mini_config["data"]["rir"]["rewrite"],
            "backend": "transformers",
            "max_new_tokens": 5,
            "batch_size": 2,
        }
    )
    backend = TransformersBackend(cfg, str(tiny_causal_lm), device="cpu")
    if chat:
        backend.tokenizer.chat_template = "{% for m in messages %}[CLS] {{ m['content'] }} [SEP]{% endfor %}"
        assert backend._prompt("A sentence.").endswith("A sentence. [SEP]")
    else:
        assert backend._prompt("A sentence.") == f"{cfg.prompt}\nA sentence.\n"
    sentences = [
        "The mill was built in 1820.",
        "A much longer sentence about the old harbour of Ardmore and its ships.",
        "Short one.",
    ]
    results: dict[int, str] = {}
    backend.rewrite(sentences, results.__setitem__)
    assert sorted(results) == [0, 1, 2] and all(isinstance(r, str) for r in results.values())
    # batched generation with left padding gives what one-at-a-time generation gives
    alone: dict[int, str] = {}
    backend.rewrite(sentences[1:2], alone.__setitem__)
    assert alone[0] == results[1]
    backend.close()

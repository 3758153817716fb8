"""Point 5: a flaky LLM endpoint is survived (RIR query rewriting, ``data_prep.rir.rewrite``).

The endpoint is a real server process on loopback that follows a seeded script of faults
(``tests/reliability/llm_server.py``): timeouts, HTTP 500 / 503, 429 rate limits, malformed
JSON, answers without choices, dropped connections, a server that dies mid-run.

- :func:`test_mixed_faults_are_retried_and_every_sentence_arrives_once`: up to ``max_retries``
  faults of every kind before a sentence's answer; all 12 sentences end with the right rewrite,
  each cached exactly once, nothing taken from a failed answer.
- :func:`test_exhausted_retries_and_a_dying_server_keep_progress_and_resume`: a sentence that
  fails ``max_retries + 1`` times stops the run with an error naming the endpoint, the attempts and
  the last error; a rerun against a server that then dies mid-run fails the same way; the third
  run completes, and no sentence that was answered is ever sent again.

The client killed mid-run (pre-emption) is in ``test_atomic_outputs.py`` (Snakemake job killed
while it waits on the endpoint); single faults in isolation and a real llama.cpp server are in
``tests/data_prep/test_rir_http.py``.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from data_prep.rir.rewrite import RewriteConfig, RewriteError, rewrite_candidates
from gear.io import read_jsonl
from tests.data_prep.synthetic import make_article, write_wiki
from tests.reliability.conftest import RELIABILITY_SEED
from tests.reliability.llm_server import expected_rewrite, requests_seen, scripted_server

pytestmark = pytest.mark.slow

FAULTS = ["timeout", "500", "503", "429", "malformed", "no_choices", "drop"]
SENTENCES = 12  # 4 documents x 3 candidates (data.rir.rewrite.candidates_per_document)


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory, _mini_config) -> Path:
    from data_prep.rir.preprocess import preprocess_wikipedia

    folder = tmp_path_factory.mktemp("flaky")
    rng = random.Random(3)
    dump = write_wiki(
        folder / "wiki.jsonl",
        [{"id": str(i), "url": "", "title": f"A{i}", "text": make_article(rng)} for i in range(4)],
    )
    data = _mini_config["data"]
    out = folder / "preprocessed.jsonl"
    preprocess_wikipedia(dump, out, folder / "stats.json", data["rir"]["preprocess"], data["token_counter"])
    return out


def config(endpoint: str) -> RewriteConfig:
    return RewriteConfig(
        prompt="Write search keywords.",
        backend="openai",
        endpoint=endpoint,
        model="test-model",
        max_retries=3,
        timeout_s=0.3,
        backoff_s=0.01,
        batch_size=4,
        concurrency=1,  # one request at a time: request n of the script is well defined
        max_new_tokens=16,
    )


def answered(log: Path) -> list[str]:
    """Sentences the server answered with a usable rewrite."""
    return [r["sentence"] for r in requests_seen(log) if r["action"] == "ok"]


def test_mixed_faults_are_retried_and_every_sentence_arrives_once(tmp_path, preprocessed, caplog):
    rng = random.Random(RELIABILITY_SEED)
    failures = [3, 0, 1, 2, 1, 0, 1, 2, 0, 1, 1, 0]  # per sentence, at most max_retries
    rng.shuffle(failures)
    faults = FAULTS + rng.choices(FAULTS, k=sum(failures) - len(FAULTS))
    rng.shuffle(faults)
    script, taken = [], 0
    for count in failures:
        script += [*faults[taken : taken + count], "ok"]
        taken += count
    out, cache = tmp_path / "rewrites.jsonl", tmp_path / "cache.jsonl"
    with scripted_server(tmp_path, script, after="500") as (endpoint, log):
        stats = rewrite_candidates(preprocessed, out, cache, config(endpoint), 42)
        seen = requests_seen(log)
    note = f"GEAR_RELIABILITY_SEED={RELIABILITY_SEED}, script {script}"
    assert [r["action"] for r in seen] == script, note
    # each sentence is retried until its answer, then never asked again
    per_sentence = [r["sentence"] for r in seen]
    assert len(set(per_sentence)) == SENTENCES
    runs = [
        per_sentence[i] for i in range(len(per_sentence)) if i == 0 or per_sentence[i] != per_sentence[i - 1]
    ]
    assert len(runs) == SENTENCES, note
    rows = read_jsonl(out)
    assert len(rows) == SENTENCES and stats["sent_to_backend"] == SENTENCES
    assert all(r["rewrite"] == expected_rewrite(r["sentence"]) for r in rows), note
    cached = read_jsonl(cache)
    assert len(cached) == SENTENCES and len({c["key"] for c in cached}) == SENTENCES
    assert caplog.text.count("retry ") == sum(failures)


def test_exhausted_retries_and_a_dying_server_keep_progress_and_resume(tmp_path, preprocessed):
    out, cache = tmp_path / "rewrites.jsonl", tmp_path / "cache.jsonl"
    # 1. after four answers the server is overloaded (503): the fifth sentence fails 1 + max_retries
    # times, a clear error; the four answers are kept
    with scripted_server(tmp_path, ["ok"] * 4, after="503", name="overloaded") as (endpoint, log):
        with pytest.raises(RewriteError) as error:
            rewrite_candidates(preprocessed, out, cache, config(endpoint), 42)
        first = answered(log)
    message = str(error.value)
    assert endpoint in message and "failed 4 times" in message and "HTTP 503" in message
    assert "rerun to resume" in message
    assert not out.exists() and len(first) == 4
    assert [c["sentence"] for c in read_jsonl(cache)] == first

    # 2. the server answers two sentences, then dies on the third request
    with scripted_server(tmp_path, ["ok", "ok", "die"], name="dying") as (endpoint, log):
        with pytest.raises(
            RewriteError, match=r"failed 4 times \(last error: .*(refused|reset|closed|Disconnected)"
        ):
            rewrite_candidates(preprocessed, out, cache, config(endpoint), 42)
        second = answered(log)
    assert not out.exists() and len(second) == 2 and not set(second) & set(first)
    assert len(read_jsonl(cache)) == 6

    # 3. a healthy server: only the six sentences never answered are sent
    with scripted_server(tmp_path, [], name="healthy") as (endpoint, log):
        stats = rewrite_candidates(preprocessed, out, cache, config(endpoint), 42)
        third = [r["sentence"] for r in requests_seen(log)]
    assert stats["cache_hits"] == 6 and stats["sent_to_backend"] == 6
    assert len(third) == 6 and not set(third) & (set(first) | set(second))
    rows = read_jsonl(out)
    assert len(rows) == SENTENCES and all(r["rewrite"] == expected_rewrite(r["sentence"]) for r in rows)

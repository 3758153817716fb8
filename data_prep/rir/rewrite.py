"""RIR synthesis, step 2: rewriting candidate sentences into search queries (Appendix A, SPEC 3.2).

For each pre-processed document, ``candidates_per_document`` candidate sentences are drawn at
random (a generator seeded by the run's seed and the document id, so the draw does not depend on
file order or on other documents) and each is rewritten by a backend with the paper's prompt
(``data.rir.rewrite.prompt``). The prompt and the sentence go in one user message, the sentence on
a new line after the prompt (the paper does not show how it joined them).

Backends (``data.rir.rewrite.backend``):

- ``openai``: any OpenAI-compatible chat endpoint (``POST {endpoint}/chat/completions``); the
  paper's setup is vLLM serving Llama-3.1-70B-Instruct. Sentences are sent in batches of
  ``batch_size`` with at most ``concurrency`` requests in flight. A request is retried, after
  ``backoff_s * 2**attempt`` seconds (longer if the server's ``Retry-After`` asks, up to 60 s), on
  timeouts, connection errors, HTTP 5xx, HTTP 429 and malformed responses (not JSON, or no
  ``choices[0].message.content``), up to ``max_retries`` times; then :class:`RewriteError` says
  what failed. Other HTTP errors (400, 401, 404: a wrong model name, key or URL) fail at once.
  The API key, if any, is read from the environment variable named by ``api_key_env``.
- ``transformers``: a local causal LM (``model`` resolved like every model of the suite), batched
  generation with left padding, through the tokenizer's chat template when it has one.
- ``offline``: a deterministic keyword rewriter for runs with no LLM. Its rule: the sentence's
  words are split on white space and punctuation; stop words (:data:`STOP_WORDS`) and words with
  no letter or digit end a phrase; each maximal run of remaining words is one keyword phrase
  (in its original case); phrases are joined by ", ". "The Eiffel Tower was completed in 1889 in
  Paris." becomes "Eiffel Tower, completed, 1889, Paris".

Every result goes to a cache (JSON Lines in ``L.rir_work()``, one ``{key, sentence, rewrite}``
per line, appended and flushed as results arrive) keyed by a hash of the backend, its model, the
prompt and the sentence. A rerun sends nothing twice, and a crashed or failed run keeps every
result it got. A last line cut short by a crash is ignored when the cache is read.

Output: ``rewrites.jsonl``, one ``{doc_id, unit, sentence, rewrite}`` per selected candidate, in
the order of ``preprocessed.jsonl``, written atomically once every sentence has a rewrite.
"""

from __future__ import annotations

import abc
import concurrent.futures
import hashlib
import http.client
import json
import logging
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from data_prep.rir.preprocess import PreprocessedDocument, read_preprocessed
from gear.config import dataclass_from_mapping
from gear.hub import ModelSource, default_device
from gear.io import atomic_open

log = logging.getLogger(__name__)


class RewriteError(RuntimeError):
    """A backend could not rewrite a sentence; the message says why and what to check."""


@dataclass
class RewriteConfig:
    """``data.rir.rewrite``."""

    candidates_per_document: int = 3  # candidate sentences drawn per document (paper: 3)
    prompt: str = ""  # the paper's prompt, quoted in config
    backend: str = "offline"  # openai | transformers | offline
    endpoint: str = "http://localhost:8000/v1"  # OpenAI-compatible base URL (backend openai)
    model: str = "offline-keywords"  # model name sent to the endpoint, or the local model (transformers)
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the API key (may be unset)
    temperature: float = 0.0  # sampling temperature (0: greedy)
    max_new_tokens: int = 64  # longest rewrite
    batch_size: int = 16  # sentences handed to the backend at a time
    concurrency: int = 4  # HTTP requests in flight at once
    max_retries: int = 3  # retries of a failed HTTP request
    timeout_s: float = 30.0  # HTTP timeout per request
    backoff_s: float = 0.5  # first retry delay, doubled each retry


def user_message(prompt: str, sentence: str) -> str:
    """The one user message: the paper's prompt, then the sentence on a new line."""
    return f"{prompt}\n{sentence}"


# --------------------------------------------------------------------------------------------
# backends


class RewriteBackend(abc.ABC):
    """Rewrites sentences into queries."""

    #: identifies the backend and model in cache keys
    identity: str

    @abc.abstractmethod
    def rewrite(self, sentences: Sequence[str], on_result: Callable[[int, str], None]) -> None:
        """Rewrite ``sentences``, calling ``on_result(index, rewrite)`` as each one is done.

        Raises:
            RewriteError: some sentence could not be rewritten (those done were reported).
        """

    def close(self) -> None:  # noqa: B027 (optional hook: most backends hold nothing)
        """Release resources (threads, model memory)."""


STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them themselves
    then there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves which whose
    whereas although though however thus therefore later many much several among within without
    upon via per since""".split()
)
_TOKEN = re.compile(r"[^\W_](?:[\w'’.\-]*[^\W_])?|[^\w\s]")


class KeywordBackend(RewriteBackend):
    """The deterministic offline rewriter (rule in the module docstring)."""

    identity = "offline:keywords-v1"

    def rewrite(self, sentences: Sequence[str], on_result: Callable[[int, str], None]) -> None:
        for index, sentence in enumerate(sentences):
            on_result(index, keyword_query(sentence))


def keyword_query(sentence: str) -> str:
    """Keyword phrases of ``sentence`` joined by ", " (see the module docstring)."""
    phrases: list[str] = []
    current: list[str] = []
    for token in _TOKEN.findall(sentence):
        if any(c.isalnum() for c in token) and token.lower() not in STOP_WORDS:
            current.append(token)
        elif current:
            phrases.append(" ".join(current))
            current = []
    if current:
        phrases.append(" ".join(current))
    return ", ".join(phrases)


class _Cancelled(Exception):
    pass


class OpenAIChatBackend(RewriteBackend):
    """An OpenAI-compatible ``/chat/completions`` endpoint, with retries and a concurrency limit.

    Args:
        cfg: the rewrite config (endpoint, model, prompt, temperature, max_new_tokens,
            concurrency, max_retries, timeout_s, backoff_s, api_key_env).
    """

    def __init__(self, cfg: RewriteConfig):
        self.cfg = cfg
        self.url = cfg.endpoint.rstrip("/") + "/chat/completions"
        self.identity = f"openai:{cfg.model}:t={cfg.temperature}:max={cfg.max_new_tokens}"
        self._headers = {"Content-Type": "application/json"}
        key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=cfg.concurrency, thread_name_prefix="rewrite"
        )
        self._stop = threading.Event()

    def _request(self, sentence: str) -> str:
        body = json.dumps(
            {
                "model": self.cfg.model,
                "messages": [{"role": "user", "content": user_message(self.cfg.prompt, sentence)}],
                "temperature": self.cfg.temperature,
                "max_tokens": self.cfg.max_new_tokens,
            }
        ).encode("utf-8")
        last = "no attempt made"
        for attempt in range(self.cfg.max_retries + 1):
            if self._stop.is_set():
                raise _Cancelled()
            retry_after = None
            try:
                request = urllib.request.Request(self.url, data=body, headers=self._headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.cfg.timeout_s) as response:
                    payload = response.read()
                return _parse_completion(payload)
            except urllib.error.HTTPError as err:
                detail = err.read()[:300].decode("utf-8", "replace") if err.fp else ""
                if err.code != 429 and err.code < 500:
                    raise RewriteError(
                        f"{self.url} answered HTTP {err.code} ({err.reason}): {detail!r}; check data.rir.rewrite "
                        f"endpoint, model ({self.cfg.model!r}) and the API key in ${self.cfg.api_key_env}"
                    ) from err
                last = f"HTTP {err.code} {err.reason} {detail!r}"
                retry_after = _retry_after(err.headers.get("Retry-After") if err.headers else None)
            except _MalformedResponse as err:
                last = f"malformed response: {err}"
            except (
                urllib.error.URLError,
                TimeoutError,
                ConnectionError,
                http.client.HTTPException,
                OSError,
            ) as err:
                reason = getattr(err, "reason", err)
                last = f"{type(err).__name__}: {reason}"
            if attempt < self.cfg.max_retries:
                delay = max(self.cfg.backoff_s * (2**attempt), retry_after or 0.0)
                log.warning(
                    "rewrite request failed (%s); retry %d/%d in %.2fs",
                    last,
                    attempt + 1,
                    self.cfg.max_retries,
                    delay,
                )
                if self._stop.wait(delay):
                    raise _Cancelled()
        raise RewriteError(
            f"{self.url}: a rewrite request failed {self.cfg.max_retries + 1} times (last error: {last}). "
            "Is the server up and the model loaded? Results obtained so far are kept in the cache; "
            "rerun to resume."
        )

    def rewrite(self, sentences: Sequence[str], on_result: Callable[[int, str], None]) -> None:
        self._stop.clear()
        futures = {self._pool.submit(self._request, s): i for i, s in enumerate(sentences)}
        error: BaseException | None = None
        try:
            for future in concurrent.futures.as_completed(futures):
                try:
                    result = future.result()
                except _Cancelled:
                    continue
                except BaseException as err:  # first failure: stop the rest, keep what is done
                    if error is None:
                        error = err
                        self._stop.set()
                        for pending in futures:
                            pending.cancel()
                    continue
                on_result(futures[future], result)
        finally:
            self._stop.set()
        if error is not None:
            raise error

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


class _MalformedResponse(ValueError):
    pass


def _parse_completion(payload: bytes) -> str:
    try:
        data = json.loads(payload.decode("utf-8"))
        content = data["choices"][0]["message"]["content"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, IndexError, TypeError) as err:
        raise _MalformedResponse(f"{type(err).__name__}: {payload[:200]!r}") from err
    if not isinstance(content, str):
        raise _MalformedResponse(f"content is {type(content).__name__}, not a string")
    return content


def _retry_after(value: str | None) -> float | None:
    try:
        return min(max(float(value), 0.0), 60.0) if value else None
    except ValueError:
        return None


class TransformersBackend(RewriteBackend):
    """A local causal LM through transformers, batched, chat template when the tokenizer has one.

    Args:
        cfg: the rewrite config (model, prompt, temperature, max_new_tokens, batch_size).
        model_path: the resolved local folder (or hub id where downloads are allowed).
        device: torch device; default CUDA when available.
    """

    def __init__(self, cfg: RewriteConfig, model_path: str, device: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg = cfg
        self.identity = f"transformers:{cfg.model}:t={cfg.temperature}:max={cfg.max_new_tokens}"
        self.device = device or default_device()
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.tokenizer.padding_side = "left"  # generation continues the right end of every row
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(self.device).eval()

    def _prompt(self, sentence: str) -> str:
        message = user_message(self.cfg.prompt, sentence)
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
            )
        return message + "\n"

    def rewrite(self, sentences: Sequence[str], on_result: Callable[[int, str], None]) -> None:
        import torch

        for start in range(0, len(sentences), self.cfg.batch_size):
            batch = [self._prompt(s) for s in sentences[start : start + self.cfg.batch_size]]
            # chat templates already hold the special tokens they need
            add_special = not getattr(self.tokenizer, "chat_template", None)
            inputs = self.tokenizer(
                batch,
                return_tensors="pt",
                padding=True,
                add_special_tokens=add_special,
                return_token_type_ids=False,
            ).to(self.device)
            sampling = self.cfg.temperature > 0
            with torch.no_grad():
                output = self.model.generate(
                    **inputs,
                    max_new_tokens=self.cfg.max_new_tokens,
                    do_sample=sampling,
                    temperature=self.cfg.temperature if sampling else None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            new_tokens = output[:, inputs["input_ids"].shape[1] :]
            for offset, text in enumerate(self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
                on_result(start + offset, text.strip())

    def close(self) -> None:
        del self.model


def make_backend(cfg: RewriteConfig, model_source: ModelSource | None = None) -> RewriteBackend:
    """The backend named by ``cfg.backend`` (``model_source`` resolves the transformers backend's model)."""
    if cfg.backend == "offline":
        return KeywordBackend()
    if cfg.backend == "openai":
        return OpenAIChatBackend(cfg)
    if cfg.backend == "transformers":
        return TransformersBackend(cfg, (model_source or ModelSource()).resolve(cfg.model))
    raise ValueError(
        f"data.rir.rewrite.backend: unknown backend {cfg.backend!r}; use openai, transformers or offline"
    )


# --------------------------------------------------------------------------------------------
# cache


def cache_key(identity: str, prompt: str, sentence: str) -> str:
    """Hash of backend and model, prompt and sentence: what determines a rewrite."""
    digest = hashlib.sha256()
    for part in (identity, prompt, sentence):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


class RewriteCache:
    """Append-only JSON Lines cache of rewrites, flushed after every result.

    Memory: one entry per cached sentence (about 200 bytes; 17M sentences at paper scale need
    a few GB).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.entries: dict[str, str] = {}
        self.ignored_lines = 0
        if self.path.exists():
            self._load()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def _load(self) -> None:
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    obj = json.loads(raw.decode("utf-8"))
                    self.entries[obj["key"]] = obj["rewrite"]
                except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
                    # a line cut short by a crash; its sentence is simply asked again
                    self.ignored_lines += 1
                    log.warning("%s:%d: unreadable cache line ignored", self.path, number)
        with open(self.path, "rb+") as handle:
            # a crash may have cut the last line short: later entries start on a fresh line
            end = handle.seek(0, os.SEEK_END)
            if end:
                handle.seek(end - 1)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")

    def get(self, key: str) -> str | None:
        return self.entries.get(key)

    def put(self, key: str, sentence: str, rewrite: str) -> None:
        with self._lock:
            self.entries[key] = rewrite
            self._handle.write(
                json.dumps({"key": key, "sentence": sentence, "rewrite": rewrite}, ensure_ascii=False) + "\n"
            )
            self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __len__(self) -> int:
        return len(self.entries)


# --------------------------------------------------------------------------------------------
# driver


def select_candidates(document: PreprocessedDocument, k: int, seed: int) -> list[int]:
    """``k`` of the document's candidate units, drawn at random (seeded by seed and doc_id), sorted."""
    rng = random.Random(f"{seed}:{document.doc_id}")
    candidates = list(document.candidates)
    return sorted(rng.sample(candidates, min(k, len(candidates))))


def _jobs(preprocessed: str | os.PathLike, k: int, seed: int) -> Iterator[tuple[str, int, str]]:
    for document in read_preprocessed(preprocessed):
        for unit in select_candidates(document, k, seed):
            start, end = document.units[unit]
            yield document.doc_id, unit, document.text[start:end]


def rewrite_candidates(
    preprocessed: str | os.PathLike,
    out_path: str | os.PathLike,
    cache_path: str | os.PathLike,
    rewrite_cfg: dict | RewriteConfig,
    seed: int,
    *,
    backend: RewriteBackend | None = None,
    model_source: ModelSource | None = None,
    block_sentences: int | None = None,
) -> dict:
    """Rewrite the selected candidates of every pre-processed document into queries.

    Args:
        preprocessed: ``preprocessed.jsonl`` from :func:`~data_prep.rir.preprocess.preprocess_wikipedia`.
        out_path: ``rewrites.jsonl`` (written atomically when all are done).
        cache_path: the persistent rewrite cache (JSON Lines).
        rewrite_cfg: ``data.rir.rewrite``.
        seed: the run's seed.
        backend: a backend to use instead of the one ``rewrite_cfg`` names (tests).
        model_source: where models come from (:class:`gear.hub.ModelSource`; transformers backend).
        block_sentences: sentences read ahead at a time (default 16 batches).

    Returns:
        statistics: sentences, cache hits, sentences sent, backend identity, wall time.

    Raises:
        RewriteError: the backend failed (results obtained before are in the cache).
    """
    started = time.time()
    cfg = (
        rewrite_cfg
        if isinstance(rewrite_cfg, RewriteConfig)
        else dataclass_from_mapping(RewriteConfig, rewrite_cfg, "data.rir.rewrite")
    )
    own_backend = backend is None
    backend = backend or make_backend(cfg, model_source)
    cache = RewriteCache(cache_path)
    block = block_sentences or cfg.batch_size * 16
    total = hits = sent = 0
    try:
        with (
            atomic_open(out_path) as out,
            tqdm(desc="rir rewriting", unit="sentence", mininterval=10) as progress,
        ):
            jobs = _jobs(preprocessed, cfg.candidates_per_document, seed)
            while True:
                chunk = [job for _, job in zip(range(block), jobs)]
                if not chunk:
                    break
                keys = [cache_key(backend.identity, cfg.prompt, sentence) for _, _, sentence in chunk]
                missing = [i for i, key in enumerate(keys) if cache.get(key) is None]
                unique_missing = list(dict.fromkeys(keys[i] for i in missing))
                sentence_of = {keys[i]: chunk[i][2] for i in missing}
                hits += len(chunk) - len(missing)
                for start in range(0, len(unique_missing), cfg.batch_size):
                    batch = unique_missing[start : start + cfg.batch_size]
                    sentences = [sentence_of[key] for key in batch]

                    def record(index: int, rewrite: str, batch=batch, sentences=sentences) -> None:
                        cache.put(batch[index], sentences[index], rewrite)

                    backend.rewrite(sentences, record)
                    sent += len(batch)
                for (doc_id, unit, sentence), key in zip(chunk, keys):
                    out.write(
                        json.dumps(
                            {"doc_id": doc_id, "unit": unit, "sentence": sentence, "rewrite": cache.get(key)},
                            ensure_ascii=False,
                        )
                        + "\n"
                    )
                total += len(chunk)
                progress.update(len(chunk))
    finally:
        cache.close()
        if own_backend:
            backend.close()
    stats = {
        "sentences": total,
        "cache_hits": hits,
        "sent_to_backend": sent,
        "backend": backend.identity,
        "cache": str(cache_path),
        "wall_time_s": round(time.time() - started, 1),
    }
    log.info("rir rewriting: %d sentences, %d from the cache, %d sent", total, hits, sent)
    return stats

"""A scripted OpenAI-compatible chat server for the flaky-endpoint tests (written for this suite).

It runs as a real process on loopback (``http.server``), and answers request ``n`` (1-based,
counted across the server's life) with ``script[n - 1]``, or with ``after`` once the script is
used up. Actions:

- ``ok``: a completion whose content is the first four long words of the sentence;
- ``slow``: ``ok`` after 0.2 s (requests overlap: the log shows the client's concurrency);
- ``timeout``: waits 2 s before answering (longer than the client's timeout);
- ``500`` / ``503``: a server error; ``429``: rate limited, with ``Retry-After: 0``; ``404``: no such
  model (not worth retrying);
- ``malformed``: HTTP 200 with a JSON body cut short; ``no_choices``: valid JSON without choices;
- ``drop``: closes the connection without an answer;
- ``hang``: never answers (a stuck server);
- ``die``: the server process exits at once (a crash in the middle of a run).

Every request is logged to a JSON Lines file as ``{"n", "action", "sentence", "max_in_flight"}``
before it is answered, so a test knows exactly what the client sent and how many requests it had
open at most so far.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

SERVER = r"""
import json, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

script, after, log_path = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
count, in_flight = [0], [0, 0]  # requests so far; open now, most open at once

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def done(self):
        # The request stops counting as open before its answer is sent: once the client has the
        # answer it may send its next request before this thread runs again.
        with lock:
            if self.open:
                self.open = False
                in_flight[0] -= 1

    def reply(self, code, body, headers=()):
        self.done()
        data = body.encode()
        self.send_response(code)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        sentence = body["messages"][-1]["content"].splitlines()[-1]
        with lock:
            count[0] += 1
            n = count[0]
            action = script[n - 1] if n <= len(script) else after
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
            self.open = True
            record = {"n": n, "action": action, "sentence": sentence, "max_in_flight": in_flight[1]}
            with open(log_path, "a") as log:
                log.write(json.dumps(record) + "\n")
        try:
            self.answer(action, sentence)
        finally:
            self.done()

    def answer(self, action, sentence):
        if action == "die":
            os._exit(1)
        if action == "hang":
            time.sleep(3600)
        if action == "drop":
            self.close_connection = True
            return
        if action == "timeout":
            time.sleep(2)
        if action == "slow":
            time.sleep(0.2)
        if action == "404":
            return self.reply(404, '{"error": "no such model"}')
        if action in ("500", "503"):
            return self.reply(int(action), '{"error": "overloaded"}')
        if action == "429":
            return self.reply(429, '{"error": "rate limited"}', [("Retry-After", "0")])
        if action == "malformed":
            return self.reply(200, '{"choices": [{"message": {"content": "cut')
        if action == "no_choices":
            return self.reply(200, '{"choices": []}')
        content = ", ".join([w.strip(".,") for w in sentence.split() if len(w) > 3][:4])
        self.reply(200, json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}))

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def expected_rewrite(sentence: str) -> str:
    """What the server's ``ok`` answers for ``sentence``."""
    return ", ".join([w.strip(".,") for w in sentence.split() if len(w) > 3][:4])


@contextlib.contextmanager
def scripted_server(
    folder: Path, script: list[str], after: str = "ok", name: str = "server"
) -> Iterator[tuple[str, Path]]:
    """Start the server; yield ``(endpoint, request log)``; kill it on exit."""
    log = folder / f"{name}_requests.jsonl"
    log.write_text("")
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, json.dumps(script), after, str(log)], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1", log
    finally:
        process.kill()
        process.wait(timeout=10)


def requests_seen(log: Path) -> list[dict]:
    """The requests a server received, in order (a line still being written is left out)."""
    lines = log.read_text().split("\n")[:-1]  # the part after the last newline is incomplete
    return [json.loads(line) for line in lines if line.strip()]

"""Downloads: streamed from a real loopback HTTP server, gunzipped on the fly, all or nothing."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import threading

import pytest

from data_prep.download import DownloadError, download_file

PAYLOAD = b'[{"question": "who", "answers": ["x"]}]\n' * 1000


@contextlib.contextmanager
def serve(files: dict[str, bytes], cut: bool = False):
    """A real HTTP server on loopback serving ``files``; ``cut`` closes after half of a body."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if cut else body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_download_gunzips_on_the_fly(tmp_path):
    # Compressed once: gzip's header holds the time of compression, so two calls a second apart differ.
    compressed = gzip.compress(PAYLOAD)
    with serve({"/nq.json.gz": compressed, "/plain.json": PAYLOAD}) as url:
        assert download_file(f"{url}/nq.json.gz", tmp_path / "raw" / "nq.json").read_bytes() == PAYLOAD
        assert download_file(f"{url}/nq.json.gz", tmp_path / "keep.json.gz").read_bytes() == compressed
        assert download_file(f"{url}/plain.json", tmp_path / "plain.json").read_bytes() == PAYLOAD
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["nq.json"]


@pytest.mark.parametrize("cut", [False, True])
def test_failed_download_leaves_nothing(tmp_path, cut, monkeypatch):
    monkeypatch.setattr("data_prep.download.time.sleep", lambda seconds: None)  # no waiting between tries
    with serve({"/nq.json.gz": gzip.compress(PAYLOAD)}, cut=cut) as url:
        with pytest.raises(DownloadError, match="could not download"):
            download_file(
                f"{url}/{'nq.json.gz' if cut else 'missing.gz'}",
                tmp_path / "raw" / "nq.json",
                retries=2,
                timeout_s=5,
            )
    assert not (tmp_path / "raw").exists() or list((tmp_path / "raw").iterdir()) == []

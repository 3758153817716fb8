"""Downloads: streamed from a real loopback HTTP server, gunzipped on the fly, all or nothing."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import json
import threading

import pytest

from data_prep.download import ChecksumError, DownloadError, download_file, manifest_path, verify_download

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
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["nq.json", "nq.json.download.json"]


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


# -- checksums (issue 16, item 8): pinned sums, or recorded at the first download and verified after


def test_pinned_checksum_is_verified(tmp_path):
    compressed = gzip.compress(PAYLOAD)
    with serve({"/nq.json.gz": compressed}) as url:
        dest = download_file(
            f"{url}/nq.json.gz", tmp_path / "nq.json", sha256=hashlib.sha256(compressed).hexdigest()
        )
        assert dest.read_bytes() == PAYLOAD
        record = json.loads(manifest_path(dest).read_text())
        assert record["file_sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
        wrong = "0" * 64
        with pytest.raises(ChecksumError) as caught:
            download_file(
                f"{url}/nq.json.gz", tmp_path / "other.json", sha256=wrong, pinned_by="data.nq.sha256"
            )
    message = str(caught.value)
    assert all(
        s in message for s in ("other.json", wrong, hashlib.sha256(compressed).hexdigest(), "data.nq.sha256")
    )
    assert not (tmp_path / "other.json").exists()


def test_unpinned_download_records_its_sums_and_later_ones_must_match(tmp_path):
    files = {"/train.json": PAYLOAD}
    with serve(files) as url:
        dest = download_file(f"{url}/train.json", tmp_path / "train.json")
        record = json.loads(manifest_path(dest).read_text())
        assert record["sha256"] == record["file_sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
        assert verify_download(dest) is True
        # the same source again: accepted; a changed source: refused, nothing written
        dest.unlink()
        download_file(f"{url}/train.json", dest)
        dest.unlink()
        files["/train.json"] = PAYLOAD.replace(b"who", b"why")
        with pytest.raises(
            ChecksumError, match=r"train\.json\.download\.json; if the source changed on purpose"
        ):
            download_file(f"{url}/train.json", dest)
    assert not dest.exists()


def test_a_raw_file_is_checked_against_its_download_record(tmp_path):
    (tmp_path / "by_hand.json").write_bytes(PAYLOAD)
    assert verify_download(tmp_path / "by_hand.json") is False  # no record: placed by hand
    with serve({"/dev.json": PAYLOAD}) as url:
        dest = download_file(f"{url}/dev.json", tmp_path / "dev.json")
    dest.write_bytes(PAYLOAD.replace(b"who", b"why", 1))  # same size, other bytes
    with pytest.raises(ChecksumError) as caught:
        verify_download(dest)
    message = str(caught.value)
    assert str(dest) in message and hashlib.sha256(PAYLOAD).hexdigest() in message and "Delete" in message

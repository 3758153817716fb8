"""Fetching the raw data sets from their public sources (paper scale only).

- :func:`download_file`: one URL to one file, streamed, gunzipped on the fly when the URL ends in
  ``.gz`` and the destination does not, written under a temporary name and renamed when complete
  (a broken transfer leaves nothing).
- :func:`download_wikipedia`: a Hugging Face Wikipedia dataset (``wikimedia/wikipedia``,
  ``20231101.en`` in config/paper.yaml) streamed with ``datasets.load_dataset(...,
  streaming=True)`` into the JSON Lines layout of WikiExtractor's ``--json`` output
  (``{id, url, title, text}``), which :mod:`data_prep.rir.preprocess` reads.

The workflow has a download rule only for the files whose URL the config names; the mini config
names none, so the embedded benchmark never touches the network.

**Checksums.** Every download is hashed (SHA-256) as it streams. Where config/paper.yaml pins a
sum beside the URL (``sha256``, PAQ's ``metadata_sha256`` / ``passages_sha256``), the transfer
must match it. None of the sources publishes sums; the suite pins only those it could establish
from independent records (SQuAD 2.0's two files, as ParlAI and others verify them); the other keys
are empty. Without a pin, the first download records its sums in a manifest beside the file
(``NAME.download.json``: the URL, the transfer's and the file's SHA-256, the size), and later
downloads of the same URL must match the record. :func:`verify_download` checks a raw file
against its manifest before a build reads it (a file without a manifest, placed by hand, is not
checked). A mismatch raises :class:`ChecksumError` naming the file, both sums and what to do,
and leaves no file behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from gear.io import atomic_open, atomic_path, file_sha256, read_json, write_json

log = logging.getLogger(__name__)

CHUNK = 1 << 20
MANIFEST_SUFFIX = ".download.json"


class DownloadError(RuntimeError):
    """A download failed; the message names the URL and what to do."""


class ChecksumError(DownloadError):
    """A download or a raw file does not match its pinned or recorded SHA-256."""


def manifest_path(dest: str | os.PathLike) -> Path:
    """The manifest beside a downloaded file: ``NAME.download.json``."""
    dest = Path(dest)
    return dest.with_name(dest.name + MANIFEST_SUFFIX)


def _expected_sum(url: str, dest: Path, sha256: str | None, pinned_by: str | None) -> tuple[str | None, str]:
    """The sum the transfer must have, and how to accept another one (for the error message)."""
    if sha256:
        where = pinned_by or "the sha256 passed to download_file"
        return (
            sha256.lower(),
            f"pinned by {where}; if the source changed on purpose, update or empty that key",
        )
    manifest = manifest_path(dest)
    if manifest.is_file():
        record = read_json(manifest)
        if record.get("url") == url and record.get("sha256"):
            return record["sha256"], (
                f"recorded at the first download in {manifest}; if the source changed on purpose, "
                "delete that manifest to record the new sums"
            )
    return None, ""


def verify_download(path: str | os.PathLike) -> bool:
    """Check a raw file against the manifest its download wrote; return whether there was one.

    Raises:
        ChecksumError: the file's SHA-256 is not the recorded one (it changed after the download).
    """
    path = Path(path)
    manifest = manifest_path(path)
    if not manifest.is_file():
        return False
    expected = read_json(manifest).get("file_sha256")
    actual = file_sha256(path)
    if actual != expected:
        raise ChecksumError(
            f"{path}: SHA-256 {actual}, expected {expected} (recorded in {manifest} when it was "
            f"downloaded): the file changed since. Delete {path} and rerun to download it again; if you "
            f"changed it on purpose, delete {manifest}."
        )
    return True


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    pinned_by: str | None = None,
    retries: int = 3,
    timeout_s: float = 60.0,
) -> Path:
    """Stream ``url`` into ``dest`` (gunzipping when the URL is ``.gz`` and ``dest`` is not).

    Args:
        sha256: the SHA-256 the transfer (the bytes of the URL, before gunzipping) must have;
            empty or None: the sum recorded by an earlier download of the same URL, if any.
        pinned_by: where ``sha256`` comes from, for the error message (a config key).

    Raises:
        ChecksumError: the transfer does not match the pinned or recorded sum (not retried;
            nothing is left at ``dest``).
        DownloadError: after ``retries`` failed attempts (nothing is left at ``dest``).
    """
    dest = Path(dest)
    gunzip = url.endswith(".gz") and not dest.name.endswith(".gz")
    expected, accept_other = _expected_sum(url, dest, sha256, pinned_by)
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response, atomic_path(dest) as tmp:
                size = int(response.headers.get("Content-Length") or 0) or None
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gunzip else None
                transfer, written = hashlib.sha256(), hashlib.sha256()
                with (
                    open(tmp, "wb") as out,
                    tqdm(total=size, unit="B", unit_scale=True, desc=dest.name, mininterval=10) as bar,
                ):
                    while block := response.read(CHUNK):
                        bar.update(len(block))
                        transfer.update(block)
                        data = inflater.decompress(block) if inflater else block
                        written.update(data)
                        out.write(data)
                    if inflater:
                        data = inflater.flush()
                        written.update(data)
                        out.write(data)
                        if not inflater.eof:
                            raise DownloadError(f"{url}: the gzip stream ended early (truncated transfer)")
                actual = transfer.hexdigest()
                if expected is not None and actual != expected:
                    raise ChecksumError(
                        f"{url}: the download for {dest} has SHA-256 {actual}, expected {expected} "
                        f"({accept_other}). Nothing was written. The source may have changed, or the "
                        "transfer was corrupted: rerun to try again."
                    )
                # the manifest first: a kill between the two leaves a manifest and no file, which
                # the rerun's download checks against
                write_json(
                    manifest_path(dest),
                    {
                        "url": url,
                        "sha256": actual,
                        "file_sha256": written.hexdigest(),
                        "bytes": tmp.stat().st_size,
                    },
                )
            log.info("downloaded %s to %s (SHA-256 %s)", url, dest, actual)
            return dest
        except ChecksumError:
            raise
        except urllib.error.HTTPError as err:
            last = err
            if 400 <= err.code < 500 and err.code != 429:
                break  # a wrong URL does not heal by retrying
            log.warning("download of %s failed (attempt %d/%d): %s", url, attempt, retries, err)
            time.sleep(min(2**attempt, 30))
        except (OSError, DownloadError, zlib.error) as err:
            last = err
            log.warning("download of %s failed (attempt %d/%d): %s", url, attempt, retries, err)
            time.sleep(min(2**attempt, 30))
    raise DownloadError(
        f"could not download {url} ({last}). On a machine without network, fetch it elsewhere and place "
        f"it at {dest} (the rule then has nothing to do)."
    )


def download_wikipedia(
    dataset: str, config_name: str | None, dest: str | os.PathLike, *, limit: int | None = None
) -> Path:
    """Stream a Hugging Face Wikipedia dataset into WikiExtractor-style JSON Lines at ``dest``.

    Args:
        dataset: hub dataset id (``wikimedia/wikipedia``).
        config_name: its configuration (``20231101.en``).
        dest: output JSON Lines file (written atomically).
        limit: stop after this many articles.

    Raises:
        ChecksumError: an earlier dump of the same dataset and configuration recorded other sums.
        DownloadError: ``datasets`` is missing or the hub cannot be reached.
    """
    try:
        from datasets import load_dataset
    except ImportError as err:
        raise DownloadError(
            "the 'datasets' package is needed to fetch Wikipedia: pip install datasets"
        ) from err
    try:
        stream = load_dataset(dataset, config_name, split="train", streaming=True)
    except Exception as err:  # the hub client raises many kinds; all mean "not reachable here"
        raise DownloadError(
            f"could not open {dataset} ({config_name}) on the Hugging Face hub: {err}. Without network, "
            f"place a WikiExtractor --json dump (JSON Lines of id, url, title, text) at {dest}."
        ) from err
    dest = Path(dest)
    source = f"hf://datasets/{dataset}/{config_name or ''}" + (f"?limit={limit}" if limit is not None else "")
    expected, accept_other = _expected_sum(source, dest, None, None)
    digest = hashlib.sha256()
    with atomic_open(dest) as out:
        for n, article in enumerate(tqdm(stream, desc="wikipedia", unit="article", mininterval=30)):
            if limit is not None and n >= limit:
                break
            row = {k: article.get(k, "") for k in ("id", "url", "title", "text")}
            line = json.dumps(row, ensure_ascii=False) + "\n"
            digest.update(line.encode("utf-8"))
            out.write(line)
        actual = digest.hexdigest()
        if expected is not None and actual != expected:
            raise ChecksumError(
                f"{source}: the dump for {dest} has SHA-256 {actual}, expected {expected} "
                f"({accept_other}). Nothing was written."
            )
        write_json(manifest_path(dest), {"url": source, "sha256": actual, "file_sha256": actual})
    return dest

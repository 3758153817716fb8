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
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from gear.io import atomic_open, atomic_path

log = logging.getLogger(__name__)

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed; the message names the URL and what to do."""


def download_file(url: str, dest: str | os.PathLike, *, retries: int = 3, timeout_s: float = 60.0) -> Path:
    """Stream ``url`` into ``dest`` (gunzipping when the URL is ``.gz`` and ``dest`` is not).

    Raises:
        DownloadError: after ``retries`` failed attempts (nothing is left at ``dest``).
    """
    dest = Path(dest)
    gunzip = url.endswith(".gz") and not dest.name.endswith(".gz")
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response, atomic_path(dest) as tmp:
                size = int(response.headers.get("Content-Length") or 0) or None
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gunzip else None
                with (
                    open(tmp, "wb") as out,
                    tqdm(total=size, unit="B", unit_scale=True, desc=dest.name, mininterval=10) as bar,
                ):
                    while block := response.read(CHUNK):
                        bar.update(len(block))
                        out.write(inflater.decompress(block) if inflater else block)
                    if inflater:
                        out.write(inflater.flush())
                        if not inflater.eof:
                            raise DownloadError(f"{url}: the gzip stream ended early (truncated transfer)")
            log.info("downloaded %s to %s", url, dest)
            return dest
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
    with atomic_open(dest) as out:
        for n, article in enumerate(tqdm(stream, desc="wikipedia", unit="article", mininterval=30)):
            if limit is not None and n >= limit:
                break
            row = {k: article.get(k, "") for k in ("id", "url", "title", "text")}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return dest

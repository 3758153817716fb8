"""Streaming benchmark of the RIR pre-processing: throughput and peak memory on a large dump.

A synthetic dump is made by cycling real-looking articles (the shipped mini Wikipedia file by
default) to a temporary JSON Lines file, each copy with its own id and title so that none is
merged as a duplicate; the dump is then streamed through
:func:`data_prep.rir.preprocess.preprocess_wikipedia` with the thresholds of a config file.
Reported: articles per second, the documents kept, and the peak resident memory of this process
and of its worker processes (``resource.getrusage``), which must not grow with the dump.

Example:
    python -m data_prep.bench_preprocess --documents 1000000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from data_prep.rir.preprocess import preprocess_wikipedia
from gear.config import REPO_ROOT, load_config
from gear.hub import ModelSource
from gear.io import iter_jsonl

DEFAULT_SOURCE = REPO_ROOT / "data_prep" / "mini" / "wikipedia" / "enwiki-mini.jsonl"


def write_synthetic_dump(source: Path, documents: int, dest: Path) -> int:
    """Cycle the articles of ``source`` into ``dest`` until ``documents`` lines; return bytes written."""
    articles = [obj for _, obj in iter_jsonl(source)]  # errors name the file and line
    if not articles:
        raise ValueError(f"{source}: no article to cycle")
    written = 0
    with open(dest, "w", encoding="utf-8") as out:
        for n in range(documents):
            article = articles[n % len(articles)]
            row = {
                "id": str(n),
                "url": article.get("url", ""),
                "title": f"{article['title']} ({n})",
                "text": article["text"],
            }
            line = json.dumps(row, ensure_ascii=False) + "\n"
            out.write(line)
            written += len(line.encode("utf-8"))
    return written


def peak_rss_mb() -> dict[str, float]:
    """Peak resident set size of this process and of its largest finished child, in MB."""
    to_mb = 1 / 1024  # Linux reports ru_maxrss in kB
    return {
        "self": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * to_mb, 1),
        "children": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * to_mb, 1),
    }


def run(documents: int, workers: int, config: Path, source: Path, keep: Path | None = None) -> dict:
    """Generate the dump, pre-process it, and return the measurements."""
    data = load_config(config)["data"]
    with tempfile.TemporaryDirectory(prefix="bench_preprocess.") as tmp:
        folder = Path(tmp)
        dump = keep or folder / "dump.jsonl"
        started = time.time()
        size = write_synthetic_dump(source, documents, dump)
        generated = time.time() - started
        rss_before = peak_rss_mb()
        stats = preprocess_wikipedia(
            dump,
            folder / "preprocessed.jsonl",
            folder / "stats.json",
            data["rir"]["preprocess"],
            data["token_counter"],
            data["splitter"],
            model_source=ModelSource(load_config(config)["model_paths"]),
            workers=workers,
        )
    return {
        "documents": documents,
        "dump_mb": round(size / 2**20, 1),
        "generation_s": round(generated, 1),
        "preprocess_s": stats["wall_time_s"],
        "articles_per_s": stats["articles_per_s"],
        "kept": stats["documents"],
        "skipped": stats["skipped"],
        "workers": workers,
        "peak_rss_mb_before": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "source": str(source),
        "config": str(config),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1_000_000, help="articles in the synthetic dump")
    parser.add_argument("--workers", type=int, default=1, help="pre-processing processes")
    parser.add_argument(
        "--config", type=Path, default=REPO_ROOT / "config" / "mini.yaml", help="thresholds and tokenizer"
    )
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="JSON Lines articles to cycle")
    parser.add_argument(
        "--keep-dump", type=Path, default=None, help="write the dump here instead of a temporary file"
    )
    args = parser.parse_args(argv)
    result = run(args.documents, args.workers, args.config, args.source, args.keep_dump)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

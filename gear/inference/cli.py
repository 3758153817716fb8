"""The ``gear`` command: ``gear predict`` runs a trained GeAR on one's own documents.

``gear predict --model DIR|HUB_ID --documents FILE --query TEXT [--query TEXT ...] [--queries FILE]``
retrieves the ``--k`` best documents per query, localizes each (its sentences ranked by the
fusion encoder's cross-attention at the layer the model recorded, and its heaviest tokens) and
generates the decoder's text for it, through :class:`gear.inference.trained.TrainedGear` (the
model is loaded once). Output on stdout: ``--format jsonl`` (default), one JSON object per query
(``{"query", "results": [{"rank", "doc_id", "score", "units", "highlighted", "generation"}]}``),
or ``--format table``, a readable summary. A progress bar goes to stderr on long inputs.

Documents files (chosen by extension):

- ``.jsonl`` (or ``.json``): JSON Lines, one object per document with ``text`` (a string) and an
  id in ``id`` or ``doc_id`` (string or number; the line number when absent); other fields are
  ignored, so a suite test set's ``corpus.jsonl`` works as it is;
- any other extension (``.txt``): one document per non-empty line, ids are line numbers.

Queries files (``--queries``): one query per non-empty line, or JSON Lines with ``text`` (or
``query``) for ``.jsonl`` files.

Errors (a bad model folder, a malformed documents file, naming the file and line) end the
command with status 2 and one line on stderr. ``python -m gear predict ...`` works too.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TextIO

from tqdm.auto import tqdm

from gear.config import ConfigError
from gear.hub import ModelUnavailableError
from gear.inference.trained import TrainedGear
from gear.io import DataFormatError, iter_jsonl

#: (query, document) pairs from which the localization / generation loop shows a progress bar
PROGRESS_PAIRS = 32
#: documents from which encoding shows a progress bar
PROGRESS_DOCUMENTS = 512
#: characters of a text shown in a table cell
TABLE_WIDTH = 90


class InputError(ValueError):
    """A documents or queries file the command cannot use."""


def read_documents(path: str | Path) -> dict[str, str]:
    """Documents of a ``.jsonl`` / ``.json`` (id + text) or plain text file (a line each): id -> text."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such documents file")
    documents: dict[str, str] = {}
    if path.suffix in (".jsonl", ".json"):
        for number, row in iter_jsonl(path):
            text = row.get("text")
            if not isinstance(text, str):
                raise DataFormatError(
                    f"{path}:{number}: field 'text' should be a string"
                    + (", and is missing" if "text" not in row else f", got {type(text).__name__}")
                )
            raw_id = row.get("id", row.get("doc_id", number))
            if not isinstance(raw_id, str | int) or isinstance(raw_id, bool):
                raise DataFormatError(f"{path}:{number}: field 'id' should be a string or an integer")
            _add(documents, str(raw_id), text, f"{path}:{number}")
    else:
        for number, line in _text_lines(path):
            _add(documents, str(number), line, f"{path}:{number}")
    if not documents:
        raise InputError(f"{path}: no documents")
    return documents


def _add(documents: dict[str, str], doc_id: str, text: str, where: str) -> None:
    if doc_id in documents:
        raise DataFormatError(f"{where}: duplicate document id {doc_id!r}")
    if not text.strip():
        raise DataFormatError(f"{where}: empty document text")
    documents[doc_id] = text


def _text_lines(path: Path):
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, line.rstrip("\n")
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not valid UTF-8 ({err.reason} at byte {err.start})") from err


def read_queries(path: str | Path) -> list[str]:
    """Queries of a plain text file (one a line) or JSON Lines (``text`` or ``query``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such queries file")
    if path.suffix in (".jsonl", ".json"):
        queries = []
        for number, row in iter_jsonl(path):
            text = row.get("text", row.get("query"))
            if not isinstance(text, str) or not text.strip():
                raise DataFormatError(f"{path}:{number}: needs a non-empty string field 'text' (or 'query')")
            queries.append(text)
        return queries
    return [line for _, line in _text_lines(path)]


def predict(
    model: TrainedGear,
    queries: list[str],
    documents: dict[str, str],
    k: int,
    localize: bool = True,
    generate: bool = True,
    top_tokens: int = 10,
    progress: bool = True,
) -> list[dict]:
    """One JSON-ready record per query: its ranked documents, each localized and generated for."""
    ranked = model.retrieve(
        queries, documents, k=k, progress=progress and len(documents) >= PROGRESS_DOCUMENTS
    )
    pairs = [(q, hit) for q, hits in zip(queries, ranked, strict=True) for hit in hits]
    generated: dict[int, str] = {}
    if generate and pairs:
        texts = model.generate([q for q, _ in pairs], [hit.text for _, hit in pairs])
        generated = dict(enumerate(texts))
    records = [{"query": q, "results": []} for q in queries]
    by_query = iter(records)
    record: dict = {}
    bar = tqdm(
        pairs,
        desc="localizing",
        unit="pair",
        disable=not (progress and localize and len(pairs) >= PROGRESS_PAIRS),
    )
    for index, (query, hit) in enumerate(bar):
        if hit.rank == 1:  # every query has a first document (there is at least one)
            record = next(by_query)
        result = {"rank": hit.rank, "doc_id": hit.doc_id, "score": round(hit.score, 6)}
        if localize:
            found = model.localize(query, hit.text)
            result["layer"] = found.layer
            result["units"] = [
                {
                    "index": u.index,
                    "start": u.start,
                    "end": u.end,
                    "score": round(u.score, 6) if math.isfinite(u.score) else None,
                    "text": u.text,
                }
                for u in found.ranked_units
            ]
            result["highlighted"] = [
                {"token": t.token, "start": t.start, "end": t.end, "weight": round(t.weight, 6)}
                for t in found.top_tokens(top_tokens)
            ]
        if generate:
            result["generation"] = generated[index]
        record["results"].append(result)
    return records


def _cell(text: str, width: int = TABLE_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def write_table(records: list[dict], documents: dict[str, str], out: TextIO) -> None:
    """A readable summary: per query, the ranked documents with their best sentence and generation."""
    for number, record in enumerate(records, start=1):
        out.write(f"query {number}: {record['query']}\n")
        out.write(f"  {'rank':>4}  {'score':>7}  {'doc_id':<16} text\n")
        for result in record["results"]:
            out.write(
                f"  {result['rank']:>4}  {result['score']:>7.4f}  {_cell(result['doc_id'], 16):<16} "
                f"{_cell(documents[result['doc_id']], TABLE_WIDTH - 40)}\n"
            )
            if result.get("units"):
                best = result["units"][0]
                score = "-" if best["score"] is None else f"{best['score']:.4f}"
                out.write(f"  {'':>4}  {'':>7}  {'best unit':<16} [{score}] {_cell(best['text'])}\n")
            if result.get("highlighted"):
                tokens = " ".join(t["token"] for t in result["highlighted"])
                out.write(f"  {'':>4}  {'':>7}  {'top tokens':<16} {_cell(tokens)}\n")
            if "generation" in result:
                out.write(f"  {'':>4}  {'':>7}  {'generated':<16} {_cell(result['generation'])}\n")
        out.write("\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gear", description="Use a trained GeAR model.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "predict",
        help="retrieve, localize and generate for queries over one's own documents",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--model",
        required=True,
        help="a trained GeAR folder (e.g. R/models/GeAR/qar/model) or the hub id of a published one",
    )
    run.add_argument("--revision", default=None, help="hub revision of a --model hub id (default: main)")
    run.add_argument(
        "--documents", required=True, help="documents: .jsonl with id and text, or .txt with one per line"
    )
    run.add_argument("--query", action="append", default=[], help="a query (repeat for several)")
    run.add_argument("--queries", help="a file of queries: one per line, or .jsonl with 'text'")
    run.add_argument("--k", type=int, default=5, help="documents per query (default 5)")
    run.add_argument("--format", choices=["jsonl", "table"], default="jsonl", help="output format")
    run.add_argument("--no-localize", action="store_true", help="skip localization")
    run.add_argument("--no-generate", action="store_true", help="skip generation")
    run.add_argument("--top-tokens", type=int, default=10, help="highlighted tokens per document")
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when present)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``gear predict ...``; returns the exit status (0, or 2 for bad input)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error("--k must be at least 1")
    try:
        queries = list(args.query) + (read_queries(args.queries) if args.queries else [])
        if not queries:
            parser.error("give at least one --query or a --queries file")
        documents = read_documents(args.documents)
        model = TrainedGear(args.model, device=args.device, revision=args.revision)
    except (
        InputError,
        DataFormatError,
        ConfigError,
        FileNotFoundError,
        ValueError,
        ModelUnavailableError,
    ) as err:
        print(f"gear predict: error: {err}", file=sys.stderr)
        return 2
    records = predict(
        model,
        queries,
        documents,
        args.k,
        localize=not args.no_localize,
        generate=not args.no_generate,
        top_tokens=args.top_tokens,
        progress=not args.no_progress,
    )
    if args.format == "table":
        write_table(records, documents, sys.stdout)
    else:
        for record in records:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 16, item 4: every reader names the true line of a bad byte or a malformed record.

Each format the suite reads (raw downloads, intermediate files, its own outputs, config YAML) is
written whole and valid, then spoiled on one line deep inside it: past the first 8 KiB that
buffered decoders read ahead (``BAD_LINE`` of ``RECORDS`` records of about 250 bytes). A reader
whose decoder runs ahead of its line counter reports an earlier line, or no line at all.
The readers are called as the builders call them; structural errors in JSON documents (a field
missing from a SQuAD question) name the JSON path instead, see ``test_bad_input.py``.
"""

from __future__ import annotations

import bz2
import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from gear.config import ConfigError
from gear.io import DataFormatError

RECORDS, BAD_LINE = 60, 41
FILLER = "words " * 35  # ~210 bytes: BAD_LINE starts past 8 KiB
BAD_BYTE = b"caf\xe9"  # Latin-1 e-acute: not UTF-8


def _spoil(lines: list[bytes], kind: str, line: int = BAD_LINE) -> bytes:
    """Join ``lines`` with the 1-based ``line`` spoiled: a bad byte in its text (it holds
    ``MARK``), or the record cut short (``broken``)."""
    lines = list(lines)
    target = lines[line - 1]
    assert b"MARK" in target, "the spoiled line must hold the marker"
    lines[line - 1] = target.replace(b"MARK", BAD_BYTE) if kind == "byte" else target[: len(target) // 2]
    return b"\n".join(lines) + b"\n"


def _jsonl(row: Callable[[int], dict], kind: str) -> bytes:
    rows = [json.dumps(row(i)).encode() for i in range(RECORDS)]
    rows[BAD_LINE - 1] = rows[BAD_LINE - 1].replace(b"words", b"MARK", 1)
    return _spoil(rows, kind)


def _json_document(obj, kind: str) -> tuple[bytes, int]:
    """``obj`` as indented JSON with its first ``MARK`` spoiled; return the bytes and its line."""
    text = json.dumps(obj, indent=1).encode()
    lines = text.split(b"\n")
    line = next(i for i, raw in enumerate(lines, start=1) if b"MARK" in raw)
    if kind == "record":  # an unquoted word: malformed JSON on that line
        lines[line - 1] = lines[line - 1].replace(b'"MARK', b"MARK", 1)
        return b"\n".join(lines), line
    return _spoil(lines, "byte", line), line


# --------------------------------------------------------------------------------------------
# one reader per format: (tmp, kind) -> (read it, file name, spoiled line)


def _squad(tmp: Path, kind: str):
    from data_prep.squad import _articles

    paragraphs = [
        {"context": f"Paragraph {i}: {FILLER}", "qas": [{"id": str(i), "question": "Who?", "answers": []}]}
        for i in range(RECORDS)
    ]
    paragraphs[RECORDS // 2]["context"] = "MARK " + FILLER
    raw, line = _json_document({"version": "1.1", "data": [{"title": "T", "paragraphs": paragraphs}]}, kind)
    (tmp / "dev-v1.1.json").write_bytes(raw)
    return lambda: _articles(tmp / "dev-v1.1.json"), "dev-v1.1.json", line


def _dpr(compress: bool):
    def make(tmp: Path, kind: str):
        from data_prep.dpr import read_json_any

        entries = [
            {"question": f"q{i}?", "answers": ["a"], "positive_ctxs": [{"title": "t", "text": FILLER}]}
            for i in range(RECORDS)
        ]
        entries[RECORDS // 2]["question"] = "MARK?"
        raw, line = _json_document(entries, kind)
        name = "nq-dev.json.gz" if compress else "nq-dev.json"
        (tmp / name).write_bytes(gzip.compress(raw) if compress else raw)
        return lambda: read_json_any(tmp / name), name, line

    return make


def _paq_metadata(tmp: Path, kind: str):
    from data_prep.paq import iter_paq_records

    def row(i):
        return {"question": f"q{i} {FILLER}", "answer": ["a"], "answers": [{"passage_id": str(i)}]}

    (tmp / "paq.jsonl.gz").write_bytes(gzip.compress(_jsonl(row, kind)))
    return lambda: list(iter_paq_records(tmp / "paq.jsonl.gz")), "paq.jsonl.gz", BAD_LINE


def _paq_passages(tmp: Path, kind: str):
    from data_prep.paq import iter_passages

    rows = [b"id\ttext\ttitle"] + [f"{i}\t{FILLER}\tT{i}".encode() for i in range(1, RECORDS)]
    rows[BAD_LINE - 1] = rows[BAD_LINE - 1].replace(b"words", b"MARK", 1)
    (tmp / "psgs_w100.tsv").write_bytes(_spoil(rows, kind))
    return lambda: list(iter_passages(tmp / "psgs_w100.tsv")), "psgs_w100.tsv", BAD_LINE


def _wikipedia(tmp: Path, kind: str):
    from data_prep.rir.preprocess import iter_articles

    raw = _jsonl(lambda i: {"id": str(i), "url": "", "title": f"A{i}", "text": FILLER}, kind)
    (tmp / "enwiki.jsonl.bz2").write_bytes(bz2.compress(raw))
    return lambda: list(iter_articles(tmp / "enwiki.jsonl.bz2")), "enwiki.jsonl.bz2", BAD_LINE


def _preprocessed(tmp: Path, kind: str):
    from data_prep.rir.preprocess import read_preprocessed

    def row(i):
        return {
            "doc_id": f"d{i}",
            "title": "T",
            "text": FILLER,
            "units": [[0, 5]],
            "unit_tokens": [1],
            "candidates": [0],
        }

    (tmp / "preprocessed.jsonl").write_bytes(_jsonl(row, kind))
    return lambda: list(read_preprocessed(tmp / "preprocessed.jsonl")), "preprocessed.jsonl", BAD_LINE


def _corpus(tmp: Path, kind: str):
    from data_prep.normalized import load_corpus

    raw = _jsonl(lambda i: {"doc_id": f"d{i}", "title": "T", "text": FILLER, "units": [[0, 5]]}, kind)
    (tmp / "corpus.jsonl").write_bytes(raw)
    return lambda: load_corpus(tmp / "corpus.jsonl"), "corpus.jsonl", BAD_LINE


def _triples(tmp: Path, kind: str):
    from gear.training.triples import TripleFile

    def row(i):
        return {"query_id": f"q{i}", "query": "who?", "doc_id": f"d{i}", "document": FILLER, "target": "a"}

    (tmp / "qar.jsonl").write_bytes(_jsonl(row, kind))
    return lambda: [t for t in TripleFile(tmp / "qar.jsonl")], "qar.jsonl", BAD_LINE


def _run_file(reader: str):
    def make(tmp: Path, kind: str):
        if reader == "search":
            from gear.evaluation.search import read_run

            def read():
                return read_run(tmp / "run.tsv")
        else:
            from gear.evaluation.explain_data import read_run as read_explain_run

            def read():
                return read_explain_run(tmp / "run.tsv", {"q1"})

        doc = "d" + "x" * 200
        rows = [f"q1 Q0 {doc}{i} {i + 1} 0.5 GeAR".encode() for i in range(RECORDS)]
        rows[BAD_LINE - 1] = rows[BAD_LINE - 1].replace(b"xxxx", b"MARK", 1)
        (tmp / "run.tsv").write_bytes(_spoil(rows, kind))
        return read, "run.tsv", BAD_LINE

    return make


def _yaml(tmp: Path, kind: str):
    from gear.config import load_config

    rows = [f"# {FILLER}".encode() for _ in range(RECORDS)]
    rows[0] = b"results_dir: results"
    rows[BAD_LINE - 1] = b"seed: 42: MARK" if kind == "record" else b"# MARK"
    raw = b"\n".join(rows) + b"\n"
    if kind == "byte":
        raw = raw.replace(b"MARK", BAD_BYTE)
    (tmp / "my_run.yaml").write_bytes(raw)
    return lambda: load_config(tmp / "my_run.yaml"), "my_run.yaml", BAD_LINE


FORMATS = {
    "SQuAD JSON": _squad,
    "NQ / TriviaQA DPR JSON": _dpr(compress=False),
    "DPR JSON, gzipped": _dpr(compress=True),
    "PAQ metadata JSON Lines, gzipped": _paq_metadata,
    "PAQ passages TSV": _paq_passages,
    "Wikipedia dump JSON Lines, bzip2": _wikipedia,
    "RIR preprocessed JSON Lines": _preprocessed,
    "normalised corpus JSON Lines": _corpus,
    "training triples": _triples,
    "run file (evaluation)": _run_file("search"),
    "run file (explain page)": _run_file("explain"),
    "config YAML": _yaml,
}


@pytest.mark.parametrize("kind", ["byte", "record"])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_error_names_the_true_line(tmp_path, fmt, kind):
    read, name, line = FORMATS[fmt](tmp_path, kind)
    with pytest.raises((DataFormatError, ConfigError)) as caught:
        read()
    message = str(caught.value)
    assert re.search(rf"{re.escape(name)}:{line}\b", message), f"expected {name}:{line} in: {message}"
    if kind == "byte":
        assert "UTF-8" in message, message

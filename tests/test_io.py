"""Atomic outputs and readable errors for malformed data files."""

from __future__ import annotations

import pytest

from gear.io import (
    DataFormatError,
    atomic_dir,
    atomic_open,
    iter_jsonl,
    read_json,
    require_fields,
    write_jsonl,
)


def test_atomic_open_leaves_nothing_when_the_block_fails(tmp_path):
    target = tmp_path / "out" / "result.json"
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_atomic_open_keeps_the_old_file_until_the_new_one_is_whole(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write("new")
            raise RuntimeError
    assert target.read_text() == "old"
    with atomic_open(target) as handle:
        handle.write("new")
    assert target.read_text() == "new"


def test_atomic_dir_replaces_whole_folders(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(ValueError):
        with atomic_dir(target) as tmp:
            (tmp / "b").write_text("2")
            raise ValueError
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_jsonl_errors_name_file_and_line(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": 2,}\n')
    with pytest.raises(DataFormatError, match=r"q\.jsonl:3:\d+: malformed JSON"):
        list(iter_jsonl(path))
    path.write_bytes(b'{"a": 1}\n[1, 2]\n')
    with pytest.raises(DataFormatError, match=r"q\.jsonl:2: expected a JSON object"):
        list(iter_jsonl(path))
    path.write_bytes(b'{"a": 1}\n{"a": "caf\xe9"}\n')
    with pytest.raises(DataFormatError, match=r"q\.jsonl:2: not valid UTF-8"):
        list(iter_jsonl(path))


def test_json_errors_name_file_and_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('{\n  "data": [1,\n}\n')
    with pytest.raises(DataFormatError, match=r"d\.json:3:1: malformed JSON"):
        read_json(path)


def test_require_fields_names_the_field(tmp_path):
    require_fields({"id": "x", "n": 2}, {"id": str, "n": int}, "f.jsonl:4")
    with pytest.raises(DataFormatError, match=r"f\.jsonl:4: missing field 'text'"):
        require_fields({"id": "x"}, {"text": str}, "f.jsonl:4")
    with pytest.raises(DataFormatError, match="field 'n' should be int, got bool"):
        require_fields({"n": True}, {"n": int}, "f.jsonl:4")


def test_write_jsonl_round_trip(tmp_path):
    rows = [{"a": i, "t": "é"} for i in range(3)]
    assert write_jsonl(tmp_path / "r.jsonl", rows) == 3
    assert [obj for _, obj in iter_jsonl(tmp_path / "r.jsonl")] == rows

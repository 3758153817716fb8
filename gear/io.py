"""File input and output shared by every stage: atomic writes and JSON Lines with line numbers.

Every output of the suite is written whole or not at all: it is written under a temporary name
in the destination folder, flushed to disk, then renamed over the destination. A crash, a kill
or a full disk leaves the old file (or nothing), never a half-written one that a later job could
mistake for a result. A write that fails for lack of space raises :class:`DiskFullError`, which
names the output.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create private (0600/0700) entries; outputs get the usual permissions instead,
# so results written on a shared cluster are readable by the group as any other file would be.
_FILE_MODE = 0o666 & ~_current_umask()
FILE_MODE = _FILE_MODE  #: the mode of files the suite writes (0666 less the umask)
_DIR_MODE = 0o777 & ~_current_umask()


class DataFormatError(ValueError):
    """A data file does not have the expected format; the message names the file and line."""


class DiskFullError(OSError):
    """An output could not be written for lack of space (disk, quota or file-size limit).

    Raised by the atomic writers below in place of the bare ``OSError`` (which names no file);
    ``errno`` is the original one (ENOSPC, EDQUOT or EFBIG). Nothing partial is left at the
    destination: the temporary file was removed, an older version of the output is untouched.
    """


_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def disk_full_error(err: BaseException, path: str | os.PathLike) -> DiskFullError | None:
    """A :class:`DiskFullError` naming ``path`` when ``err`` is a lack-of-space error, else None.

    Recognised: an ``OSError`` with errno ENOSPC, EDQUOT or EFBIG, and the same errors reported by
    Rust writers (safetensors) as text ending in ``(os error N)``.
    """
    if isinstance(err, DiskFullError):
        return None
    code = err.errno if isinstance(err, OSError) else None
    if code is None and not isinstance(err, OSError):
        found = re.search(r"\(os error (\d+)\)", str(err))
        code = int(found.group(1)) if found else None
    if code not in _NO_SPACE:
        return None
    return DiskFullError(
        code,
        f"{path}: not written: {os.strerror(code)} (the disk or the quota is full, or the "
        f"file-size limit `ulimit -f` is reached). No partial output was left; free space and rerun",
    )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    Example:
        >>> with atomic_path("out/table.png") as tmp:  # doctest: +SKIP
        ...     figure.savefig(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, _FILE_MODE)
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            if tmp.is_dir():
                import shutil

                shutil.rmtree(tmp)
            else:
                tmp.unlink()
        if (full := disk_full_error(err, path)) is not None:
            raise full from err
        raise


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """Open ``path`` for writing through a temporary file that replaces it on success."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` only if the block succeeds."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, _DIR_MODE)
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if (full := disk_full_error(err, path)) is not None:
            raise full from err
        raise


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON, atomically."""
    with atomic_open(path) as handle:
        json.dump(obj, handle, indent=indent, ensure_ascii=False, sort_keys=False)
        handle.write("\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write ``rows`` as JSON Lines, atomically; return the number of rows written."""
    count = 0
    with atomic_open(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False))
            handle.write("\n")
            count += 1
    return count


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; malformed JSON or non-UTF-8 bytes raise DataFormatError naming file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise DataFormatError(f"{path}:{line}: not valid UTF-8 ({err.reason} at byte {err.start})") from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}:{err.lineno}:{err.colno}: malformed JSON: {err.msg}") from err


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-empty line of a JSON Lines file.

    Raises:
        DataFormatError: a line is not valid UTF-8, not valid JSON, or not a JSON object.
    """
    with open(path, "rb") as handle:
        yield from parse_jsonl_lines(path, handle)


def parse_jsonl_lines(path: str | os.PathLike, lines: Iterable[bytes]) -> Iterator[tuple[int, dict]]:
    """Parse JSON Lines from an iterable of raw byte lines (an open file, plain or decompressed);
    ``path`` names the source in errors. See :func:`iter_jsonl`."""
    path = Path(path)
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataFormatError(
                f"{path}:{number}: not valid UTF-8 ({err.reason} at column {err.start + 1})"
            ) from err
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFormatError(f"{path}:{number}:{err.colno}: malformed JSON: {err.msg}") from err
        if not isinstance(obj, dict):
            raise DataFormatError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
        yield number, obj


def iter_text_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for every line of a UTF-8 text file (line ends kept).

    Each line is decoded on its own, so a bad byte is reported on its own line: a text-mode file
    decodes 8 KiB ahead of the line being read and fails with no line (or an earlier one).

    Raises:
        DataFormatError: a line is not valid UTF-8 (file, line and column).
    """
    path = Path(path)
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataFormatError(
                    f"{path}:{number}: not valid UTF-8 ({err.reason} at column {err.start + 1})"
                ) from err


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a whole JSON Lines file (see :func:`iter_jsonl` for the errors)."""
    return [obj for _, obj in iter_jsonl(path)]


def require_fields(obj: dict, fields: dict[str, type | tuple[type, ...]], where: str) -> None:
    """Check that ``obj`` has each field with the given type; ``where`` is e.g. ``"file.jsonl:12"``."""
    for name, kind in fields.items():
        if name not in obj:
            raise DataFormatError(f"{where}: missing field '{name}'")
        if not isinstance(obj[name], kind) or (kind is int and isinstance(obj[name], bool)):
            expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise DataFormatError(
                f"{where}: field '{name}' should be {expected}, got {type(obj[name]).__name__}"
            )


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def stable_hash(obj: Any, length: int = 16) -> str:
    """Short hex hash of a JSON-serialisable object, independent of dict order."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:length]


def is_gear_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a local folder holding a saved GeAR model (``config.json`` with
    ``model_type: gear``); malformed JSON raises, naming the file and line."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    content = read_json(config)  # malformed JSON: DataFormatError naming the file and line
    return isinstance(content, dict) and content.get("model_type") == "gear"

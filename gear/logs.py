"""Logging set-up for the workflow's scripts and the command-line entry points.

A Snakemake script calls ``setup_logging(snakemake.log[0])`` first: log records and warnings go
to the rule's log file (and to stderr), one line each with a timestamp, and an uncaught exception
ends the log file with the error and its traceback, so a failed job's log says what happened. Long loops log a line a minute, not a line a step (see :class:`Every`).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path


def setup_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> logging.Logger:
    """Send the root logger to ``log_file`` (created with its folder) and to stderr."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    return logging.getLogger("gear")


def _log_uncaught(kind, value, traceback) -> None:
    """Uncaught exceptions end the log file with the error and its traceback (and reach stderr
    through the same handlers): on a cluster the job's log is where a user looks, not Snakemake's
    stderr."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("gear").critical(
        "the job failed: %s: %s", kind.__name__, value, exc_info=(kind, value, traceback)
    )
    logging.shutdown()


class Every:
    """True once per ``seconds``: ``if minute(): log.info(...)`` inside a hot loop."""

    def __init__(self, seconds: float = 60.0):
        self.seconds = seconds
        self._last = time.monotonic()

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.seconds:
            self._last = now
            return True
        return False

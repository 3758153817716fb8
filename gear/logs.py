"""Logging set-up for the workflow's scripts and the command-line entry points.

A Snakemake script calls ``setup_logging(snakemake.log[0])`` first: log records and warnings go
to the rule's log file (and to stderr), one line each with a timestamp, so a failed job's log
says what happened. Long loops log a line a minute, not a line a step (see :class:`Every`).
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
    return logging.getLogger("gear")


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

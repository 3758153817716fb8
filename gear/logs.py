"""Logging set-up for the workflow's scripts and the command-line entry points.

A Snakemake script calls ``setup_logging(snakemake.log[0])`` first: log records and warnings go
to the rule's log file (and to stderr), one line each with a timestamp, and an uncaught exception
ends the log file with the error and its traceback, so a failed job's log says what happened. Long loops log a line a minute, not a line a step (see :class:`Every`).

Its first line is the job's start-up time (:data:`STARTUP_PREFIX`): seconds from the process's
start to the call, i.e. the interpreter, Snakemake's script preamble and the script's imports,
which ``python -m gear.tools.bench workflow`` shows apart from the job's work.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

STARTUP_PREFIX = "start-up (interpreter, preamble, imports): "


def process_age_s() -> float | None:
    """Seconds since this process started (None where the OS does not tell).

    On Linux both ends are read against the boot clock (``/proc/self/stat``'s start time in
    clock ticks and ``CLOCK_BOOTTIME``), precise to a tick (10 ms); psutil's ``create_time``
    adds the boot time, which the kernel gives in whole seconds, so it can be off by up to 1 s.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of proc(5): starttime
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, IndexError, ValueError, AttributeError):  # not Linux
        pass
    import psutil  # a dependency of the main set

    try:
        return max(0.0, time.time() - psutil.Process().create_time())
    except (psutil.Error, OSError):  # the process table unreadable (some sandboxes): not measured
        return None


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
    logger = logging.getLogger("gear")
    age = process_age_s() if log_file else None  # a job's log, not a command's stderr
    if age is not None:
        logger.info("%s%.2f s", STARTUP_PREFIX, age)
    return logger


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

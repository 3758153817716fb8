"""Wall time and peak memory of a command and every process it starts.

``/usr/bin/time`` and Snakemake's ``benchmark:`` files report the largest single process; a
workflow runs several jobs at once, so what a machine must hold is the sum over the processes
alive at the same moment. This samples the resident set size of the whole process tree (the
command and all its descendants) every ``interval`` seconds and keeps the largest sum, and the
largest single process beside it. Samples miss peaks shorter than the interval.

    python -m gear.tools.bench run -- snakemake --cores all reproduce_all
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psutil


@dataclass
class TreeMemory:
    """What :func:`run_sampled` measured."""

    command: list[str]
    returncode: int
    wall_s: float
    peak_tree_rss_mb: float  # largest sum of RSS over the processes alive at one sample
    peak_process_rss_mb: float  # largest RSS of any one process
    peak_processes: int  # processes alive at the peak of the sum
    samples: int
    interval_s: float

    def markdown(self) -> str:
        return (
            f"wall {self.wall_s:.0f} s, peak memory of the process tree {self.peak_tree_rss_mb:,.0f} MB "
            f"({self.peak_processes} processes at that moment), largest single process "
            f"{self.peak_process_rss_mb:,.0f} MB; {self.samples} samples every {self.interval_s:g} s; "
            f"exit status {self.returncode}"
        )


def _tree_rss(root: psutil.Process) -> tuple[float, float, int]:
    """(sum of RSS, largest RSS, process count) in bytes over ``root`` and its descendants."""
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, 0.0, 0
    sizes = []
    for process in processes:
        try:
            sizes.append(process.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # ended between listing and reading
    return float(sum(sizes)), float(max(sizes, default=0)), len(sizes)


def run_sampled(command: Sequence[str], interval: float = 0.2) -> TreeMemory:
    """Run ``command`` (output passes through) and sample its process tree until it ends.

    Raises:
        ValueError: an empty command or a non-positive interval.
        FileNotFoundError: the program does not exist.
    """
    if not command:
        raise ValueError("no command given: python -m gear.tools.bench run -- COMMAND [ARGS...]")
    if interval <= 0:
        raise ValueError(f"--interval must be positive, got {interval}")
    start = time.perf_counter()
    child = subprocess.Popen(list(command))
    root = psutil.Process(child.pid)
    peak_sum = peak_one = 0.0
    peak_count = samples = 0
    while child.poll() is None:
        total, largest, count = _tree_rss(root)
        samples += 1
        if total > peak_sum:
            peak_sum, peak_count = total, count
        peak_one = max(peak_one, largest)
        time.sleep(interval)
    return TreeMemory(
        command=list(command),
        returncode=child.returncode,
        wall_s=time.perf_counter() - start,
        peak_tree_rss_mb=peak_sum / 2**20,
        peak_process_rss_mb=peak_one / 2**20,
        peak_processes=peak_count,
        samples=samples,
        interval_s=interval,
    )

"""The workflow bench: per-rule and per-stage wall time and peak memory of a Snakemake run."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gear.io import DataFormatError
from gear.logs import STARTUP_PREFIX

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Workflow: Snakemake benchmark files and logs
# --------------------------------------------------------------------------------------------
_TIMESTAMP = re.compile(r"^\[(\w{3} \w{3} +\d{1,2} \d\d:\d\d:\d\d \d{4})\]$")
_RULE_START = re.compile(r"^(?:local)?rule (\S+):$")
_FINISHED = re.compile(r"^Finished job(?:id:)? (\d+)")
_ERROR = re.compile(r"^Error in rule (\S+):$")
_FIELD = re.compile(r"^\s+(\w+): (.*)$")
_CORES = re.compile(r"^Provided cores: (\d+)")
_ELAPSED = re.compile(r"^Elapsed time: (?:(\d+) days?, )?(\d+):(\d\d):(\d\d(?:\.\d+)?)")


@dataclass
class JobRecord:
    """One job of a Snakemake run, from its log: rule, id, stage (``logs/{stage}/``), times."""

    rule: str
    jobid: str
    stage: str
    log: str
    wildcards: str
    start: datetime
    end: datetime | None = None
    failed: bool = False

    @property
    def seconds(self) -> float | None:
        return None if self.end is None else (self.end - self.start).total_seconds()


def _parse_time(text: str) -> datetime:
    return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")


def _stage_of(log_path: str) -> str:
    """The stage of a job: the folder under ``logs/`` of its log file (``gear.layout.Layout.log``)."""
    parts = Path(log_path.split(",")[0].strip()).parts
    if "logs" in parts and parts.index("logs") + 2 <= len(parts) - 1:
        return parts[parts.index("logs") + 1]
    return "-"


def parse_snakemake_log(path: str | os.PathLike) -> tuple[list[JobRecord], dict]:
    """Jobs and run facts of a Snakemake log (``.snakemake/log/*.snakemake.log``).

    Returns:
        the jobs in start order (finish time None when the log ends before the job does) and
        ``{"command", "date", "cores", "elapsed_s", "log"}`` (absent facts are None).
    """
    path = Path(path)
    jobs: dict[str, JobRecord] = {}
    meta: dict[str, Any] = {"log": str(path), "command": None, "date": None, "cores": None, "elapsed_s": None}
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    stamp: datetime | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if match := _TIMESTAMP.match(line):
            stamp = _parse_time(match.group(1))
        elif line.strip().startswith("Command:") and meta["command"] is None:
            meta["command"] = line.split(":", 1)[1].strip()
        elif line.strip().startswith("Date:") and meta["date"] is None:
            meta["date"] = line.split(":", 1)[1].strip()
        elif match := _CORES.match(line):  # "Provided cores: 1 (use --cores to define parallelism)"
            meta["cores"] = int(match.group(1))
        elif match := _ELAPSED.match(line):
            days, hours, minutes, seconds = match.groups()
            meta["elapsed_s"] = (
                int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
            )
        elif (match := _RULE_START.match(line)) or (match := _ERROR.match(line)):
            fields: dict[str, str] = {}
            j = i + 1
            while j < len(lines) and (field_match := _FIELD.match(lines[j])):
                fields[field_match.group(1)] = field_match.group(2)
                j += 1
            jobid = fields.get("jobid")
            if jobid is not None and stamp is not None:
                if _RULE_START.match(line):
                    jobs[jobid] = JobRecord(
                        rule=match.group(1),
                        jobid=jobid,
                        stage=_stage_of(fields.get("log", "")),
                        log=fields.get("log", ""),
                        wildcards=fields.get("wildcards", ""),
                        start=stamp,
                    )
                elif jobid in jobs:
                    jobs[jobid].failed = True
                    jobs[jobid].end = stamp
            i = j
            continue
        elif (match := _FINISHED.match(line)) and stamp is not None and match.group(1) in jobs:
            jobs[match.group(1)].end = stamp
        i += 1
    return sorted(jobs.values(), key=lambda job: job.start), meta


def find_snakemake_log(log_dir: str | os.PathLike, results: str | os.PathLike) -> Path | None:
    """The Snakemake log of the latest run that wrote under ``results``, or None.

    The newest log that ran to its end ("(100%) done") is preferred; failing that, the newest
    with at least one finished job (a run interrupted or still going).
    """
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        return None
    marker = str(results).rstrip("/") + "/"
    partial = None
    # Log names start with the start time (2026-11-25T100752.695987.snakemake.log): newest last.
    for path in sorted(log_dir.glob("*.snakemake.log"), reverse=True):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        if not (any(marker in line for line in lines) and any(_FINISHED.match(line) for line in lines)):
            continue
        if any(line.rstrip().endswith("(100%) done") for line in lines):
            return path
        partial = partial or path
    return partial


def read_benchmark_files(root: str | os.PathLike) -> list[dict]:
    """Rows of Snakemake ``benchmark:`` files laid out as ``root/{stage}/{job}.tsv``.

    Returns:
        one dict per measured run: ``stage`` (folder name), ``job`` (file stem), ``s`` (wall seconds),
        ``max_rss_mb`` and ``cpu_time_s`` (None where Snakemake wrote ``NA``: a job too short to
        sample), ``file``.

    Raises:
        DataFormatError: a file without Snakemake's ``s`` / ``max_rss`` columns (names file:line).
    """

    rows = []
    for path in sorted(Path(root).glob("*/*.tsv")):
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not lines:
            continue
        header = lines[0].split("\t")
        if "s" not in header or "max_rss" not in header:
            raise DataFormatError(f"{path}:1: not a Snakemake benchmark file (no 's' / 'max_rss' columns)")

        def number(value: str) -> float | None:
            try:
                return float(value)
            except ValueError:
                return None

        for number_line, line in enumerate(lines[1:], start=2):
            cells = dict(zip(header, line.split("\t"), strict=False))
            seconds = number(cells.get("s", ""))
            if seconds is None:
                raise DataFormatError(f"{path}:{number_line}: wall time 's' is not a number")
            rows.append(
                {
                    "stage": path.parent.name,
                    "job": path.stem,
                    "s": seconds,
                    "max_rss_mb": number(cells.get("max_rss", "NA")),
                    "cpu_time_s": number(cells.get("cpu_time", "NA")),
                    "file": str(path),
                }
            )
    return rows


def job_startup_s(log_file: str | os.PathLike) -> float | None:
    """The start-up seconds a job's log records on its first lines (``gear.logs.setup_logging``:
    interpreter, Snakemake's preamble and the script's imports), or None when it records none."""
    try:
        with open(log_file, encoding="utf-8", errors="replace") as handle:
            for _, line in zip(range(20), handle, strict=False):
                if STARTUP_PREFIX in line:
                    return float(line.split(STARTUP_PREFIX, 1)[1].split()[0])
    except (OSError, ValueError):
        return None
    return None


def summarise_workflow(
    results: str | os.PathLike,
    log_dir: str | os.PathLike = ".snakemake/log",
    snakemake_log: str | os.PathLike | None = None,
    benchmarks: str | os.PathLike | None = None,
) -> dict:
    """Wall time and peak memory per rule and per stage of a workflow run.

    Args:
        results: the run's results folder (``results/mini``).
        log_dir: Snakemake's log folder (``.snakemake/log`` under the working directory).
        snakemake_log: a particular log (default: the newest that wrote under ``results``).
        benchmarks: the ``benchmark:`` files' root (default ``results/benchmarks``).

    Returns:
        ``source`` (``benchmark files`` or ``snakemake log``), ``rules`` and ``stages`` (each with
        ``jobs``, ``wall_s`` summed over jobs, ``startup_s`` summed over the jobs whose log records
        it (``startup_jobs`` of them; :func:`job_startup_s`), ``max_job_s``, ``max_rss_mb`` or None), ``run``
        (log facts: command, date, cores, elapsed), ``memory_note``.

    Raises:
        FileNotFoundError: neither benchmark files nor a Snakemake log for ``results``.
    """
    results = Path(results)
    bench_root = Path(benchmarks) if benchmarks else results / "benchmarks"
    log_path = Path(snakemake_log) if snakemake_log else find_snakemake_log(log_dir, results)
    jobs, meta = parse_snakemake_log(log_path) if log_path else ([], {})
    # A job's benchmark file and its log share the stage folder and the job name. A later run of
    # a few rules (a redrawn table) leaves the other jobs' files in place: their rules come from
    # every log of the folder, oldest first so that newer ones win.
    rule_of_job = {}
    other_logs = sorted(Path(log_dir).glob("*.snakemake.log")) if Path(log_dir).is_dir() else []
    for path in [*other_logs, *([log_path] if log_path else [])]:
        logged = jobs if path == log_path else parse_snakemake_log(path)[0]
        for job in logged:
            rule_of_job[(job.stage, Path(job.log.split(",")[0].strip()).stem)] = job.rule
    rows = read_benchmark_files(bench_root) if bench_root.is_dir() else []
    if rows:
        source = f"benchmark files under {bench_root}"
        records = [
            {
                "rule": rule_of_job.get((r["stage"], r["job"]), f"{r['stage']}/{r['job']}"),
                "stage": r["stage"],
                "s": r["s"],
                "rss": r["max_rss_mb"],
                "startup": job_startup_s(results / "logs" / r["stage"] / f"{r['job']}.log"),
            }
            for r in rows
        ]
        memory_note = "max RSS of the job's process tree, sampled by Snakemake's benchmark: directive"
    elif jobs:
        source = f"Snakemake log {log_path}"
        records = [
            {
                "rule": job.rule,
                "stage": job.stage,
                "s": job.seconds,
                "rss": None,
                "startup": job_startup_s(job.log.split(",")[0].strip()) if job.log else None,
            }
            for job in jobs
            if job.seconds is not None
        ]
        memory_note = (
            "not measured: the Snakemake log holds start and finish times only (1 s resolution); "
            "add `benchmark:` files (R/benchmarks/{stage}/{job}.tsv) to the rules for memory"
        )
    else:
        raise FileNotFoundError(
            f"no benchmark files under {bench_root} and no Snakemake log in {log_dir} that wrote under "
            f"{results}: run the workflow first, or pass --snakemake-log"
        )

    def aggregate(key: str) -> dict[str, dict]:
        table: dict[str, dict] = {}
        for record in records:
            entry = table.setdefault(
                record[key],
                {
                    "jobs": 0,
                    "wall_s": 0.0,
                    "startup_s": 0.0,
                    "startup_jobs": 0,
                    "max_job_s": 0.0,
                    "max_rss_mb": None,
                    "stage": record["stage"],
                },
            )
            entry["jobs"] += 1
            entry["wall_s"] += record["s"]
            if record["startup"] is not None:
                entry["startup_s"] += record["startup"]
                entry["startup_jobs"] += 1
            entry["max_job_s"] = max(entry["max_job_s"], record["s"])
            if record["rss"] is not None:
                entry["max_rss_mb"] = max(entry["max_rss_mb"] or 0.0, record["rss"])
        return dict(sorted(table.items(), key=lambda item: -item[1]["wall_s"]))

    run = dict(meta)
    if jobs:
        finished = [job for job in jobs if job.end is not None]
        run["jobs"] = len(jobs)
        run["failed_jobs"] = sum(job.failed for job in jobs)
        if finished:
            run["first_start_to_last_finish_s"] = (
                max(job.end for job in finished) - min(job.start for job in jobs)
            ).total_seconds()
    rss = [r["rss"] for r in records if r["rss"] is not None]
    startups = [r["startup"] for r in records if r["startup"] is not None]
    return {
        "startup_s": sum(startups),
        "startup_jobs": len(startups),
        "source": source,
        "results": str(results),
        "rules": aggregate("rule"),
        "stages": aggregate("stage"),
        "run": run,
        "peak_job_rss_mb": max(rss) if rss else None,
        "memory_note": memory_note,
    }


def workflow_markdown(summary: dict) -> str:
    """The summary as two Markdown tables (per stage, per rule) with its source."""

    def rss(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.0f}"

    def startup(entry: dict) -> str:
        if not entry["startup_jobs"]:
            return "n/a | n/a"
        partial = "" if entry["startup_jobs"] == entry["jobs"] else f" ({entry['startup_jobs']} jobs)"
        return f"{entry['startup_s']:.0f}{partial} | {entry['wall_s'] - entry['startup_s']:.0f}"

    run = summary["run"]
    lines = [
        f"Source: {summary['source']}. Memory: {summary['memory_note']}.",
        "",
        f"Run: `{run.get('command')}` started {run.get('date')}, {run.get('cores')} cores, "
        f"{run.get('jobs', '?')} jobs ({run.get('failed_jobs', 0)} failed), elapsed "
        f"{run.get('elapsed_s') or run.get('first_start_to_last_finish_s') or float('nan'):.0f} s.",
        "",
        f"Start-up (interpreter, Snakemake's preamble, imports; from each job's log): "
        f"{summary.get('startup_s', 0.0):.0f} s over {summary.get('startup_jobs', 0)} jobs; "
        "work = wall - start-up. Snakemake's benchmark undercounts jobs of about a second "
        "(a single early sample): where its wall is below the start-up, work shows negative.",
        "",
        "| stage | jobs | wall s (sum over jobs) | start-up s | work s | longest job s | max RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in summary["stages"].items():
        lines.append(
            f"| {name} | {entry['jobs']} | {entry['wall_s']:.0f} | {startup(entry)} | {entry['max_job_s']:.0f} | "
            f"{rss(entry['max_rss_mb'])} |"
        )
    lines += [
        "",
        "| rule | stage | jobs | wall s (sum) | start-up s | work s | longest job s | max RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in summary["rules"].items():
        lines.append(
            f"| {name} | {entry['stage']} | {entry['jobs']} | {entry['wall_s']:.0f} | {startup(entry)} | "
            f"{entry['max_job_s']:.0f} | {rss(entry['max_rss_mb'])} |"
        )
    return "\n".join(lines)

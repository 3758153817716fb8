"""Point 2: every output is written whole or not at all, even when the writer is killed.

- :func:`test_sigkill_in_the_middle_of_a_write_leaves_no_output`: a child process writing through
  each of the suite's writers (``gear.io.write_jsonl``, ``write_json``, ``atomic_dir`` for model
  folders, ``data_prep.normalized.write_dataset`` for the builders) kills itself with SIGKILL
  when part of the data is already on disk. The destination is absent (or still holds its
  previous, whole version); what the kill leaves is a hidden temporary whose name matches no
  output (``.NAME.XXXX.tmp``, ``.NAME.XXXX/``, ``.building.XXXX/``).
- :func:`test_killed_snakemake_job_leaves_no_output_and_the_rerun_completes`: the real rules
  ``rir_preprocess`` and ``rir_rewrite`` run by Snakemake on a small Wikipedia dump, the rewriting
  served by an LLM endpoint that stops answering after 5 requests. Snakemake and its job are
  killed together (SIGKILL to the process group, as when a node fails). No ``rewrites.jsonl``
  exists, a dry run plans ``rir_rewrite`` again, and after ``--unlock`` the rerun against a
  working server completes, sending only the 7 sentences the 5 cached ones do not cover.
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gear.io import read_json, read_jsonl
from tests.conftest import REPO_ROOT
from tests.data_prep.synthetic import make_article, write_wiki
from tests.reliability.conftest import child_env, hidden_entries, run_python, wait_for
from tests.reliability.llm_server import expected_rewrite, requests_seen, scripted_server

KILL_MID_WRITE = r"""
import os, signal, sys
from pathlib import Path

case, target = sys.argv[1], Path(sys.argv[2])
ROWS, DIE_AT = 20_000, 5_000  # 5,000 rows of ~120 bytes: the temporary file holds ~600 kB


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def rows():
    for i in range(ROWS):
        if i == DIE_AT:
            die()
        yield {"i": i, "text": "x" * 100}


if case == "write_jsonl":
    from gear.io import write_jsonl

    write_jsonl(target, rows())
elif case == "write_json":
    from gear.io import write_json

    class Rows(list):  # json.dump iterates it while writing
        def __iter__(self):
            return rows()

    write_json(target, {"rows": Rows([None])})
elif case == "atomic_dir":
    from gear.io import atomic_dir

    with atomic_dir(target) as tmp:
        (tmp / "config.json").write_text("{}")
        with open(tmp / "model.safetensors", "wb") as handle:
            handle.write(b"\0" * 1_000_000)
            handle.flush()
            die()
elif case == "write_dataset":
    from data_prep.normalized import Document, Query, write_dataset

    def documents():
        for row in rows():
            yield Document(f"d{row['i']}", "title", "Some text. More text.", [(0, 10), (11, 21)])

    write_dataset(target, documents(), [Query("q", "?", "d0", ["a"], [], "a", True)], {"dataset": "x"})
"""

CASES = {
    # case: (destination name, whether it is a folder)
    "write_jsonl": ("rows.jsonl", False),
    "write_json": ("result.json", False),
    "atomic_dir": ("model", True),
    "write_dataset": ("squad", True),
}


def _write_previous(target: Path, case: str) -> None:
    """A whole previous version of the output, as an earlier successful run left it."""
    from data_prep.normalized import Document, Query, write_dataset
    from gear.io import atomic_dir, write_json, write_jsonl

    if case == "write_jsonl":
        write_jsonl(target, [{"i": 0, "text": "old"}])
    elif case == "write_json":
        write_json(target, {"rows": ["old"]})
    elif case == "atomic_dir":
        with atomic_dir(target) as tmp:
            (tmp / "config.json").write_text('{"old": true}')
    else:
        write_dataset(
            target,
            [Document("old", "t", "Old text.", [(0, 9)])],
            [Query("q", "?", "old", ["a"], [], "a", True)],
            {},
        )


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every visible file under ``folder`` (relative path -> bytes); hidden temporaries excluded."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


@pytest.mark.parametrize("previous", [False, True], ids=["fresh", "replacing"])
@pytest.mark.parametrize("case", list(CASES))
def test_sigkill_in_the_middle_of_a_write_leaves_no_output(tmp_path, case, previous):
    name, is_folder = CASES[case]
    out = tmp_path / "out"
    out.mkdir()
    target = out / name
    if previous:
        _write_previous(target, case)
    before = _snapshot(out)

    child = run_python(KILL_MID_WRITE, case, str(target), timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]

    # The destination is exactly what it was: absent, or the previous whole version.
    assert _snapshot(out) == before
    if not previous and case == "write_dataset":  # the builder made the folder: no file in it
        assert _snapshot(target) == {}
    elif not previous:
        assert not target.exists()
    # The killed write is a hidden temporary holding part of the data.
    where = target if case == "write_dataset" else out
    leftovers = [where / n for n in hidden_entries(where)]
    assert len(leftovers) == 1, hidden_entries(where)
    leftover = leftovers[0]
    if case == "write_dataset":
        assert leftover.name.startswith(".building.")
    else:
        assert leftover.name.startswith(f".{name}.")
        assert leftover.name.endswith(".tmp") != is_folder
    size = (
        sum(p.stat().st_size for p in leftover.rglob("*")) if leftover.is_dir() else leftover.stat().st_size
    )
    assert size > 100_000, "the kill did not land in the middle of the write"
    if previous and case == "write_jsonl":
        assert read_jsonl(target) == [{"i": 0, "text": "old"}]
    if previous and case == "write_json":
        assert read_json(target) == {"rows": ["old"]}


# --------------------------------------------------------------------------------------------
# An interrupted Snakemake job


def _workflow(tmp_path: Path, mini_config: dict, endpoint: str) -> Path:
    """A scratch workflow running the real data rules (workflow/rules/data.smk) on a small dump."""
    dump = tmp_path / "wiki.jsonl"
    if not dump.exists():  # written once: a newer dump would make Snakemake redo rir_preprocess
        rng = random.Random(3)
        articles = [{"id": str(i), "url": "", "title": f"A{i}", "text": make_article(rng)} for i in range(4)]
        write_wiki(dump, articles)
    cfg = copy.deepcopy(mini_config)
    cfg["registry"] = str(REPO_ROOT / "config" / "baselines.yaml")
    cfg["results_dir"] = str(tmp_path / "results")
    cfg["reports_dir"] = str(tmp_path / "reports")
    cfg["data"]["rir"]["wikipedia"] = str(dump)
    cfg["data"]["rir"]["rewrite"].update(
        backend="openai",
        endpoint=endpoint,
        model="test-model",
        batch_size=4,
        concurrency=1,
        max_retries=2,
        timeout_s=60,  # long: the job is killed while it waits on the stuck server
        backoff_s=0.01,
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    snakefile = tmp_path / "Snakefile"
    if not snakefile.exists():
        snakefile.write_text(
            f'include: "{REPO_ROOT}/workflow/rules/common.smk"\ninclude: "{REPO_ROOT}/workflow/rules/data.smk"\n',
            encoding="utf-8",
        )
    return tmp_path / "results" / "data" / "rir_work"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _snakemake(tmp_path, *args),
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=tmp_path,
        timeout=300,
    )


def _snakemake(tmp_path: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(tmp_path / "Snakefile"),
        "-d",
        str(tmp_path),
        "--configfile",
        str(tmp_path / "config.yaml"),
        "--cores",
        "1",
        *args,
    ]


@pytest.mark.slow
def test_killed_snakemake_job_leaves_no_output_and_the_rerun_completes(tmp_path, mini_config):
    answered = 5
    with scripted_server(tmp_path, ["ok"] * answered, after="hang", name="stuck") as (endpoint, log):
        work = _workflow(tmp_path, mini_config, endpoint)
        target = work / "rewrites.jsonl"
        with open(tmp_path / "snakemake_killed.log", "w") as sink:
            process = subprocess.Popen(
                _snakemake(tmp_path, str(target)),
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=child_env(),
                cwd=tmp_path,
                start_new_session=True,  # its own process group: Snakemake and its jobs
            )
        try:
            # killed while the job waits for the 6th answer, the output half-written
            wait_for(lambda: len(requests_seen(log)) > answered, 300, process, "the 6th rewrite request")
            os.killpg(process.pid, signal.SIGKILL)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
        sent_first = [r["sentence"] for r in requests_seen(log)]

    # No output a later job could take for a result; the finished upstream job's outputs stay.
    assert not target.exists()
    assert (work / "preprocessed.jsonl").is_file() and (work / "preprocess_stats.json").is_file()
    leftovers = hidden_entries(work)
    assert (
        len(leftovers) == 1 and leftovers[0].startswith(".rewrites.jsonl.") and leftovers[0].endswith(".tmp")
    )
    cached = read_jsonl(work / "rewrite_cache.jsonl")
    assert [c["sentence"] for c in cached] == sent_first[:answered]

    # Snakemake's lock survives the kill: the rerun says how to remove it.
    locked = _run(tmp_path, str(target))
    assert locked.returncode != 0 and "cannot be locked" in locked.stdout + locked.stderr
    assert "--unlock" in locked.stdout + locked.stderr
    unlock = _run(tmp_path, "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    plan = _run(tmp_path, "-n", str(target))
    assert plan.returncode == 0, plan.stderr[-3000:]
    planned = plan.stdout + plan.stderr
    assert "rir_rewrite" in planned and "rir_preprocess" not in planned

    with scripted_server(tmp_path, [], name="healthy") as (endpoint, log):
        _workflow(tmp_path, mini_config, endpoint)
        rerun = _run(tmp_path, str(target))
        assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-4000:]
        ran = rerun.stdout + rerun.stderr
        assert "rule rir_rewrite:" in ran and "rule rir_preprocess:" not in ran  # its outputs were whole
        sent_again = [r["sentence"] for r in requests_seen(log)]
    rows = read_jsonl(target)
    assert len(rows) == 12 and all(r["rewrite"] == expected_rewrite(r["sentence"]) for r in rows)
    assert len(sent_again) == len(rows) - answered  # nothing sent twice
    assert not set(sent_again) & set(sent_first[:answered])

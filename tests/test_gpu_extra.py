"""The ``gpu`` extra (pyproject.toml): FAISS's GPU build at the suite's FAISS version, and it resolves.

- :func:`test_gpu_extra_pins_faiss_gpu_at_the_faiss_cpu_version`: no network; the extra names
  exactly ``faiss-gpu``, pinned to the version constraints.txt pins for ``faiss-cpu`` (the same
  ``faiss`` Python API the suite calls).
- :func:`test_gpu_extra_resolves_on_the_package_index` (``slow``: one pip dry run, about 7 s, most
  of it fetching the 135 MB wheel, which pip 23.2 reads its metadata from): pip finds a Linux
  x86-64 wheel for CPython 3.11 at that exact version, so the extra cannot rot. Skipped, saying
  so, when pip cannot reach its index.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

from gear.config import REPO_ROOT

#: pip's words for an index it could not reach (as opposed to a package it could not find)
UNREACHABLE = (
    "NewConnectionError",
    "Failed to establish",
    "Max retries exceeded",
    "Temporary failure in name",
)


def _gpu_extra() -> list[Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(spec) for spec in project["optional-dependencies"]["gpu"]]


def _faiss_cpu_pin() -> str:
    for line in (REPO_ROOT / "constraints.txt").read_text().splitlines():
        if line.startswith("faiss-cpu=="):
            return line.split("==")[1]
    raise AssertionError("constraints.txt pins no faiss-cpu")


def test_gpu_extra_pins_faiss_gpu_at_the_faiss_cpu_version():
    (faiss_gpu,) = _gpu_extra()
    assert faiss_gpu.name == "faiss-gpu"
    assert str(faiss_gpu.specifier) == f"=={_faiss_cpu_pin()}"


@pytest.mark.slow
def test_gpu_extra_resolves_on_the_package_index(tmp_path):
    specs = [str(req) for req in _gpu_extra()]
    report = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
        "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
        "--implementation", "cp", "--target", str(tmp_path / "target"), "--timeout", "20",
        "--retries", "1", "--quiet", "--report", str(report), *specs,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and any(word in done.stdout + done.stderr for word in UNREACHABLE):
        pytest.skip(f"pip cannot reach its package index: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr
    installs = json.loads(report.read_text())["install"]
    found = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in installs}
    assert found == {"faiss-gpu": _faiss_cpu_pin()}
    assert not (tmp_path / "target").exists()  # a dry run installs nothing

"""The data rules plan offline: downloads only where the config names URLs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

SNAKEFILE = """
import sys
sys.path.insert(0, {repo!r})
from gear.config import validate_config
from gear.layout import DATASETS, SCENARIOS, Layout

validate_config(config)
L = Layout.from_config(config)

include: {rules!r}

rule all:
    input:
        [L.stats(d) for d in DATASETS] + [L.train_triples(s) for s in SCENARIOS],
"""


def plan(tmp_path: Path, config: str) -> str:
    """``snakemake -n`` of every data output, in a scratch folder (no lock on the repository)."""
    (tmp_path / "Snakefile").write_text(
        SNAKEFILE.format(repo=str(REPO_ROOT), rules=str(REPO_ROOT / "workflow" / "rules" / "data.smk"))
    )
    (tmp_path / "data_prep").symlink_to(REPO_ROOT / "data_prep")  # the mini data's relative paths
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "-s",
            str(tmp_path / "Snakefile"),
            "-d",
            str(tmp_path),
            "--configfile",
            str(REPO_ROOT / "config" / config),
            "--quiet",
            "rules",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def planned_rules(output: str) -> set[str]:
    """Rule names of the first "Job stats" table of a Snakemake dry run."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {line.split()[0] for line in table.splitlines()[3:] if line.strip()}


BUILDERS = {"build_qa", "build_paq", "rir_preprocess", "rir_rewrite", "rir_postprocess", "all"}
DOWNLOADS = {
    "download_squad",
    "download_nq",
    "download_triviaqa",
    "download_paq_metadata",
    "download_paq_passages",
    "download_wikipedia",
}


def test_paper_config_plans_downloads_without_network(tmp_path):
    planned = planned_rules(plan(tmp_path, "paper.yaml"))
    assert DOWNLOADS | BUILDERS <= planned
    # nothing else: the rest are the config's extra downloads (download_squad_extra_0, ...)
    assert all(rule.startswith("download_") for rule in planned - BUILDERS), planned


def test_mini_config_never_downloads(tmp_path):
    assert planned_rules(plan(tmp_path, "mini.yaml")) == BUILDERS

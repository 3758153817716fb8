"""The baselines rules in Snakemake: the DAG of the retraining rules, and early failure offline.

The suite's Snakefile includes every stage; these tests include only common.smk and
baselines.smk, so they check the baselines rules on their own.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from gear.config import REPO_ROOT
from tests.baselines.helpers import write_triples

pytestmark = pytest.mark.slow


def run_snakemake(
    tmp_path, cfg: dict, *targets: str, extra_env: dict | None = None, dry_run: bool = True
) -> subprocess.CompletedProcess:
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(
        f'include: "{REPO_ROOT / "workflow" / "rules" / "common.smk"}"\n'
        f'include: "{REPO_ROOT / "workflow" / "rules" / "baselines.smk"}"\n'
    )
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile),
        "--configfile",
        str(config_file),
    ]
    command += ["--dry-run"] if dry_run else []
    command += ["--cores", "1", "--directory", str(tmp_path), *targets]
    env = dict(os.environ, HF_HUB_OFFLINE="1", **(extra_env or {}))
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


def test_retraining_rules_plan_one_gpu_job_per_model(run_config, tmp_path):
    from gear.layout import Layout

    layout = Layout.from_config(run_config)
    write_triples(layout.train_triples("rir"))
    run_config["registry"] = str(REPO_ROOT / "config" / "baselines.yaml")
    run_config["evaluate"]["models"] = ["MiniLM", "SBERT_RT", "BGE_RT"]
    targets = [str(layout.final_model("SBERT_RT", "rir")), str(layout.final_model("BGE_RT", "rir"))]
    result = run_snakemake(tmp_path, run_config, *targets)
    assert result.returncode == 0, result.stderr + result.stdout
    output = result.stdout + result.stderr
    for rule in ("train_sbert_rt", "train_bge_rt"):
        assert f"rule {rule}:" in output
        assert str(layout.log("baselines", f"{rule}_rir")) in output
    assert output.count("gpu=1") == 2 and "wildcards: scenario=rir" in output


def test_a_run_naming_a_hub_only_model_offline_fails_before_any_job(run_config, tmp_path):
    from gear.layout import Layout

    run_config["registry"] = str(REPO_ROOT / "config" / "baselines.yaml")
    run_config["evaluate"]["models"] = ["BGE", "BGE_RT"]
    layout = Layout.from_config(run_config)
    write_triples(layout.train_triples("rir"))
    target = str(layout.final_model("BGE_RT", "rir"))
    offline = {"HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    result = run_snakemake(tmp_path, run_config, target, extra_env=offline, dry_run=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "needed by registry entry BGE" in output and "'BAAI/bge-base-en-v1.5'" in output
    assert "model_paths" in output and "allow_downloads" in output
    assert "rule train_bge_rt:" not in output  # no job started
    assert not layout.final_model("BGE_RT", "rir").exists()

    # A dry run loads no model: it plans the same job and warns what a run would stop on.
    planned = run_snakemake(tmp_path, run_config, target, extra_env=offline)
    assert planned.returncode == 0, planned.stderr
    output = planned.stdout + planned.stderr
    assert "rule train_bge_rt:" in output
    assert "a run (not a dry run) would stop here" in output and "needed by registry entry BGE" in output

"""The workflow commands users copy from README plan as written, at paper scale offline too."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gear.config import REPO_ROOT

pytestmark = pytest.mark.slow


def readme_snakemake_commands() -> list[str]:
    """Every ``snakemake ...`` line of README's bash blocks (comments dropped)."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("snakemake "):
                commands.append(line)
    return commands


def readme_yaml_block(first_line: str) -> str:
    """The README ``yaml`` block whose first line is ``first_line``."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [
        b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S) if b.lstrip().startswith(first_line)
    ]
    assert len(blocks) == 1, f"README has {len(blocks)} yaml blocks starting {first_line!r}"
    return blocks[0]


def dry_run(tmp_path: Path, args: list[str]) -> subprocess.CompletedProcess:
    """``snakemake -n ARGS`` in a scratch folder linking the repository's config/, data_prep/, profiles/.

    A command that names README's example model ``MyEncoder`` gets what README's "Compare your
    model" tells the user to write: its registry entry appended to a copy of
    ``config/baselines.yaml`` and ``my.yaml``."""
    workdir = tmp_path / "work"
    if not workdir.exists():
        workdir.mkdir()
        for name in ("data_prep", "profiles"):
            (workdir / name).symlink_to(REPO_ROOT / name)
        if any("MyEncoder" in a or a == "my.yaml" for a in args):
            shutil.copytree(REPO_ROOT / "config", workdir / "config")
            with (workdir / "config" / "baselines.yaml").open("a", encoding="utf-8") as registry:
                registry.write("\n" + readme_yaml_block("MyEncoder:"))
            (workdir / "my.yaml").write_text(readme_yaml_block("# my.yaml"), encoding="utf-8")
        else:
            (workdir / "config").symlink_to(REPO_ROOT / "config")
    snakemake = Path(sys.executable).with_name("snakemake")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    return subprocess.run(
        [str(snakemake), "--snakefile", str(REPO_ROOT / "Snakefile"), "-n", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_readme_shows_the_commands_checked_here():
    commands = readme_snakemake_commands()
    assert any("profiles/slurm" in c for c in commands) and any("--forcerun" in c for c in commands)
    assert any("config/paper.yaml" in c for c in commands)


@pytest.mark.parametrize("command", readme_snakemake_commands())
def test_readme_command_plans_its_target(tmp_path, command):
    args = shlex.split(command)[1:]
    result = dry_run(tmp_path, [a for a in args if a != "-n"])
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    # The target named on the line is the one planned (an option taking several values, such
    # as --configfile or --forcerun, swallows a target written after it).
    targets = [
        a for a in args if re.fullmatch(r"(reproduce_all|table_\w+|figure_\w+|explain|report_index)", a)
    ]
    for target in targets:
        assert f"rule {target}:" in result.stdout or f"localrule {target}:" in result.stdout, command


def test_paper_scale_dag_plans_offline_and_warns_of_missing_models(tmp_path):
    result = dry_run(tmp_path, ["--cores", "1", "reproduce_all", "--configfile", "config/paper.yaml"])
    assert result.returncode == 0, result.stderr[-3000:]
    for rule in (
        "download_wikipedia",
        "rir_rewrite",
        "train_gear",
        "evaluate_GeAR_qar",
        "table_1",
        "figure_4_layers",
    ):
        assert f"rule {rule}:" in result.stdout, rule
    assert "a run (not a dry run) would stop here" in result.stderr
    assert "needed by data.token_counter: model 'bert-base-uncased'" in result.stderr

"""The install files agree: environment.yml pins what requirements.txt pins, and both keep the CPU torch."""

from __future__ import annotations

import re

import yaml

from gear.config import REPO_ROOT


def _requirements() -> list[str]:
    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_every_requirement_is_pinned_exactly():
    for line in _requirements():
        # an exact pin, optionally with build settings (llama-cpp-python's GGML_NATIVE=OFF)
        assert re.fullmatch(
            r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[A-Za-z0-9_.+\-]+( --config-settings=\S+)?", line
        ), line


def test_environment_yml_installs_the_same_pins():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert pip == _requirements()
    assert "python=3.11" in env["dependencies"]


def test_the_installed_torch_is_the_pinned_version():
    """requirements.txt pins torch 2.13.0 (its CPU build here; a CUDA build of the same version on a
    GPU machine, environment.yml): the torch this suite runs with is that version, whatever its build."""
    import torch

    assert "torch==2.13.0" in _requirements()
    assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__

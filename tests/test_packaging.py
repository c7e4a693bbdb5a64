"""pyproject.toml and environment.yml list the same dependencies; the Makefile, CI entry point and
README keep the promised shape."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
TORCH_PIN = "==2.13.0"
CONDA_ONLY = {"python", "pip"}


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def project_requirements() -> dict[str, Requirement]:
    project = pyproject()["project"]
    reqs = list(project["dependencies"]) + list(project["optional-dependencies"]["dev"])
    return {canonicalize_name(Requirement(r).name): Requirement(r) for r in reqs}


def conda_requirements() -> tuple[dict[str, str], dict[str, Requirement]]:
    """(conda name -> spec string, pip name -> Requirement) of environment.yml."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda: dict[str, str] = {}
    pip: dict[str, Requirement] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for line in dep.get("pip", []):
                if line.startswith("-"):  # options and the editable install of the package
                    continue
                req = Requirement(line)
                pip[canonicalize_name(req.name)] = req
        else:
            name = re.split(r"[<>=!~ ]", dep, maxsplit=1)[0]
            conda[canonicalize_name(name)] = dep[len(name):].strip()
    return conda, pip


def test_every_dependency_is_in_environment_yml():
    conda, pip = conda_requirements()
    for name, req in project_requirements().items():
        assert name in conda or name in pip, f"{name} is in pyproject.toml, not environment.yml"
        listed = str(pip[name].specifier) if name in pip else conda[name]
        assert set(listed.split(",")) == set(str(req.specifier).split(",")), (
            f"{name}: pyproject says {req.specifier!s}, environment.yml {listed}")


def test_environment_yml_has_nothing_extra():
    conda, pip = conda_requirements()
    project = set(project_requirements())
    extra = (set(conda) - CONDA_ONLY - project) | (set(pip) - project)
    assert not extra, f"environment.yml lists {sorted(extra)}, pyproject.toml does not"


def test_the_ray_extra_is_in_dev():
    """CI installs .[dev]: the Ray executor's tests need the `ray` extra there too."""
    extras = pyproject()["project"]["optional-dependencies"]
    assert extras["ray"] and set(extras["ray"]) <= set(extras["dev"])


def test_torch_is_pinned_everywhere():
    assert str(project_requirements()["torch"].specifier) == TORCH_PIN
    _, pip = conda_requirements()
    assert "torch" in pip and str(pip["torch"].specifier) == TORCH_PIN
    makefile = (ROOT / "Makefile").read_text()
    assert "torch" + TORCH_PIN in makefile
    # torch is installed before the package, so the pin decides which build arrives
    assert makefile.index("$(TORCH_PIN)\n") < makefile.index("pip install -e '.[dev]'")


def test_makefile_targets():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("test", "reproduce", "lab", "bench", "clean"):
        assert re.search(rf"^{target}:", makefile, re.M), target
    assert re.search(r"^PROFILE \?= quick$", makefile, re.M)
    assert "python3 -m venv" in makefile.replace("$(PYTHON)", "python3")


def test_ci_runs_make_test():
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in ci
    commands = [ln.strip() for ln in ci.splitlines()
                if ln.strip() and not ln.lstrip().startswith("#")]
    assert "make test" in commands


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert first_block is not None
    commands = [ln.split("#")[0].strip() for ln in first_block.group(1).splitlines()]
    assert [c for c in commands if c][:2] == ["make reproduce", "make test"]
    assert readme.index("```") < 600  # near the top


def test_package_version_matches():
    import ecmeta_lib

    assert ecmeta_lib.__version__ == pyproject()["project"]["version"]

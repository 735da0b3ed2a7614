"""Project shape: environment.yml lists the same dependencies as pyproject.toml; README/CI commands."""
from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.fixture


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    wanted = {("dask" if w == "dask" else w) for w in wanted}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    # dask[distributed] on PyPI is dask + distributed on conda-forge
    assert conda - {"distributed"} == wanted, (conda ^ wanted)
    assert "python=3.11" in env["dependencies"]


def test_readme_opens_with_the_two_commands():
    head = (ROOT / "README.md").read_text().splitlines()[:12]
    text = "\n".join(head)
    assert "make run" in text and "make test" in text


def test_ci_calls_make_test_only():
    lines = [l for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert any(l.strip() == "make test" for l in lines)
    assert not any("pytest" in l for l in lines)


def test_gitignore_covers_generated_folders():
    text = (ROOT / ".gitignore").read_text()
    assert ".venv/" in text and "outputs/" in text

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


LOCK = ROOT / "requirements.lock"


def _locked() -> dict[str, list[str]]:
    """Package -> versions pinned in requirements.lock (one per package: the lock is resolved with
    uv's --fork-strategy fewest, so every supported Python gets the same version)."""
    pins: dict[str, list[str]] = {}
    for line in LOCK.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^ ;\\]+)", line)
        if m:
            pins.setdefault(m.group(1).lower().replace("_", "-"), []).append(m.group(2))
    return pins


def _direct() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + project["optional-dependencies"]["test"]


def test_environment_yml_matches_pyproject_and_pins_the_locked_versions():
    wanted = {_name(r) for r in _direct()}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    specs = [d for d in env["dependencies"] if isinstance(d, str)]
    conda = {_name(d) for d in specs} - {"python", "pip"}
    # dask[distributed] on PyPI is dask + distributed on conda-forge
    assert conda - {"distributed"} == wanted, (conda ^ wanted)
    assert "python=3.11" in env["dependencies"]
    locked = _locked()
    for spec in specs:
        name = _name(spec)
        if name in ("python", "pip"):
            continue
        version = spec.split("=", 1)[1] if "=" in spec else None
        assert version == locked[name][0], f"environment.yml pins {spec}; requirements.lock has {locked[name]}"


def test_lock_pins_every_package_once_with_hashes():
    text = LOCK.read_text()
    locked = _locked()
    assert len(locked) > 100                    # transitive dependencies included
    assert {_name(r) for r in _direct()} <= set(locked)
    assert all(len(v) == 1 for v in locked.values()), {k: v for k, v in locked.items() if len(v) > 1}
    assert text.count("--hash=sha256:") >= len(locked)
    assert "make lock" in text.splitlines()[1]


def test_lock_satisfies_pyproject():
    """Every direct requirement's range admits the locked version (a stale lock fails here)."""
    from packaging.requirements import Requirement

    locked = _locked()
    for req in map(Requirement, _direct()):
        version = locked[_name(req.name)][0]
        assert req.specifier.contains(version, prereleases=True), f"{req} excludes locked {version}: run make lock"


def test_makefile_installs_from_the_lock():
    text = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r $(LOCK)" in text and "LOCK   := requirements.lock" in text
    assert "test-latest:" in text and "lock:" in text


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


def test_every_subpackage_is_listed_in_pyproject():
    """The explicit package list (needed to map the bundle folders) misses no subpackage of the source tree."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "rp2pr_eval").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
    bundle = {p for p in listed if p.startswith("rp2pr_eval._bundle")}
    mapped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    assert bundle == set(mapped) and all((ROOT / d).is_dir() for d in mapped.values())


def test_every_module_a_test_skips_without_is_a_declared_dependency():
    """A test that ``pytest.importorskip``s a module would skip silently after ``make install`` if the module
    were only a transitive pin of the lock (websocket-client for the headless-Chromium report test was):
    each such module's distribution must be a direct dependency or in the ``test`` extra (an extra such as
    ``dask[distributed]`` counts for the package it names)."""
    import importlib.metadata as md
    import sys

    from packaging.requirements import Requirement

    declared = set()
    for req in map(Requirement, _direct()):
        declared.add(_name(req.name))
        declared |= {_name(extra) for extra in req.extras}
    owners = md.packages_distributions()
    skipped = set()
    for path in (ROOT / "tests").rglob("*.py"):
        skipped |= set(re.findall(r"importorskip\(\s*[\"']([A-Za-z_][A-Za-z0-9_]*)", path.read_text()))
    third_party = {m for m in skipped - set(sys.stdlib_module_names) if m not in ("rp2pr_eval", "tests")}
    assert "websocket" in third_party                   # the report's browser test
    missing = {m: owners.get(m) for m in third_party
               if not {_name(d) for d in owners.get(m, [m])} & declared}
    assert missing == {}, f"modules tests skip without, not declared in pyproject.toml: {missing}"

"""An installed wheel runs: notebooks, default parameters and bundled data ship inside the package.

Builds the wheel offline (setuptools from the lock), installs it with no dependencies into a new virtual
environment outside the repository whose dependencies come from this environment's site-packages, and runs
the package from a folder outside the repository.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("wheel")
    # build from a copy of the tracked files (an in-tree build would leave build/ and *.egg-info behind)
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    source = base / "source"
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(base / "dist"), str(source)], check=True, capture_output=True)
    wheel = next((base / "dist").glob("rp2pr_eval-*.whl"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # dependencies from this environment (a plain path entry: its .pth files, the editable finder of the
    # checkout among them, are not processed, so rp2pr_eval can only come from the wheel)
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True)
    work = base / "elsewhere"
    work.mkdir()
    return venv, work


def _run(venv: Path, work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # the dependencies' data files (nbconvert's templates) as a real install of them would provide
    env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
    return subprocess.run([str(venv / "bin" / "rp2pr-eval"), *args], cwd=work, env=env, capture_output=True,
                          text=True, timeout=900)


def test_the_wheel_holds_the_notebooks_parameters_and_data(wheel_env):
    venv, work = wheel_env
    code = ("import rp2pr_eval, rp2pr_eval.paths as p; print(rp2pr_eval.__file__); print(p.is_checkout()); "
            "print(p.notebooks_dir()); print(p.bundled_data().is_file()); "
            "print(all((p.bundled_data().parent / 'raw' / f).is_file() for f in "
            "('mapping.yaml', 'allocation.csv', 'nlca_extract.csv.gz')))")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=work, capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[0].startswith(str(venv)) and out[1] == "False" and "_bundle" in out[2] and out[3] == "True"
    assert out[4] == "True"                            # the raw extract, its allocation list and mapping too


def test_an_installed_package_runs_the_evaluation(wheel_env):
    venv, work = wheel_env
    res = _run(venv, work, "run", "--outcome", "days_referral_to_treatment", "--run-id", "w", "--quiet")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "5/5 notebooks ran" in res.stdout
    run = work / "outputs" / "w"                       # ./outputs under the working folder, not site-packages
    manifest = json.loads((run / "manifest.json").read_text())
    assert all(n["status"] == "ok" for n in manifest["notebooks"])
    assert (run / "results" / "days_referral_to_treatment.json").is_file()
    assert manifest["environment"]["lock_file"] is None          # an installed wheel records versions only
    assert not list(Path(manifest["parameters"]["params_dir"]).glob("outputs"))

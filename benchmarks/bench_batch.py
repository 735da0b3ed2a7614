"""Time the whole batch (``rp2pr-eval run --params parameters``) on the bundled data, kernels forked and fresh.

Run from the repository root on an otherwise idle machine::

    .venv/bin/python benchmarks/bench_batch.py [--repeat N]

Each run is a separate process (``run_evaluation`` with ``fork_kernels=True``, then ``False``: every
kernel a fresh ``python -m ipykernel_launcher``, as papermill does by itself). Printed per run: wall
seconds, CPU seconds of the run and all its kernels (user + system, from ``getrusage`` of the waited
children), and the seconds the manifest records. The two runs' ``results/``, ``tables/`` and
``figures/`` are compared byte for byte: forking the kernels must not change a number or a pixel.
Target (issue 16): the whole batch within 90 s on 2 cores.
"""
from __future__ import annotations

import argparse
import filecmp
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load  # noqa: E402

from rp2pr_eval.paths import project_root  # noqa: E402

RUN = """
import sys
from dataclasses import replace
from rp2pr_eval.pipeline.batch import run_evaluation
from rp2pr_eval.pipeline.config import load_run_config
config = replace(load_run_config(sys.argv[1]), out=sys.argv[2])
result = run_evaluation(config, run_id=sys.argv[3], progress=False, fork_kernels=sys.argv[4] == "fork")
sys.exit(0 if not result.failed else 1)
"""


def one_run(out: Path, run_id: str, mode: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUN, str(project_root() / "parameters"), str(out), run_id, mode],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{proc.stderr[-3000:]}")
    manifest = json.loads((out / run_id / "manifest.json").read_text())
    return {"mode": mode, "wall": wall, "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "manifest": manifest["seconds"], "dir": out / run_id}


def same_tree(a: Path, b: Path) -> list[str]:
    """Files that differ (or exist on one side only) between two folders, recursively."""
    cmp = filecmp.dircmp(a, b)
    out = [f"{a.name}/{n}" for n in cmp.left_only + cmp.right_only + cmp.funny_files]
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    out += [f"{a.name}/{n}" for n in mismatch + errors]
    for sub in cmp.common_dirs:
        out += same_tree(a / sub, b / sub)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(f"load average before: {load()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        for i in range(args.repeat):
            for mode in ("fork", "fresh"):
                rows.append(one_run(Path(tmp), f"{mode}{i}", mode))
        print(f"{'kernels':8s} {'wall s':>7s} {'CPU s':>7s} {'manifest s':>11s}")
        for r in rows:
            print(f"{r['mode']:8s} {r['wall']:7.1f} {r['cpu']:7.1f} {r['manifest']:11.1f}")
        differ = []
        for sub in ("results", "tables", "figures"):
            differ += same_tree(rows[0]["dir"] / sub, rows[1]["dir"] / sub)
        print("results, tables and figures byte-identical between forked and fresh kernels:",
              "yes" if not differ else f"NO: {differ[:10]}")
    print(f"load average after: {load()}")
    return 0 if not differ else 1


if __name__ == "__main__":
    sys.exit(main())

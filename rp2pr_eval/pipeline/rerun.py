"""Compare two run folders file by file: every file of either run is compared.

Results, tables and figures must be byte-identical. Executed notebooks, their HTML, the report page
and the manifest necessarily record when and where they ran (timestamps, durations, the run id, the
run's own folder, the private working folder, the cell ids Papermill gives its injected cell); those
are compared after removing exactly these and nothing else (:data:`NORMALISED`), so a changed
number, table row or figure in any of them is still a difference.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Files compared after removing times, the run id and the run's paths; every other file byte for byte.
NORMALISED = ("manifest.json", "index.html", "notebooks/*.ipynb", "notebooks/*.html")
#: Manifest keys (at any depth) that record when or how long, not what.
_VOLATILE_KEYS = {"seconds", "started", "finished", "timings", "run_id", "duration", "start_time", "end_time"}
# the private working folder's name (tempfile.mkdtemp); a literal prefix, so the scan is linear even in the
# megabytes of base64 images of an executed notebook (its folder, $TMPDIR, is the same for both runs)
_PRIVATE = re.compile(r"rp2pr-eval-[A-Za-z0-9_]{6,}")
_CELL_ID = re.compile(r"cell-id=[0-9a-f]{8}")
_STARTED = re.compile(r"started \d{4}-\d\d-\d\dT[\d:.]+")
_SECONDS = re.compile(r"\b\d+(?:\.\d+)? s\b")


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing two run folders."""

    identical: tuple[str, ...]          # byte for byte
    normalised: tuple[str, ...]         # identical once times, the run id and the run's paths are removed
    differences: tuple[str, ...]        # "<file>: <why>"

    @property
    def n_files(self) -> int:
        return len(self.identical) + len(self.normalised) + len(self.differences)

    def __bool__(self) -> bool:
        """True when the runs reproduce each other."""
        return not self.differences


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def _is_normalised(name: str) -> bool:
    return any(Path(name).match(pattern) for pattern in NORMALISED)


def _scrub_text(text: str, run: Path, run_id: str) -> str:
    partial = run.parent / f".{run.name}.partial"
    for path in sorted({str(partial), str(partial.resolve()), str(run), str(run.resolve())}, key=len, reverse=True):
        text = text.replace(path, "<run>")
    text = text.replace(f".{run_id}.partial", "<run>").replace(f"(run {run_id})", "(run <id>)")
    text = _PRIVATE.sub("<private>", text)
    return _CELL_ID.sub("cell-id=<id>", text)


def _drop_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_keys(v) for k, v in value.items() if k not in _VOLATILE_KEYS}
    if isinstance(value, list):
        return [_drop_keys(v) for v in value]
    return value


def _notebook(data: dict) -> dict:
    data = dict(data)
    meta = dict(data.get("metadata", {}))
    meta.pop("papermill", None)
    data["metadata"] = meta
    cells = []
    for cell in data.get("cells", []):
        cell = dict(cell)
        tags = cell.get("metadata", {}).get("tags", [])
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k not in ("execution", "papermill")}
        if "injected-parameters" in tags:
            cell.pop("id", None)                       # papermill draws a new id for the cell it injects
        cells.append(cell)
    data["cells"] = cells
    return data


def normalised_text(path: Path, run: Path, run_id: str) -> str:
    """The content of a :data:`NORMALISED` file with times, the run id and the run's paths removed."""
    text = path.read_text(encoding="utf-8", errors="replace")
    name = path.name
    if name.endswith((".json", ".ipynb")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return _scrub_text(text, run, run_id)
        data = _notebook(data) if name.endswith(".ipynb") else _drop_keys(data)
        text = json.dumps(data, sort_keys=True, indent=1)
    elif name == "index.html":
        text = _SECONDS.sub("<t> s", text)
        text = _STARTED.sub("started <time>", text).replace(f"<code>{run_id}</code>", "<code><id></code>")
    return _scrub_text(text, run, run_id)


def compare_runs(a: str | Path, b: str | Path, *, run_id_a: str | None = None,
                 run_id_b: str | None = None) -> Comparison:
    """Compare every file of two run folders (see the module docstring for what may differ).

    Parameters
    ----------
    a, b
        Run folders (``<out>/<run-id>``).
    run_id_a, run_id_b
        Their run ids (default: the folder names).
    """
    a, b = Path(a), Path(b)
    id_a, id_b = run_id_a or a.name, run_id_b or b.name
    identical, normalised, differences = [], [], []
    for name in sorted(_files(a) | _files(b)):
        pa, pb = a / name, b / name
        if not pa.is_file() or not pb.is_file():
            differences.append(f"{name}: only in {'the rerun' if not pa.is_file() else 'the original'}")
        elif pa.read_bytes() == pb.read_bytes():
            identical.append(name)
        elif _is_normalised(name) and normalised_text(pa, a, id_a) == normalised_text(pb, b, id_b):
            normalised.append(name)
        else:
            differences.append(f"{name}: contents differ")
    return Comparison(tuple(identical), tuple(normalised), tuple(differences))

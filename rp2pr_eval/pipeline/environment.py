"""The software environment of a run: versions, the lock file's hash, and whether the two agree.

``requirements.lock`` (made by ``make lock`` with uv) pins every package; ``make run`` and
``make test`` install exactly those versions. A run's manifest records the lock file's SHA-256 and
compares every locked package that applies to this platform and Python with what is installed, so
a run made in an environment that drifted from the lock says so.
"""
from __future__ import annotations

import hashlib
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from rp2pr_eval import paths

#: Packages whose versions every manifest lists (the lock has all of them).
DEPENDENCIES = ("numpy", "pandas", "scipy", "statsmodels", "linearmodels", "matplotlib", "seaborn", "papermill",
                "nbconvert", "ipykernel", "pyarrow", "pyyaml", "joblib", "dask", "distributed", "formulaic",
                "pyreadstat", "openpyxl")

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?\s*$")


def sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def locked_versions(lock: str | Path) -> dict[str, str]:
    """``{package: version}`` of the lock entries whose environment marker holds here."""
    from packaging.markers import Marker

    out: dict[str, str] = {}
    for line in Path(lock).read_text(encoding="utf-8").splitlines():
        m = _PIN.match(line)
        if not m:
            continue
        name, version, marker = m.group(1), m.group(2), m.group(3)
        if marker and not Marker(marker).evaluate():
            continue
        out[name.lower().replace("_", "-")] = version
    return out


def installed_versions() -> dict[str, str]:
    """Python, this package and :data:`DEPENDENCIES` as installed ("not installed" where absent)."""
    out = {"python": platform.python_version()}
    for name in ("rp2pr_eval",) + DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def environment_record() -> dict[str, Any]:
    """What a manifest records about the environment.

    Returns
    -------
    dict
        ``lock_file`` (path or ``None``), ``lock_sha256``, ``matches_lock`` (``None`` without a lock)
        and ``differences`` (``"package: locked X, installed Y"``, at most 20).
    """
    lock = paths.lock_file()
    if lock is None:
        return {"lock_file": None, "lock_sha256": None, "matches_lock": None, "differences": []}
    differences = []
    for name, version in sorted(locked_versions(lock).items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != version:
            differences.append(f"{name}: locked {version}, installed {installed}")
    return {"lock_file": lock.name, "lock_sha256": sha256(lock), "matches_lock": not differences,
            "differences": differences[:20]}


__all__ = ["DEPENDENCIES", "environment_record", "installed_versions", "locked_versions", "sha256"]

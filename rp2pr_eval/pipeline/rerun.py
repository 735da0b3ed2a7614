"""Compare two run folders: results JSON, tables and SVG/PDF figures must be byte-identical."""
from __future__ import annotations

from pathlib import Path

#: What must reproduce to the byte (executed notebooks and HTML carry timings and are excluded).
COMPARED = ("results/*.json", "results/*.npy", "tables/*", "figures/*.svg", "figures/*.pdf")


def compare_runs(a: str | Path, b: str | Path) -> list[str]:
    """Files that differ, or exist in only one of the two run folders (empty: identical)."""
    a, b = Path(a), Path(b)
    out = []
    for pattern in COMPARED:
        names = sorted({p.relative_to(a).as_posix() for p in a.glob(pattern)} |
                       {p.relative_to(b).as_posix() for p in b.glob(pattern)})
        for name in names:
            pa, pb = a / name, b / name
            if not pa.exists() or not pb.exists():
                out.append(f"{name}: only in {'the rerun' if not pa.exists() else 'the original'}")
            elif pa.read_bytes() != pb.read_bytes():
                out.append(f"{name}: contents differ")
    return out

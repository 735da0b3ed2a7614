"""The layout is the architecture: layers import only downwards, no cycles, no private names across modules.

Layers, lowest first (a module may import its own layer and the layers below it):
foundation (errors, paths, safe files, option/array checks) → models (general, no study knowledge) → study → data
→ synthetic → results → estimators → inference → presentation → pipeline → cli and the package root.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.fixture

PACKAGE = ROOT / "rp2pr_eval"
LAYERS = ["foundation", "models", "study", "data", "synthetic", "results", "estimators", "inference",
          "presentation", "pipeline", "top"]
FOUNDATION = {"rp2pr_eval.errors", "rp2pr_eval.paths", "rp2pr_eval.files", "rp2pr_eval._options", "rp2pr_eval._arrays"}
MAX_LINES = 600


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> int:
    if module in FOUNDATION:
        return 0
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return LAYERS.index("top")            # rp2pr_eval itself, rp2pr_eval.cli


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every rp2pr_eval import, at any depth."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("rp2pr_eval"):
                names = [a.name for a in node.names]
                # "from rp2pr_eval.x import submodule" imports the submodule
                subs = [f"{target}.{n}" for n in names if (PACKAGE.parent / f"{target}.{n}".replace(".", "/")).exists()
                        or (PACKAGE.parent / (f"{target}.{n}".replace(".", "/") + ".py")).exists()]
                out.append((target, [n for n in names if f"{target}.{n}" not in subs], node.lineno))
                out += [(s, [], node.lineno) for s in subs]
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("rp2pr_eval")]
    return out


MODULES = {_module(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_upward_imports():
    upward = []
    for module, path in MODULES.items():
        for target, _, line in _imports(path):
            if target != "rp2pr_eval" and _layer(target) > _layer(module):
                upward.append(f"{module}:{line} imports {target} ({LAYERS[_layer(module)]} -> {LAYERS[_layer(target)]})")
    assert not upward, "\n".join(upward)


def test_models_know_nothing_of_the_study():
    for module, path in MODULES.items():
        if module.startswith("rp2pr_eval.models"):
            bad = [t for t, _, _ in _imports(path) if not (t in FOUNDATION or t.startswith("rp2pr_eval.models"))]
            assert not bad, f"{module} imports {bad}"


def test_no_private_names_imported_across_modules():
    private = []
    for module, path in MODULES.items():
        for target, names, line in _imports(path):
            private += [f"{module}:{line} imports {target}.{n}" for n in names if n.startswith("_")]
    assert not private, "\n".join(private)


def test_no_import_cycles():
    graph = {m: {t for t, _, _ in _imports(p) if t in MODULES and t != m} for m, p in MODULES.items()}
    # a package's __init__ re-exporting its own submodules is not a cycle through the package
    for m in graph:
        graph[m] = {t for t in graph[m] if not (MODULES[m].name == "__init__.py" and t.startswith(m + "."))
                    and not (MODULES[t].name == "__init__.py" and m.startswith(t + "."))}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_no_module_over_600_lines_without_a_reason():
    """A long file says in its docstring why it is one file (``Length:`` paragraph).

    Measured file by file: a package's ``__init__.py`` and each of its modules on their own (a split
    package such as ``presentation/disclosure/`` or ``presentation/tables/`` passes when every file does).
    """
    long = []
    for module, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        n = len(text.splitlines())
        doc = ast.get_docstring(ast.parse(text)) or ""
        if n > MAX_LINES and "Length:" not in doc:
            long.append(f"{path.relative_to(ROOT)}: {n} lines")
    assert not long, "\n".join(long)

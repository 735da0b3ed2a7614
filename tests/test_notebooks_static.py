"""Notebooks stay thin: a parameters cell, calls into the package, no logic, no committed outputs."""
from __future__ import annotations

import ast
import json

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.fixture
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_thin_and_clean(path):
    book = json.loads(path.read_text())
    cells = book["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", []), "first code cell must be tagged 'parameters'"
    params = ast.parse("".join(code[0]["source"]))
    assert all(isinstance(node, ast.Assign) for node in params.body), "parameters cell holds assignments only"
    for cell in code:
        assert not cell.get("outputs") and cell.get("execution_count") is None, "commit notebooks without outputs"
        tree = ast.parse("".join(cell["source"]))
        banned = (ast.FunctionDef, ast.Lambda, ast.For, ast.While, ast.If, ast.IfExp, ast.ListComp, ast.DictComp,
                  ast.GeneratorExp, ast.ClassDef)
        assert not [n for n in ast.walk(tree) if isinstance(n, banned)], f"logic in a notebook cell: {cell['source']}"
    # a sentence of markdown before every call after the imports
    for before, cell in zip(cells, cells[1:]):
        if cell["cell_type"] == "code" and "parameters" not in cell["metadata"].get("tags", []) \
                and "import" not in "".join(cell["source"]):
            assert before["cell_type"] == "markdown", f"no explanation before: {cell['source']}"

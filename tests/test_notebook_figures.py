"""Executed notebooks show every figure inline, exactly once (issue 18).

Before, ``report.outcome_figures`` switched the kernel to the Agg backend, so every figure cell of
``10_outcome_analysis`` printed ``<Figure size …>`` as text; pyplot figures returned by a cell were
shown twice. The notebook is executed with papermill (small draw counts), converted to HTML with
nbconvert, and each figure cell must hold one PNG, the HTML one ``<img>`` per figure cell.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGURE_CELLS = ('figs["trends"]', 'figs["event_study"]', 'figs["funnel"]', 'figs["randomisation"]',
                'figs["caterpillar"]', 'referee_figs["sensitivity"]', 'referee_figs["effect_modification"]',
                'referee_figs["leave_one_pair_out"]')


def _small_params(tmp_path: Path) -> Path:
    params = tmp_path / "params"
    shutil.copytree(ROOT / "parameters", params)
    run = (params / "run.yaml").read_text(encoding="utf-8")
    run = run.replace("data: ../data/", f"data: {ROOT / 'data'}/")
    run = re.sub(r"ri_draws: \d+", "ri_draws: 99", run)
    run = re.sub(r"boot_draws: \d+", "boot_draws: 99", run)
    (params / "run.yaml").write_text(run, encoding="utf-8")
    return params


@pytest.mark.notebook
def test_outcome_notebook_shows_each_figure_once(tmp_path):
    import papermill
    from nbconvert import HTMLExporter

    out = tmp_path / "executed.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "10_outcome_analysis.ipynb"), str(out),
                               parameters={"outcome": "active_treatment", "params": str(_small_params(tmp_path)),
                                           "output_dir": str(tmp_path / "out")},
                               kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    nb = nbformat.read(out, as_version=4)
    cells = {c.source.strip(): c for c in nb.cells if c.cell_type == "code"}
    for source in FIGURE_CELLS:
        outputs = cells[source].outputs
        pngs = [o for o in outputs if "image/png" in o.get("data", {})]
        assert len(pngs) == 1, f"{source}: {len(pngs)} PNG outputs ({[o.get('data', {}).keys() for o in outputs]})"
    others = [c.source for c in nb.cells if c.cell_type == "code" and c.source.strip() not in FIGURE_CELLS
              and any("image/png" in o.get("data", {}) for o in c.outputs)]
    assert others == []                           # no figure shown where no figure was asked for
    body, _ = HTMLExporter().from_notebook_node(nb)
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', body)) == len(FIGURE_CELLS)
    assert "&lt;Figure size" not in body
    assert (tmp_path / "out").exists()

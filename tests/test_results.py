"""Effect: frozen, tidy row, JSON round trip, rendering (fixture tests)."""
from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd
import pytest

import rp2pr_eval as rp
from rp2pr_eval.results.effect import (
    TIDY_COLUMNS,
    Effect,
    effects_table,
    load_effects,
    render,
    save_effects,
)

pytestmark = pytest.mark.fixture


def make(**kw):
    base = dict(outcome="active_treatment", estimator="did_aggregate", estimand="DiD of proportions",
                scale="risk_difference", estimate=0.05, se=0.01, ci_low=0.03, ci_high=0.07, p_value=0.0001,
                df=21.3, n_obs=160, n_trusts=80, n_clusters=40, cluster="pair_id", vcov="CR2",
                details={"coefficients": {"treated:post": (0.05, 0.01)}, "n_dropped": {"during_years": 10},
                         "re_sd": float("nan")})
    base.update(kw)
    return Effect(**base)


def test_frozen_and_slots():
    e = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.estimate = 1.0
    assert not hasattr(e, "__dict__")


def test_to_dict_is_json_safe_and_round_trips(tmp_path):
    e = make(df=None, n_clusters=None, cluster=None)
    d = e.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert d["details"]["re_sd"] is None and d["df"] is None
    assert Effect.from_dict(json.loads(text)) == e
    path = save_effects([e, make(estimate=0.0, p_value=1.0)], tmp_path / "r.json")
    back = load_effects(path)
    assert back[0] == e and back[1].estimate == 0.0
    assert back[0].details["coefficients"]["treated:post"] == (0.05, 0.01)
    # deterministic bytes
    path2 = save_effects([e, make(estimate=0.0, p_value=1.0)], tmp_path / "r2.json")
    assert path.read_bytes() == path2.read_bytes()


def test_zero_is_not_lost():
    e = make(estimate=0.0, se=0.0, p_value=0.0)
    assert e.estimate == 0.0 and e.to_frame()["p_value"].iloc[0] == 0.0


def test_to_frame_has_tidy_schema():
    row = make().to_frame()
    assert list(row.columns[: len(TIDY_COLUMNS)]) == list(TIDY_COLUMNS)
    assert row["estimate"].dtype.kind == "f"
    table = effects_table([make(), make(outcome="cns_seen", df=None)])
    assert len(table) == 2 and math.isnan(table["df"].iloc[1])


def test_rendering_shows_percentage_points_and_is_shared():
    e = make()
    text = repr(e)
    assert "5.000" in text and "[3.000, 7.000]" in text and "<0.001" in text and "pair_id" in text
    assert e._repr_html_().startswith("<p><b>did_aggregate")
    assert "| outcome |" in e.summary("markdown")
    assert "\\begin{tabular}" in e.summary("latex")
    with pytest.raises(ValueError, match="fmt='pdf' is not valid"):
        render(e.to_frame(), fmt="pdf")


def test_effects_table_rejects_non_effects():
    with pytest.raises(TypeError, match="needs Effect objects"):
        effects_table([1, 2])

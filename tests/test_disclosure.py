"""Disclosure control (STUDY.md §5, DATA_CONTRACT.md §5).

Fixture tests: small tables whose protected form is worked out by hand in the
docstrings, one or more per preset. Property tests (hypothesis, derandomised):
on random count tables no visible count lies in the suppressed range, no
suppressed cell can be recovered exactly from the shown cells and totals
(checked with matrix ranks, independently of the module's graph algorithm),
and percentages and means built on suppressed counts are suppressed.
"""
from __future__ import annotations

import dataclasses
import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rp2pr_eval.presentation.disclosure import (
    DisclosurePolicy,
    check_disclosure,
    protect_table,
    suppress_counts,
)

THRESHOLD = DisclosurePolicy.from_preset()
HES = DisclosurePolicy.from_preset("hes_legacy")
NHSD = DisclosurePolicy.from_preset("nhsd_2018")


def frame(rows: dict, columns: list[str]) -> pd.DataFrame:
    """Expected frames: one dict entry per row; columns holding a string become object dtype."""
    df = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    for c in df.columns:
        if any(isinstance(v, str) for v in df[c]):
            df[c] = df[c].astype(object)
    return df


# ---------------------------------------------------------------------------
# Exact recoverability by linear algebra (independent of the module).
# ---------------------------------------------------------------------------


def recoverable_cells(suppressed: np.ndarray, shown: np.ndarray) -> list[tuple[int, int]]:
    """Suppressed cells of an extended (R+1)x(C+1) table whose value is determined.

    Row R holds the column totals, column C the row totals. Each row and column
    is an equation (its inner cells add up to its total). Unknowns are the
    suppressed cells and the cells not shown. A suppressed cell u is determined
    iff e_u lies in the row space of the constraint matrix restricted to the
    unknowns, i.e. iff appending e_u does not raise the rank.
    """
    n_r, n_c = suppressed.shape
    equations = []
    for i in range(n_r):
        a = np.zeros((n_r, n_c))
        a[i, :-1], a[i, -1] = 1, -1
        equations.append(a.ravel())
    for j in range(n_c):
        a = np.zeros((n_r, n_c))
        a[:-1, j], a[-1, j] = 1, -1
        equations.append(a.ravel())
    a = np.array(equations)
    unknown = (suppressed | ~shown).ravel()
    a_u = a[:, unknown]
    rank = np.linalg.matrix_rank(a_u)
    positions = np.flatnonzero(unknown)
    out = []
    for k, flat in enumerate(positions):
        if not suppressed.ravel()[flat]:
            continue
        e = np.zeros(a_u.shape[1])
        e[k] = 1.0
        if np.linalg.matrix_rank(np.vstack([a_u, e])) == rank:
            out.append(divmod(int(flat), n_c))
    return out


def extended_masks(result, n_rows: int, n_cols: int, rows_shown: bool, cols_shown: bool):
    """The suppression mask on the extended table, and which of its cells are shown.

    The frame holds the data rows then the total row (if shown), the count
    columns then the total column (if shown).
    """
    m = result.mask.to_numpy(dtype=bool)
    assert m.shape == (n_rows + cols_shown, n_cols + rows_shown)
    supp = np.zeros((n_rows + 1, n_cols + 1), dtype=bool)
    supp[: m.shape[0], : m.shape[1]] = m
    shown = np.zeros_like(supp)
    shown[:n_rows, :n_cols] = True
    shown[:n_rows, n_cols] = rows_shown
    shown[n_rows, :n_cols] = cols_shown
    shown[n_rows, n_cols] = rows_shown and cols_shown
    return supp, shown


# ---------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------


@pytest.mark.fixture
def test_presets_hold_the_study_rules():
    assert THRESHOLD == DisclosurePolicy("threshold", 5, None, True, "<5", 5)
    assert HES == DisclosurePolicy("hes_legacy", 6, None, True, "*", 6)
    assert NHSD == DisclosurePolicy("nhsd_2018", 8, 5, False, "*", 8)
    k10 = DisclosurePolicy.from_preset("threshold", threshold=10)
    assert (k10.threshold, k10.symbol, k10.min_n_for_summary) == (10, "<10", 10)
    assert DisclosurePolicy.from_preset("nhsd_2018", secondary=True).secondary is True
    assert "nearest 5" in NHSD.footnote and "<5: a count from 1 to 4" in THRESHOLD.footnote


@pytest.mark.fixture
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: DisclosurePolicy.from_preset("hes"), r"preset='hes' is not valid; expected one of 'nhsd_2018'"),
        (lambda: DisclosurePolicy.from_preset("hes_legacy", threshold=5), r"'hes_legacy' preset fixes its threshold"),
        (lambda: DisclosurePolicy.from_preset(threshold=0), r"threshold must be an integer >= 2 .*, got 0"),
        (lambda: DisclosurePolicy.from_preset(threshold=1), r"threshold must be an integer >= 2 \(1 would suppress nothing"),
        (lambda: DisclosurePolicy("threshold", 1, None, True, "<1", 1), r"threshold must be an integer >= 2"),
        (lambda: DisclosurePolicy.from_preset(threshold=2.5), r"threshold must be an integer >= 2 .*, got 2.5"),
        (lambda: DisclosurePolicy("threshold", 5, None, True, "5", 5), r"symbol='5' reads as a number"),
        (lambda: DisclosurePolicy("threshold", 5, 0, True, "*", 5), r"rounding must be None or an integer >= 1"),
    ],
)
def test_invalid_policies_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------------------
# Fixtures with hand-worked answers
# ---------------------------------------------------------------------------


@pytest.mark.fixture
def test_threshold_cascade_with_totals():
    """k=5, both totals shown.

    3 at (r1,a) is primary. Rows first: r1 has one suppressed cell -> its
    smallest non-zero shown cell, b=10. Columns: a -> 8 (r2,a); b -> 6 (r3,b).
    Second sweep: r2 has only (r2,a) -> 9 (r2,c); r3 has only (r3,b) -> 15
    (r3,c). Then every row and column holds two suppressed cells, forming the
    cycle r1-a-r2-c-r3-b-r1: no cell is determined. Zero at (r2,b) stays 0.
    """
    t = pd.DataFrame({"a": [3, 8, 20], "b": [10, 0, 6], "c": [12, 9, 15]}, index=["r1", "r2", "r3"])
    res = suppress_counts(t, policy=THRESHOLD, row_total="Total", col_total="Total")
    expected = frame(
        {
            "r1": ["<5", "*", 12, 25],
            "r2": ["*", 0, "*", 17],
            "r3": [20, "*", "*", 41],
            "Total": [31, 16, 36, 83],
        },
        ["a", "b", "c", "Total"],
    )
    pd.testing.assert_frame_equal(res.frame, expected)
    assert res.frame["Total"].dtype == np.int64
    assert res.primary_mask.to_numpy().sum() == 1 and res.mask.to_numpy().sum() == 6
    assert res.secondary_mask.loc["r1", "b"] and not res.secondary_mask.loc["r1", "a"]
    supp, shown = extended_masks(res, 3, 3, True, True)
    assert recoverable_cells(supp, shown) == []


@pytest.mark.fixture
def test_cycle_completion_protects_a_bridge_cell():
    """The line heuristic alone leaves (r0,c1) recoverable; the audit fixes it.

    Primary: (r0,c0)=3, (r0,c1)=1, (r2,c1)=3, (r3,c1)=4, (r3,c3)=3. The
    heuristic adds (r2,c3)=11, (r1,c0)=29, (r1,c2)=6, (r0,c2)=14: every line
    then has 0 or >=2 suppressed cells, but the cells form two cycles
    {r0,r1}x{c0,c2} and {r2,r3}x{c1,c3} joined only by (r0,c1): summing rows
    r0,r1 and subtracting columns c0,c2 gives (r0,c1) = 29+82-32-68-11-21-26 = 1.
    The smallest shown non-zero cell joining the two sides is (r0,c3)=11; with
    it (r0,c1) lies on the cycle r0-c1-r2-c3-r0.
    """
    inner = np.array([[3, 1, 14, 11], [29, 21, 6, 26], [0, 3, 23, 11], [0, 4, 25, 3]])
    t = pd.DataFrame(inner, index=[f"r{i}" for i in range(4)], columns=[f"c{j}" for j in range(4)])
    heuristic = np.zeros((5, 5), dtype=bool)
    for cell in [(0, 0), (0, 1), (2, 1), (3, 1), (3, 3), (2, 3), (1, 0), (1, 2), (0, 2)]:
        heuristic[cell] = True
    assert recoverable_cells(heuristic, np.ones((5, 5), dtype=bool)) == [(0, 1)]

    res = suppress_counts(t, policy=THRESHOLD, row_total="Total", col_total="Total")
    expected = frame(
        {
            "r0": ["<5", "<5", "*", "*", 29],
            "r1": ["*", 21, "*", 26, 82],
            "r2": [0, "<5", 23, "*", 37],
            "r3": [0, "<5", 25, "<5", 32],
            "Total": [32, 29, 68, 51, 180],
        },
        ["c0", "c1", "c2", "c3", "Total"],
    )
    pd.testing.assert_frame_equal(res.frame, expected)
    supp, shown = extended_masks(res, 4, 4, True, True)
    assert recoverable_cells(supp, shown) == []


@pytest.mark.fixture
def test_zeros_stay_and_a_small_total_is_suppressed():
    """Row r1 = [3, 0] has total 3, itself primary. Column a then holds one
    suppressed cell -> 10 (r2,a); the total column holds one (r1 total) -> the
    r2 total 30 (only totals are candidates there). The zero is shown: the
    unknowns r1a, r2a, r1T, r2T satisfy 3 independent equations, so none is
    determined."""
    t = pd.DataFrame({"a": [3, 10], "b": [0, 20]}, index=["r1", "r2"])
    res = suppress_counts(t, policy=THRESHOLD, row_total="Total", col_total="Total")
    expected = frame({"r1": ["<5", 0, "<5"], "r2": ["*", 20, "*"], "Total": [13, 20, 33]}, ["a", "b", "Total"])
    pd.testing.assert_frame_equal(res.frame, expected)
    assert res.frame["b"].dtype == np.int64


@pytest.mark.fixture
def test_hes_legacy_with_and_without_totals():
    """hes_legacy: 5 and 2 in row p are primary ("*", counts 1-5). Without
    totals there is no equation and nothing more is hidden. With totals:
    column x -> 6 (r,x), column z -> 9 (q,z); then row q -> 7 (q,y), row r ->
    11 (r,z), column y -> 30 (p,y). The result is two cycles p-x-r-z-p and
    p-y-q-z-p sharing node p: no bridge."""
    t = pd.DataFrame({"x": [5, 12, 6], "y": [30, 7, 40], "z": [2, 9, 11]}, index=["p", "q", "r"])
    bare = suppress_counts(t, policy=HES).frame
    expected = frame({"p": ["*", 30, "*"], "q": [12, 7, 9], "r": [6, 40, 11]}, ["x", "y", "z"])
    pd.testing.assert_frame_equal(bare, expected)
    assert bare["y"].dtype == np.int64

    res = suppress_counts(t, policy=HES, row_total="Total", col_total="Total")
    expected = frame(
        {"p": ["*", "*", "*", 37], "q": [12, "*", "*", 28], "r": ["*", 40, "*", 57], "Total": [23, 77, 22, 122]},
        ["x", "y", "z", "Total"],
    )
    pd.testing.assert_frame_equal(res.frame, expected)
    supp, shown = extended_masks(res, 3, 3, True, True)
    assert recoverable_cells(supp, shown) == []


@pytest.mark.fixture
def test_nhsd_2018_rounds_and_suppresses_1_to_7():
    """nhsd_2018: 3 -> "*"; 12 -> 10, 40 -> 40, 8 -> 10; totals from the
    unrounded counts, then rounded: 15 -> 15, 48 -> 50, 43 -> 45, 20 -> 20,
    63 -> 65. No secondary suppression by default. With secondary=True the
    line heuristic runs on the unrounded counts: row r1 -> 12; column a -> 40;
    column b -> 8."""
    t = pd.DataFrame({"a": [3, 40], "b": [12, 8]}, index=["r1", "r2"])
    res = suppress_counts(t, policy=NHSD, row_total="Total", col_total="Total")
    expected = frame({"r1": ["*", 10, 15], "r2": [40, 10, 50], "Total": [45, 20, 65]}, ["a", "b", "Total"])
    pd.testing.assert_frame_equal(res.frame, expected)

    with_secondary = DisclosurePolicy.from_preset("nhsd_2018", secondary=True)
    res = suppress_counts(t, policy=with_secondary, row_total="Total", col_total="Total")
    expected = frame({"r1": ["*", "*", 15], "r2": ["*", "*", 50], "Total": [45, 20, 65]}, ["a", "b", "Total"])
    pd.testing.assert_frame_equal(res.frame, expected)

    small_total = pd.DataFrame({"a": [2, 30], "b": [3, 30]}, index=["r1", "r2"])
    res = suppress_counts(small_total, policy=NHSD, row_total="Total")
    assert list(res.frame.loc["r1"]) == ["*", "*", "*"]  # the row total 5 is itself in 1-7


@pytest.mark.fixture
def test_existing_crosstab_margins_are_validated_and_used():
    ct = pd.crosstab(pd.Series(list("xxyyyzz"), name="s"), pd.Series(list("pqpqqpq"), name="t"), margins=True)
    res = suppress_counts(ct, policy=THRESHOLD, row_total="All", col_total="All")
    assert res.frame.shape == ct.shape
    assert res.frame.loc["All", "All"] == 7 and (res.frame.drop(index="All", columns="All") == "<5").all().all()
    broken = ct.copy()
    broken.loc["x", "All"] = 3
    with pytest.raises(ValueError, match=r"row_total column 'All' does not equal the sum .* row\(s\) 'x'"):
        suppress_counts(broken, policy=THRESHOLD, row_total="All", col_total="All")


@pytest.mark.fixture
def test_protect_table_threshold():
    """Per-trust table, column totals only (n and n_surg are not additive
    across a row). n_surg 3 (A) and 4 (C) are primary; column n_surg then has
    two suppressed cells and nothing else is needed. Their percentages are
    withheld; means are shown where n >= 5; the total row's percentage is
    100*29/101; the estimate column is exempt."""
    df = pd.DataFrame(
        {
            "n": [40, 25, 6, 30],
            "n_surg": [3, 10, 4, 12],
            "pct": [7.5, 40.0, 66.67, 40.0],
            "mean_age": [70.1, 68.0, 71.5, 69.0],
            "estimate": [0.1, 0.2, 0.3, 0.4],
        },
        index=pd.Index(list("ABCD"), name="trust"),
    )
    before = df.copy()
    out = protect_table(
        df,
        policy=THRESHOLD,
        count_columns=["n", "n_surg"],
        percent_columns={"pct": ("n_surg", "n")},
        summary_columns={"mean_age": "n"},
        margins="columns",
    )
    pd.testing.assert_frame_equal(df, before)
    expected = pd.DataFrame(
        {
            "n": [40, 25, 6, 30, 101],
            "n_surg": pd.Series(["<5", 10, "<5", 12, 29], dtype=object).to_numpy(),
            "pct": pd.Series(["*", 40.0, "*", 40.0, 100 * 29 / 101], dtype=object).to_numpy(),
            "mean_age": [70.1, 68.0, 71.5, 69.0, np.nan],
            "estimate": [0.1, 0.2, 0.3, 0.4, np.nan],
        },
        index=pd.Index(["A", "B", "C", "D", "Total"], name="trust"),
    )
    pd.testing.assert_frame_equal(out, expected)


@pytest.mark.fixture
def test_protect_table_nhsd_2018():
    """nhsd_2018: n=6 and n_surg 3, 4 -> "*"; other counts rounded (12 -> 10,
    101 -> 100, 29 -> 30); percentages recomputed from the rounded counts
    (D: 100*10/30; total 100*30/100); means only where n >= 8 (C withheld)."""
    df = pd.DataFrame(
        {"n": [40, 25, 6, 30], "n_surg": [3, 10, 4, 12], "pct": [7.5, 40.0, 66.67, 40.0], "mean_age": [70.1, 68.0, 71.5, 69.0]},
        index=pd.Index(list("ABCD"), name="trust"),
    )
    out = protect_table(
        df,
        policy=NHSD,
        count_columns=["n", "n_surg"],
        percent_columns={"pct": ("n_surg", "n")},
        summary_columns={"mean_age": "n"},
        margins="columns",
    )
    assert list(out["n"]) == [40, 25, "*", 30, 100]
    assert list(out["n_surg"]) == ["*", 10, "*", 10, 30]
    assert out["pct"].tolist() == ["*", 40.0, "*", pytest.approx(100 / 3), 30.0]
    assert out["mean_age"].iloc[:4].tolist() == [70.1, 68.0, "*", 69.0] and pd.isna(out["mean_age"].iloc[4])
    assert check_disclosure(out, policy=NHSD, count_columns=["n", "n_surg"]) == []


@pytest.mark.fixture
def test_protect_table_margins_both_on_a_cross_table():
    t = pd.DataFrame({"a": [3, 8, 20], "b": [10, 0, 6], "c": [12, 9, 15]}, index=["r1", "r2", "r3"])
    out = protect_table(t, policy=THRESHOLD, count_columns=["a", "b", "c"])
    direct = suppress_counts(t, policy=THRESHOLD, row_total="Total", col_total="Total").frame
    pd.testing.assert_frame_equal(out, direct)


@pytest.mark.fixture
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"margins": "all"}, r"margins='all' is not valid; expected one of 'rows', 'columns', 'both', None"),
        ({"percent_columns": {"pct": ("n_surg", "n")}}, r"margins='both' would add a row total summing numerator 'n_surg'"),
        ({"percent_columns": {"pct": ("n_surg", "x")}, "margins": None}, r"denominator 'x' of percent column 'pct' must be one of count_columns"),
        ({"summary_columns": {"mean_age": "age_n"}, "margins": None}, r"n column 'age_n' of summary column 'mean_age'"),
        ({"count_columns": "n"}, r"count_columns must be a list of column labels"),
    ],
)
def test_protect_table_rejects_bad_options(kwargs, message):
    df = pd.DataFrame({"n": [40, 25], "n_surg": [3, 10], "pct": [7.5, 40.0], "mean_age": [70.0, 68.0]})
    call = {"policy": THRESHOLD, "count_columns": ["n", "n_surg"], **kwargs}
    with pytest.raises(ValueError, match=message):
        protect_table(df, **call)


@pytest.mark.fixture
@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pd.DataFrame({"a": [1, -2]}, index=["x", "y"]), r"count column 'a' must hold non-negative whole numbers.*row\(s\) 'y'"),
        (pd.DataFrame({"a": [1.0, np.nan]}, index=["x", "y"]), r"count column 'a' .*row\(s\) 'y'"),
        (pd.DataFrame({"a": [1.5, 2.0]}, index=["x", "y"]), r"count column 'a' .*bad value\(s\) \[1.5\] at row\(s\) 'x'"),
        (pd.DataFrame({"a": [1, 2]}, index=["x", "x"]), r"row labels \(the index\) must be unique; duplicated: 'x'"),
    ],
)
def test_bad_counts_raise_naming_column_and_row(table, message):
    with pytest.raises(ValueError, match=message):
        suppress_counts(table, policy=THRESHOLD)


@pytest.mark.fixture
def test_count_columns_must_exist_and_be_numeric():
    t = pd.DataFrame({"a": [1, 2], "label": ["u", "v"]})
    with pytest.raises(ValueError, match=r"count column\(s\) \['b'\] not in the table"):
        suppress_counts(t, policy=THRESHOLD, count_columns=["b"])
    with pytest.raises(ValueError, match=r"count column 'label' must be numeric"):
        suppress_counts(t, policy=THRESHOLD, count_columns=["label"])
    out = suppress_counts(t, policy=THRESHOLD).frame  # default: numeric columns only
    assert list(out["label"]) == ["u", "v"] and list(out["a"]) == ["<5", "<5"]


@pytest.mark.fixture
def test_check_disclosure_flags_small_and_unrounded_counts():
    raw = pd.DataFrame({"a": [3, 12], "pct": [2.0, 4.0], "label": ["u", "v"]}, index=["r1", "r2"])
    assert check_disclosure(raw, policy=THRESHOLD) == [
        "row 'r1', column 'a': count 3 is shown, but counts 1-4 must be suppressed under 'threshold'"
    ]
    assert len(check_disclosure(raw, policy=THRESHOLD, count_columns=["a", "pct"])) == 3
    nhsd_msgs = check_disclosure(raw, policy=NHSD)
    assert nhsd_msgs[1] == "row 'r2', column 'a': count 12 is not rounded to a multiple of 5 as 'nhsd_2018' requires"


@pytest.mark.fixture
def test_check_disclosure_passes_a_csv_round_trip():
    t = pd.DataFrame({"a": [3, 8, 20], "b": [10, 0, 6], "c": [12, 9, 15]}, index=["r1", "r2", "r3"])
    res = suppress_counts(t, policy=THRESHOLD, row_total="Total", col_total="Total")
    back = pd.read_csv(io.StringIO(res.frame.to_csv()), index_col=0)
    assert check_disclosure(back, policy=THRESHOLD) == []
    leaked = back.astype(object)
    leaked.loc["r1", "a"] = "3"
    assert check_disclosure(leaked, policy=THRESHOLD) == [
        "row 'r1', column 'a': count 3 is shown, but counts 1-4 must be suppressed under 'threshold'"
    ]


# ---------------------------------------------------------------------------
# Properties on random tables
# ---------------------------------------------------------------------------

CELL = st.one_of(st.just(0), st.integers(1, 7), st.integers(0, 40))
SECONDARY_POLICIES = [
    THRESHOLD,
    DisclosurePolicy.from_preset(threshold=3),
    DisclosurePolicy.from_preset(threshold=10),
    HES,
    DisclosurePolicy.from_preset("nhsd_2018", secondary=True),
]
PROPERTY = settings(deadline=None, max_examples=200, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def count_tables(draw) -> pd.DataFrame:
    """2-8 rows x 2-6 columns of counts 0-40, many of them 0 or small.

    The cells come from a numpy generator seeded by hypothesis: hypothesis's
    own integer draws favour simple, repetitive tables, which rarely need the
    cycle-completion step; uniform draws need it in about 5% of tables.
    """
    n_rows, n_cols = draw(st.integers(2, 8)), draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = rng.choice(3, size=(n_rows, n_cols), p=[0.2, 0.35, 0.45])  # zero / 1-7 / 0-40
    cells = np.where(kind == 0, 0, np.where(kind == 1, rng.integers(1, 8, kind.shape), rng.integers(0, 41, kind.shape)))
    return pd.DataFrame(
        cells.astype(np.int64),
        index=[f"r{i}" for i in range(n_rows)],
        columns=[f"c{j}" for j in range(n_cols)],
    )


def visible_counts(frame: pd.DataFrame, policy: DisclosurePolicy) -> list[int]:
    return [v for v in frame.to_numpy().ravel() if not isinstance(v, str)]


@pytest.mark.simulation
@PROPERTY
@given(
    table=count_tables(),
    policy=st.sampled_from(SECONDARY_POLICIES),
    rows_shown=st.booleans(),
    cols_shown=st.booleans(),
)
def test_property_secondary_suppression(table, policy, rows_shown, cols_shown):
    before = table.copy()
    res = suppress_counts(
        table,
        policy=policy,
        row_total="Total" if rows_shown else None,
        col_total="Total" if cols_shown else None,
    )
    pd.testing.assert_frame_equal(table, before)
    n_rows, n_cols = table.shape
    # (a) no visible count inside the suppressed range (totals included), rounding respected
    assert check_disclosure(res.frame, policy=policy, count_columns=list(res.frame.columns)) == []
    for v in visible_counts(res.frame, policy):
        assert not 1 <= v < policy.threshold
    # primary mask = shown counts in the range; suppressed cells are never zeros
    ext = table.to_numpy().astype(np.int64)
    if rows_shown:
        ext = np.column_stack([ext, ext.sum(axis=1)])
    if cols_shown:
        ext = np.vstack([ext, ext.sum(axis=0)])
    small = (ext >= 1) & (ext < policy.threshold)
    # the documented rule: a total over >= k-1 small cells and zeros only is withheld, not primary
    # (inner lines first, then the grand total from the totals as shown)
    def closed(cells, is_small):
        return is_small.sum() >= policy.threshold - 1 and (is_small | (cells == 0)).all()
    withheld = np.zeros_like(small)
    r, c = ext.shape
    if rows_shown:
        for i in range(n_rows):
            withheld[i, c - 1] = closed(ext[i, :n_cols], small[i, :n_cols])
    if cols_shown:
        for j in range(n_cols):
            withheld[r - 1, j] = closed(ext[:n_rows, j], small[:n_rows, j])
    if rows_shown and cols_shown:
        seen = small & ~withheld
        withheld[r - 1, c - 1] = (closed(ext[r - 1, :n_cols], seen[r - 1, :n_cols])
                                  or closed(ext[:n_rows, c - 1], seen[:n_rows, c - 1]))
    np.testing.assert_array_equal(res.primary_mask.to_numpy(), small & ~withheld)
    assert res.mask.to_numpy()[withheld].all()
    assert not (res.mask.to_numpy() & (ext == 0)).any()
    assert (res.mask.to_numpy() | ~res.primary_mask.to_numpy()).all()
    # (b) no suppressed cell is exactly recoverable from the shown cells and totals
    supp, shown = extended_masks(res, n_rows, n_cols, rows_shown, cols_shown)
    assert recoverable_cells(supp, shown) == []


@pytest.mark.simulation
@PROPERTY
@given(table=count_tables(), rows_shown=st.booleans(), cols_shown=st.booleans())
def test_property_nhsd_2018_rounding_only(table, rows_shown, cols_shown):
    res = suppress_counts(
        table, policy=NHSD, row_total="Total" if rows_shown else None, col_total="Total" if cols_shown else None
    )
    for v in visible_counts(res.frame, NHSD):
        assert v % 5 == 0 and not 1 <= v <= 7
    np.testing.assert_array_equal(res.mask.to_numpy(), res.primary_mask.to_numpy())


@st.composite
def rate_tables(draw) -> pd.DataFrame:
    n_rows, n_num = draw(st.integers(2, 8)), draw(st.integers(1, 3))
    nums = draw(st.lists(st.lists(CELL, min_size=n_num, max_size=n_num), min_size=n_rows, max_size=n_rows))
    extra = draw(st.lists(CELL, min_size=n_rows, max_size=n_rows))
    nums = np.array(nums, dtype=np.int64)
    df = pd.DataFrame(nums, columns=[f"k{j}" for j in range(n_num)], index=[f"t{i}" for i in range(n_rows)])
    df["den"] = nums.max(axis=1) + np.array(extra, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(n_num):
            df[f"pct{j}"] = np.where(df["den"] > 0, 100 * df[f"k{j}"] / df["den"].where(df["den"] > 0, 1), np.nan)
    df["mean"] = np.where(df["den"] > 0, 60.0 + df.index.str[1:].astype(int), np.nan)
    return df


@pytest.mark.simulation
@PROPERTY
@given(
    df=rate_tables(),
    policy=st.sampled_from([THRESHOLD, HES, NHSD]),
    margins=st.sampled_from(["columns", None]),
)
def test_property_percentages_and_means_follow_their_counts(df, policy, margins):
    n_num = sum(c.startswith("k") for c in df.columns)
    counts = [f"k{j}" for j in range(n_num)] + ["den"]
    out = protect_table(
        df,
        policy=policy,
        count_columns=counts,
        percent_columns={f"pct{j}": (f"k{j}", "den") for j in range(n_num)},
        summary_columns={"mean": "den"},
        margins=margins,
    )
    symbols = {policy.symbol, policy.secondary_symbol}
    hidden = out.isin(list(symbols))
    # (a) counts
    assert check_disclosure(out, policy=policy, count_columns=counts) == []
    # (c) a percentage is hidden iff its numerator or denominator is
    for j in range(n_num):
        np.testing.assert_array_equal(hidden[f"pct{j}"], hidden[f"k{j}"] | hidden["den"])
    # means: hidden where n is hidden or below min_n (and there is a mean to hide)
    data = out.loc[df.index]
    expected = (hidden.loc[df.index, "den"] | (df["den"] < policy.min_n_for_summary)) & df["mean"].notna()
    np.testing.assert_array_equal(hidden.loc[df.index, "mean"], expected)
    visible_means = data["mean"][~expected & df["mean"].notna()]
    assert visible_means.map(lambda v: not isinstance(v, str)).all()


@pytest.mark.fixture
def test_policy_is_switchable_with_replace():
    t = pd.DataFrame({"a": [3, 40], "b": [12, 8]}, index=["r1", "r2"])
    custom = dataclasses.replace(THRESHOLD, secondary=False)
    res = suppress_counts(t, policy=custom, row_total="Total", col_total="Total")
    assert res.mask.to_numpy().sum() == 1

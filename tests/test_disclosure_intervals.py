"""Secondary suppression respects the bounds a reader knows (issue 13).

Before issue 13, ``suppress_counts`` only made sure no suppressed cell was determined by the
totals alone (the bridge test). A reader also knows that a ``<5`` cell holds 1..4, that a ``*``
cell holds at least 5 (zeros are shown, 1..4 carry ``<5``) and that counts are not negative: two
``<5`` cells of a column that must add to 8 are both 4. The interval audit closes that.

The checks here are independent of the module: the reader's linear programmes are set up from the
*rendered* frame (numbers and symbols) alone, and, for tiny tables, every integer table is
enumerated.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

import rp2pr_eval as rp
from rp2pr_eval import tables
from rp2pr_eval.presentation.disclosure import DisclosurePolicy, interval_audit, suppress_counts

THRESHOLD = DisclosurePolicy.from_preset()
HES = DisclosurePolicy.from_preset("hes_legacy")


# ---------------------------------------------------------------------------
# The reader, from the rendered frame only
# ---------------------------------------------------------------------------


def reader_ranges(frame: pd.DataFrame, policy: DisclosurePolicy, *, rows_shown: bool, cols_shown: bool,
                  truth: np.ndarray) -> dict[tuple[int, int], tuple[float, float]]:
    """min/max of every suppressed cell over real tables agreeing with the frame and the symbols.

    ``frame`` is the extended table as shown (data rows, then the total row if shown; count columns,
    then the total column if shown). ``truth`` (the unrounded extended table) only supplies the
    size; the reader never sees it.
    """
    n_r, n_c = truth.shape
    k = policy.threshold
    distinct = policy.symbol != policy.secondary_symbol
    shown = frame.to_numpy(dtype=object)
    idx = {}
    bounds = []
    fixed = {}
    for i in range(n_r):
        for j in range(n_c):
            inside = (i < n_r - 1 or cols_shown) and (j < n_c - 1 or rows_shown)
            fi, fj = i, j
            v = shown[fi, fj] if inside else None
            if inside and not isinstance(v, str):
                fixed[(i, j)] = float(v)
                continue
            idx[(i, j)] = len(bounds)
            if not inside:
                bounds.append((0, None))
            elif not distinct:          # one symbol for both: a withheld cell is at least 1, nothing more
                bounds.append((1, None))
            elif v == policy.symbol:
                bounds.append((1, k - 1))
            elif withheld_total(shown, i, j, n_r, n_c, policy, rows_shown=rows_shown, cols_shown=cols_shown):
                bounds.append((0, None))  # the published rule: such a total is withheld whatever its size
            else:
                bounds.append((k, None))
    a_eq, b_eq = [], []
    lines = [[(i, j) for j in range(n_c - 1)] + [(i, n_c - 1)] for i in range(n_r)]
    lines += [[(i, j) for i in range(n_r - 1)] + [(n_r - 1, j)] for j in range(n_c)]
    for line in lines:
        row = np.zeros(len(bounds))
        rhs = 0.0
        for pos, cell in enumerate(line):
            coef = -1.0 if pos == len(line) - 1 else 1.0
            if cell in idx:
                row[idx[cell]] += coef
            else:
                rhs -= coef * fixed[cell]
        if row.any():
            a_eq.append(row)
            b_eq.append(rhs)
    out = {}
    for cell, i in idx.items():
        if cell in [(r, c) for r in range(n_r) for c in range(n_c)] and isinstance(
                shown[cell] if cell[0] < shown.shape[0] and cell[1] < shown.shape[1] else None, str):
            c = np.zeros(len(bounds))
            c[i] = 1
            kw = dict(A_eq=np.array(a_eq), b_eq=np.array(b_eq)) if a_eq else {}
            lo = linprog(c, bounds=bounds, method="highs", **kw)
            hi = linprog(-c, bounds=bounds, method="highs", **kw)
            assert lo.status == 0, lo.message
            out[cell] = (lo.fun, np.inf if hi.status == 3 else -hi.fun)
    return out


def withheld_total(shown: np.ndarray, i: int, j: int, n_r: int, n_c: int, policy: DisclosurePolicy, *,
                   rows_shown: bool, cols_shown: bool) -> bool:
    """A total shown as the secondary symbol over a line of >= k-1 primary symbols and zeros only.

    The documented rule (``suppress_counts``, rule 2): such a total is withheld whatever its size,
    so the reader knows only that it is >= 0. Decided from the rendered symbols alone.
    """
    if shown[i, j] != policy.secondary_symbol:
        return False
    lines = []
    if j == n_c - 1 and rows_shown and (i < n_r - 1 or cols_shown):
        lines.append([shown[i, c] for c in range(n_c - 1)])
    if i == n_r - 1 and cols_shown and (j < n_c - 1 or rows_shown):
        lines.append([shown[r, j] for r in range(n_r - 1)])
    k = policy.threshold
    return any(sum(v == policy.symbol for v in line) >= k - 1
               and all(v == policy.symbol or (not isinstance(v, str) and v == 0) for v in line) for line in lines)


def integers_in(low: float, high: float) -> float:
    return np.inf if np.isinf(high) else np.floor(high + 1e-6) - np.ceil(low - 1e-6) + 1


def shown_extended(res, n_rows: int, n_cols: int, rows_shown: bool, cols_shown: bool) -> pd.DataFrame:
    return res.frame.iloc[: n_rows + cols_shown, : n_cols + rows_shown]


def extended_truth(table: pd.DataFrame) -> np.ndarray:
    v = table.to_numpy().astype(np.int64)
    v = np.column_stack([v, v.sum(axis=1)])
    return np.vstack([v, v.sum(axis=0)])


# ---------------------------------------------------------------------------
# The case, by hand
# ---------------------------------------------------------------------------


@pytest.mark.fixture
def test_two_small_cells_that_must_add_to_8_are_not_both_4():
    """Column g1: 4, 4, 92 with its total 100 shown.

    Before: both 4s shown as <5, 92 shown: 4 + 4 = 100 - 92 = 8 and each is at most 4, so both are 4.
    After: the 92 is withheld too (the cheapest cell that protects them); a reader then knows only
    that it is at least 5, and each <5 cell can be anything from 1 to 4.
    """
    t = pd.DataFrame({"g1": [4, 4, 92], "g2": [30, 20, 50]}, index=["a", "b", "c"])
    res = suppress_counts(t, policy=THRESHOLD, col_total="Total")
    assert res.frame["g1"].tolist() == ["<5", "<5", "*", 100]
    assert res.frame["g2"].tolist() == [30, 20, 50, 100]
    audit = interval_audit(res).set_index(["row", "column"])
    assert audit.loc[("a", "g1"), ["low", "high"]].tolist() == [1.0, 4.0]
    assert audit.loc[("c", "g1"), ["low", "high"]].tolist() == [92.0, 98.0]
    ranges = reader_ranges(res.frame.iloc[:, :2], THRESHOLD, rows_shown=False, cols_shown=True,
                           truth=np.zeros((4, 3)))
    assert all(integers_in(*r) >= 2 for r in ranges.values())


@pytest.mark.fixture
def test_a_column_of_two_small_cells_and_zeros_hides_its_total():
    """4, 4, 0 with total 8: no inner cell can help (zeros are shown), so the total is withheld (>= 5)."""
    res = suppress_counts(pd.DataFrame({"g": [4, 4, 0]}, index=list("abc")), policy=THRESHOLD, col_total="Total")
    assert res.frame["g"].tolist() == ["<5", "<5", 0, "*"]
    assert interval_audit(res)["values"].min() >= 2


@pytest.mark.fixture
def test_shared_symbol_gives_weaker_bounds():
    """Under hes_legacy both symbols are '*': a reader knows only >= 1 of a withheld cell."""
    res = suppress_counts(pd.DataFrame({"g": [5, 5, 90]}, index=list("abc")), policy=HES, col_total="Total")
    audit = interval_audit(res)
    assert (audit["values"] >= 2).all()
    assert set(audit["kind"]) == {"primary", "secondary"}


@pytest.mark.fixture
def test_threshold_2_cannot_hide_the_value_of_its_symbol():
    """With k = 2, '<2' means 1 (zeros are shown): its interval is one value; the others still two."""
    p2 = DisclosurePolicy.from_preset(threshold=2)
    t = pd.DataFrame({"g1": [1, 5, 7], "g2": [6, 1, 9]}, index=list("abc"))
    res = suppress_counts(t, policy=p2, row_total="Total", col_total="Total")
    audit = interval_audit(res)
    assert (audit.loc[audit["kind"] == "primary", "values"] == 1).all()
    assert (audit.loc[audit["kind"] == "secondary", "values"] >= 2).all()


@pytest.mark.fixture
def test_also_suppress_hides_a_cell_another_table_hides():
    t = pd.DataFrame({"g1": [20, 30], "g2": [40, 50]}, index=["a", "b"])
    res = suppress_counts(t, policy=THRESHOLD, col_total="Total", also_suppress=[("Total", "g1")])
    assert res.frame.loc["Total", "g1"] == "*"
    assert interval_audit(res)["values"].min() >= 2
    with pytest.raises(ValueError, match=r"also_suppress cell \('x', 'g1'\) is not a \(row, column\)"):
        suppress_counts(t, policy=THRESHOLD, col_total="Total", also_suppress=[("x", "g1")])


# ---------------------------------------------------------------------------
# Table 1 and the group sizes it shares across variables
# ---------------------------------------------------------------------------


def _small_trial(seed: int = 4) -> pd.DataFrame:
    return rp.simulate_nlca(seed=seed, n_pairs=4, n_treated_pairs=2, volume_median=12, volume_clip=(6, 20))


def _group_column(design, patients) -> str:
    wide = tables.table_one(patients, design=design)
    return [c for c in wide.columns if c.startswith("Intervention, pre")][0]


@pytest.mark.fixture
def test_table_one_cells_that_must_add_up_are_not_pinned():
    """The issue's table_one case: in one group, histology 'SCLC' and 'other' are 4 each.

    Before: both shown as <5 beside NSCLC and the group size, which add up to 8 for the two, so
    both were exactly 4. Now NSCLC is withheld too.
    """
    design = rp.StudyDesign(n_treated_pairs=2)
    patients = _small_trial()
    group = (patients["arm"] == "intervention") & patients["audit_year"].isin(design.pre_years)
    rows = patients.index[group]
    histology = np.array(["NSCLC"] * len(rows), dtype=object)
    histology[:4], histology[4:8] = "SCLC", "other"
    patients.loc[rows, "histology"] = histology
    tidy = tables.table_one(patients, design=design, layout="tidy")
    part = tidy[(tidy["variable"] == "histology") & (tidy["arm"] == "intervention") & (tidy["period"] == "pre")]
    shown = dict(zip(part["level"], part["n"]))
    assert shown["SCLC"] == "<5" and shown["other"] == "<5"
    assert shown["NSCLC"] == "*"                         # before issue 13: the exact count
    # the reader: n_SCLC, n_other in 1..4, n_NSCLC >= 5, summing to the shown group size
    size = int(part["denominator"].iloc[0])
    values = {a for a in range(1, 5) for b in range(1, 5) if size - a - b >= 5}
    assert len(values) >= 2


@pytest.mark.fixture
def test_table_one_hides_a_group_size_in_every_variable_once_one_variable_needs_it():
    """A group of 8 patients, 4 men and 4 women: sex alone pins both unless the size 8 is hidden.

    Hidden there, it must be hidden in every variable (stage, age bands …) and in 'Patients, n',
    or those would show what the sex table's protection relies on.
    """
    design = rp.StudyDesign(n_treated_pairs=2)
    patients = _small_trial()
    group = (patients["arm"] == "intervention") & patients["audit_year"].isin(design.pre_years)
    keep = patients.index[group][:8]
    patients = patients.drop(patients.index[group].difference(keep)).reset_index(drop=True)
    group = (patients["arm"] == "intervention") & patients["audit_year"].isin(design.pre_years)
    patients.loc[group, "sex"] = ["M"] * 4 + ["F"] * 4
    patients.loc[group, "histology"] = "NSCLC"
    tidy = tables.table_one(patients, design=design, layout="tidy")
    part = tidy[(tidy["arm"] == "intervention") & (tidy["period"] == "pre")]
    cats = part[part["denominator"].notna()]
    assert set(cats["denominator"]) == {"*"}, cats[["variable", "level", "n", "denominator"]]
    assert part.loc[part["variable"] == "patients", "n"].tolist() == ["*"]
    assert part.loc[part["variable"] == "age", "mean"].tolist() == ["*"]


# ---------------------------------------------------------------------------
# Properties on random tables (the fuzz harness for suppress_counts)
# ---------------------------------------------------------------------------


@st.composite
def small_tables(draw, max_rows: int = 5, max_cols: int = 4):
    n_rows, n_cols = draw(st.integers(1, max_rows)), draw(st.integers(1, max_cols))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = rng.choice(3, size=(n_rows, n_cols), p=[0.2, 0.4, 0.4])
    cells = np.where(kind == 0, 0, np.where(kind == 1, rng.integers(1, 8, kind.shape), rng.integers(0, 30, kind.shape)))
    return pd.DataFrame(cells.astype(np.int64), index=[f"r{i}" for i in range(n_rows)],
                        columns=[f"c{j}" for j in range(n_cols)])


POLICIES = [THRESHOLD, DisclosurePolicy.from_preset(threshold=3), DisclosurePolicy.from_preset(threshold=8), HES]


def check_interval_guarantee(table, policy, rows_shown, cols_shown):
    res = suppress_counts(table, policy=policy, row_total="Total" if rows_shown else None,
                          col_total="Total" if cols_shown else None)
    n_rows, n_cols = table.shape
    frame = shown_extended(res, n_rows, n_cols, rows_shown, cols_shown)
    for v in frame.to_numpy().ravel():
        assert isinstance(v, str) or not 1 <= v < policy.threshold
    ranges = reader_ranges(frame, policy, rows_shown=rows_shown, cols_shown=cols_shown, truth=extended_truth(table))
    for cell, (lo, hi) in ranges.items():
        distinct = policy.symbol != policy.secondary_symbol
        a_priori = policy.threshold - 1 if distinct and frame.to_numpy()[cell] == policy.symbol else np.inf
        assert integers_in(lo, hi) >= min(2, a_priori), (cell, lo, hi, res.frame)
    return res


EXAMPLES = settings(deadline=None, max_examples=60, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.simulation
@EXAMPLES
@given(table=small_tables(), policy=st.sampled_from(POLICIES), rows_shown=st.booleans(), cols_shown=st.booleans())
def test_property_no_suppressed_cell_is_narrowed_below_two_values(table, policy, rows_shown, cols_shown):
    check_interval_guarantee(table, policy, rows_shown, cols_shown)


@pytest.mark.slow
@settings(deadline=None, max_examples=1500, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(table=small_tables(max_rows=8, max_cols=6), policy=st.sampled_from(POLICIES), rows_shown=st.booleans(),
       cols_shown=st.booleans())
def test_property_no_suppressed_cell_is_narrowed_below_two_values_large(table, policy, rows_shown, cols_shown):
    check_interval_guarantee(table, policy, rows_shown, cols_shown)


@pytest.mark.fixture
def test_integer_enumeration_agrees_on_tiny_tables():
    """Every integer 2x2 table (with both totals) a reader cannot rule out, enumerated: each hidden cell
    takes at least two values among them."""
    rng = np.random.default_rng(13)
    checked = 0
    for _ in range(40):
        t = pd.DataFrame(rng.integers(0, 9, size=(2, 2)), index=["a", "b"], columns=["x", "y"])
        res = suppress_counts(t, policy=THRESHOLD, row_total="Total", col_total="Total")
        frame = res.frame.to_numpy(dtype=object)
        hidden = [(i, j) for i in range(3) for j in range(3) if isinstance(frame[i, j], str)]
        if not hidden:
            continue
        top = int(t.to_numpy().sum()) + 6     # hidden cells above this only add values: a safe truncation
        free = [(i, j) for i in range(2) for j in range(2) if isinstance(frame[i, j], str)]
        axes = np.meshgrid(*[np.arange(top + 1)] * len(free), indexing="ij")
        grid = np.tile(np.where(np.vectorize(lambda v: isinstance(v, str))(frame[:2, :2]), 0,
                                frame[:2, :2]).astype(np.int64), (axes[0].size if free else 1, 1, 1))
        for (i, j), ax in zip(free, axes):
            grid[:, i, j] = ax.ravel()
        ext = np.zeros((grid.shape[0], 3, 3), dtype=np.int64)
        ext[:, :2, :2] = grid
        ext[:, :2, 2] = grid.sum(axis=2)
        ext[:, 2, :] = ext[:, :2, :].sum(axis=1)
        ok = np.ones(grid.shape[0], dtype=bool)
        for i in range(3):
            for j in range(3):
                v = frame[i, j]
                if v == THRESHOLD.symbol:
                    ok &= (ext[:, i, j] >= 1) & (ext[:, i, j] <= 4)
                elif v == THRESHOLD.secondary_symbol:
                    ok &= ext[:, i, j] >= 5
                else:
                    ok &= ext[:, i, j] == v
        feasible = ext[ok]
        assert len(feasible), "the true table must be feasible"
        for cell in hidden:
            assert len(np.unique(feasible[:, cell[0], cell[1]])) >= 2, (t, res.frame, cell)
        checked += 1
    assert checked >= 15


# ---------------------------------------------------------------------------
# The same counts in two files: national table and the arm-year rates of the figures
# ---------------------------------------------------------------------------


def cube_reader_safe(arm_years: pd.DataFrame, cube: pd.DataFrame, policy: DisclosurePolicy) -> list[str]:
    """Independent reader over one year: arm rows (withheld: nothing shown) and the national E, N.

    Variables per arm: e, f (n = e + f); national E = sum e, F = sum f. A shown arm row fixes e and n;
    a shown national count fixes it; a national count shown as the primary symbol is in 1..k-1, as the
    secondary symbol >= k (distinct symbols). Returns the hidden values with fewer than two values.
    """
    bad = []
    k = policy.threshold
    for year, g in arm_years.groupby("audit_year"):
        arms = g["arm"].tolist()
        m = len(arms)
        nat = cube[(cube["audit_year"] == year) & (cube["arm"] == "all")].iloc[0]
        rows = cube[(cube["audit_year"] == year) & (cube["arm"] != "all")].set_index("arm")
        bounds, a_eq, b_eq, a_ub, b_ub = [], [], [], [], []
        for a in arms:             # e_a, f_a
            if rows.loc[a, "withheld_numerator"]:
                bounds += [(0, None), (0, None)]
                r = np.zeros(2 * m)
                r[2 * arms.index(a)] = r[2 * arms.index(a) + 1] = -1
                a_ub.append(r)
                b_ub.append(-1)
            else:
                e, n = int(rows.loc[a, "numerator"]), int(rows.loc[a, "denominator"])
                bounds += [(e, e), (n - e, n - e)]
        def national(which: int, value: int, hidden: bool, small: bool):
            r = np.zeros(2 * m)
            r[which::2] = 1 if which < 2 else 0
            return r
        e_row = np.zeros(2 * m); e_row[0::2] = 1
        n_row = np.ones(2 * m)
        for row, value, hidden, small in ((e_row, nat["numerator"], nat["withheld_numerator"], nat["small_numerator"]),
                                          (n_row, nat["denominator"], nat["withheld_denominator"],
                                           nat["small_denominator"])):
            if not hidden:
                a_eq.append(row)
                b_eq.append(int(value))
            elif small:
                a_ub += [row, -row]
                b_ub += [k - 1, -1]
            else:
                a_ub.append(-row)
                b_ub.append(-k)
        kw = {}
        if a_eq:
            kw.update(A_eq=np.array(a_eq), b_eq=np.array(b_eq))
        if a_ub:
            kw.update(A_ub=np.array(a_ub), b_ub=np.array(b_ub))
        targets = []
        for i, a in enumerate(arms):
            if rows.loc[a, "withheld_numerator"]:
                targets += [(f"{year} {a} e", np.eye(2 * m)[2 * i]), (f"{year} {a} f", np.eye(2 * m)[2 * i + 1]),
                            (f"{year} {a} n", np.eye(2 * m)[2 * i] + np.eye(2 * m)[2 * i + 1])]
        if nat["withheld_numerator"]:
            targets.append((f"{year} E", e_row))
        if nat["withheld_denominator"]:
            targets.append((f"{year} N", n_row))
        if nat["withheld_non_events"]:
            targets.append((f"{year} F", n_row - e_row))
        for name, c in targets:
            lo = linprog(c, bounds=bounds, method="highs", **kw)
            hi = linprog(-c, bounds=bounds, method="highs", **kw)
            assert lo.status == 0, (name, lo.message)
            top = np.inf if hi.status == 3 else -hi.fun
            # a hidden count the reader pins at 0 is no disclosure: the policy shows zeros (only 1..k-1
            # are small), so learning that a withheld arm had no events tells nothing the policy hides
            if integers_in(lo.fun, top) < 2 and top > 0.5:
                bad.append(name)
    return bad


@st.composite
def arm_year_tables(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    years = range(2008, 2008 + int(rng.integers(1, 4)))
    rows = []
    for y in years:
        for a in ("intervention", "control"):
            n = int(rng.choice([rng.integers(1, 8), rng.integers(5, 60)]))
            e = int(rng.choice([rng.integers(0, n + 1), max(0, n - int(rng.integers(0, 5))), int(rng.integers(0, 4))]))
            rows.append({"arm": a, "audit_year": y, "numerator": min(e, n), "denominator": n})
    return pd.DataFrame(rows)


@pytest.mark.simulation
@EXAMPLES
@given(arm_years=arm_year_tables(), policy=st.sampled_from([THRESHOLD, DisclosurePolicy.from_preset(threshold=3)]))
def test_property_national_and_arm_year_counts_protect_each_other(arm_years, policy):
    from rp2pr_eval.presentation.panels import year_cube

    cube = year_cube(arm_years, policy)
    assert cube_reader_safe(arm_years, cube, policy) == []
    arm = cube[cube["arm"] != "all"]
    shown = arm[~arm["withheld_numerator"]]
    small = lambda v: (v >= 1) & (v < policy.threshold)   # noqa: E731
    assert not (small(shown["numerator"]) | small(shown["denominator"])
                | small(shown["denominator"] - shown["numerator"])).any()


@pytest.mark.fixture
def test_arms_of_zero_events_keep_the_national_zero_shown():
    """Arms 0/1 and 0/2 (events/patients): national 0 events of 3 patients (issue 13).

    Before: the arms' events, pinned at 0 by the national 0, counted as exposed; the protection
    found nothing left to hide and withheld everything, so the national 0 carried the secondary
    symbol (a reader takes it as >= 5, which no table satisfies). Now the zero is shown, the
    national 3 patients carry <5 and the arms are withheld; the reader knows each arm had 0 events
    (as the policy would show) but only that the arms' patients are 1..3 and the national 2..4.
    """
    from rp2pr_eval.presentation.panels import year_cube

    arm_years = pd.DataFrame({"arm": ["intervention", "control"], "audit_year": [2008, 2008],
                              "numerator": [0, 0], "denominator": [1, 2]})
    cube = year_cube(arm_years, THRESHOLD).set_index("arm")
    assert not cube.loc["all", "withheld_numerator"] and cube.loc["all", "numerator"] == 0
    assert cube.loc["all", "withheld_denominator"] and cube.loc["all", "small_denominator"]
    assert cube.loc[["intervention", "control"], "withheld_numerator"].all()
    assert cube_reader_safe(arm_years, cube.reset_index(), THRESHOLD) == []


@pytest.mark.fixture
def test_a_hidden_count_pinned_at_zero_is_not_exposed_but_one_pinned_at_one_is():
    """LinkedCounts: x0 + x1 = t with t shown. t = 0 pins a hidden x0 = 0 (safe); t = 1 with x1 = 0 shown pins x0 = 1."""
    from rp2pr_eval.presentation.disclosure import exposed_cells
    from rp2pr_eval.presentation.disclosure.linked import LinkedCounts

    eq = [(np.array([0, 1, 2]), np.array([1.0, 1.0, -1.0]))]
    hidden = np.array([True, False, False])
    unknown = (np.zeros(3), np.full(3, np.inf))     # a withheld row: the reader knows only x0 >= 0
    kw = dict(equations=eq, published=np.ones(3, dtype=bool), primary_bounds=unknown, secondary_bounds=unknown)
    zero = LinkedCounts(values=np.array([0, 0, 0]), **kw)
    assert exposed_cells(zero, hidden, hidden, THRESHOLD) == []
    one = LinkedCounts(values=np.array([1, 0, 1]), **kw)
    assert exposed_cells(one, hidden, hidden, THRESHOLD) == [0]


@pytest.mark.fixture
def test_national_table_hides_what_the_saved_trends_hide(small_patients):
    """The national table and the saved arm-year rates come from one protection (year_cube)."""
    from rp2pr_eval.presentation.panels import protected_trends, year_cube

    design = rp.StudyDesign(n_treated_pairs=4)
    patients = small_patients.copy()
    # make the non-events of one arm-year small: 3 patients of intervention 2008 without MDT discussion
    sel = patients.index[(patients["arm"] == "intervention") & (patients["audit_year"] == 2008)]
    patients.loc[sel, "mdt_discussed"] = 1
    patients.loc[sel[:3], "mdt_discussed"] = 0
    nat = tables.national_table(patients, design=design)
    row = nat[(nat["outcome"] == "mdt_discussed") & (nat["audit_year"] == 2008)].iloc[0]
    panel = rp.trust_panel(patients, "mdt_discussed", by="audit_year", design=design)
    trends = protected_trends(panel, THRESHOLD).set_index(["arm", "audit_year"])
    assert trends.loc[("intervention", 2008), "withheld"]
    cube = year_cube(panel.groupby(["arm", "audit_year"], as_index=False)[["numerator", "denominator"]].sum(),
                     THRESHOLD)
    national = cube[(cube["arm"] == "all") & (cube["audit_year"] == 2008)].iloc[0]
    assert isinstance(row["numerator"], str) == bool(national["withheld_numerator"])
    assert isinstance(row["n"], str) == bool(national["withheld_denominator"])
    # the control arm's 2008 rate is shown only if the national counts do not give the intervention arm away
    if not trends.loc[("control", 2008), "withheld"]:
        assert isinstance(row["numerator"], str) or isinstance(row["n"], str)


@pytest.mark.fixture
def test_a_line_of_small_counts_withholds_its_total_whatever_its_size():
    """The table that broke the large property run: row b is 1 + 1 = 2 at threshold 3 with row totals
    only. Before, ``<3 + <3 = <3`` pinned both cells at 1 and the audit raised RuntimeError; now the
    total is withheld (``*``) and each cell takes two values. Row e (2 + 2 = 4, a total above the
    threshold) is withheld too, so that the rule tells a reader nothing about the total; row c has one
    small cell only (its total ``<3`` leaves it 1..2) and keeps its symbol."""
    policy = DisclosurePolicy.from_preset(threshold=3)
    t = pd.DataFrame([[6, 15], [1, 1], [0, 2], [3, 23], [2, 2]], index=list("abcde"), columns=["x", "y"])
    res = suppress_counts(t, policy=policy, row_total="Total")
    assert res.frame.loc["b"].tolist() == ["<3", "<3", "*"]
    assert res.frame.loc["e"].tolist() == ["<3", "<3", "*"]
    assert res.frame.loc["c"].tolist() == [0, "<3", "<3"]
    assert res.frame.loc["a"].tolist() == [6, 15, 21]
    audit = interval_audit(res)
    assert (audit["values"] >= 2).all(), audit
    check_interval_guarantee(t, policy, True, False)

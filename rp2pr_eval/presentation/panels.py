"""What a run keeps of the trust panels for its figures: publishable by construction.

The trends and funnel figures of ``rp2pr-eval figures`` are redrawn from
``results/<outcome>.extras.json`` without refitting, so the file must hold
what they need and nothing a disclosure policy forbids:

* :func:`protected_trends` — for the trends figure, the pooled rate of each
  arm and audit year with its interval (:func:`~rp2pr_eval.presentation.figures.trend_rates`,
  computed on every trust), no trust-year counts at all. An arm-year whose
  events, non-events or patients fall in 1..k-1 is withheld (rate and
  interval missing, ``withheld`` true), and so are the arm-years needed so
  that none can be worked out from the national rates of the data checks
  (:func:`year_cube`);
* :func:`protected_funnel_panel` — for the funnel plot, the trust × period
  numerators and denominators of the pre and post periods. A trust-period
  whose numerator, denominator or denominator − numerator is in 1..k-1 is
  withheld (numerator, denominator and rate missing), and further
  trust-periods of its arm and period until none can be narrowed to fewer
  than two values, assuming the reader knows every arm × period total of
  events and patients (they follow from the arm-year rates and the national
  table).

The guarantee is the interval guarantee of
:mod:`rp2pr_eval.presentation.disclosure.linked`; docs/methods/disclosure.md
says what it covers.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from rp2pr_eval.errors import DataError
from rp2pr_eval.presentation.disclosure.linked import LinkedCounts, protect_linked
from rp2pr_eval.presentation.disclosure.policy import DisclosurePolicy
from rp2pr_eval.presentation.figures.trends import trend_rates

#: Columns of :func:`protected_trends`.
TREND_COLUMNS = ("arm", "audit_year", "rate", "ci_low", "ci_high", "n_trusts", "n_clusters", "withheld")
#: Columns of :func:`protected_funnel_panel` (``outcome`` first when the panel has it).
FUNNEL_COLUMNS = ("trust_id", "arm", "period", "numerator", "denominator", "rate", "withheld")
_INF = np.inf


def _check_policy(policy: object, func: str) -> DisclosurePolicy:
    if not isinstance(policy, DisclosurePolicy):
        raise ValueError(f"{func}: policy must be a DisclosurePolicy, got {type(policy).__name__}")
    return policy


def _counts(frame: pd.DataFrame, func: str) -> tuple[np.ndarray, np.ndarray]:
    missing = [c for c in ("numerator", "denominator") if c not in frame.columns]
    if missing:
        raise DataError(f"{func}: the panel lacks column(s) {missing}")
    num = pd.to_numeric(frame["numerator"], errors="coerce").to_numpy(dtype=float)
    den = pd.to_numeric(frame["denominator"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(num) | ~np.isfinite(den) | (num < 0) | (num > den) | (num != np.round(num)) | (den != np.round(den))
    if bad.any():
        raise DataError(f"{func}: numerator and denominator must be whole numbers with 0 <= numerator <= denominator "
                        f"(first bad row {int(np.flatnonzero(bad)[0])})")
    return num.astype(np.int64), den.astype(np.int64)


def year_cube(arm_years: pd.DataFrame, policy: DisclosurePolicy) -> pd.DataFrame:
    """Protect the events and patients of each arm and year together with their national totals.

    One linked system per outcome: for arm a and year y, events e, non-events
    f and patients n = e + f; nationally E = sum of e, F = sum of f, N = sum
    of n. The trends figure publishes each arm-year (its rate; withheld
    whole), the national table E and N (F follows). A count in 1..k-1 is
    suppressed, then secondary suppression runs until no suppressed count
    can be narrowed to fewer than two values. Arm-years are withheld before
    national counts, smallest first.

    Parameters
    ----------
    arm_years : pandas.DataFrame
        ``arm, audit_year, numerator, denominator``, one row per arm and year.
    policy : DisclosurePolicy

    Returns
    -------
    pandas.DataFrame
        ``audit_year, arm`` (the national rows have ``arm = "all"``),
        ``numerator, denominator, withheld_numerator, withheld_denominator,
        small_numerator, small_denominator`` (the last two: primary, in 1..k-1).
        Deterministic: the same counts and policy give the same result in
        every table that uses them.
    """
    func = "year_cube"
    policy = _check_policy(policy, func)
    for col in ("arm", "audit_year"):
        if col not in arm_years.columns:
            raise DataError(f"{func}: the arm-year table lacks column {col!r}")
    num, den = _counts(arm_years, func)
    frame = pd.DataFrame({"arm": arm_years["arm"].astype(str).to_numpy(),
                          "audit_year": pd.to_numeric(arm_years["audit_year"]).to_numpy(dtype=np.int64),
                          "e": num, "n": den})
    if frame.duplicated(["arm", "audit_year"]).any():
        raise DataError(f"{func}: more than one row for an arm and year")
    years = sorted(frame["audit_year"].unique().tolist())
    arms = sorted(frame["arm"].unique().tolist())
    values, unit, cost, published = [], [], [], []
    p_lo, p_hi, s_lo, s_hi, eqs = [], [], [], [], []
    index: dict[tuple[int, str, str], int] = {}
    k = policy.threshold
    distinct = policy.symbol != policy.secondary_symbol

    def add(key, value, u, c, lo_p, hi_p, lo_s, hi_s):
        index[key] = len(values)
        values.append(int(value))
        unit.append(u)
        cost.append(c)
        published.append(True)
        p_lo.append(lo_p)
        p_hi.append(hi_p)
        s_lo.append(lo_s)
        s_hi.append(hi_s)

    rows = {(r.audit_year, r.arm): r for r in frame.itertuples(index=False)}
    next_unit = 0
    for y in years:
        e_tot = f_tot = n_tot = 0
        for a in arms:
            r = rows.get((y, a))
            if r is None:
                continue
            e, n = int(r.e), int(r.n)
            u = next_unit
            next_unit += 1
            # a withheld arm-year row shows no symbol per count: the reader knows only e, f >= 0, n >= 1
            add((y, a, "e"), e, u, float(n), 0.0, _INF, 0.0, _INF)
            add((y, a, "f"), n - e, u, float(n), 0.0, _INF, 0.0, _INF)
            add((y, a, "n"), n, u, float(n), 1.0, _INF, 1.0, _INF)
            eqs.append(([index[(y, a, "n")], index[(y, a, "e")], index[(y, a, "f")]], [1.0, -1.0, -1.0]))
            e_tot, f_tot, n_tot = e_tot + e, f_tot + n - e, n_tot + n
        big = 1e12
        sec = float(k) if distinct else 1.0
        for name, value in (("e", e_tot), ("n", n_tot)):  # shown with the policy's symbols in the national table
            add((y, "all", name), value, next_unit, big + value, 1.0, float(k - 1), sec, _INF)
            next_unit += 1
        add((y, "all", "f"), f_tot, next_unit, big + f_tot, 0.0, _INF, 0.0, _INF)  # implied, no symbol of its own
        next_unit += 1
        for name in ("e", "f", "n"):
            parts = [index[(y, a, name)] for a in arms if (y, a, name) in index]
            eqs.append(([index[(y, "all", name)], *parts], [1.0] + [-1.0] * len(parts)))
        # implied by the others, but stated so that a hidden F is protected by hiding E or N directly
        eqs.append(([index[(y, "all", "n")], index[(y, "all", "e")], index[(y, "all", "f")]], [1.0, -1.0, -1.0]))
    lc = LinkedCounts(values=np.array(values), equations=eqs, published=np.array(published), unit=np.array(unit),
                      cost=np.array(cost), primary_bounds=(np.array(p_lo), np.array(p_hi)),
                      secondary_bounds=(np.array(s_lo), np.array(s_hi)))
    small = np.array(published) & (np.array(values) >= 1) & (np.array(values) < k)
    # the implied national non-events carry no symbol: small only through what shows them (E or N)
    primary = np.isin(np.array(unit), np.array(unit)[small])
    try:
        primary, supp = protect_linked(lc, policy, primary=primary) if policy.secondary else (primary, primary)
    except RuntimeError:
        supp = np.ones(len(values), dtype=bool)
    out = []
    for y in years:
        for a in arms + ["all"]:
            if (y, a, "e") not in index:
                continue
            ie, i_n = index[(y, a, "e")], index[(y, a, "n")]
            out.append({"audit_year": y, "arm": a, "numerator": values[ie], "denominator": values[i_n],
                        "withheld_numerator": bool(supp[ie] or (a != "all" and supp[i_n])),
                        "withheld_denominator": bool(supp[i_n] or (a != "all" and supp[ie])),
                        "small_numerator": bool(small[ie]), "small_denominator": bool(small[i_n]),
                        "withheld_non_events": bool(supp[index[(y, a, "f")]])})
    return pd.DataFrame(out)


def protected_trends(panel_by_year: pd.DataFrame, policy: DisclosurePolicy, *, level: float = 0.95) -> pd.DataFrame:
    """Arm × year pooled rates with cluster-robust intervals, withheld where counts are small.

    Parameters
    ----------
    panel_by_year : pandas.DataFrame
        Trust panel by audit year of one binary outcome
        (:func:`rp2pr_eval.trust_panel` with ``by="audit_year"``).
    policy : DisclosurePolicy
    level : float
        Confidence level of the intervals.

    Returns
    -------
    pandas.DataFrame
        :data:`TREND_COLUMNS`: rates and limits as proportions (NaN where
        ``withheld``); no counts of patients.
    """
    func = "protected_trends"
    policy = _check_policy(policy, func)
    rates = trend_rates(panel_by_year, level=level)
    cube = year_cube(rates[["arm", "audit_year", "numerator", "denominator"]], policy)
    arm_rows = cube[cube["arm"] != "all"].set_index(["arm", "audit_year"])
    key = list(zip(rates["arm"].astype(str), rates["audit_year"].astype(int)))
    withheld = np.array([bool(arm_rows.loc[kk, "withheld_numerator"]) for kk in key], dtype=bool)
    out = rates[["arm", "audit_year", "rate", "ci_low", "ci_high", "n_trusts", "n_clusters"]].copy()
    for col in ("rate", "ci_low", "ci_high"):
        out[col] = out[col].astype(float).where(~withheld)
    out["withheld"] = withheld
    return out.reset_index(drop=True)


def protected_funnel_panel(panel_by_period: pd.DataFrame, policy: DisclosurePolicy, *,
                           periods: Sequence[str] = ("pre", "post")) -> pd.DataFrame:
    """The trust × period panel the funnel plot draws, with small trust-periods withheld.

    Parameters
    ----------
    panel_by_period : pandas.DataFrame
        Trust panel by period of one binary outcome
        (:func:`rp2pr_eval.trust_panel` with ``by="period"``).
    policy : DisclosurePolicy
    periods : sequence of str
        The periods kept (the funnel plot draws pre and post).

    Returns
    -------
    pandas.DataFrame
        :data:`FUNNEL_COLUMNS` (and ``outcome``): numerator, denominator and
        rate as floats, NaN where ``withheld``. ``attrs["withheld"]`` counts
        the withheld rows per period.

    Notes
    -----
    Per arm and period, one linked system: events e, non-events f and
    patients n = e + f of each trust, and the arm × period totals (taken as
    known to the reader). A withheld trust-period shows nothing, so the
    reader knows only e, f >= 0 and n >= 1 of it. If the totals pin a
    withheld trust-period whatever else is withheld (an arm with one trust
    in the period), every row of that arm and period is withheld.
    """
    func = "protected_funnel_panel"
    policy = _check_policy(policy, func)
    for col in ("trust_id", "arm", "period"):
        if col not in panel_by_period.columns:
            raise DataError(f"{func}: the panel lacks column {col!r}")
    data = panel_by_period[panel_by_period["period"].astype(str).isin(list(periods))].reset_index(drop=True)
    num, den = _counts(data, func)
    withheld = np.zeros(len(data), dtype=bool)
    k = policy.threshold
    groups = data.groupby([data["arm"].astype(str), data["period"].astype(str)], sort=True, observed=True).indices
    for _, rows in sorted(groups.items()):
        rows = np.asarray(rows)
        m = rows.size
        e, n = num[rows], den[rows]
        f = n - e
        # cells: e_t, f_t, n_t for each trust, then the known totals E, F, N
        values = np.concatenate([np.column_stack([e, f, n]).ravel(), [e.sum(), f.sum(), n.sum()]])
        unit = np.concatenate([np.repeat(np.arange(m), 3), [m, m + 1, m + 2]])
        cost = np.concatenate([np.repeat(n.astype(float), 3), [_INF] * 3])
        suppressible = np.concatenate([np.ones(3 * m, dtype=bool), np.zeros(3, dtype=bool)])
        low = np.tile([0.0, 0.0, 1.0], m)
        bounds = (np.concatenate([low, [0.0] * 3]), np.full(3 * m + 3, _INF))
        eqs = [([3 * t + 2, 3 * t, 3 * t + 1], [1.0, -1.0, -1.0]) for t in range(m)]
        for j in range(3):
            eqs.append(([3 * m + j, *[3 * t + j for t in range(m)]], [1.0] + [-1.0] * m))
        lc = LinkedCounts(values=values, equations=eqs, published=np.ones(values.size, dtype=bool), unit=unit,
                          cost=cost, primary_bounds=bounds, secondary_bounds=bounds, suppressible=suppressible)
        small = np.zeros(values.size, dtype=bool)
        small[: 3 * m] = (values[: 3 * m] >= 1) & (values[: 3 * m] < k)
        primary = np.isin(unit, unit[small])
        try:
            _, supp = protect_linked(lc, policy, primary=primary) if policy.secondary else (primary, primary)
        except RuntimeError:
            supp = np.ones(values.size, dtype=bool)
        withheld[rows] = supp[: 3 * m].reshape(m, 3).any(axis=1)
    cols = [c for c in ("outcome",) if c in data.columns] + list(FUNNEL_COLUMNS[:3])
    out = data[cols].copy()
    out["numerator"] = np.where(withheld, np.nan, num.astype(float))
    out["denominator"] = np.where(withheld, np.nan, den.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rate"] = out["numerator"] / out["denominator"]
    out["withheld"] = withheld
    out.attrs["withheld"] = {str(p): int(withheld[(data["period"].astype(str) == p).to_numpy()].sum())
                             for p in periods}
    return out


__all__ = ["FUNNEL_COLUMNS", "TREND_COLUMNS", "protected_funnel_panel", "protected_trends", "year_cube"]

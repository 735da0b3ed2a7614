"""Shared preparation for the estimators: analysis rows, trust-level values, covariate matrices.

Every estimator goes through :func:`prepare`, which validates the patient
table, keeps the outcome's eligible patients with a recorded value, labels
periods, leaves out what the estimator does not use and counts it, checks that
every trust has data in both periods, and checks the clustering column.

Three further inputs reach the trust-level estimators through the same door:

* a **trust panel** in place of patients (``numerator``/``denominator`` per trust × audit year and
  outcome, DATA_CONTRACT §2; detected by its columns): :func:`trust_values` then sums the panel's
  counts per cell instead of the patients' 0/1 values — the same integers, so the same estimates to
  the last bit.  Patient-level models refuse a panel, and so does every estimator for continuous
  outcomes (a panel carries counts, not waiting times);
* ``rates="adjusted"``: the patient table is first turned into the case-mix panel of
  :func:`~rp2pr_eval.estimators.case_mix.case_mix_adjusted_rates` (observed, expected per trust ×
  audit year), and each cell's value is the indirectly standardised rate (ΣO/ΣE)·r_ref;
* ``incomplete_pairs``: a pair left with one trust is refused (``None``), kept as a one-trust
  cluster and randomisation unit (``"keep"``) or removed with a note (``"drop"``); docs/METHODS.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from rp2pr_eval._arrays import sorted_codes
from rp2pr_eval._options import IncompletePairs, RatesType, check_option
from rp2pr_eval.data.panel import analysis_mask, is_trust_panel
from rp2pr_eval.data.validate import validate_panel, validate_patients
from rp2pr_eval.errors import DataError
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import CATEGORICAL_COLUMNS, OUTCOMES, Outcome, resolve_outcome

#: The trust-level estimators, which accept a trust panel in place of patients.
TRUST_LEVEL_ESTIMATORS: tuple[str, ...] = ("ancova", "did_aggregate", "did_twfe", "event_study", "mixed_linear")

_SHOW = 5


@dataclass(frozen=True, slots=True)
class Prepared:
    """Analysis rows of one outcome with ``period``, ``post`` and ``treated`` columns."""

    entry: Outcome
    rows: pd.DataFrame
    n_dropped: dict[str, int]
    design: StudyDesign
    cluster: str | None
    #: ``"patients"``, or ``"panel"`` (``rows`` are trust × time cells with numerator/denominator)
    source: str = "patients"
    #: ``"crude"`` or ``"adjusted"`` (``rows`` are the case-mix panel: ``expected`` per cell)
    rates: str = "crude"
    #: r_ref of the case-mix model (``rates="adjusted"``)
    reference_rate: float | None = None
    incomplete_pairs: str | None = None
    #: pairs with one trust (kept or dropped as ``incomplete_pairs`` says)
    incomplete: tuple[str, ...] = ()

    @property
    def n_trusts(self) -> int:
        return int(self.rows["trust_id"].nunique())

    @property
    def n_patients(self) -> int:
        """Patients analysed (the panel's denominators when the rows are trust cells)."""
        if self.source == "patients":
            return int(len(self.rows))
        return int(self.rows["denominator"].sum())

    def notes(self) -> dict:
        """What an Effect's ``details`` say about the input: data source, rates, incomplete pairs."""
        out: dict = {"data": "trust panel" if self.source == "panel" and self.rates == "crude" else
                     ("patients" if self.source == "patients" else "patients (case-mix panel)"),
                     "rates": self.rates}
        if self.rates == "adjusted":
            out["reference_rate"] = self.reference_rate
        if self.incomplete:
            pairs = list(self.incomplete)
            if self.incomplete_pairs == "drop":
                note = (f"pair(s) {', '.join(pairs)} with one trust left out: the estimate is for the remaining "
                        "pairs and the re-randomisation draws among them")
            else:
                note = (f"pair(s) {', '.join(pairs)} with one trust kept as one-trust clusters (variance) and "
                        "randomisation units (re-randomisation)")
            out["incomplete_pairs"] = {"option": self.incomplete_pairs, "pairs": pairs, "note": note}
        return out

    def cluster_codes(self, frame: pd.DataFrame | None = None) -> np.ndarray | None:
        frame = self.rows if frame is None else frame
        if self.cluster is None:
            return None
        return sorted_codes(frame[self.cluster])[0]


def prepare(
    patients: pd.DataFrame,
    outcome: str,
    *,
    design: StudyDesign | None,
    cluster: str | None,
    kinds: Sequence[str] = ("binary", "continuous"),
    keep_during: bool = False,
    estimator: str = "estimator",
    trust_level_only: bool = False,
    panel_ok: bool = False,
    incomplete_pairs: IncompletePairs | None = None,
    rates: RatesType = "crude",
    case_mix: Sequence[str] | None = None,
) -> Prepared:
    """Validate and select the rows an estimator analyses (see module docstring).

    ``trust_level_only=True`` keeps only the identifier, year, outcome and
    cluster columns in ``rows`` (what trust-level estimators read), which
    avoids copying every column of a large table.  ``panel_ok=True`` (the
    trust-level estimators) accepts a trust panel in place of ``patients``;
    ``rates="adjusted"`` analyses case-mix-adjusted rates (covariates
    ``case_mix``, default :data:`rp2pr_eval.CASE_MIX`).
    """
    design = resolve_design(design)
    check_option("incomplete_pairs", incomplete_pairs, IncompletePairs, allow_none=True)
    check_option("rates", rates, RatesType)
    if cluster is not None and not isinstance(cluster, str):
        raise TypeError(f"cluster must be a column name or None, got {cluster!r}")
    if is_trust_panel(patients):
        if not panel_ok:
            raise DataError(f"{estimator} is a patient-level model and needs the patient table; a trust panel "
                            "(numerator/denominator per trust) is not applicable — use a trust-level estimator "
                            f"({', '.join(TRUST_LEVEL_ESTIMATORS)})")
        if rates == "adjusted":
            raise DataError(f"{estimator}: rates='adjusted' needs the patient table (the case-mix model is fitted on "
                            "patients); a trust panel carries no case mix — use rates='crude'")
        return _prepare_panel(patients, outcome, design=design, cluster=cluster, kinds=kinds,
                              keep_during=keep_during, estimator=estimator, incomplete_pairs=incomplete_pairs)
    validate_patients(patients, design=design, missing_period="ignore", incomplete_pairs=incomplete_pairs)
    entry = resolve_outcome(patients, outcome)
    if entry.kind not in kinds:
        raise DataError(f"{estimator} does not handle {entry.kind} outcomes such as {outcome!r}; "
                        f"it needs a {' or '.join(kinds)} outcome")
    if cluster is not None and cluster not in patients.columns:
        raise DataError(f"cluster column {cluster!r} is not in the patient table")
    incomplete = one_trust_pairs(patients) if incomplete_pairs is not None else ()
    n_incomplete = 0
    if incomplete and incomplete_pairs == "drop":
        out = patients["pair_id"].isin(incomplete).to_numpy()
        n_incomplete = int(out.sum())
        patients = patients.loc[~out]
    if rates == "adjusted":
        return _prepare_adjusted(patients, entry, design=design, cluster=cluster, kinds=kinds,
                                 keep_during=keep_during, estimator=estimator, incomplete_pairs=incomplete_pairs,
                                 incomplete=incomplete, case_mix=case_mix, n_incomplete=n_incomplete)
    columns = None
    if trust_level_only:
        columns = list(dict.fromkeys(["trust_id", "pair_id", "arm", "audit_year", *entry.columns,
                                      *([cluster] if cluster is not None else [])]))
    keep, dropped = analysis_mask(patients, entry)
    year = patients["audit_year"].to_numpy()
    period_code = np.where(np.isin(year, design.pre_years), 0, np.where(np.isin(year, design.post_years), 2, 1))
    during = keep & (period_code == 1)
    if not keep_during:
        dropped["during_years"] = int(during.sum())
        keep = keep & ~during
    else:
        dropped["during_years"] = 0
    rows = patients.loc[keep] if columns is None else patients.loc[keep, columns]
    trust_codes, trusts = pd.factorize(patients["trust_id"], sort=False)
    row_codes = trust_codes[keep]
    row_period = period_code[keep]
    rows = rows.assign(
        period=np.array(["pre", "during", "post"], dtype=object)[row_period],
        post=(row_period == 2).astype(float),
        treated=(rows["arm"] == design.intervention_arm).to_numpy().astype(float),
    )
    if rows.empty:
        raise DataError(f"{estimator}: outcome {outcome!r} has no eligible patients with a recorded value")
    _check_periods(trusts, row_codes, row_period, design, outcome, estimator)
    if incomplete and incomplete_pairs == "drop":
        dropped["incomplete_pairs"] = n_incomplete
    _check_cluster(rows, row_codes, trusts, cluster)
    for arm in design.arms:
        if not (rows["arm"] == arm).any():
            raise DataError(f"{estimator}: no eligible {outcome!r} patients in the {arm} arm")
    return Prepared(entry=entry, rows=rows, n_dropped=dropped, design=design, cluster=cluster,
                    incomplete_pairs=incomplete_pairs, incomplete=incomplete)


def one_trust_pairs(frame: pd.DataFrame) -> tuple[str, ...]:
    """Pairs of a patient table or panel with exactly one trust (sorted)."""
    per_pair = frame.drop_duplicates(["pair_id", "trust_id"])["pair_id"].value_counts()
    return tuple(sorted(str(p) for p in per_pair.index[per_pair.to_numpy() == 1]))


def _check_cluster(rows: pd.DataFrame, row_codes: np.ndarray, trusts, cluster: str | None) -> None:
    """The cluster column is a label for every row, constant within each trust, with ≥ 2 clusters."""
    if cluster is not None:
        c_codes, c_labels = pd.factorize(rows[cluster], sort=False)
        if (c_codes < 0).any():
            raise DataError(f"cluster column {cluster!r} has missing values; expected a label for every trust")
        combos = np.unique(row_codes.astype(np.int64) * len(c_labels) + c_codes)
        per_trust = np.bincount(combos // len(c_labels), minlength=len(trusts))
        varying = trusts[per_trust > 1]
        if len(varying):
            raise DataError(f"cluster column {cluster!r} varies within trust(s) {', '.join(map(str, varying[:_SHOW]))}; "
                            "expected a trust-level clustering column such as 'pair_id' or 'trust_id'")
        n_clusters = len(c_labels)
        if n_clusters < 2:
            raise DataError(f"cluster={cluster!r} gives {n_clusters} cluster; cluster-robust inference needs at least 2")


def panel_outcome(panel: pd.DataFrame, outcome: str, estimator: str = "estimator") -> Outcome:
    """The registry entry of ``outcome`` for a trust panel: binary, and present in its ``outcome`` column."""
    if not isinstance(outcome, str):
        raise TypeError(f"outcome must be a registry name (str), got {type(outcome).__name__}")
    if outcome not in OUTCOMES:
        raise DataError(f"outcome {outcome!r} is not a registry outcome ({', '.join(OUTCOMES)}); a trust panel's "
                        "'outcome' column names registry outcomes")
    entry = OUTCOMES[outcome]
    if entry.kind != "binary":
        raise DataError(f"{estimator}: {outcome!r} is a {entry.kind} outcome; a trust panel carries numerator/"
                        "denominator counts only, so it is not applicable from a panel (analyse the patient table)")
    return entry


def data_outcome(data: pd.DataFrame, outcome: str) -> Outcome:
    """The outcome entry for a patient table (:func:`resolve_outcome`) or a trust panel (:func:`panel_outcome`)."""
    return panel_outcome(data, outcome) if is_trust_panel(data) else resolve_outcome(data, outcome)


def _period_codes(years: np.ndarray, design: StudyDesign) -> np.ndarray:
    return np.where(np.isin(years, design.pre_years), 0, np.where(np.isin(years, design.post_years), 2, 1))


def _finish_panel(rows: pd.DataFrame, entry: Outcome, *, design, cluster, keep_during, estimator, incomplete_pairs,
                  incomplete, dropped, reference_rate=None, rates="crude") -> Prepared:
    """Shared tail of the panel paths: periods, during years, checks (as for patients, on trust cells)."""
    if "audit_year" in rows.columns:
        period_code = _period_codes(rows["audit_year"].to_numpy(), design)
    else:
        period_code = rows["period"].astype(str).map({"pre": 0, "during": 1, "post": 2}).to_numpy(dtype=int)
    during = period_code == 1
    if not keep_during:
        dropped["during_years"] = int(rows["denominator"].to_numpy()[during].sum())
        keep = np.flatnonzero(~during)
    else:
        dropped["during_years"] = 0
        keep = np.arange(len(rows))
    period_code = period_code[keep]
    arm = rows["arm"].to_numpy(dtype=object)[keep]  # numpy comparisons: a tenth of the time of pandas' on text
    # rows.loc[keep].assign(period=..., post=..., treated=...), built from arrays at once (a third faster);
    # the period labels take the dtype pandas gives text
    periods = pd.Series(np.array(["pre", "during", "post"], dtype=object)).array.take(period_code)
    out = pd.DataFrame({**{c: take_rows(rows[c], keep) for c in rows.columns}, "period": periods,
                        "post": (period_code == 2).astype(float),
                        "treated": (arm == design.intervention_arm).astype(float)})
    out.index = rows.index[keep]
    rows = out
    trust_codes, trusts = pd.factorize(rows["trust_id"], sort=False)
    if rows.empty:
        raise DataError(f"{estimator}: outcome {entry.name!r} has no trust cells to analyse")
    _check_periods(trusts, trust_codes, period_code, design, entry.name, estimator)
    if cluster is not None and cluster not in rows.columns:
        raise DataError(f"cluster column {cluster!r} is not in the trust panel")
    _check_cluster(rows, trust_codes, trusts, cluster)
    for label in design.arms:
        if not (arm == label).any():
            raise DataError(f"{estimator}: no {entry.name!r} trust cells in the {label} arm")
    return Prepared(entry=entry, rows=rows, n_dropped=dropped, design=design, cluster=cluster, source="panel",
                    rates=rates, reference_rate=reference_rate, incomplete_pairs=incomplete_pairs,
                    incomplete=incomplete)


def _prepare_panel(panel: pd.DataFrame, outcome: str, *, design, cluster, kinds, keep_during, estimator,
                   incomplete_pairs) -> Prepared:
    """:func:`prepare` for a trust panel: the outcome's rows, validated, periods labelled, checked."""
    entry = panel_outcome(panel, outcome, estimator)
    if entry.kind not in kinds:
        raise DataError(f"{estimator} does not handle {entry.kind} outcomes such as {outcome!r}")
    if "outcome" not in panel.columns:
        raise DataError("trust panel lacks column 'outcome'")
    mine = panel["outcome"].to_numpy(dtype=object) == outcome
    rows = panel if mine.all() else panel.loc[mine]  # (later steps copy before they add columns)
    if rows.attrs:  # pandas deep-copies attrs in every operation on the frame; nothing here reads them
        rows = rows.copy(deep=False)
        rows.attrs = {}
    if rows.empty:
        held = sorted(map(str, pd.unique(panel["outcome"].dropna())))
        raise DataError(f"{estimator}: the trust panel has no rows for outcome {outcome!r}; it holds {held}")
    validate_panel(rows, design=design, incomplete_pairs=incomplete_pairs)
    incomplete = one_trust_pairs(rows) if incomplete_pairs is not None else ()
    dropped: dict[str, int] = {}
    if incomplete and incomplete_pairs == "drop":
        out = rows["pair_id"].isin(incomplete).to_numpy()
        dropped["incomplete_pairs"] = int(rows["denominator"].to_numpy()[out].sum())
        rows = rows.loc[~out]
    return _finish_panel(rows, entry, design=design, cluster=cluster, keep_during=keep_during, estimator=estimator,
                         incomplete_pairs=incomplete_pairs, incomplete=incomplete, dropped=dropped)


def _prepare_adjusted(patients: pd.DataFrame, entry: Outcome, *, design, cluster, kinds, keep_during, estimator,
                      incomplete_pairs, incomplete, case_mix, n_incomplete) -> Prepared:
    """:func:`prepare` with ``rates="adjusted"``: the case-mix panel by audit year (observed, expected per cell)."""
    from rp2pr_eval.estimators.case_mix import case_mix_adjusted_rates

    if entry.kind != "binary":
        raise DataError(f"{estimator}: rates='adjusted' needs a binary outcome; {entry.name!r} is {entry.kind}")
    rates = case_mix_adjusted_rates(patients, entry.name, covariates=case_mix, by="audit_year", design=design,
                                    incomplete_pairs=incomplete_pairs)
    rows = rates.table[["trust_id", "pair_id", "arm", "audit_year", "outcome", "numerator", "denominator",
                        "expected"]]
    if cluster is not None and cluster not in rows.columns:
        labels = patients.drop_duplicates("trust_id").set_index("trust_id")[cluster]
        rows = rows.assign(**{cluster: rows["trust_id"].map(labels).to_numpy()})
    dropped = dict(rates.n_dropped)
    if incomplete and incomplete_pairs == "drop":
        dropped["incomplete_pairs"] = n_incomplete
    return _finish_panel(rows, entry, design=design, cluster=cluster, keep_during=keep_during, estimator=estimator,
                         incomplete_pairs=incomplete_pairs, incomplete=incomplete, dropped=dropped,
                         reference_rate=rates.reference_rate, rates="adjusted")


def _check_periods(trusts, row_codes, row_period, design, outcome, estimator) -> None:
    """Every trust of the table (``trusts``; ``row_codes`` per analysis row) has pre (0) and post (2) rows."""
    for code, period, years in ((0, "pre", design.pre_years), (2, "post", design.post_years)):
        present = np.bincount(row_codes[row_period == code], minlength=len(trusts)) > 0
        missing = list(trusts[~present])
        if missing:
            shown = ", ".join(map(str, missing[:_SHOW])) + (f", … ({len(missing)} in all)" if len(missing) > _SHOW else "")
            raise DataError(
                f"{estimator}: trust(s) {shown} have no eligible {outcome!r} patients in the {period} years "
                f"{list(years)}; every trust needs pre and post data (drop the pair or use another outcome)"
            )


def trust_values(prep: Prepared, by: str, *, summary: str = "mean_log") -> pd.DataFrame:
    """One row per trust × ``by`` (``period`` or ``audit_year``) with ``value`` and ``weight``.

    Binary outcomes: ``value`` = rate, ``weight`` = denominator.  Continuous
    outcomes: ``value`` = mean of log(1 + days) (``summary="mean_log"``) or the
    median (``"median"``), ``weight`` = number of patients.  Rows are sorted by
    trust and ``by``; the trust-level columns (pair, arm, treatment, cluster)
    are constant within a trust (:func:`prepare` checked it).  Grouping uses
    integer codes of the two keys, so this takes about a millisecond.
    """
    entry = prep.entry
    if entry.kind != "binary" and summary not in ("mean_log", "median"):
        raise ValueError(f"summary={summary!r} is not valid; expected 'mean_log' or 'median'")
    rows = prep.rows
    if by not in rows.columns:
        raise DataError(f"this estimator needs trust values by {by}; the trust panel has no {by!r} column "
                        "(give a panel by audit_year: rp.trust_panel(patients, outcome, by='audit_year'))")
    keys = ["trust_id", "pair_id", "arm", "treated", by]
    if prep.cluster is not None and prep.cluster not in keys:
        keys = keys + [prep.cluster]
    t_code, _ = sorted_codes(rows["trust_id"])
    b_code, b_labels = sorted_codes(rows[by])
    key = t_code.astype(np.int64) * len(b_labels) + b_code
    if prep.source == "panel":
        first, values = panel_cells(key, rows, prep.reference_rate if prep.rates == "adjusted" else None)
    else:
        y = pd.to_numeric(rows[entry.name]).to_numpy(dtype=float)
        _, first, values = aggregate_cells(key, y, entry.kind, summary)
    # built from arrays at once: a third of the time of rows[keys].iloc[first] and four more columns
    out = pd.DataFrame({**{k: take_rows(rows[k], first) for k in keys}, **values})
    check_trust_variation(out, by, entry.name)
    return out


def take_rows(column: pd.Series, positions: np.ndarray):
    """The values of ``column`` at ``positions``, with its dtype, as a column for a new DataFrame.

    What ``column.iloc[positions]`` holds, without the Series and its index: an extension array keeps
    its dtype (text, categorical, nullable), a numpy column its numpy dtype (an object column stays
    object; the DataFrame constructor would otherwise infer text from it).
    """
    if isinstance(column.dtype, np.dtype):
        values = column.to_numpy()[positions]
        return pd.Series(values, dtype=object) if values.dtype == object else values
    return column.array.take(positions)


def check_trust_variation(values: pd.DataFrame, by: str, outcome: str) -> None:
    """Refuse trust values with no variation between trusts in any arm × ``by`` cell.

    Then every trust-level model fits exactly (residuals 0) and reports an estimate with a standard
    error of ~1e-17 — a number that means nothing (e.g. an outcome separated by arm). A DataError
    makes the estimator "not estimable on these data" with this reason instead.
    """
    v = values["value"].to_numpy(dtype=float)
    if len(v) == 0:
        return
    # the cells' numbers of groupby(["treated", by], sort=False).ngroup(), from integer codes
    t_code, _ = pd.factorize(values["treated"])
    b_code, b_labels = pd.factorize(values[by])
    known = (t_code >= 0) & (b_code >= 0)
    cell = np.full(len(v), -1, dtype=np.intp)
    cell[known] = pd.factorize(t_code[known].astype(np.int64) * len(b_labels) + b_code[known])[0]
    spread = np.zeros(cell.max() + 1)
    np.maximum.at(spread, cell, v)
    low = np.full(cell.max() + 1, np.inf)
    np.minimum.at(low, cell, v)
    scale = max(1.0, float(np.nanmax(np.abs(v))))
    if np.all(spread - low <= 1e-12 * scale):
        raise DataError(f"outcome {outcome!r} takes the same value in every trust of each arm × {by} cell "
                        "(e.g. separated by arm): no variation between trusts, so no standard error can be "
                        "estimated")


def panel_cells(key: np.ndarray, rows: pd.DataFrame, reference_rate: float | None = None
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-cell values of a trust panel's rows: the sums of their counts (the patients' sums, exactly).

    ``reference_rate`` given (case-mix panel): ``value`` = (Σ observed / Σ expected) · r_ref, the
    indirectly standardised rate of the cell; otherwise Σ numerator / Σ denominator.
    """
    cells, first, cell = np.unique(key, return_index=True, return_inverse=True)
    numerator = np.bincount(cell, weights=rows["numerator"].to_numpy(dtype=float), minlength=len(cells))
    size = np.bincount(cell, weights=rows["denominator"].to_numpy(dtype=float), minlength=len(cells))
    size = np.round(size).astype(np.int64)
    if reference_rate is None:
        value = numerator / size
    else:
        expected = np.bincount(cell, weights=rows["expected"].to_numpy(dtype=float), minlength=len(cells))
        value = numerator / expected * reference_rate
    return first, {"numerator": numerator, "denominator": size, "value": value, "weight": size.astype(float)}


def aggregate_cells(key: np.ndarray, y: np.ndarray, kind: str, summary: str = "mean_log"
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Per-cell values of :func:`trust_values` for integer cell keys: (sorted cells, first row of each, columns).

    Binary: ``numerator``, ``denominator``, ``value`` (rate), ``weight``;
    continuous: ``value`` (mean of log(1 + y), or median), ``n``, ``weight``.
    """
    cells, first, cell = np.unique(key, return_index=True, return_inverse=True)
    size = np.bincount(cell, minlength=len(cells)).astype(np.int64)
    if kind == "binary":
        numerator = np.bincount(cell, weights=y, minlength=len(cells))
        return cells, first, {"numerator": numerator, "denominator": size, "value": numerator / size,
                              "weight": size.astype(float)}
    values = np.log1p(y) if summary == "mean_log" else y
    g = pd.Series(values).groupby(cell, sort=True)
    value = (g.mean() if summary == "mean_log" else g.median()).to_numpy()
    return cells, first, {"value": value, "n": size, "weight": size.astype(float)}


def scale_of(entry: Outcome, summary: str) -> str:
    if entry.kind == "binary":
        return "risk_difference"
    return "log_ratio" if summary == "mean_log" else "days"


def covariate_matrix(frame: pd.DataFrame, covariates: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """Design columns for case-mix covariates.

    Numeric columns enter as they are (missing values are an error);
    categorical columns — text/category dtype, or a contract-categorical column
    such as ``performance_status`` or ``imd_quintile`` — enter as indicators
    with the first (sorted) level as reference, and a missing value is its own
    level ``"missing"``.  Levels that never occur are dropped.
    """
    if covariates is None:
        return np.empty((len(frame), 0)), []
    if isinstance(covariates, str):
        raise TypeError("covariates must be a list of column names, not a single string")
    blocks, names = [], []
    for col in covariates:
        if col not in frame.columns:
            raise DataError(f"covariate {col!r} is not a column of the patient table")
        s = frame[col]
        categorical = (col in CATEGORICAL_COLUMNS or not pd.api.types.is_numeric_dtype(s.dtype)
                       or pd.api.types.is_bool_dtype(s.dtype))
        if categorical:
            labels = s.astype("string").fillna("missing").to_numpy(dtype=object)
            levels = sorted(set(labels) - {"missing"}) + (["missing"] if "missing" in set(labels) else [])
            if len(levels) < 2:
                continue
            for level in levels[1:]:
                blocks.append((labels == level).astype(float))
                names.append(f"{col}[{level}]")
        else:
            values = pd.to_numeric(s).to_numpy(dtype=float, na_value=np.nan)
            if np.isnan(values).any():
                raise DataError(f"numeric covariate {col!r} has {int(np.isnan(values).sum())} missing values; "
                                "impute or drop them before the analysis, or pass it as a categorical column")
            blocks.append(values)
            names.append(col)
    if not blocks:
        return np.empty((len(frame), 0)), []
    return np.column_stack(blocks), names


def patient_design(prep: Prepared, covariates: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """Patient-level design matrix: intercept, treated, post, treated:post and the covariates."""
    rows = prep.rows
    T, P = rows["treated"].to_numpy(dtype=float), rows["post"].to_numpy(dtype=float)
    C, cn = covariate_matrix(rows, covariates)
    X = np.column_stack([np.ones(len(rows)), T, P, T * P, C])
    return X, ["intercept", "treated", "post", "treated:post", *cn]


def check_cells(prep: Prepared, y: np.ndarray) -> None:
    """Refuse outcomes with no variation in an arm × period cell (the log odds ratio is not identified)."""
    cells = pd.DataFrame({"arm": prep.rows["arm"].to_numpy(), "period": prep.rows["period"].to_numpy(), "y": y})
    m = cells.groupby(["arm", "period"], observed=True)["y"].mean()
    flat = m[(m == 0) | (m == 1)]
    if len(flat):
        where = ", ".join(f"{a}/{p} (all {int(v)})" for (a, p), v in flat.items())
        raise DataError(f"outcome {prep.entry.name!r} has no variation in arm × period cell(s) {where}; "
                        "the log odds ratio is not identified (separation)")

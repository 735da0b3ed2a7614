"""The result of an event study: per-year Effects, their covariance and the joint pre-trend test (JSON round trip)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rp2pr_eval.results.effect import Effect, render


@dataclass(frozen=True, slots=True)
class EventStudy:
    """Per-year intervention–control differences relative to ``reference_year`` and a joint pre-trend test."""

    outcome: str
    reference_year: int
    effects: tuple[Effect, ...]
    years: tuple[int, ...]
    periods: tuple[str, ...]
    pretrend_statistic: float
    pretrend_df_num: float
    pretrend_df_den: float
    pretrend_p: float
    pretrend_test: str
    #: Covariance matrix of the per-year estimates (same ``vcov`` type as the Effects, CR2 by pair by
    #: default), rows and columns in the order of ``vcov_years`` (the years of ``effects``); ``None`` in
    #: results saved before it was recorded.
    vcov: tuple[tuple[float, ...], ...] | None = None
    vcov_years: tuple[int, ...] = ()

    def covariance(self) -> tuple[np.ndarray, tuple[int, ...]]:
        """The covariance matrix as an array and the years of its rows; ``ValueError`` if the result holds none."""
        if self.vcov is None:
            raise ValueError("this EventStudy holds no covariance matrix (saved by an older version); refit it")
        return np.array(self.vcov, dtype=float), tuple(self.vcov_years)

    def to_frame(self) -> pd.DataFrame:
        """Tidy: ``year, period, estimate, se, ci_low, ci_high, p_value, df`` (reference year: 0, NaN se)."""
        rows = []
        by_year = {int(e.details["year"]): e for e in self.effects}
        for year, period in zip(self.years, self.periods):
            e = by_year.get(year)
            if e is None:
                rows.append({"year": year, "period": period, "estimate": 0.0, "se": np.nan, "ci_low": np.nan,
                             "ci_high": np.nan, "p_value": np.nan, "df": np.nan})
            else:
                rows.append({"year": year, "period": period, "estimate": e.estimate, "se": e.se, "ci_low": e.ci_low,
                             "ci_high": e.ci_high, "p_value": e.p_value, "df": np.nan if e.df is None else e.df})
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        return {"outcome": self.outcome, "reference_year": self.reference_year,
                "effects": [e.to_dict() for e in self.effects], "years": list(self.years),
                "periods": list(self.periods), "pretrend_statistic": self.pretrend_statistic,
                "pretrend_df_num": self.pretrend_df_num, "pretrend_df_den": self.pretrend_df_den,
                "pretrend_p": self.pretrend_p, "pretrend_test": self.pretrend_test,
                "vcov": None if self.vcov is None else [list(r) for r in self.vcov],
                "vcov_years": list(self.vcov_years)}

    @classmethod
    def from_dict(cls, d: dict) -> "EventStudy":
        d = dict(d)
        d["effects"] = tuple(Effect.from_dict(e) for e in d["effects"])
        d["years"], d["periods"] = tuple(d["years"]), tuple(d["periods"])
        if d.get("vcov") is not None:
            d["vcov"] = tuple(tuple(float(v) for v in row) for row in d["vcov"])
        d["vcov_years"] = tuple(int(y) for y in d.get("vcov_years", ()))
        return cls(**d)

    def summary(self) -> str:
        head = (f"event_study: {self.outcome}, reference {self.reference_year}; joint pre-trend test "
                f"{self.pretrend_test} F({self.pretrend_df_num:.0f}, {self.pretrend_df_den:.1f}) = "
                f"{self.pretrend_statistic:.3f}, p = {self.pretrend_p:.3f}")
        frame = pd.DataFrame([e.to_frame().iloc[0] for e in self.effects])
        return render(frame, title=head)

    def __repr__(self) -> str:
        return self.summary()

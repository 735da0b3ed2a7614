"""Disclosure policies: the presets of STUDY.md §5 and DATA_CONTRACT.md §5.

``threshold`` (default, k = 5)
    Counts 1..k-1 are shown as ``"<k"``; secondary suppression.
``hes_legacy``
    Counts 1-5 are shown as ``"*"``; secondary suppression (the HES rule
    before September 2018).
``nhsd_2018``
    Counts 1-7 are shown as ``"*"`` and every other count is rounded to the
    nearest 5 (totals are computed from the unrounded counts, then rounded);
    means and medians only where n >= 8. Rounding protects the margins, so
    secondary suppression is off unless asked for.

References
----------
NHS Digital (2018). Disclosure control methodology for Hospital Episode
Statistics (HES) and Emergency Care Data Set (ECDS), applied from September
2018; and the HES Analysis Guide (small-number rule before 2018).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rp2pr_eval._options import DisclosurePreset, check_option
from rp2pr_eval.study.design import PRESET_THRESHOLDS, StudyDesign, resolve_design

_PRESETS: dict[str, dict[str, Any]] = {
    "nhsd_2018": {"threshold": 8, "rounding": 5, "secondary": False, "symbol": "*", "min_n_for_summary": 8},
    "hes_legacy": {"threshold": 6, "rounding": None, "secondary": True, "symbol": "*", "min_n_for_summary": 6},
}


def is_int(value: object) -> bool:
    """True for a Python or NumPy integer that is not a boolean."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def parse_number(text: str) -> float | None:
    """The number a string reads as (thousands separators allowed), or None."""
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class DisclosurePolicy:
    """How counts and the statistics built on them are protected.

    Use :meth:`from_preset` (or :func:`policy_for_design`); construct directly
    only for a documented variant (or use ``dataclasses.replace`` on a preset).

    Parameters
    ----------
    preset : {"nhsd_2018", "hes_legacy", "threshold"}
        The rule the policy implements (a label; the other fields carry it).
    threshold : int
        k: counts 1..k-1 are suppressed (0 is shown as 0). At least 2: k = 1
        would suppress nothing.
    rounding : int or None
        Visible counts (and totals) are rounded to the nearest multiple of
        this base (5 for ``nhsd_2018``); ``None``: no rounding.
    secondary : bool
        Secondary suppression on (see :func:`suppress_counts`).
    symbol : str
        Shown in place of a count in the suppressed range (``"*"`` or
        ``"<5"``).
    min_n_for_summary : int
        Means and medians are shown only where their n is at least this.
    secondary_symbol : str
        Shown in place of a value withheld only to protect another cell
        (secondary suppression) and of a percentage or summary withheld because
        of its count. Kept apart from ``symbol`` because ``"<5"`` would be a
        false statement about a cell of, say, 30. Default ``"*"``.

    Notes
    -----
    STUDY.md §5 and DATA_CONTRACT.md §5 define the presets; NHS Digital (2018)
    the ``nhsd_2018`` rule; Hundepool et al. (2012) the general method. The
    symbols tell a reader something, and the interval audit assumes the
    reader uses it: a cell shown as ``symbol`` holds 1..k-1; a cell shown as
    a different ``secondary_symbol`` holds at least k (zeros are never
    suppressed); when the two symbols are the same, a suppressed cell holds
    at least 1.
    """

    preset: str
    threshold: int
    rounding: int | None
    secondary: bool
    symbol: str
    min_n_for_summary: int
    secondary_symbol: str = "*"

    def __post_init__(self) -> None:
        check_option("preset", self.preset, DisclosurePreset)
        if not is_int(self.threshold) or self.threshold < 2:
            raise ValueError(f"DisclosurePolicy: threshold must be an integer >= 2 (1 would suppress nothing), "
                             f"got {self.threshold!r}")
        if self.rounding is not None and (not is_int(self.rounding) or self.rounding < 1):
            raise ValueError(f"DisclosurePolicy: rounding must be None or an integer >= 1, got {self.rounding!r}")
        if not isinstance(self.secondary, (bool, np.bool_)):
            raise ValueError(f"DisclosurePolicy: secondary must be True or False, got {self.secondary!r}")
        if not is_int(self.min_n_for_summary) or self.min_n_for_summary < 0:
            raise ValueError(
                f"DisclosurePolicy: min_n_for_summary must be an integer >= 0, got {self.min_n_for_summary!r}"
            )
        for name in ("symbol", "secondary_symbol"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"DisclosurePolicy: {name} must be a non-empty string, got {value!r}")
            if parse_number(value) is not None:
                raise ValueError(f"DisclosurePolicy: {name}={value!r} reads as a number; use e.g. '*' or '<5'")

    @classmethod
    def from_preset(
        cls,
        preset: DisclosurePreset = "threshold",
        *,
        threshold: int | None = None,
        secondary: bool | None = None,
    ) -> DisclosurePolicy:
        """The policy of a named preset.

        Parameters
        ----------
        preset : {"threshold", "hes_legacy", "nhsd_2018"}
            ``"threshold"``: counts 1..k-1 shown as ``"<k"``, secondary
            suppression, means where n >= k. ``"hes_legacy"``: counts 1-5 shown
            as ``"*"``, secondary suppression, means where n >= 6.
            ``"nhsd_2018"``: counts 1-7 shown as ``"*"``, other counts rounded
            to the nearest 5, means where n >= 8, no secondary suppression.
        threshold : int, optional
            k for the ``"threshold"`` preset (default 5, at least 2). The other
            presets fix their threshold; giving another one raises ``ValueError``.
        secondary : bool, optional
            Override the preset's secondary suppression (e.g. ``True`` to add
            it to ``nhsd_2018``).

        Returns
        -------
        DisclosurePolicy

        Raises
        ------
        ValueError
            Unknown preset, a threshold contradicting a fixed preset, or a
            threshold that is not an integer >= 2.
        """
        check_option("preset", preset, DisclosurePreset)
        if preset == "threshold":
            k = PRESET_THRESHOLDS["threshold"] if threshold is None else threshold
            if not is_int(k) or k < 2:
                raise ValueError(f"DisclosurePolicy.from_preset: threshold must be an integer >= 2 (1 would "
                                 f"suppress nothing), got {k!r}")
            fields = {"threshold": int(k), "rounding": None, "secondary": True, "symbol": f"<{k}",
                      "min_n_for_summary": int(k)}
        else:
            fixed = _PRESETS[preset]["threshold"]
            if threshold is not None and threshold != fixed:
                raise ValueError(
                    f"DisclosurePolicy.from_preset: the {preset!r} preset fixes its threshold "
                    f"(counts 1-{fixed - 1} suppressed); use preset='threshold' for threshold={threshold!r}"
                )
            fields = dict(_PRESETS[preset])
        if secondary is not None:
            fields["secondary"] = secondary
        return cls(preset=preset, **fields)

    @property
    def footnote(self) -> str:
        """A footnote explaining the symbols, for the foot of an exported table."""
        k = self.threshold
        parts = [f"{self.symbol}: a count from 1 to {k - 1}."]
        if self.secondary_symbol == self.symbol:
            parts = [f"{self.symbol}: a count from 1 to {k - 1}, or a value withheld to protect such a count."]
        else:
            parts.append(f"{self.secondary_symbol}: withheld so that a small count cannot be worked out.")
        parts.append(f"Means and medians are shown only where n >= {self.min_n_for_summary}.")
        if self.rounding is not None:
            parts.append(
                f"Other counts are rounded to the nearest {self.rounding}; totals are rounded separately "
                "and may differ from the sum of their rounded parts."
            )
        return " ".join(parts)

    @property
    def symbols(self) -> frozenset[str]:
        """The strings that stand for a withheld value."""
        return frozenset({self.symbol, self.secondary_symbol})

    def is_small(self, count: int) -> bool:
        """True for a count in the suppressed range 1..k-1."""
        return 1 <= count < self.threshold


def policy_for_design(design: StudyDesign | None = None) -> DisclosurePolicy:
    """The disclosure policy of a study design (``design.disclosure`` and its threshold).

    Parameters
    ----------
    design : StudyDesign, optional
        ``None``: the default design (preset ``"threshold"``, k = 5).
        :class:`~rp2pr_eval.study.design.StudyDesign` has already checked the
        threshold (an integer >= 2, the preset's own for ``hes_legacy`` and
        ``nhsd_2018``).

    Returns
    -------
    DisclosurePolicy
    """
    design = resolve_design(design)
    if design.disclosure == "threshold":
        return DisclosurePolicy.from_preset("threshold", threshold=design.disclosure_threshold)
    return DisclosurePolicy.from_preset(design.disclosure)  # type: ignore[arg-type]


__all__ = ["DisclosurePolicy", "is_int", "parse_number", "policy_for_design"]

"""The study design: which audit years are before, during and after ILCOP.

`StudyDesign` is a frozen value object.  ``parameters/design.yaml`` holds the
defaults of DATA_CONTRACT §3; :meth:`StudyDesign.from_yaml` rejects unknown
keys and wrong types with an error that names the file and the key.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any


from rp2pr_eval._options import DisclosurePreset, check_option
from rp2pr_eval.errors import ParameterError
from rp2pr_eval.files import read_yaml, short_repr

DEFAULT_PAIRING_INDICATORS = ("histo_confirmed", "active_treatment", "nsclc_resection", "sclc_chemo")
#: The threshold k of each disclosure preset (counts 1..k-1 suppressed): ``threshold`` takes any k >= 2
#: (default 5); ``hes_legacy`` and ``nhsd_2018`` fix theirs (STUDY.md §5, docs/methods/disclosure.md).
PRESET_THRESHOLDS: dict[str, int] = {"threshold": 5, "hes_legacy": 6, "nhsd_2018": 8}
_DEFAULT_THRESHOLD = PRESET_THRESHOLDS["threshold"]


def _year_tuple(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, (int,)) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ParameterError(f"{name} must be a list of integer years, got {short_repr(value)}")
    return tuple(int(v) for v in value)


@dataclass(frozen=True, slots=True)
class StudyDesign:
    """Years of each study period and the analysis defaults that follow from the design.

    Parameters
    ----------
    pre_years, during_years, post_years
        Audit years (calendar year first seen) before, during and after the
        intervention.  ``during_years`` are excluded from before–after contrasts
        and kept for event studies.  Defaults: 2008–2009, 2010–2011, 2012–2013.
    intervention_arm, control_arm
        Labels of the two arms in the ``arm`` column.
    cluster
        Default clustering column for inference: ``"pair_id"`` (the unit of
        randomisation), ``"trust_id"`` as a sensitivity option, or ``None``.
    pairing_indicators
        Outcomes on which trusts were paired (contrasting baselines).
    n_treated_pairs
        Number of pairs randomised to the intervention (ILCOP: 15 of 40).
    disclosure, disclosure_threshold
        Disclosure-control preset for everything a run writes and its threshold k
        (counts 1..k-1 suppressed): an integer >= 2 (1 would turn control off). For
        ``"threshold"`` a k below the default 5 warns. ``"hes_legacy"`` (k = 6) and
        ``"nhsd_2018"`` (k = 8) fix theirs: the default 5 stands for "the preset's own"
        and becomes that value; another k contradicts the preset and is refused, and so
        is an explicit ``disclosure_threshold`` other than the preset's in a design file.
    seed
        Default random seed for resampling and simulation.
    trusts_invited, trusts_accepted, trusts_eligible
        Recruitment counts for the trial's flow diagram (CONSORT for cluster trials): trusts
        invited, agreeing to take part, and with enough baseline audit data to be paired
        (ILCOP: 156, 92, 80); ``None`` when unknown.  Non-negative, non-increasing.
    """

    pre_years: tuple[int, ...] = (2008, 2009)
    during_years: tuple[int, ...] = (2010, 2011)
    post_years: tuple[int, ...] = (2012, 2013)
    intervention_arm: str = "intervention"
    control_arm: str = "control"
    cluster: str | None = "pair_id"
    pairing_indicators: tuple[str, ...] = DEFAULT_PAIRING_INDICATORS
    n_treated_pairs: int = 15
    disclosure: str = "threshold"
    disclosure_threshold: int = 5
    seed: int = 20100401
    trusts_invited: int | None = 156
    trusts_accepted: int | None = 92
    trusts_eligible: int | None = 80

    def __post_init__(self) -> None:
        for name in ("pre_years", "during_years", "post_years"):
            object.__setattr__(self, name, _year_tuple(name, getattr(self, name)))
        object.__setattr__(self, "pairing_indicators", tuple(self.pairing_indicators))
        if not self.pre_years or not self.post_years:
            raise ParameterError("pre_years and post_years must each hold at least one year")
        all_years = self.pre_years + self.during_years + self.post_years
        if len(set(all_years)) != len(all_years):
            raise ParameterError(f"a year appears in more than one period: {sorted(all_years)}")
        if self.during_years and not (max(self.pre_years) < min(self.during_years) <= max(self.during_years) < min(self.post_years)):
            raise ParameterError("periods must be ordered: every pre year < every during year < every post year")
        if max(self.pre_years) >= min(self.post_years):
            raise ParameterError("every pre year must come before every post year")
        for name in ("intervention_arm", "control_arm"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ParameterError(f"{name} must be a non-empty string")
        if self.intervention_arm == self.control_arm:
            raise ParameterError("intervention_arm and control_arm must differ")
        if self.cluster is not None and not isinstance(self.cluster, str):
            raise ParameterError(f"cluster must be a column name or None, got {short_repr(self.cluster)}")
        for name in ("n_treated_pairs", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ParameterError(f"{name} must be a non-negative integer, got {short_repr(value)}")
        flow = [(n, getattr(self, n)) for n in ("trusts_invited", "trusts_accepted", "trusts_eligible")]
        for name, value in flow:
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ParameterError(f"{name} must be a non-negative integer or null, got {short_repr(value)}")
        known = [(n, v) for n, v in flow if v is not None]
        for (n1, v1), (n2, v2) in zip(known, known[1:]):
            if v2 > v1:
                raise ParameterError(f"{n2}={v2} exceeds {n1}={v1}: the flow counts must not increase")
        self._check_disclosure()

    def _check_disclosure(self) -> None:
        """Preset and threshold: valid, and not contradicting each other (see the class docstring)."""
        try:
            check_option("disclosure", self.disclosure, DisclosurePreset)
        except ValueError as exc:
            raise ParameterError(str(exc)) from None
        k = self.disclosure_threshold
        if not isinstance(k, int) or isinstance(k, bool) or k < 2:
            shown = repr(k) if isinstance(k, (int, float)) else type(k).__name__
            raise ParameterError(f"disclosure_threshold must be an integer >= 2 (counts 1..k-1 are suppressed; "
                                 f"1 would turn disclosure control off), got {shown}")
        fixed = PRESET_THRESHOLDS[self.disclosure]
        if self.disclosure == "threshold":
            if k < fixed:
                warnings.warn(f"disclosure_threshold={k} is below the 'threshold' preset's default {fixed}: counts "
                              f"{k}-{fixed - 1} will be shown", UserWarning, stacklevel=4)
        elif k == _DEFAULT_THRESHOLD:
            object.__setattr__(self, "disclosure_threshold", fixed)
        elif k != fixed:
            raise ParameterError(f"disclosure_threshold={k} contradicts disclosure={self.disclosure!r}, which fixes "
                                 f"k = {fixed} (counts 1-{fixed - 1} suppressed); use disclosure: threshold for k = {k}")

    # ------------------------------------------------------------------ periods
    @property
    def years(self) -> tuple[int, ...]:
        """All design years in order."""
        return self.pre_years + self.during_years + self.post_years

    @property
    def arms(self) -> tuple[str, str]:
        """(intervention label, control label)."""
        return (self.intervention_arm, self.control_arm)

    def period_of(self, year: int) -> str | None:
        """``"pre"``, ``"during"``, ``"post"`` or ``None`` for a year outside the design."""
        if year in self.pre_years:
            return "pre"
        if year in self.during_years:
            return "during"
        if year in self.post_years:
            return "post"
        return None

    def period_map(self) -> dict[int, str]:
        """Mapping audit year → period label."""
        return {y: self.period_of(y) for y in self.years}  # type: ignore[misc]

    # ------------------------------------------------------------------ I/O
    def to_dict(self) -> dict[str, Any]:
        """JSON-native dict (lists, not tuples)."""
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "design parameters") -> "StudyDesign":
        """Build from a mapping; unknown keys and wrong types name ``source`` and the key."""
        if not isinstance(values, dict):
            raise ParameterError(f"{source}: expected a mapping of design keys, got {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParameterError(
                f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys are {', '.join(sorted(known))}"
            )
        types = {
            "intervention_arm": str, "control_arm": str, "disclosure": str,
            "n_treated_pairs": int, "disclosure_threshold": int, "seed": int,
        }
        for key, typ in types.items():
            if key in values and (not isinstance(values[key], typ) or isinstance(values[key], bool)):
                raise ParameterError(
                    f"{source}: key {short_repr(key)} must be {typ.__name__}, got {type(values[key]).__name__} {short_repr(values[key])}"
                )
        preset, k = values.get("disclosure", "threshold"), values.get("disclosure_threshold")
        if preset in PRESET_THRESHOLDS and preset != "threshold" and k is not None and k != PRESET_THRESHOLDS[preset]:
            raise ParameterError(
                f"{source}: key 'disclosure_threshold' = {k} contradicts disclosure={preset!r}, which fixes k = "
                f"{PRESET_THRESHOLDS[preset]}; remove the key or use disclosure: threshold"
            )
        if "pairing_indicators" in values:
            pi = values["pairing_indicators"]
            if not isinstance(pi, list) or not all(isinstance(v, str) for v in pi):
                raise ParameterError(f"{source}: key 'pairing_indicators' must be a list of outcome names")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                design = cls(**values)
        except ParameterError as exc:
            raise ParameterError(f"{source}: {exc}") from None
        for w in caught:  # the same warnings, naming the file
            warnings.warn(f"{source}: {w.message}", w.category, stacklevel=2)
        return design

    @classmethod
    def from_yaml(cls, path: str | Path) -> "StudyDesign":
        """Read a design YAML file (see ``parameters/design.yaml``)."""
        path = Path(path)
        values = read_yaml(path, what="design file")
        return cls.from_dict(values, source=str(path))


def resolve_design(design: StudyDesign | None) -> StudyDesign:
    """``None`` → the default design (DATA_CONTRACT §3); otherwise check the type."""
    if design is None:
        return StudyDesign()
    if not isinstance(design, StudyDesign):
        raise TypeError(f"design must be a StudyDesign or None, got {type(design).__name__}")
    return design

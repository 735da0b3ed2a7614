"""The study design: which audit years are before, during and after ILCOP.

`StudyDesign` is a frozen value object.  ``parameters/design.yaml`` holds the
defaults of DATA_CONTRACT §3; :meth:`StudyDesign.from_yaml` rejects unknown
keys and wrong types with an error that names the file and the key.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from rp2pr_eval._options import DisclosurePreset, check_option
from rp2pr_eval.errors import ParameterError

DEFAULT_PAIRING_INDICATORS = ("histo_confirmed", "active_treatment", "nsclc_resection", "sclc_chemo")


def _year_tuple(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, (int,)) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ParameterError(f"{name} must be a list of integer years, got {value!r}")
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
        Disclosure-control preset for exported tables and its threshold.
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
            raise ParameterError(f"cluster must be a column name or None, got {self.cluster!r}")
        for name in ("n_treated_pairs", "disclosure_threshold", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ParameterError(f"{name} must be a non-negative integer, got {value!r}")
        try:
            check_option("disclosure", self.disclosure, DisclosurePreset)
        except ValueError as exc:
            raise ParameterError(str(exc)) from None
        flow = [(n, getattr(self, n)) for n in ("trusts_invited", "trusts_accepted", "trusts_eligible")]
        for name, value in flow:
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ParameterError(f"{name} must be a non-negative integer or null, got {value!r}")
        known = [(n, v) for n, v in flow if v is not None]
        for (n1, v1), (n2, v2) in zip(known, known[1:]):
            if v2 > v1:
                raise ParameterError(f"{n2}={v2} exceeds {n1}={v1}: the flow counts must not increase")

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
                    f"{source}: key {key!r} must be {typ.__name__}, got {type(values[key]).__name__} {values[key]!r}"
                )
        if "pairing_indicators" in values:
            pi = values["pairing_indicators"]
            if not isinstance(pi, list) or not all(isinstance(v, str) for v in pi):
                raise ParameterError(f"{source}: key 'pairing_indicators' must be a list of outcome names")
        try:
            return cls(**values)
        except ParameterError as exc:
            raise ParameterError(f"{source}: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "StudyDesign":
        """Read a design YAML file (see ``parameters/design.yaml``)."""
        path = Path(path)
        if not path.is_file():
            raise ParameterError(f"{path}: design file not found")
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ParameterError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if values is None:
            values = {}
        return cls.from_dict(values, source=str(path))


def resolve_design(design: StudyDesign | None) -> StudyDesign:
    """``None`` → the default design (DATA_CONTRACT §3); otherwise check the type."""
    if design is None:
        return StudyDesign()
    if not isinstance(design, StudyDesign):
        raise TypeError(f"design must be a StudyDesign or None, got {type(design).__name__}")
    return design

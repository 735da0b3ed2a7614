"""Option values, typed once, and the one helper that checks them.

Every keyword option whose value is one of a fixed set of strings is declared
here as a ``Literal`` alias and checked with :func:`check_option`, which raises
``ValueError`` listing the valid values (never ``assert``: it vanishes under -O).
"""
from __future__ import annotations

from typing import Literal, get_args

VcovType = Literal["CR1", "CR2", "CR3"]
WeightsType = Literal["denominator"]  # or None
PanelBy = Literal["period", "audit_year"]
OutcomeKind = Literal["binary", "continuous", "time_to_event"]
Better = Literal["higher", "lower", "longer"]
BootWeights = Literal["rademacher", "webb", "mammen"]
AdjustMethod = Literal["holm", "fdr_bh", "romano_wolf"]
GlmmMethod = Literal["aghq", "laplace", "vb"]
GlmmDf = Literal["between-within", "normal"]
GlmmVcov = Literal["model", "CR3", "CR1"]
GeeCovStruct = Literal["exchangeable", "independence", "block_exchangeable"]
GeeVcov = Literal["mancl_derouen", "robust", "kauermann_carroll", "fay_graubard"]
RIStatistic = Literal["estimate", "t"]
DisclosurePreset = Literal["nhsd_2018", "hes_legacy", "threshold"]
PoissonCI = Literal["exact", "byar"]
SensitivityRestriction = Literal["relative_magnitudes", "smoothness"]
SensitivityMethod = Literal["C-LF", "conditional", "FLCI"]
SmallSample = Literal["t", "normal"]
IncompletePairs = Literal["drop", "keep"]   # or None: refuse a pair with one trust
RatesType = Literal["crude", "adjusted"]


def check_option(name: str, value: object, allowed: object, *, allow_none: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed``.

    ``allowed`` is a ``Literal`` alias or an iterable of values.
    """
    values = get_args(allowed) or tuple(allowed)  # type: ignore[arg-type]
    if value is None and allow_none:
        return
    if value not in values:
        shown = ", ".join(repr(v) for v in values) + (", None" if allow_none else "")
        raise ValueError(f"{name}={value!r} is not valid; expected one of {shown}")


def check_level(level: object) -> None:
    """Raise ``ValueError`` unless ``level`` is a confidence level, a float strictly between 0 and 1."""
    if not (isinstance(level, float) and 0 < level < 1):
        raise ValueError(f"level must be a float in (0, 1), got {level!r}")

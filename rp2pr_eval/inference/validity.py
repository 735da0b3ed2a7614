"""Which p-values the batch reports can be believed: the standing of each estimator's inference.

The Monte Carlo study of methods (:mod:`rp2pr_eval.inference.method_study`,
``rp2pr-eval validate-methods``; results in ``docs/methods/validation.md``)
measures, at full ILCOP volumes (40 pairs, 15 intervention), the size of each
method's test at 5 % and the coverage of its 95 % interval. The target is a
size within 0.03-0.07 and a coverage within 0.93-0.97; a method outside it,
or not in the study at all, is reported as *descriptive*: its estimate and
interval are shown, its p-value is marked and is not a test to quote.

:func:`p_value_standing` looks an :class:`~rp2pr_eval.results.effect.Effect`
up by its estimator and its variance method (``Effect.vcov``), so an
estimator run with another variance than the one validated is not given the
validated standing by mistake.  The numbers here are those of the committed
validation table; ``tests/test_validity.py`` reads that table and checks
they agree, so the two cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SIZE_BOUNDS: tuple[float, float] = (0.03, 0.07)
COVERAGE_BOUNDS: tuple[float, float] = (0.93, 0.97)

Standing = Literal["validated", "descriptive"]


@dataclass(frozen=True)
class PValueStanding:
    """The standing of one estimator's p-value in the validation study.

    Attributes
    ----------
    estimator : str
        Estimator name (``Effect.estimator``).
    inference : str
        The inference validated, in words.
    standing : {"validated", "descriptive"}
    size : tuple of float, or None
        Rejection rate of a true null at 5 % (one value per setting of the
        study: trust x period drift on, then off, where both were run).
    coverage : tuple of float, or None
        Coverage of the 95 % interval, same settings.
    reason : str
        One sentence: why the p-value can or cannot be believed.
    """

    estimator: str
    inference: str
    standing: Standing
    size: tuple[float, ...] | None
    coverage: tuple[float, ...] | None
    reason: str

    @property
    def descriptive(self) -> bool:
        return self.standing == "descriptive"


def _within(values: tuple[float, ...] | None, bounds: tuple[float, float]) -> bool:
    return values is not None and all(bounds[0] <= v <= bounds[1] for v in values)


def _standing(estimator: str, inference: str, size: tuple[float, ...] | None,
              coverage: tuple[float, ...] | None, why_not: str | None = None) -> PValueStanding:
    ok = _within(size, SIZE_BOUNDS) and _within(coverage, COVERAGE_BOUNDS)
    if size is None:
        reason = why_not or "not in the validation study: its p-value has not been checked for size"
    elif ok:
        reason = ("size " + " / ".join(f"{s:.3f}" for s in size) + ", coverage "
                  + " / ".join(f"{c:.3f}" for c in coverage) + " at full ILCOP volumes (docs/methods/validation.md)")
    else:
        reason = ("size " + " / ".join(f"{s:.3f}" for s in size) + ", coverage "
                  + " / ".join(f"{c:.3f}" for c in coverage)
                  + f" at full ILCOP volumes, outside the target (size {SIZE_BOUNDS[0]:.2f}-{SIZE_BOUNDS[1]:.2f}, "
                  f"coverage {COVERAGE_BOUNDS[0]:.2f}-{COVERAGE_BOUNDS[1]:.2f})" + (f": {why_not}" if why_not else ""))
    return PValueStanding(estimator, inference, "validated" if ok else "descriptive", size, coverage, reason)


#: (estimator, variance-method prefix) -> standing. Numbers: docs/methods/validation.md ("Results").
#: Trust-level rows: 200 null + 200 effect trials (drift on); patient-level rows: 400 + 200 per setting
#: (drift on / off); the nested GLMM 370 + 148 / 360 + 144.
_TABLE: dict[tuple[str, str], PValueStanding] = {
    ("ancova", "CR2"): _standing("ancova", "CR2 by pair, Satterthwaite df", (0.045,), (0.950,)),
    ("did_aggregate", "CR2"): _standing("did_aggregate", "CR2 by pair, Satterthwaite df", (0.035,), (0.965,)),
    ("did_aggregate", "CR1"): _standing("did_aggregate", "CR1 by pair, t(G-1)", (0.045,), (0.950,)),
    # validated with CR1 (size 0.030, coverage 0.970); CR2 is the bias-reduced version of the same sandwich
    ("did_twfe", "CR1"): _standing("did_twfe", "CR1 by pair, t(G-1)", (0.030,), (0.970,)),
    ("did_twfe", "CR2"): _standing("did_twfe", "CR2 by pair, Satterthwaite df (validated with CR1)", (0.030,),
                                   (0.970,)),
    ("ancova+RI", "randomisation"): _standing(
        "ancova+RI", "randomisation test re-randomising 15 of 40 pairs (ANCOVA)", (0.055,), (0.945,)),
    ("ancova+wild", "WCR"): _standing(
        "ancova+wild", "restricted wild cluster bootstrap-t by pair (ANCOVA)", (0.055,), (0.935,)),
    ("did_logistic", "CR1"): _standing(
        "did_logistic", "CR1 by pair, t(G-1)", (0.072, 0.077), (0.927, 0.922),
        "the CR1 sandwich over-rejects with 40 pairs; quote the score wild bootstrap of the same model "
        "(rp.wild_cluster_bootstrap(patients, outcome, 'did_logistic'): size 0.058 / 0.062)"),
    ("did_logistic+score_bootstrap", "restricted score"): _standing(
        "did_logistic+score_bootstrap", "restricted score wild bootstrap by pair", (0.058, 0.062), (0.943, 0.938)),
    ("mixed_logistic", "ML (Laplace), CR3"): _standing(
        "mixed_logistic", "nested GLMM, CR3 jackknife by pair, t(G-1)", (0.041, 0.053), (0.959, 0.947)),
    ("gee_logistic", "mancl_derouen"): _standing(
        "gee_logistic", "block-exchangeable GEE, Mancl-DeRouen, t(G-p)", (0.040, 0.052), (0.960, 0.948)),
    ("gee_logistic", "kauermann_carroll"): _standing(
        "gee_logistic", "block-exchangeable GEE, Kauermann-Carroll, t(G-p)", (0.043, 0.052), (0.958, 0.948)),
    ("gee_logistic", "fay_graubard"): _standing(
        "gee_logistic", "block-exchangeable GEE, Fay-Graubard, t(G-p)", (0.043, 0.052), (0.958, 0.948)),
    ("gee_logistic", "robust"): _standing(
        "gee_logistic", "block-exchangeable GEE, Liang-Zeger sandwich", (0.045, 0.062), (0.955, 0.938)),
    ("mixed_linear", "model-based"): _standing(
        "mixed_linear", "model-based (REML), trust random intercept", None, None,
        "not in the validation study, and its model-based SE ignores the shocks pairs share after baseline "
        "(the trust-only GLMM with the same structure rejected a true null 33 % of the time)"),
    ("did_cox", ""): _standing("did_cox", "cluster-robust Cox", None, None),
}


def p_value_standing(estimator: str, vcov: str | None = None) -> PValueStanding:
    """The standing of an estimator's p-value in the validation study.

    Parameters
    ----------
    estimator : str
        ``Effect.estimator`` (e.g. ``"ancova"``, ``"did_logistic"``, ``"ancova+wild"``).
    vcov : str, optional
        ``Effect.vcov``; the entry whose variance-method prefix matches it
        (longest first). An estimator/variance pair not in the study is
        descriptive, with that reason.

    Returns
    -------
    PValueStanding

    Examples
    --------
    >>> p_value_standing("did_logistic", "CR1").standing
    'descriptive'
    """
    if not isinstance(estimator, str):
        raise ValueError(f"p_value_standing: estimator must be a string, got {estimator!r}")
    text = "" if vcov is None else str(vcov)
    matches = [key for key in _TABLE if key[0] == estimator and text.startswith(key[1])]
    if matches:
        return _TABLE[max(matches, key=lambda key: len(key[1]))]
    return PValueStanding(estimator, text or "unknown", "descriptive", None, None,
                          f"{estimator} with {text or 'this variance'} is not in the validation study: "
                          "its p-value has not been checked for size")


def effect_standing(effect) -> PValueStanding:
    """:func:`p_value_standing` of an :class:`~rp2pr_eval.results.effect.Effect`.

    A GEE that fell back to the independence working correlation
    (``details["fallback"]``) is not the block-exchangeable fit the study
    validated: descriptive, with the fallback's reason.
    """
    for name in ("estimator", "vcov", "details"):
        if not hasattr(effect, name):
            raise ValueError(f"effect_standing: expected an Effect, got {type(effect).__name__} (no {name!r})")
    fallback = (effect.details or {}).get("fallback")
    if fallback:
        return PValueStanding(effect.estimator, "independence working correlation (fallback)", "descriptive", None,
                              None, f"the block-exchangeable GEE did not converge ({fallback}); the independence "
                              "fit that replaced it is not the validated model")
    return p_value_standing(effect.estimator, effect.vcov)


def standing_table() -> list[PValueStanding]:
    """Every entry, in a stable order (for the report's "Which p-values to quote" section)."""
    return list(_TABLE.values())


__all__ = ["COVERAGE_BOUNDS", "SIZE_BOUNDS", "PValueStanding", "effect_standing", "p_value_standing", "standing_table"]

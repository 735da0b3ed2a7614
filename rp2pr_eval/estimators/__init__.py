"""The study's estimators: a patient table (or trust panel) and an outcome in, an ``Effect`` out.

Each front end validates and prepares the study data (:mod:`~rp2pr_eval.estimators.prepare`), calls a
general model of :mod:`rp2pr_eval.models` and wraps the coefficient of interest in an
:class:`~rp2pr_eval.results.Effect`.
"""
from rp2pr_eval.estimators.did import (
           ancova,
           did_aggregate,
           did_cox,
           did_logistic,
           did_twfe,
           event_study,
)
from rp2pr_eval.estimators.gee import gee_logistic, gee_logistic_with_fallback
from rp2pr_eval.estimators.mixed_linear import mixed_linear
from rp2pr_eval.estimators.mixed_logistic import mixed_logistic

__all__ = ["ancova", "did_aggregate", "did_cox", "did_logistic", "did_twfe", "event_study", "gee_logistic",
           "gee_logistic_with_fallback", "mixed_linear", "mixed_logistic"]

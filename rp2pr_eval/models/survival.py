"""``cox``: Cox proportional-hazards regression from a formula (Efron/Breslow ties, strata, cluster-robust variance).

Engine: :func:`rp2pr_eval.models.cox.fit_cox` (Newton–Raphson on the partial likelihood in
vectorised passes over the time-sorted data; Lin–Wei robust sandwich by cluster).
"""
from __future__ import annotations

import numpy as np

from rp2pr_eval._options import check_level
from rp2pr_eval.models.cox import CoxTies, fit_cox
from rp2pr_eval.models.formula import model_frame
from rp2pr_eval.models.result import ModelResult

__all__ = ["cox"]


def cox(
    formula,
    data=None,
    *,
    time,
    event,
    strata=None,
    cluster=None,
    ties: CoxTies = "efron",
    names=None,
    level: float = 0.95,
) -> ModelResult:
    r"""Cox proportional-hazards model :math:`h_i(t) = h_{0s}(t)\exp(x_i'\beta)`, by maximum partial likelihood.

    Parameters
    ----------
    formula, data
        The covariates as a right-hand side, ``"age + sex"`` (or ``"~ age + C(grade)"``; no
        intercept is used, factors keep reduced-rank coding), and the DataFrame; or ``X`` as the
        first argument (arrays: ``cox(X, None, time=t, event=d)``).
    time, event
        Columns (or arrays): follow-up time (≥ 0) and the event indicator (1 = event, 0 = censored).
    strata
        Column (or labels) of strata, each with its own baseline hazard :math:`h_{0s}`.
    cluster
        Column (or labels) for the cluster-robust (Lin–Wei) variance; normal reference.
    ties
        ``"efron"`` (default, as R's coxph) or ``"breslow"``.
    level
        Confidence level.

    Returns
    -------
    ModelResult
        Log hazard ratios; ``info``: ``loglik``, ``loglik_null``, ``n_events``, ``converged``,
        ``vcov_model`` (the model-based covariance when ``cluster`` is given).

    Examples
    --------
    survival's lung (``docs/models.md``)::

        models.cox("age + sex", data=lung.assign(dead=lung.status == 2), time="time", event="dead",
                   cluster="inst")

    R: ``survival::coxph(Surv(time, status) ~ age + sex, data = lung, cluster = inst)``.

    References
    ----------
    Cox (1972) JRSS B 34:187; Efron (1977) JASA 72:557; Lin & Wei (1989) JASA 84:1074;
    Therneau & Grambsch (2000) Modeling Survival Data, Springer.
    """
    check_level(level)
    extra = {"time": time, "event": event, "strata": strata, "cluster": cluster}
    if isinstance(formula, str):
        mf = model_frame(formula, data, extra=extra, response=False, intercept=False, model="cox")
    else:
        mf = model_frame(None, formula, extra=extra, names=names, response=False, model="cox")
    ev = mf.extra["event"]
    ev = ev.astype(float) if ev.dtype == bool else ev
    fit = fit_cox(mf.extra["time"], ev, mf.X, groups=mf.extra.get("cluster"), strata=mf.extra.get("strata"),
                  ties=ties, names=mf.names)
    return ModelResult(
        model="cox", names=fit.names, coef=fit.coef, se=fit.se, vcov=fit.vcov, dof=np.inf, nobs=fit.n_obs,
        vcov_type="robust (Lin-Wei)" if fit.robust else "model-based", n_groups=fit.n_clusters,
        formula=mf.formula, level=level,
        info={"loglik": fit.loglik, "loglik_null": fit.loglik_null, "n_events": fit.n_events, "ties": ties,
              "converged": fit.converged, "vcov_model": np.asarray(fit.vcov_model).tolist(),
              "n_dropped": mf.n_dropped},
        fit=fit,
    )

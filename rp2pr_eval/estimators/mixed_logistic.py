"""``mixed_logistic``: patient-level random-intercept logistic DiD (maximum likelihood, AGHQ or Laplace).

The likelihood, its maximisation and the standard errors live in
:mod:`rp2pr_eval.models.glmm` (one random intercept) and
:mod:`rp2pr_eval.models.glmm_nested` (nested intercepts: ``random=["pair_id",
"trust_id", "trust_id:period"]``); this module builds the design from a patient
table and returns an :class:`~rp2pr_eval.results.Effect` whose details carry
the random-intercept SDs, log-likelihood, convergence diagnostics, the
conditional modes of trust effects (for caterpillar plots) and the marginal
risk difference.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from rp2pr_eval._options import GlmmDf, GlmmMethod, GlmmVcov, IncompletePairs, check_level, check_option
from rp2pr_eval.errors import DataError
from rp2pr_eval.estimators.prepare import check_cells, patient_design, prepare
from rp2pr_eval.models.glmm import fit_glmm_logit, fit_glmm_logit_vb
from rp2pr_eval.models.glmm_nested import cluster_robust_vcov, fit_glmm_nested
from rp2pr_eval.results.effect import Effect
from rp2pr_eval.study.design import StudyDesign


def _conditional_rd(X, beta, vcov, j, target, b) -> tuple[float, float]:
    """Risk difference among target patients, conditional on their trusts' modes b, delta-method SE over β."""
    Xt = X[target]
    X0 = Xt.copy()
    X0[:, j] = 0.0
    p1, p0 = expit(Xt @ beta + b), expit(X0 @ beta + b)
    g = (p1 * (1 - p1)) @ Xt / len(Xt) - (p0 * (1 - p0)) @ X0 / len(Xt)
    return float(np.mean(p1 - p0)), float(np.sqrt(g @ vcov @ g))


def _term_labels(rows: pd.DataFrame, term: str) -> np.ndarray:
    """Group labels of a random-intercept term: a column, or columns joined by ``:`` (an interaction)."""
    parts = term.split(":")
    missing = [c for c in parts if c not in rows.columns]
    if not term or missing:
        raise ValueError(f"random term {term!r}: {missing or [term]} is not a column of the analysis rows; "
                         "use columns such as 'pair_id', 'trust_id', 'trust_id:period'")
    if len(parts) == 1:
        return rows[term].astype(str).to_numpy(dtype=object)
    joined = rows[parts[0]].astype(str)
    for c in parts[1:]:
        joined = joined + ":" + rows[c].astype(str)
    return joined.to_numpy(dtype=object)


def between_within_df(X: np.ndarray, top: np.ndarray) -> int:
    """Between–within df: top-level groups minus the rank of the fixed-effect columns constant within them."""
    codes = pd.factorize(top)[0]
    G = int(codes.max()) + 1
    first = np.full(G, -1)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    const = [j for j in range(X.shape[1]) if np.allclose(X[:, j], X[first[codes], j])]
    rank = int(np.linalg.matrix_rank(X[:, const])) if const else 0
    return G - rank


def mixed_logistic(
    patients: pd.DataFrame,
    outcome: str,
    *,
    covariates: Sequence[str] | None = None,
    design: StudyDesign | None = None,
    cluster: str | None = "pair_id",
    groups: str = "trust_id",
    random: Sequence[str] | None = None,
    method: str | None = None,
    n_quad: int | Sequence[int] | None = None,
    df_method: str | None = None,
    vcov: str | None = None,
    level: float = 0.95,
    incomplete_pairs: IncompletePairs | None = None,
) -> Effect:
    r"""Random-intercept logistic DiD fitted by maximum likelihood (adaptive Gauss–Hermite quadrature or Laplace).

    .. math:: \operatorname{logit} P(y_{i} = 1 \mid u) = \beta_0 + \beta_1 T_i + \beta_2 \text{post}_i
              + \delta\, T_i \text{post}_i + x_i'\gamma + \sum_{l} u_{l, g_l(i)},\quad u_{l,j} \sim N(0, \sigma_l^2)

    ``random=None`` (default): one random intercept for ``groups`` (trust), as before
    (``method`` default ``"aghq"``).
    ``random=["pair_id", "trust_id", "trust_id:period"]`` (any nested subset; ``a:b`` is the
    interaction of two columns, ``period`` is pre/post): random intercepts for pair, trust within
    pair and trust × period, fitted by :func:`rp2pr_eval.models.glmm_nested.fit_glmm_nested` —
    ``method="laplace"`` (the default with ``random``; as ``glmer(nAGQ = 1)``) or ``method="aghq"``
    (nested adaptive quadrature, ``n_quad`` nodes per term, default 5; an int or one per term).

    One random intercept: ``method="aghq"`` maximises the marginal likelihood with ``n_quad``-node
    adaptive Gauss–Hermite quadrature (default 25, as ``glmer(nAGQ = 25)``; ``n_quad=1`` or
    ``method="laplace"`` is the Laplace approximation); ``method="vb"`` is statsmodels'
    ``BinomialBayesMixedGLM`` variational Bayes, for comparison only (its SEs are posterior SDs
    and understate ML SEs). Standard errors from the observed information.

    The estimate is the treated:post log odds ratio conditional on the random effects.
    Inference. ``random=None``: observed information, normal reference (as ``glmer``).
    With ``random``, ``vcov`` chooses the covariance (default ``"CR3"`` for ``method="laplace"``,
    ``"model"`` for ``"aghq"``):

    * ``"CR3"`` — the jackknife of one-step leave-one-pair-out estimates,
      :math:`\frac{G-1}{G}\sum_g (A - A_g)^{-1} U_g U_g' (A - A_g)^{-1}`, from each pair's score
      :math:`U_g` and information :math:`A_g` of the Laplace likelihood (which factorises over
      pairs; :func:`rp2pr_eval.models.glmm_nested.cluster_robust_vcov`), t with G − 1 = 39 df:
      valid whatever the within-pair dependence (the generator's pairs share shocks in the post
      years, which no nested intercept can represent, and the model-based SE is 10–20 % too small
      there); a bias-reduced sandwich for few clusters (Mancl & DeRouen 2001; Bell & McCaffrey
      2002; Leyrat et al. 2018 recommend such small-sample corrections with few clusters);
      ``"CR1"``: the plain sandwich × G/(G − 1);
    * ``"model"`` — observed information with ``df_method``: ``"between-within"`` (default), t with
      :math:`G - p_b` df, :math:`G` the groups of the outermost term (pairs) and :math:`p_b` the rank
      of the fixed effects constant within them (intercept, treated): 38 for ILCOP (Li & Redden
      2015); or ``"normal"``.

    With the trust-only model the size is far above 5 % on the package generator whatever the df
    (docs/methods/validation.md). ``cluster`` is not used by the model (only checked).
    ``details["model_se"]`` and ``details["robust_se"]`` (CR1, CR3) are reported for every Laplace fit.

    ``details``: ``random_sd`` (``{term: SD}``), ``re_sd`` (the SD of ``groups``' term), with its
    interval for one term, ``log_likelihood``, ``converged``, ``grad_norm``, ``singular`` and
    ``boundary_terms`` (an SD estimated at 0, lme4's singular fit), ``odds_ratio``,
    ``risk_difference`` (average over post-period intervention patients of the predicted risk
    with and without the effect, at their conditional modes; delta-method SE over β),
    ``trust_effects`` (records ``trust_id, arm, mode, se, ci_low, ci_high``; with ``random``, the
    modes of the ``trust_id`` term).

    ``incomplete_pairs``: a pair with one trust is refused (``None``), kept as a one-trust cluster
    (``"keep"``) or left out with a note (``"drop"``), as in :func:`rp2pr_eval.did_aggregate`.

    References
    ----------
    Pinheiro & Bates (1995) JCGS 4:12; Bates et al. (2015) J Stat Softw 67(1); Li & Redden (2015)
    BMC Med Res Methodol 15:38; Leyrat et al. (2018) Int J Epidemiol 47:321–331; Mancl & DeRouen (2001)
    Biometrics 57:126–134; Bell & McCaffrey (2002) Survey Methodology 28:169–181.
    R: ``lme4::glmer(y ~ treated * post + ... + (1 | pair_id) + (1 | trust_id) + (1 | trust_id:period),
    family = binomial, nAGQ = 1)``.
    """
    check_option("method", method, GlmmMethod, allow_none=True)
    if method is None:
        method = "aghq" if random is None else "laplace"
    check_option("df_method", df_method, GlmmDf, allow_none=True)
    check_option("vcov", vcov, GlmmVcov, allow_none=True)
    if vcov is None:
        vcov = "CR3" if random is not None and method == "laplace" else "model"
    if vcov != "model" and (random is None or method != "laplace"):
        raise ValueError(f"vcov={vcov!r} needs random=[...] and method='laplace' (cluster scores of the Laplace fit)")
    if groups != "trust_id" and groups not in patients.columns:
        raise ValueError(f"groups={groups!r} is not a column of the patient table")
    if random is not None:
        if isinstance(random, str) or not all(isinstance(t, str) for t in random) or not len(random):
            raise ValueError(f"random must be a list of term names such as ['pair_id', 'trust_id', "
                             f"'trust_id:period'], got {random!r}")
        if len(set(random)) != len(random):
            raise ValueError(f"random has repeated terms: {list(random)!r}")
        if method == "vb":
            raise ValueError("method='vb' fits one random intercept only; use method='laplace' or 'aghq' with random=")
    if n_quad is None:
        n_quad = 25 if random is None else 5
    if random is None or isinstance(n_quad, (int, np.integer)):
        if isinstance(n_quad, bool) or not isinstance(n_quad, (int, np.integer)) or n_quad < 1:
            raise ValueError(f"n_quad must be a positive integer, got {n_quad!r}")
    check_level(level)
    prep = prepare(patients, outcome, design=design, cluster=cluster, kinds=("binary",), estimator="mixed_logistic",
                   incomplete_pairs=incomplete_pairs)
    rows = prep.rows
    y = pd.to_numeric(rows[prep.entry.name]).to_numpy(dtype=float)
    check_cells(prep, y)
    X, names = patient_design(prep, covariates)
    j = names.index("treated:post")
    target = (rows["treated"].to_numpy() == 1) & (rows["post"].to_numpy() == 1)
    if random is not None:
        return _nested(prep, rows, X, names, y, j, target, list(random), method, n_quad,
                       "between-within" if df_method is None else df_method, level, covariates, vcov)
    g = rows[groups].to_numpy()
    z = float(stats.norm.ppf(0.5 + level / 2))
    arm_of = rows.drop_duplicates(groups).set_index(groups)["arm"]
    if method in ("aghq", "laplace"):
        nq = 1 if method == "laplace" else int(n_quad)
        fit = fit_glmm_logit(X, y, g, n_quad=nq, names=names, level=level)
        beta, V = np.asarray(fit.beta), np.asarray(fit.vcov)[: len(names), : len(names)]
        extra = {"re_sd_ci_low": float(fit.sd_ci_low), "re_sd_ci_high": float(fit.sd_ci_high),
                 "log_likelihood": float(fit.loglik), "converged": bool(fit.converged), "grad_norm": float(fit.grad_norm),
                 "n_iter": int(fit.n_iter), "boundary": bool(fit.boundary), "message": fit.message, "n_quad": nq}
    else:
        fit = fit_glmm_logit_vb(X, y, g, names=names)
        beta = np.asarray(fit.beta)
        V = np.diag(np.asarray(fit.se) ** 2)
        extra = {"re_sd_ci_low": float(fit.sd_ci_low), "re_sd_ci_high": float(fit.sd_ci_high), "message": fit.message}
    se_all = np.sqrt(np.diag(V))
    est, se = float(beta[j]), float(se_all[j])
    labels = np.asarray(fit.group_labels)
    modes, mode_se = np.asarray(fit.modes, dtype=float), np.asarray(fit.mode_se, dtype=float)
    mode_of = dict(zip(labels, modes))
    b = np.array([mode_of[v] for v in g[target]])
    rd, rd_se = _conditional_rd(X, beta, V, j, target, b)
    trust_effects = [{"trust_id": str(t), "arm": str(arm_of.get(t, "")), "mode": float(m), "se": float(s),
                      "ci_low": float(m - z * s), "ci_high": float(m + z * s)} for t, m, s in zip(labels, modes, mode_se)]
    details = {
        **prep.notes(),
        "coefficients": {n: (float(b_), float(s_)) for n, b_, s_ in zip(names, beta, se_all)},
        "re_sd": float(fit.sd), "groups": groups, "method": method,
        "odds_ratio": {"estimate": float(np.exp(est)), "ci_low": float(np.exp(est - z * se)), "ci_high": float(np.exp(est + z * se))},
        "risk_difference": {"estimate": rd, "se": rd_se, "ci_low": rd - z * rd_se, "ci_high": rd + z * rd_se},
        "trust_effects": trust_effects, "covariates": list(covariates or []), "n_dropped": prep.n_dropped, **extra,
    }
    if method == "laplace":
        details["random_sd"] = {groups: float(fit.sd)}
    vcov = {"aghq": "observed information (ML, AGHQ)", "laplace": "observed information (ML, Laplace)"}
    return Effect(outcome=prep.entry.name, estimator="mixed_logistic",
                  estimand="treated:post log odds ratio conditional on the trust effect", scale="log_odds_ratio",
                  estimate=est, se=se, ci_low=est - z * se, ci_high=est + z * se,
                  p_value=float(2 * stats.norm.sf(abs(est / se))), df=None, n_obs=len(y), n_trusts=prep.n_trusts,
                  n_clusters=None, cluster=None, vcov=vcov.get(method, "VB posterior"),
                  level=level, details=details)


def _nested(prep, rows, X, names, y, j, target, random, method, n_quad, df_method, level, covariates,
            vcov) -> Effect:
    """mixed_logistic with nested random intercepts (``random=[...]``)."""
    labels = {t: _term_labels(rows, t) for t in random}
    order = sorted(random, key=lambda t: (len(pd.unique(labels[t])), random.index(t)))  # outermost first
    nq = n_quad if isinstance(n_quad, (int, np.integer)) else tuple(n_quad)
    if not isinstance(nq, (int, np.integer)):
        if len(nq) != len(random):
            raise ValueError(f"n_quad has {len(nq)} entries but random has {len(random)} terms")
        nq = tuple(int(nq[random.index(t)]) for t in order)
    if method == "aghq" and int(np.prod(np.broadcast_to(nq, len(order)))) > 1000:
        raise ValueError(f"n_quad={n_quad!r} asks for {int(np.prod(np.broadcast_to(nq, len(order))))} quadrature "
                         "paths per leaf group (the product over terms); nested AGHQ allows at most 1000: "
                         "use e.g. n_quad=5 per term")
    fit = fit_glmm_nested(X, y, [labels[t] for t in order], terms=order, method=method, n_quad=nq, names=names)
    k = len(names)
    beta, V = np.asarray(fit.beta), np.asarray(fit.vcov)[:k, :k]
    model_se = float(np.sqrt(V[j, j]))
    robust_se = ({kind: float(np.sqrt(cluster_robust_vcov(fit, kind)[j, j])) for kind in ("CR1", "CR3")}
                 if fit.cluster_scores is not None else {})
    if vcov != "model":
        V = cluster_robust_vcov(fit, vcov)[:k, :k]
    se_all = np.sqrt(np.diag(V))
    est, se = float(beta[j]), float(se_all[j])
    if vcov != "model":
        df = fit.n_groups[order[0]] - 1
        q = float(stats.t.ppf(0.5 + level / 2, df))
        p_value = float(2 * stats.t.sf(abs(est / se), df))
    elif df_method == "between-within":
        df = between_within_df(X, labels[order[0]])
        if df < 1:
            raise DataError(f"between-within df = {df}: too few groups of {order[0]!r} for the fixed effects "
                            "constant within them; use df_method='normal'")
        q = float(stats.t.ppf(0.5 + level / 2, df))
        p_value = float(2 * stats.t.sf(abs(est / se), df))
    else:
        df = None
        q = float(stats.norm.ppf(0.5 + level / 2))
        p_value = float(2 * stats.norm.sf(abs(est / se)))
    offset = np.zeros(len(y))
    for t in order:
        mf = fit.modes[t]
        offset += pd.Series(mf["mode"].to_numpy(), index=mf["group"].to_numpy()).reindex(labels[t]).to_numpy()
    rd, rd_se = _conditional_rd(X, beta, V, j, target, offset[target])
    trust_effects = []
    if "trust_id" in fit.modes:
        arm_of = rows.drop_duplicates("trust_id").set_index("trust_id")["arm"]
        arm_of.index = arm_of.index.astype(str)
        zq = float(stats.norm.ppf(0.5 + level / 2))
        trust_effects = [{"trust_id": str(t), "arm": str(arm_of.get(str(t), "")), "mode": float(m), "se": float(s),
                          "ci_low": float(m - zq * s), "ci_high": float(m + zq * s)}
                         for t, m, s in fit.modes["trust_id"][["group", "mode", "sd"]].itertuples(index=False)]
    random_sd = {t: float(fit.sd[t]) for t in random}
    details = {
        "coefficients": {n: (float(b_), float(s_)) for n, b_, s_ in zip(names, beta, se_all)},
        "random_sd": random_sd, "re_sd": random_sd.get("trust_id", random_sd[order[-1]]),
        "log_sd_se": {t: float(fit.log_sd_se[t]) for t in random}, "n_groups": dict(fit.n_groups),
        "random": list(random), "method": method, "df_method": df_method if vcov == "model" else "G-1",
        "vcov_method": vcov, "model_se": model_se, "robust_se": robust_se,
        "log_likelihood": float(fit.loglik), "converged": bool(fit.converged), "grad_norm": float(fit.grad_norm),
        "n_iter": int(fit.n_iter), "singular": bool(fit.singular), "boundary_terms": list(fit.boundary_terms),
        "message": fit.message, "n_quad": list(fit.n_quad),
        "odds_ratio": {"estimate": float(np.exp(est)), "ci_low": float(np.exp(est - q * se)),
                       "ci_high": float(np.exp(est + q * se))},
        "risk_difference": {"estimate": rd, "se": rd_se, "ci_low": rd - q * rd_se, "ci_high": rd + q * rd_se},
        "trust_effects": trust_effects, "covariates": list(covariates or []), "n_dropped": prep.n_dropped,
    }
    inference = ("between-within t" if df_method == "between-within" else "normal") if vcov == "model" else \
        f"{vcov} by {order[0]}, t(G-1)"
    return Effect(outcome=prep.entry.name, estimator="mixed_logistic",
                  estimand="treated:post log odds ratio conditional on the random effects", scale="log_odds_ratio",
                  estimate=est, se=se, ci_low=est - q * se, ci_high=est + q * se, p_value=p_value, df=df,
                  n_obs=len(y), n_trusts=prep.n_trusts, n_clusters=fit.n_groups[order[0]], cluster=order[0],
                  vcov=(f"observed information (ML, {'Laplace' if method == 'laplace' else 'nested AGHQ'}), "
                        f"{inference}") if vcov == "model" else f"ML (Laplace), {inference}",
                  level=level, details=details)

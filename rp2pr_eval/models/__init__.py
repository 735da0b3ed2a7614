"""General statistical models: a formula and a DataFrame (or arrays) in, a frozen :class:`ModelResult` out.

Nothing in this subpackage knows about the study (no trusts, pairs, arms or outcomes): it imports
only numpy/scipy/pandas/statsmodels/formulaic and the package's foundation modules. Worked examples
on public datasets, with the R/Stata equivalent calls and the agreement measured: ``docs/models.md``.

* :func:`cluster_ols` — OLS/WLS with HC1–HC3 or CR1–CR3 by one cluster variable, Satterthwaite df;
  :func:`wald_test` — HTZ / chi-square / naive-F Wald tests of its coefficients;
* :func:`glmm_logit` — random-intercept logit by maximum likelihood (AGHQ; Laplace with ``n_quad=1``);
* :func:`lmm` — linear mixed model, random intercepts and optional random slopes, REML or ML;
* :func:`gee_logit` — logistic GEE, exchangeable/independence/block exchangeable, robust, Mancl–DeRouen,
  Kauermann–Carroll or Fay–Graubard sandwich;
* :func:`cox` — Cox regression, Efron/Breslow ties, strata, cluster-robust variance;
* :func:`wild_cluster_bootstrap`, :func:`randomisation_test` — resampling inference for one
  coefficient of a linear model;
* :func:`adjust_pvalues` — Holm, Benjamini–Hochberg, Romano–Wolf on p-values or joint null draws.

Also: ``models.variance_components.moment_variance_components`` (ANOVA variance components from unit
sums) and ``models.score_bootstrap.score_bootstrap_logit`` (Kline–Santos score bootstrap).

The array-level engines behind them stay importable from their modules (``models.linear.wls``,
``models.glmm.fit_glmm_logit``, ``models.glmm_nested.fit_glmm_nested`` (nested random intercepts,
Laplace or nested AGHQ, with ``cluster_robust_vcov``), ``models.gee.fit_gee_logit``, ``models.cox.fit_cox``,
``models.wild.wild_cluster_bootstrap_linear``, ``models.randomisation.randomisation_test_linear``).
"""
from rp2pr_eval.models.marginal import gee_logit
from rp2pr_eval.models.mixed import glmm_logit, lmm
from rp2pr_eval.models.multiplicity import adjust_pvalues
from rp2pr_eval.models.ols import cluster_ols, wald_test
from rp2pr_eval.models.resampling import randomisation_test, wild_cluster_bootstrap
from rp2pr_eval.models.result import ModelResult
from rp2pr_eval.models.survival import cox

__all__ = ["ModelResult", "adjust_pvalues", "cluster_ols", "cox", "gee_logit", "glmm_logit", "lmm",
           "randomisation_test", "wald_test", "wild_cluster_bootstrap"]

"""General statistical models: a formula and a DataFrame (or arrays) in, a frozen :class:`ModelResult` out.

Nothing in this subpackage knows about the study (no trusts, pairs, arms or outcomes): it imports
only numpy/scipy/pandas/statsmodels/formulaic and the package's foundation modules. Worked examples
on public datasets, with the R/Stata equivalent calls and the agreement measured: ``docs/models.md``.

* :func:`cluster_ols` — OLS/WLS with HC1–HC3 or CR1–CR3 by one cluster variable, Satterthwaite df;
  :func:`wald_test` — HTZ / chi-square / naive-F Wald tests of its coefficients.
"""
from rp2pr_eval.models.ols import cluster_ols, wald_test
from rp2pr_eval.models.result import ModelResult

__all__ = ["ModelResult", "cluster_ols", "wald_test"]

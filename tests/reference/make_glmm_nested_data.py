"""Write the patient-level data behind ``tests/reference/glmm_nested_reference.json``.

Run from the repository root (then run R on what this writes)::

    .venv/bin/python tests/reference/make_glmm_nested_data.py
    Rscript tests/reference/glmm_nested.R

``data/glmm_nested_synthetic.csv.gz``
    A seeded draw of the nested model itself: 40 pairs of trusts, each trust observed in a
    ``pre`` and a ``post`` period (about 45 patients per trust-period), 15 pairs treated;
    logit P = -0.4 + 0.1 treated + 0.15 post + 0.25 treated:post - 0.3 age10 + 0.1 sex_M
    - 0.5 ps_high + u_pair + u_trust + u_trust:period with SDs 0.35, 0.25 and 0.2.
``data/glmm_nested_generator.csv.gz``
    The ``active_treatment`` analysis rows of one small draw of the package generator,
    ``rp.simulate_nlca(seed=16, volume_median=40, volume_clip=(20, 100))``, built as
    ``mixed_logistic`` builds them (pre and post years, the case-mix indicators of
    ``rp.CASE_MIX``); on these data the pair SD is estimated at 0 (a singular fit).

Columns: ``y``, the design columns (``treated, post`` and covariates, named for R) and
``pair_id, trust_id, period``. Floats are written with ``repr`` precision (round-trip exact).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

import rp2pr_eval as rp
from rp2pr_eval.estimators.prepare import patient_design, prepare

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


def synthetic(seed: int = 20261203) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_pairs = 40
    treated_pairs = rng.permutation(n_pairs) < 15
    u_pair = rng.normal(0, 0.35, n_pairs)
    u_trust = rng.normal(0, 0.25, 2 * n_pairs)
    u_tp = rng.normal(0, 0.2, (2 * n_pairs, 2))
    rows = []
    for t in range(2 * n_pairs):
        p = t // 2
        for k, period in enumerate(("pre", "post")):
            size = int(rng.integers(25, 66))
            age10 = np.round(rng.normal(72, 9, size), 0) / 10 - 7
            sex_m = rng.binomial(1, 0.53, size)
            ps_high = rng.binomial(1, 0.35, size)
            tr, post = float(treated_pairs[p]), float(k)
            eta = (-0.4 + 0.1 * tr + 0.15 * post + 0.25 * tr * post - 0.3 * age10 + 0.1 * sex_m - 0.5 * ps_high
                   + u_pair[p] + u_trust[t] + u_tp[t, k])
            y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
            rows.append(pd.DataFrame({"y": y, "treated": tr, "post": post, "age10": age10, "sex_M": sex_m,
                                      "ps_high": ps_high, "pair_id": f"P{p + 1:02d}", "trust_id": f"T{t + 1:02d}",
                                      "period": period}))
    return pd.concat(rows, ignore_index=True)


def r_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_")


def generator(seed: int = 16) -> pd.DataFrame:
    patients = rp.simulate_nlca(seed=seed, volume_median=40, volume_clip=(20, 100))
    prep = prepare(patients, "active_treatment", design=None, cluster="pair_id", kinds=("binary",))
    X, names = patient_design(prep, rp.CASE_MIX)
    frame = pd.DataFrame(X[:, 1:], columns=[r_name(n) for n in names[1:]])
    frame = frame.drop(columns=["treated_post"])
    frame.insert(0, "y", prep.rows["active_treatment"].to_numpy(dtype=int))
    for c in ("pair_id", "trust_id", "period"):
        frame[c] = prep.rows[c].to_numpy()
    return frame


def main() -> None:
    DATA.mkdir(exist_ok=True)
    for name, frame in (("synthetic", synthetic()), ("generator", generator())):
        frame.to_csv(DATA / f"glmm_nested_{name}.csv.gz", index=False,
                     compression={"method": "gzip", "mtime": 0})
        print(name, frame.shape)


if __name__ == "__main__":
    main()

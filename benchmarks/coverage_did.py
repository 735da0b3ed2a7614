"""Monte Carlo coverage of did_aggregate / ancova CIs at the ILCOP design under the null (larger run).

    python benchmarks/coverage_did.py --reps 1000

Prints coverage and mean SE for CR2 by pair, CR1 by pair and CR1 by trust.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_did import null_coverage  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.perf_counter()
    res = null_coverage(args.reps, args.seed)
    print(f"{args.reps} ILCOP-shaped trials under the null ({time.perf_counter() - t0:.0f} s)")
    for k, v in res.items():
        print(f"  {k:32s} {v:.4f}")


if __name__ == "__main__":
    main()

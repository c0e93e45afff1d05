#!/usr/bin/env python3
"""Writes stats_reference.json: t-tests that `sgs report --against` must reproduce, computed with SciPy.

Run once, outside the tests, with Debian's python3-scipy, and check the output in:

  /usr/bin/python3 tests/reference/make_stats_reference.py --out tests/reference/stats_reference.json

Each case holds two groups' final test accuracies (percent) with their seeds
and what scipy.stats says about group a minus group b (the reference):
paired cases (the groups ran the same seeds) with scipy.stats.ttest_rel,
unpaired ones (no seed in common) with scipy.stats.ttest_ind(equal_var=False)
(Welch); the 95 % interval is difference +- t.ppf(0.975, df) * se, with se
and df as SciPy's test uses them. Holm's adjustment is checked in the test on
a worked example, not here.
"""
import argparse
import json

import numpy as np
import scipy
from scipy import stats

CASES = [
    # name, a (seeds, acc), b (seeds, acc)
    ("paired_5", ([0, 1, 2, 3, 4], [93.0, 94.0, 92.0, 95.5, 91.0]), ([0, 1, 2, 3, 4], [90.0, 91.0, 95.0, 92.0, 90.5])),
    ("paired_10_small_gain",
     (list(range(10)), [91.2, 91.5, 90.9, 91.8, 91.1, 91.6, 91.0, 91.4, 91.3, 91.7]),
     (list(range(10)), [91.0, 91.6, 90.7, 91.5, 91.2, 91.3, 90.8, 91.1, 91.3, 91.4])),
    ("welch_3_vs_4", ([10, 11, 12], [93.0, 94.0, 92.0]), ([0, 1, 2, 3], [90.0, 91.0, 95.0, 92.0])),
    ("welch_unequal_spread", ([5, 6, 7, 8, 9, 10], [88.1, 88.3, 88.2, 88.4, 88.0, 88.2]),
     ([0, 1, 2], [86.0, 90.0, 87.5])),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    cases = []
    for name, (sa, a), (sb, b) in CASES:
        a, b = np.array(a), np.array(b)
        if sa == sb:
            r = stats.ttest_rel(a, b)
            d = a - b
            diff = d.mean()
            se = d.std(ddof=1) / np.sqrt(len(d))
            df = len(d) - 1
            test = "paired t"
        else:
            r = stats.ttest_ind(a, b, equal_var=False)
            va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
            diff = a.mean() - b.mean()
            se = np.sqrt(va + vb)
            df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
            test = "Welch t"
        if abs(diff / se - r.statistic) > 1e-9 * abs(r.statistic):
            raise SystemExit(f"{name}: t {diff / se} differs from SciPy's {r.statistic}")
        q = stats.t.ppf(0.975, df)
        cases.append({"name": name, "a_seeds": sa, "a": a.tolist(), "b_seeds": sb, "b": b.tolist(),
                      "test": test, "difference": float(diff), "t": float(r.statistic), "df": float(df),
                      "p": float(r.pvalue), "ci_low": float(diff - q * se), "ci_high": float(diff + q * se)})
    with open(args.out, "w") as f:
        json.dump({"generator": "tests/reference/make_stats_reference.py", "scipy": scipy.__version__,
                   "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

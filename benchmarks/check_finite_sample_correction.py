#!/usr/bin/env python
"""The covariate model's finite-sample law of a group's log statistics against simulated
samples, for mixtures of lognormals a covariate design can produce: a single lognormal, broad
normal spreads of the subjects' locations, and a few subtypes several log units apart.

For each mixture: its CV and kurtosis, the kurtosis of the lognormal with its CV, and the SD,
correlations and mean (minus the population value) of log mean, log SD and log median, from
``--samples`` simulated samples of ``--n`` independent subjects, from the large-sample law
(models.asymptotic.statistic_moments) and from the corrected law the model uses
(models.asymptotic.corrected_moments).  docs/decisions/covariate-likelihood.md reads it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

NAMES = ["mean", "sd", "median"]


def mixtures() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Component locations and scales (log units), one component per subject of a design."""
    spread = np.random.default_rng(0).standard_normal(200)
    return {
        "lognormal, SD 1.3": (np.zeros(45), np.full(45, 1.3)),
        "locations spread 1.2, SD 0.9": (1.2 * spread, np.full(200, 0.9)),
        "locations spread 1.2, SD 1.5": (1.2 * spread, np.full(200, 1.5)),
        "5 of 45 subjects +5, SD 0.3": (np.repeat([0.0, 5.0], [40, 5]), np.full(45, 0.3)),
        "10 of 45 subjects +3, SD 0.5": (np.repeat([0.0, 3.0], [35, 10]), np.full(45, 0.5)),
        "30/10/5 subjects at 0/2.5/5, SD 0.4": (np.repeat([0.0, 2.5, 5.0], [30, 10, 5]), np.full(45, 0.4)),
        "2 of 45 subjects +5, SD 0.3": (np.repeat([0.0, 5.0], [43, 2]), np.full(45, 0.3)),
    }


def simulate(m, s, n: int, samples: int, seed: int) -> np.ndarray:
    from models.statistics import sample_statistics

    rng = np.random.default_rng(seed)
    k = rng.integers(0, len(m), size=(samples, n))
    x = np.exp(m[k] + s[k] * rng.standard_normal((samples, n)))
    return np.log(sample_statistics(np, np.sort(x, axis=-1), n, NAMES))


def _corr(cov) -> np.ndarray:
    sd = np.sqrt(np.diag(cov))
    return (cov / np.outer(sd, sd))[[0, 0, 1], [1, 2, 2]]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="check_finite_sample_correction.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=45, help="subjects per sample (default: %(default)s)")
    p.add_argument("--samples", type=int, default=20000, help="simulated samples per mixture (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = p.parse_args(argv)

    from models.asymptotic import (build_correction, corrected_moments, mixture_kurtosis, mixture_mean_cv2, residual_nodes,
                                   statistic_moments)

    correction = build_correction(residual_nodes(None), args.n, NAMES)
    lines = [f"# finite-sample law of (log mean, log SD, log median), n = {args.n}, {args.samples} simulated samples per mixture (seed {args.seed})",
             "# rows: simulated / large-sample / corrected; SD of each log statistic, correlations (mean-SD, mean-median, SD-median), mean minus population value"]
    for label, (m, s) in mixtures().items():
        sim = simulate(m, s, args.n, args.samples, args.seed)
        population, cov_a = statistic_moments(np, m, s, args.n, NAMES, bias=False)
        mu_c, cov_c = corrected_moments(np, correction, m, s, args.n, NAMES)
        cv2 = float(mixture_mean_cv2(np, m, s)[1])
        lognormal = float(mixture_kurtosis(np, np.zeros(1), np.full(1, np.sqrt(np.log1p(cv2)))))
        lines.append(f"{label}: CV {np.sqrt(cv2):.2f}, kurtosis {float(mixture_kurtosis(np, m, s)):.3g} "
                     f"(a lognormal of this CV: {lognormal:.3g})")
        rows = (("simulated", np.cov(sim.T), sim.mean(0) - population), ("large-sample", cov_a, None), ("corrected", cov_c, mu_c - population))
        for name, cov, bias in rows:
            b = "" if bias is None else f"  bias {np.array2string(bias, precision=3)}"
            lines.append(f"   {name:12s} SD {np.array2string(np.sqrt(np.diag(cov)), precision=3)}  corr {np.array2string(_corr(cov), precision=2)}{b}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + f"\n# {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""The group model's two-group test term (:mod:`models.two_group`) against simulated cohorts.

At fixed lognormal populations near the posteriors of real studies, the large-sample law of
the test statistic (Welch's or Student's t; Mann-Whitney's ``U / (n_a n_b) - 1/2``) is
compared with the statistic computed on cohorts of the published sizes by the simulator the
checks use: its mean and SD, its correlation with each published log statistic it is
conditioned on (and, not conditioned on, with the sample extremes), the share of its
variance the statistics explain, and the conditional law's calibration over the simulated
cohorts (each cohort's statistic located in the normal conditioned on that cohort's own
published statistics: coverage of central 50% and 90% intervals, Kolmogorov-Smirnov
distance of the PIT).  Writes benchmarks/results/two-group-approximation.txt
(docs/decisions/test-statistics-as-data.md).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

#: (label, test, sizes, populations ((mean, CV) per group), conditioned statistics, published
#: |T| bounds on the model's scale from a p-value (None: no event))
SCENARIOS = (
    ("homocysteine-like: Mann-Whitney, medians (ranges not conditioned), n 217/219", "mann_whitney", (217, 219),
     ((9.8, 0.45), (9.3, 0.40)), (("median",), ("median",)), ("p_value", "=", 0.02, "0.02")),
    ("Mann-Whitney, medians and quartiles, n 52/52", "mann_whitney", (52, 52),
     ((38.9, 0.61), (28.2, 0.69)), (("median", "q1", "q3"), ("median", "q1", "q3")), ("p_value", "=", 0.004, "0.004")),
    ("Lasemi-like: Mann-Whitney, mean, SD and median, n 29/45", "mann_whitney", (29, 45),
     ((820.0, 0.19), (236.0, 0.43)), (("mean", "sd", "median"), ("mean", "sd", "median")), ("p_value", "<", 0.001, None)),
    ("Student t, medians and quartiles, n 52/52", "student_t", (52, 52),
     ((37.1, 0.53), (26.5, 0.62)), (("median", "q1", "q3"), ("median", "q1", "q3")), ("p_value", "=", 0.003, "0.003")),
    ("Welch t, medians only, n 29/45", "welch_t", (29, 45),
     ((300.0, 0.40), (236.0, 0.43)), (("median",), ("median",)), ("p_value", "=", 0.02, "0.02")),
    ("Welch t, mean and SD of one group, median of the other, n 29/45", "welch_t", (29, 45),
     ((300.0, 0.40), (236.0, 0.43)), (("mean", "sd"), ("median",)), ("p_value", "=", 0.02, "0.02")),
)


def bounds_for(test, sizes, claim):
    """The |T| interval of a published p-value claim (through the study-file reading)."""
    from models.study import Claim, Study
    from models.two_group import statistic_bounds

    stat, rel, value, printed = claim
    c = {"statistic": stat, "relation": rel, "value": value, "status": "assumption", "reason": "benchmark", "test": test}
    if printed:
        c["printed"] = printed
    study = Study.model_validate({
        "id": "bench", "title": "t", "citation": "c", "sources": {"s": {"citation": "c"}},
        "analyte": {"name": "x", "units": "u"},
        "groups": {g: {"label": g, "n": {"value": n, "status": "assumption", "reason": "r"},
                       "statistics": {"median": {"value": 1.0, "status": "assumption", "reason": "r"}}} for g, n in zip("ab", sizes)},
        "comparisons": {"ab": {"groups": ["a", "b"], "claims": {"c": Claim.model_validate(c).model_dump(exclude_none=True)}}},
    })
    return statistic_bounds(study, "ab", "c")


def run(cohorts: int, seed: int) -> str:
    import numpy as np
    from scipy import stats as sps

    from models.families import get_family
    from models.two_group import TwoGroupTerm, conditional_law, lognormal_params, simulate_term, term_law

    fam = get_family("lognormal")
    lines = []
    for label, test, sizes, pops, cond, claim in SCENARIOS:
        t0 = time.perf_counter()
        bounds = bounds_for(test, sizes, claim)
        term = TwoGroupTerm("ab.c", ("a", "b"), test, sizes, bounds, cond)
        params = [lognormal_params(np, np.log(mean), np.log(cv)) for mean, cv in pops]
        law = term_law(np, term, params)
        rng = np.random.default_rng(seed)
        T, stats, extremes = simulate_term(term, fam, pops, cohorts, rng)
        se = T.std(ddof=1) / np.sqrt(cohorts)
        lines.append(f"## {label}")
        lines.append(f"populations (mean, CV): {pops[0]} and {pops[1]}; conditioned on {cond[0]} / {cond[1]}; {cohorts} cohorts")
        lines.append(f"T mean: model {law['mean']:.4f}, simulated {T.mean():.4f} (MC SE {se:.4f}); difference in SDs of T: {(law['mean'] - T.mean()) / T.std():+.3f}")
        lines.append(f"T SD: model {np.sqrt(law['var']):.4f}, simulated {T.std(ddof=1):.4f} (ratio {np.sqrt(law['var']) / T.std(ddof=1):.3f})")
        for g, (names, s, c, cov) in enumerate(zip(cond, stats, law["cross"], law["stats_cov"])):
            for j, x in enumerate(names):
                r_model = c[j] / np.sqrt(law["var"] * cov[j, j])
                r_sim = np.corrcoef(T, s[:, j])[0, 1]
                lines.append(f"  corr(T, log {x} of group {'ab'[g]}): model {r_model:+.3f}, simulated {r_sim:+.3f}")
            for j, x in enumerate(("min", "max")):
                lines.append(f"  corr(T, log {x} of group {'ab'[g]}): not conditioned on, simulated {np.corrcoef(T, extremes[g][:, j])[0, 1]:+.3f}")
        S = np.concatenate([s for s in stats], axis=1)
        X = np.column_stack([np.ones(cohorts), S])
        beta, *_ = np.linalg.lstsq(X, T, rcond=None)
        resid = T - X @ beta
        for g in range(2):
            for j, x in enumerate(("min", "max")):
                lines.append(f"  partial corr(T, log {x} of group {'ab'[g]} | conditioned statistics), simulated: {np.corrcoef(resid, extremes[g][:, j])[0, 1]:+.3f}")
        mu, v, _ = conditional_law(np, term, params, [s.T for s in stats])
        lines.append(f"explained share of Var T: model {1 - v / law['var']:.3f}, simulated (linear R^2) {1 - resid.var() / T.var():.3f}")
        lines.append(f"conditional SD: model {np.sqrt(v):.4f}, simulated residual SD {resid.std():.4f} (ratio {np.sqrt(v) / resid.std():.3f})")
        u = sps.norm.cdf((T - mu) / np.sqrt(v))
        cover50 = np.mean(np.abs(u - 0.5) < 0.25)
        cover90 = np.mean(np.abs(u - 0.5) < 0.45)
        ks = sps.kstest(u, "uniform").statistic
        lines.append(f"conditional calibration over the cohorts: 50% interval covers {cover50:.3f}, 90% covers {cover90:.3f}, PIT KS distance {ks:.3f}")
        lo, hi = bounds
        holds = (np.abs(T) >= lo) & (np.abs(T) <= hi)
        from models.two_group import event_log_prob

        p_model = float(np.exp(event_log_prob(np, law["mean"], law["var"], bounds)))
        lines.append(f"published {claim[0]} {claim[1]} {claim[2]}: |T| in [{lo:.4g}, {hi:.4g}]; P model (marginal) {p_model:.4f}, simulated share {holds.mean():.4f}")
        lines.append(f"({time.perf_counter() - t0:.1f} s)")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench_two_group.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--cohorts", type=int, default=20000, help="simulated cohorts per scenario (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "two-group-approximation.txt")
    args = p.parse_args(argv)
    text = run(args.cohorts, args.seed)
    header = f"# python benchmarks/bench_two_group.py --cohorts {args.cohorts} --seed {args.seed}\n\n"
    args.out.write_text(header + text + "\n")
    print(header + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

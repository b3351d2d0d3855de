#!/usr/bin/env python
"""The covariate model's joint likelihood of claims and statistics against simulated cohorts:
at one parameter point, each association claim's normal quantity ``D`` (its covariance with
every log statistic, its variance, and the probability that the claim holds marginally and
given the published statistics), from the model's own graph (``model.claim_moments``) and
from exact cohorts of the same parameters (:func:`reanalysis.joint_check.simulate_claim_parts`).

Writes the table to benchmarks/results/joint-moments-<date>.txt (docs/decisions/joint-claims.md).
The point is the one of tests/models/test_joint_likelihood.py: effects of the claimed signs, residual
SDs near the posterior's.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing
EFFECTS = {"female": -0.25, "age_decades": -0.08, "attacks_per_year": -0.15, "optic_lesion": 0.4}
LOG_SIGMA = (-1.8, -1.3)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="compare_joint_moments.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--study", type=Path, default=ROOT / "data" / "studies" / "lasemi2018.yaml")
    p.add_argument("--reps", type=int, default=None, help="design cohorts of the model (default: the model's)")
    p.add_argument("--cohorts", type=int, default=20000, help="simulated cohorts (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None, help="report file (default: benchmarks/results/joint-moments-<UTC date>.txt)")
    args = p.parse_args(argv)
    import numpy as np
    import pytensor
    from scipy import special

    from reanalysis import joint_check as jc
    from models.cohort import claim_design, modelled_associations
    from models.hierarchical import CLAIM_REPS, CLAIM_T_REPS, DEFAULT_REPS, build_model
    from models.priors import get_priors
    from models.study import load_study

    study = load_study(args.study)
    reps = args.reps or DEFAULT_REPS
    lay = jc.joint_layout(study)
    lines = [f"Joint likelihood of claims and statistics, model against {args.cohorts} simulated cohorts ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC)",
             f"command: python benchmarks/compare_joint_moments.py {' '.join(sys.argv[1:] if argv is None else argv)}",
             f"study {study.id}; design cohorts {reps} (claims' moments over {CLAIM_REPS}, t claims' standard errors over {CLAIM_T_REPS}); effects {EFFECTS}; log_sigma {LOG_SIGMA}, group_difference -1.3, effect_spread exp(-4), category_spread exp(-2)",
             "per claim: var D (model / simulated), P(D > 0) marginal and given the published statistics (model / simulated joint normal);",
             "per statistic: Cov(D, log statistic) x 1e3, model / simulated (Monte Carlo SE), and the correlation, model (with the model's var D) / simulated", ""]
    for family in ("normal", "student_t"):
        m = build_model(study, get_priors("hierarchical"), family=family, reps=reps)
        cm = m.claim_moments
        G = len(m.design.groups)
        outs = [cm["mean"], cm["var"], cm["conditional_mean"], cm["conditional_var"], *cm["cross"], m["alpha"], m["slope"], m["sigma"], m["u"]]
        fn = pytensor.function(m.value_vars, m.replace_rvs_by_values(outs), on_unused_input="ignore",
                               mode=pytensor.compile.mode.Mode(linker="py", optimizer="fast_compile"))
        point = {k: np.array(v, dtype=float) for k, v in m.initial_point().items()}
        point.update(effect=np.array([EFFECTS[c] for c in m.design.covariates]), log_sigma=np.array(LOG_SIGMA), group_difference=np.array([-1.3]),
                     effect_spread_log__=np.full_like(point["effect_spread_log__"], -4.0), category_spread_log__=np.array(-2.0))
        r = fn(*[point[v.name] for v in m.value_vars])
        mean, var, cmean, cvar, cross = r[0], r[1], r[2], r[3], r[4 : 4 + G]
        params = dict(zip(["alpha", "slope", "sigma", "u"], (x[None] for x in r[4 + G :])))
        sim = jc.simulate_claim_parts(study, params, args.cohorts, seed=7, family_df=m.residual_df)
        S = np.concatenate([sim["stats"][g][0] for g in study.group_ids], axis=-1)
        lines.append(f"{family} residuals")
        for a, (name, assoc) in enumerate(modelled_associations(study).items()):
            cd = claim_design(study, m.design, name, assoc)
            lo = cd.bounds[0]
            d = (lo * sim["se"][name][0] if cd.statistic == "t" else lo) - sim["coef"][name][0]
            x = np.column_stack([S, d])
            c_mean, c_cov, _ = jc.conditional_normal(x.mean(axis=0), np.cov(x, rowvar=False), S.shape[1], lay.observed, lay.rounding)
            p = [special.ndtr(mean[a, 0] / np.sqrt(var[a, 0])), special.ndtr(d.mean() / d.std()),
                 special.ndtr(cmean[a, 0] / np.sqrt(cvar[a, 0])), special.ndtr(c_mean[0] / np.sqrt(c_cov[0, 0]))]
            lines.append(f"  {name} ({cd.statistic}): var D {var[a, 0]:.4f} / {d.var():.4f}; P marginal {p[0]:.3f} / {p[1]:.3f}; P given statistics {p[2]:.3f} / {p[3]:.3f}")
            for k, g in enumerate(study.group_ids):
                for j, s in enumerate(study.reported(g)):
                    col = S[:, lay.stat_names.index(f"{g}.{s}")]
                    prod = (col - col.mean()) * (d - d.mean())
                    c = cross[k][a, 0, j]
                    lines.append(f"      {g}.{s}: {1e3 * c:+.2f} / {1e3 * prod.mean():+.2f} ({1e3 * prod.std() / np.sqrt(prod.size):.2f}); "
                                 f"r {c / np.sqrt(var[a, 0] * col.var()):+.2f} / {prod.mean() / np.sqrt(d.var() * col.var()):+.2f}")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    path = args.out or ROOT / "benchmarks" / "results" / f"joint-moments-{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}.txt"
    path.write_text(text + "\n", encoding="utf-8")
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

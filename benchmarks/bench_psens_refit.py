#!/usr/bin/env python
"""Importance-weighted power-scaling against refits: does re-weighting the default posterior
predict what a refit with the top-level priors raised to a power gives?

For each power ``alpha`` (default 0.5 and 2) the covariate model is refitted with every
top-level prior raised to that power; they are all normal or half-normal, so the powered
prior is the same family with ``sigma / sqrt(alpha)`` (the non-centred standard normals
``effect_z`` and ``category_z`` stay as they are, as in reanalysis.informativeness).  The
posterior mean of every estimand of the refit is compared with the importance-weighted mean
of the default fit (``mean_prior_<alpha>`` of reanalysis.informativeness.psens_table, with its
Monte Carlo interval and the Pareto k of the weights).

Usage: ``python benchmarks/bench_psens_refit.py --seed 20180302`` (three fits, one at a
time; about 2-5 minutes).  Writes ``benchmarks/results/psens-refit-<date>-seed<seed>.csv`` and
a text table next to it.
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
RESULTS_DIR = ROOT / "benchmarks" / "results"
STUDY = ROOT / "data" / "studies" / "lasemi2018.yaml"
MODEL = "hierarchical"


def powered_priors(priors: dict, alpha: float) -> dict:
    """A prior set whose normal and half-normal entries are raised to the power ``alpha``
    (``sigma / sqrt(alpha)``); fixed entries stay."""
    out = copy.deepcopy(priors)
    for name, spec in out.items():
        if spec.get("dist") in ("normal", "halfnormal"):
            spec["sigma"] = spec["sigma"] / alpha**0.5
        elif spec.get("dist") != "fixed":
            raise ValueError(f"prior {name}: no closed form for a powered {spec.get('dist')} prior")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=20180302)
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.5, 2.0])
    ap.add_argument("--tag", default=dt.date.today().isoformat())
    args = ap.parse_args(argv)

    import numpy as np
    import pandas as pd

    from reanalysis import informativeness as inf
    from reanalysis.analysis import draws_plan, model_api, run_analysis
    from models.priors import PRIOR_SETS, get_priors
    from models.study import load_study

    study = load_study(STUDY)
    draws, max_draws = draws_plan(model_api(MODEL), None, None)
    common = dict(model=MODEL, family="normal", draws=draws, max_draws=max_draws, seed=args.seed, progressbar=False, ppc_draws=200)
    t = time.perf_counter()
    base = run_analysis(study, priors="default", **common)
    print(f"default fit {time.perf_counter() - t:.0f} s", file=sys.stderr)
    keys = list(base.table["estimand"])
    ps = inf.psens_table(base, study, keys=keys, labels=False).set_index("estimand")
    rows = []
    for alpha in args.alphas:
        name = f"power_{alpha:g}"
        PRIOR_SETS[MODEL][name] = powered_priors(get_priors(MODEL, "default"), alpha)
        t = time.perf_counter()
        refit = run_analysis(study, priors=name, **common)
        print(f"refit alpha={alpha:g} {time.perf_counter() - t:.0f} s, diagnostics ok: {refit.diagnostics.ok}", file=sys.stderr)
        import arviz as az

        post = refit.idata.posterior
        for key in keys:
            var = key.split("[")[0]
            if var not in post or key not in ps.index:
                continue
            x = inf._values(post[var], key[len(var) + 1 : -1] if "[" in key else "", flat=False)
            r = ps.loc[key]
            sd = r["posterior_sd"]
            refit_mean = float(np.mean(x))
            mcse = float(np.asarray(az.mcse(x[None] if x.ndim == 1 else x, method="mean")).ravel()[0])
            iw = r[f"mean_prior_{alpha:g}"]
            rows.append({
                "estimand": key, "alpha": alpha, "default_mean": r["posterior_mean"], "default_sd": sd,
                "is_mean": iw, "is_lo": r[f"mean_prior_{alpha:g}_lo"], "is_hi": r[f"mean_prior_{alpha:g}_hi"],
                "pareto_k": r[f"pareto_k_prior_{alpha:g}"], "refit_mean": refit_mean, "refit_mcse": mcse,
                "refit_shift_sd": (refit_mean - r["posterior_mean"]) / sd, "is_shift_sd": (iw - r["posterior_mean"]) / sd,
                "is_minus_refit_sd": (iw - refit_mean) / sd,
                "refit_in_is_interval": bool(r[f"mean_prior_{alpha:g}_lo"] - 1.645 * mcse <= refit_mean <= r[f"mean_prior_{alpha:g}_hi"] + 1.645 * mcse),
                "refit_diagnostics_ok": refit.diagnostics.ok, "refit_problems": "; ".join(refit.diagnostics.problems[:3]),
            })
    out = pd.DataFrame(rows)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = RESULTS_DIR / f"psens-refit-{args.tag}-seed{args.seed}"
    out.to_csv(stem.with_suffix(".csv"), index=False)
    cols = ["estimand", "alpha", "pareto_k", "default_mean", "is_mean", "refit_mean", "is_shift_sd", "refit_shift_sd", "is_minus_refit_sd", "refit_in_is_interval"]
    text = out[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}")
    import subprocess

    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    stem.with_suffix(".txt").write_text(f"{Path(__file__).name}: seed {args.seed}, prior powers {args.alphas}, HEAD {head} (plus uncommitted changes, if any)\n\n{text}\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

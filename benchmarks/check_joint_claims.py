#!/usr/bin/env python
"""Does treating claims and group statistics as independent likelihood terms matter?  Runs
:mod:`reanalysis.joint_check` on a covariate-model result folder and writes a text report to
benchmarks/results/joint-claims-<date>.txt (docs/decisions/joint-claims.md reads it).

Reported: correlations of the statistics with the claim estimates over simulated cohorts;
the distribution of log w (w = P(all claims | published statistics) / prod P(claim)) and its
two factors; its Monte Carlo error (the same draws again with another seed); the Pareto k
and effective sample size of the importance weights; and for every printed estimand the
shift of the posterior median and mean under the weights, in posterior SDs and in Monte
Carlo standard errors, beside the shifts that shuffled weights give.

Which weight is the verdict's (``--weight``) depends on the likelihood the fit used: the
covariate model conditions each claim on the published statistics and multiplies the
claims, so what it leaves out is ``w_given_statistics = P(all | statistics) / prod_k
P(k | statistics)`` (the default); ``product`` is the weight of the earlier product
likelihood (independent claims and statistics), for fits made with it.  When the fit stored
its pointwise log-likelihood, the report adds the weight against the fit's own claim terms,
``P(all | statistics) / prod_k P_model(k)``: that one includes the model's approximation of
each claim's probability as well.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing
RESULTS_DIR = ROOT / "benchmarks" / "results"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="check_joint_claims.py", description=__doc__.split("\n\n")[0])
    p.add_argument("result", type=Path, help="result folder of scripts/fit.py (hierarchical model)")
    p.add_argument("--draws", type=int, default=None, help="posterior draws checked (default: all)")
    p.add_argument("--cohorts", type=int, default=2000, help="simulated cohorts per draw (default: %(default)s)")
    p.add_argument("--normal-draws", type=int, default=20000, help="Monte Carlo draws of the conditional normal (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="seed of thinning, cohorts and normal draws (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=None, help="draws checked again with seed + 1 for the Monte Carlo error of log w and of the shifts (default: all checked draws; 0: skip)")
    p.add_argument(
        "--weight", choices=("given_statistics", "product"), default="given_statistics",
        help="the likelihood the fit used, i.e. which weight the verdict is about: claims conditioned on the statistics (default) or the earlier product likelihood",
    )
    p.add_argument("--note", default="", help="free text for the report header (e.g. the commit the fit was made from)")
    p.add_argument("--save", type=Path, default=None, help="also save the per-draw arrays of the check (.npz)")
    p.add_argument("--out", type=Path, default=None, help="report file (default: benchmarks/results/joint-claims-<UTC date>.txt)")
    return p.parse_args(argv)


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _fmt_table(df, floatfmt: str = "{:.3f}") -> str:
    return df.to_string(index=False, float_format=lambda v: floatfmt.format(v))


def main(argv=None) -> int:
    args = parse_args(argv)
    import arviz as az
    import numpy as np
    import pandas as pd

    from reanalysis import joint_check as jc
    from models.cohort import build_design
    from models.study import load_study

    t0 = time.time()
    manifest = json.loads((args.result / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("model") != "hierarchical":
        print(f"{args.result}: not a hierarchical-model fit", file=sys.stderr)
        return 2
    study = load_study(manifest["study"]["path"])
    idata = az.from_netcdf(args.result / "idata.nc")
    design = build_design(study, int(manifest["likelihood"]["reps"]), int(manifest["seed"]))
    df = jc.student_t_df(manifest)

    t1 = time.time()
    check = jc.check_posterior(idata, study, design, df, n_draws=args.draws, n_cohorts=args.cohorts, n_normal=args.normal_draws, seed=args.seed)
    t_check = time.time() - t1
    repeat = None
    t_repeat = 0.0
    if args.repeat != 0:
        t1 = time.time()
        sub = jc.thinned_draws(check.pick.size, args.repeat, args.seed + 1)
        repeat = jc.check_posterior(idata, study, design, df, n_cohorts=args.cohorts, n_normal=args.normal_draws, seed=args.seed + 1, pick=check.pick[sub])
        t_repeat = time.time() - t1

    main = "log_w" if args.weight == "product" else "log_w_given_statistics"
    weights, k = jc.psis_weights(getattr(check, main))
    shifts = jc.weighted_shifts(idata, study, check, weights)
    null = jc.permutation_null(idata, study, check, weights, seed=args.seed)
    shifts = shifts.merge(null, on="estimand")
    shifts_rep = None
    if repeat is not None and repeat.pick.size == check.pick.size:
        # the whole table again from independent cohorts: with common random numbers a
        # Monte Carlo error of w is smooth in the parameters and could shift estimands too
        shifts_rep = jc.weighted_shifts(idata, study, repeat, jc.psis_weights(getattr(repeat, main))[0])
    w_emp, k_emp = jc.psis_weights(check.log_w_empirical)
    # the factor from the claims' dependence on one another alone
    shifts_dep = jc.weighted_shifts(idata, study, check, jc.psis_weights(check.log_w_dependence)[0])
    # what a likelihood with each claim conditioned on the statistics would still miss
    shifts_cond = jc.weighted_shifts(idata, study, check, jc.psis_weights(check.log_w_given_statistics)[0])
    # the product likelihood's weight, for comparison
    shifts_prod = jc.weighted_shifts(idata, study, check, jc.psis_weights(check.log_w)[0])
    # against the fit's own claim terms: the exact joint (as far as the simulated normal
    # goes) over what the model multiplies
    own = jc.model_claim_log_prob(idata, check.layout, check.pick)
    log_w_model = None if own is None else check.log_p_all_conditional - own.sum(axis=-1)
    shifts_model = None if own is None else jc.weighted_shifts(idata, study, check, jc.psis_weights(log_w_model)[0])
    if args.save:
        np.savez_compressed(
            args.save, pick=check.pick, log_w=check.log_w, log_w_statistics=check.log_w_statistics, log_w_dependence=check.log_w_dependence,
            log_w_empirical=check.log_w_empirical, log_w_given_statistics=check.log_w_given_statistics, log_p_marginal=check.log_p_marginal, log_p_conditional=check.log_p_conditional,
            empirical_marginal=check.empirical_marginal, mean=check.mean, corr=check.corr, names=np.array(check.layout.names),
            repeat_pick=repeat.pick if repeat is not None else np.zeros(0, int), repeat_log_w=repeat.log_w if repeat is not None else np.zeros(0),
        )
    shifts_emp = jc.weighted_shifts(idata, study, check, w_emp)
    t_total = time.time() - t0

    lay = check.layout
    lines = []
    out = lines.append
    out(f"Joint check of claims and group statistics ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC)")
    out(f"command: python benchmarks/check_joint_claims.py {' '.join(sys.argv[1:]) if argv is None else ' '.join(argv)}")
    out(f"checkout: {_git_commit()}; result folder: {args.result} (its manifest's commit: {manifest.get('git_commit')}; seed {manifest['seed']}, reps {manifest['likelihood']['reps']}, family {manifest.get('family')}, priors {manifest.get('prior_set')})")
    if args.note:
        out(f"note: {args.note}")
    out(f"weight of the verdict: {main} (--weight {args.weight})")
    out(f"draws checked: {check.pick.size} of {idata.posterior.sizes['chain'] * idata.posterior.sizes['draw']}; cohorts per draw: {check.n_cohorts}; normal draws: {check.n_normal}; seed {check.seed}")
    out(f"time: check {t_check:.1f} s, repeat ({0 if repeat is None else repeat.pick.size} draws) {t_repeat:.1f} s, total {t_total:.1f} s")
    out("")
    out("Claims (likelihood terms): " + "; ".join(f"{n}: {s} {k_} {tuple(round(b, 4) for b in bd)}" for n, s, k_, bd in zip(lay.claim_names, lay.statistics, lay.kinds, lay.bounds)))
    out("Statistics (log scale): " + ", ".join(lay.stat_names))
    out("")
    out("1. Correlations over simulated cohorts (median over draws, 5%-95% over draws)")
    corr = jc.correlation_table(check)
    wide = corr.assign(cell=[f"{m:+.2f} [{a:+.2f},{b:+.2f}]" for m, a, b in zip(corr["median"], corr["q05"], corr["q95"])])
    out(wide.pivot(index="statistic", columns="claim", values="cell").reindex(index=list(lay.stat_names) + list(lay.claim_names[:-1])).fillna("").to_string())
    out("")
    out("2. Claim probabilities (mean over draws): normal marginal, share of simulated cohorts, normal conditional on the published statistics,")
    out("   and the fit's own likelihood term (P_model: exp of its pointwise claim log-likelihood)")
    probs = pd.DataFrame({
        "claim": lay.claim_names,
        "P_normal": np.exp(check.log_p_marginal).mean(axis=0),
        "P_simulated": check.empirical_marginal.mean(axis=0),
        "P_given_stats": np.exp(check.log_p_conditional).mean(axis=0),
        "P_model": np.exp(own).mean(axis=0) if own is not None else np.nan,
        "mean_log_ratio": (check.log_p_conditional - check.log_p_marginal).mean(axis=0),
        "sd_log_ratio": (check.log_p_conditional - check.log_p_marginal).std(axis=0),
    })
    out(_fmt_table(probs))
    out("")
    out("3. log w over draws (centred at its mean; a constant does not change the posterior)")
    rows = []
    for name, lw in (
        ("log_w", check.log_w), ("log_w_statistics", check.log_w_statistics), ("log_w_dependence", check.log_w_dependence),
        ("log_w_given_statistics", check.log_w_given_statistics), ("log_w_empirical", check.log_w_empirical),
    ) + ((("log_w_model", log_w_model),) if log_w_model is not None else ()):
        rows.append({"weight": name, **jc.log_weight_summary(lw)})
    out(_fmt_table(pd.DataFrame(rows)))
    out("(log_w = log_w_statistics + log_w_dependence; log_w_given_statistics: P(all | stats) / prod_k P(k | stats);")
    out(" log_w_empirical: regression adjustment with simulated residuals, no normal shape;")
    out(" log_w_model: P(all | stats) over the product of the fit's own claim terms)")
    if repeat is not None:
        pos = np.searchsorted(check.pick, repeat.pick)
        lw, lw_rep = getattr(check, main)[pos], getattr(repeat, main)
        d = lw_rep - lw
        out(f"Monte Carlo error of {main} (same {repeat.pick.size} draws, seed {repeat.seed}): SD of the difference {np.std(d):.3f} "
            f"(per run {np.std(d) / np.sqrt(2):.3f}); SD across draws {np.std(lw):.3f}; correlation between runs {np.corrcoef(lw_rep, lw)[0, 1]:.3f}")
        de = repeat.log_w_empirical - check.log_w_empirical[pos]
        out(f"  empirical variant: SD of the difference {np.std(de):.3f}, correlation between runs {np.corrcoef(repeat.log_w_empirical, check.log_w_empirical[pos])[0, 1]:.3f}")
    out(f"Pareto k (az.psislw): {main} {k:.3f}, empirical {k_emp:.3f}")
    out("")
    out(f"4. Shift of each printed estimand under the weights (weighted - unweighted, same draws); d_*: under {main}")
    out("   in posterior SDs and in MCSEs of the full posterior (az.mcse); null_*: SD of the shift with the weights shuffled across draws, in MCSEs;")
    out("   emp_*: weights without the normal shape (log_w_empirical); dep_*: the claims' mutual dependence alone (log_w_dependence);")
    out("   cond_*: what is left with each claim conditioned on the statistics (log_w_given_statistics); prod_*: the product likelihood's log_w;")
    out("   model_*: log_w_model (against the fit's own claim terms); rep_*: the verdict's weight from independent cohorts (seed + 1)")
    tab = pd.DataFrame({
        "estimand": shifts["estimand"],
        "median": shifts["median"],
        "d_med/sd": shifts["median_shift_sd"],
        "d_med/mcse": shifts["median_shift_mcse"],
        "null_med/mcse": shifts["null_sd_median"] / shifts["mcse_median"],
        "mean": shifts["mean"],
        "d_mean/sd": shifts["mean_shift_sd"],
        "d_mean/mcse": shifts["mean_shift_mcse"],
        "null_mean/mcse": shifts["null_sd_mean"] / shifts["mcse_mean"],
        "emp_d_mean/mcse": shifts_emp["mean_shift_mcse"],
        "dep_d_mean/mcse": shifts_dep["mean_shift_mcse"],
        "cond_d_med/mcse": shifts_cond["median_shift_mcse"],
        "cond_d_mean/mcse": shifts_cond["mean_shift_mcse"],
        "prod_d_mean/mcse": shifts_prod["mean_shift_mcse"],
    })
    if shifts_model is not None:
        tab["model_d_mean/mcse"] = shifts_model["mean_shift_mcse"].to_numpy()
    if shifts_rep is not None:
        tab["rep_d_med/mcse"] = shifts_rep["median_shift_mcse"].to_numpy()
        tab["rep_d_mean/mcse"] = shifts_rep["mean_shift_mcse"].to_numpy()
    out(_fmt_table(tab))
    worst_med = np.nanmax(np.abs(tab["d_med/mcse"]))
    worst_mean = np.nanmax(np.abs(tab["d_mean/mcse"]))
    worst_sd = np.nanmax(np.abs(np.r_[tab["d_med/sd"], tab["d_mean/sd"]]))
    out("")
    out(f"largest |shift|: {worst_med:.2f} MCSE (median), {worst_mean:.2f} MCSE (mean), {worst_sd:.3f} posterior SD; "
        f"empirical variant {np.nanmax(np.abs(shifts_emp['median_shift_mcse'])):.2f} / {np.nanmax(np.abs(shifts_emp['mean_shift_mcse'])):.2f} MCSE")
    if shifts_rep is not None:
        a = np.r_[tab["d_med/mcse"], tab["d_mean/mcse"]]
        b = np.r_[tab["rep_d_med/mcse"], tab["rep_d_mean/mcse"]]
        ok = np.isfinite(a) & np.isfinite(b)
        out(f"independent repeat: largest |shift| {np.nanmax(np.abs(tab['rep_d_med/mcse'])):.2f} / {np.nanmax(np.abs(tab['rep_d_mean/mcse'])):.2f} MCSE; "
            f"correlation of the shifts between the runs {np.corrcoef(a[ok], b[ok])[0, 1]:.3f}; SD of their difference {np.std(a[ok] - b[ok]):.2f} MCSE")
    big = tab.loc[(tab["d_mean/mcse"].abs() >= 1.0) | (tab["d_med/mcse"].abs() >= 1.0), "estimand"].tolist()
    cond = np.nanmax(np.abs(np.r_[tab["cond_d_med/mcse"], tab["cond_d_mean/mcse"]]))
    out(f"claims conditioned on the statistics, multiplied: largest |shift| {cond:.2f} MCSE")
    prod = np.nanmax(np.abs(tab["prod_d_mean/mcse"]))
    out(f"product likelihood's weight on these draws: largest |shift| of a mean {prod:.2f} MCSE")
    if shifts_model is not None:
        out(f"against the fit's own claim terms (log_w_model): largest |shift| {np.nanmax(np.abs(shifts_model['median_shift_mcse'])):.2f} / "
            f"{np.nanmax(np.abs(shifts_model['mean_shift_mcse'])):.2f} MCSE (median / mean)")
    out(f"estimands shifted by 1 MCSE or more under {main}: {len(big)} of {len(tab)}" + (f" ({', '.join(big)})" if big else ""))
    verdict = "below" if max(worst_med, worst_mean) < 1.0 else "NOT below"
    what = "product likelihood's" if args.weight == "product" else "likelihood's (claims conditioned on the statistics)"
    out(f"verdict: the {what} error is {verdict} the posterior's Monte Carlo error (every |shift| < 1 MCSE: {verdict == 'below'})")

    text = "\n".join(lines) + "\n"
    print(text)
    path = args.out or RESULTS_DIR / f"joint-claims-{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

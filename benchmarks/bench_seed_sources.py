#!/usr/bin/env python
"""Where the seed-to-seed differences of the informativeness values come from: the sampler's
draws, or the synthetic likelihood's simulated cohorts, which the run seed also draws.

A fit's seed seeds both the sampler and the covariate model's fixed cohorts (the design
cohorts and each claim's own cohorts), so two seeds differ by Monte Carlo error of the draws
*and* by a slightly different likelihood.  The Monte Carlo intervals of
``informativeness.csv`` (block bootstrap over the draws) cover the first only.  This runs
the default fit with the likelihood's seed held at ``--likelihood-seed`` and the sampler's
seed varied over ``--seeds``, and, separately, with both varied together (the ordinary
``seed``), then asks for each pair of runs and each informativeness value whether the
difference is as large as the two intervals allow:

    z = (a - b) / sqrt(se_a^2 + se_b^2),   se = interval width / (2 * 1.645)

With intervals that cover the variation, z is about standard normal: SD 1 and 10% of
|z| above 1.645.

Usage: ``python benchmarks/bench_seed_sources.py`` (six default fits, one at a time; about
6-15 minutes).  Writes ``benchmarks/results/seed-sources-<date>.txt`` and the per-run
tables as ``seed-sources-<date>-<run>.csv``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
RESULTS_DIR = ROOT / "benchmarks" / "results"
STUDY = ROOT / "data" / "studies" / "lasemi2018.yaml"
COLUMNS = ("psens_prior", "psens_likelihood", "share_stats_minus_claims", "shift_prior", "shift_likelihood")
Z90 = 1.645


def fit_table(sampler_seed: int, likelihood_seed: int):
    """The default fit's informativeness table with the likelihood's cohorts drawn from
    ``likelihood_seed`` and the sampler seeded with ``sampler_seed``."""
    import reanalysis
    from reanalysis.analysis import model_api

    api = model_api("hierarchical")
    build = type(api).build_model
    # the likelihood's seed apart from the sampler's: only this benchmark needs the split
    api.build_model = lambda study, priors, **kw: build(api, study, priors, **{**kw, "seed": likelihood_seed})
    try:
        fit = reanalysis.fit(STUDY, seed=sampler_seed, progressbar=False)
    finally:
        del api.build_model
    t = fit.informativeness.copy()
    t.insert(0, "run", f"sampler {sampler_seed}, likelihood {likelihood_seed}")
    t["draws_per_chain"] = fit.idata.posterior.sizes["draw"]
    t["diagnostics_ok"] = bool(fit.diagnostics.ok)
    return t


def z_scores(tables: dict, column: str):
    """Pairwise z of ``column`` over all pairs of runs (all estimands pooled)."""
    import numpy as np

    out = []
    for a, b in itertools.combinations(tables, 2):
        ta, tb = (tables[k].set_index("estimand") for k in (a, b))
        se = [(t[f"{column}_hi"] - t[f"{column}_lo"]) / (2 * Z90) for t in (ta, tb)]
        z = (ta[column] - tb[column]) / np.sqrt(se[0] ** 2 + se[1] ** 2)
        out += list(z.dropna())
    return np.asarray(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--likelihood-seed", type=int, default=20180302, help="seed of the likelihood's cohorts in the first set (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13], help="seeds varied in both sets (default: %(default)s)")
    p.add_argument("--tag", default="", help="suffix of the result files")
    args = p.parse_args()
    # a graph cache of its own: the cached graph's key names the run seed, not the likelihood's
    os.environ["K2_GRAPH_CACHE"] = tempfile.mkdtemp(prefix="k2-seed-sources-")
    import numpy as np

    date = dt.date.today().isoformat() + (f"-{args.tag}" if args.tag else "")
    # run name -> (sampler seed, likelihood seed)
    fixed = {s: (s, args.likelihood_seed) for s in [args.likelihood_seed, *args.seeds]}
    both = {s: (s, s) for s in [args.likelihood_seed, *args.seeds]}
    tables, seconds = {}, {}
    for key in [*fixed.values(), *both.values()]:
        s, l = key
        if key in tables:
            continue
        t0 = time.perf_counter()
        tables[key] = fit_table(s, l)
        seconds[key] = time.perf_counter() - t0
        tables[key].to_csv(RESULTS_DIR / f"seed-sources-{date}-s{s}-l{l}.csv", index=False)
        print(f"sampler seed {s}, likelihood seed {l}: {seconds[key]:.0f} s, {tables[key]['draws_per_chain'].iloc[0]} draws per chain", file=sys.stderr)
    sets = {
        f"likelihood seed {args.likelihood_seed} fixed, sampler seeds {', '.join(map(str, fixed))}": {k: tables[v] for k, v in fixed.items()},
        f"likelihood and sampler seeded together, seeds {', '.join(map(str, both))}": {k: tables[v] for k, v in both.items()},
    }
    lines = [f"# bench_seed_sources.py, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC", ""]
    for (s, l), t in tables.items():
        lines.append(f"run sampler {s} / likelihood {l}: {seconds[(s, l)]:.0f} s, {t['draws_per_chain'].iloc[0]} draws per chain, diagnostics {'OK' if t['diagnostics_ok'].iloc[0] else 'FAILED'}")
    lines.append("")
    lines.append("| runs | value | pairs x estimands | SD of z | share abs(z) > 1.645 (0.10 if covered) | share abs(z) > 2.58 (0.01) |")
    lines.append("|---|---|---|---|---|---|")
    for label, tabs in sets.items():
        for c in COLUMNS:
            z = z_scores(tabs, c)
            lines.append(f"| {label} | {c} | {z.size} | {z.std():.2f} | {np.mean(np.abs(z) > Z90):.2f} | {np.mean(np.abs(z) > 2.58):.3f} |")
    lines.append("")
    for label, tabs in sets.items():
        labels = {k: t.set_index("estimand")["label"] for k, t in tabs.items()}
        keys = next(iter(labels.values())).index
        changed = [k for k in keys if len({labels[s][k] for s in labels}) > 1]
        not_undet = [k for k in changed if len({labels[s][k] for s in labels} - {"undetermined"}) > 1]
        lines.append(f"{label}: labels the same in all runs for {len(keys) - len(changed)} of {len(keys)} estimands; "
                     f"differing other than to or from 'undetermined': {', '.join(not_undet) or 'none'}")
    text = "\n".join(lines) + "\n"
    (RESULTS_DIR / f"seed-sources-{date}.txt").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

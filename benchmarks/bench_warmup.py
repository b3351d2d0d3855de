#!/usr/bin/env python
"""Warm-up length of the covariate model: adaptation quality and cost across seeds.

For each ``--tune`` value the hierarchical model of the study is built and compiled once
(:class:`reanalysis.sampling.CompiledNuts`, one XLA device per chain, the model's own target
acceptance, warm-up tree cap and warm-up scheme), then run with each seed of ``--seeds``, 4 chains x ``--draws`` kept
draws.  Per run it records:

* the step size of each chain and its mean leapfrog steps per kept draw;
* divergences;
* over the estimands (the quantities the fit's gate and its ESS stopping rule read): the
  minimum bulk and tail ESS and the maximum R-hat, and whether a default fit would have
  continued (``reanalysis.diagnostics.needs_more_draws``);
* the run's wall time (warm-up and draws).

Results: a summary on stdout, and JSON plus the summary as text in benchmarks/results/.
Absolute times depend on the machine's load; the steps per chain are what the warm-up
length changes.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
RESULTS_DIR = ROOT / "benchmarks" / "results"
STUDY = ROOT / "data" / "studies" / "lasemi2018.yaml"
CHAINS = 4


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", type=Path, default=STUDY, help="study file (default: the Lasemi study)")
    p.add_argument("--tunes", type=int, nargs="+", default=[500, 1000], help="warm-up lengths to compare (default: 500 1000)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)), help="seeds per warm-up length (default: 1-10)")
    p.add_argument("--draws", type=int, default=500, help="kept draws per chain (default: %(default)s)")
    p.add_argument("--warmup-tree-depth", type=int, default=None, help="warm-up tree-depth cap (default: the model's WARMUP_TREE_DEPTH)")
    p.add_argument("--target-accept", type=float, default=None, help="NUTS target acceptance (default: the model's TARGET_ACCEPT)")
    p.add_argument("--tag", default="", help="suffix of the result files' name")
    return p.parse_args(argv)


def run_seed(runner, api, study, family: str, seed: int) -> dict:
    """One run of ``runner`` with ``seed``: its sampler statistics and estimand diagnostics."""
    from reanalysis.analysis import estimand_diagnostics
    from reanalysis.diagnostics import needs_more_draws

    t = time.perf_counter()
    idata = runner.run(seed=seed)
    seconds = time.perf_counter() - t
    _, diag = estimand_diagnostics(api, idata, study, family, runner.model)
    stats = idata.sample_stats
    attrs = idata.posterior.attrs
    return {
        "seed": seed,
        "seconds": round(seconds, 2),
        "step_size": [round(float(s), 4) for s in stats["step_size"].values[:, 0]],
        # the two-phase warm-up records its gradients and each chain's own adapted step size
        "warmup_gradients": list(attrs["warmup_gradients"]) if "warmup_gradients" in attrs else None,
        "adapted_step_sizes": list(attrs["adapted_step_sizes"]) if "adapted_step_sizes" in attrs else None,
        "steps_per_draw": [round(float(s), 1) for s in stats["n_steps"].values.mean(axis=1)],
        "divergences": int(stats["diverging"].values.sum()),
        "min_ess_bulk": round(diag.min_ess_bulk),
        "min_ess_tail": round(diag.min_ess_tail),
        "max_rhat": round(diag.max_rhat, 4),
        "would_extend": bool(needs_more_draws(diag)),
    }


def summary_lines(tune: int, draws: int, runs: list[dict], tree_cap_steps: int, scheme: str = "") -> list[str]:
    import numpy as np

    steps = np.concatenate([r["step_size"] for r in runs])
    per_draw = np.concatenate([r["steps_per_draw"] for r in runs])
    counted = all(r.get("warmup_gradients") for r in runs)
    # counted when the sampler records them; else every warm-up iteration at the cap, as
    # NumPyro's one-phase warm-up of this model runs (29-31 steps per iteration measured)
    warmup = np.concatenate([r["warmup_gradients"] for r in runs]) if counted else tune * tree_cap_steps
    grads = warmup + per_draw * draws
    return [
        f"tune {tune}{scheme} (warm-up tree cap {tree_cap_steps} steps): {len(runs)} seeds x {CHAINS} chains",
        f"  adapted step size  min {steps.min():.3f}  median {np.median(steps):.3f}  max {steps.max():.3f}  (chains below 0.06: {int((steps < 0.06).sum())})",
        f"  steps per kept draw  min {per_draw.min():.1f}  median {np.median(per_draw):.1f}  max {per_draw.max():.1f}",
        f"  gradients per chain (warm-up {'counted' if counted else 'at the cap'} + kept draws)  median {np.median(grads):.0f}  max {grads.max():.0f}",
        f"  divergences  {sum(r['divergences'] for r in runs)} in all",
        f"  estimands: min bulk ESS {min(r['min_ess_bulk'] for r in runs):.0f}-{max(r['min_ess_bulk'] for r in runs):.0f}, "
        f"min tail ESS {min(r['min_ess_tail'] for r in runs):.0f}-{max(r['min_ess_tail'] for r in runs):.0f}, "
        f"max R-hat {max(r['max_rhat'] for r in runs):.4f}; would continue: {sum(r['would_extend'] for r in runs)} of {len(runs)}",
        f"  run time  median {np.median([r['seconds'] for r in runs]):.1f} s  (machine load varies)",
    ]


def main(argv=None) -> int:
    args = parse_args(argv)
    from reanalysis import analysis
    from models.priors import get_priors
    from reanalysis.sampling import CompiledNuts
    from models.study import load_study

    study = load_study(args.study)
    api = analysis.model_api("hierarchical")
    family = api.default_family
    model = api.build_model(study, get_priors("hierarchical", "default"), family=family, reps=api.default_reps)
    options = {**api.nuts_options(), **({"warmup_tree_depth": args.warmup_tree_depth} if args.warmup_tree_depth else {}),
               **({"target_accept": args.target_accept} if args.target_accept else {})}
    tree_cap_steps = 2 ** options["warmup_tree_depth"] - 1
    record = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "study": str(args.study), "draws": args.draws,
              "chains": CHAINS, "nuts_options": options, "load_before": os.getloadavg(), "tunes": {}}
    lines = []
    for tune in args.tunes:
        runner = CompiledNuts(
            model, draws=args.draws, tune=tune, chains=CHAINS, progressbar=False, chain_method="parallel", **options
        )
        runs = []
        for seed in args.seeds:
            print(f"tune {tune}, seed {seed} ...", file=sys.stderr, flush=True)
            runs.append(run_seed(runner, api, study, family, seed))
        record["tunes"][str(tune)] = runs
        summary = summary_lines(tune, args.draws, runs, tree_cap_steps)
        print("\n".join(summary), flush=True)
        lines += summary
    record["load_after"] = os.getloadavg()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = RESULTS_DIR / f"warmup-{dt.date.today().isoformat()}{'-' + args.tag if args.tag else ''}"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=1))
    stem.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    print(f"written: {stem}.json, {stem}.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Simulation-based calibration of a model on a study's design.

Draws parameters from the model's prior, simulates the statistics a study with the same
design (group sizes, reported statistics, rounding) would publish, fits each simulated
study, and tests whether the ranks of the true values among posterior draws are uniform.

Exit codes: 0 every parameter calibrated; 4 some parameter fails uniformity (the chi-square
test on binned ranks or the ECDF test of the ranks, each at --alpha with a Bonferroni
correction over the parameters); with --only (a few studies refitted, no uniformity test):
0 every refitted study passes the diagnostics gate of a real fit, 3 some does not; 2 bad
input; 130 interrupted (nothing written); 1 unexpected error.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from reanalysis.cli.parser import Parser
from reanalysis.model_facts import model_facts
from reanalysis.results import counter, end_counter
from reanalysis.settings import (
    DEFAULT_CHAINS, DEFAULT_PRIORS, DEFAULT_STUDY, EXIT_DIAGNOSTICS, EXIT_ERROR, EXIT_INPUT, EXIT_MISCALIBRATED, EXIT_OK, MAX_RHAT, MIN_ESS, ROOT,
)

#: Program name in usage lines (``reanalysis sbc`` from the console script).
PROG = "sbc.py"


def parse_args(argv=None):
    facts, _ = model_facts()
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=list(facts), default="group", help="model to calibrate (default: %(default)s)")
    p.add_argument("--study", type=Path, default=DEFAULT_STUDY, help="study whose design is simulated (default: %(default)s)")
    p.add_argument(
        "--family", choices=sorted({f for m in facts.values() for f in m.families}), default=None,
        help="population family ("
        + "; ".join(f"{name} model: {', '.join(m.families)}" for name, m in facts.items())
        + "; default: each model's own, "
        + " / ".join(m.default_family for m in facts.values())
        + ")",
    )
    p.add_argument("--priors", default=DEFAULT_PRIORS, help="named prior set (default: %(default)s)")
    p.add_argument("--sims", type=int, default=100, help="simulated studies (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="seed (default: %(default)s)")
    p.add_argument("--draws", type=int, default=None, help="draws per chain per fit (default: group 500, hierarchical 250)")
    p.add_argument("--tune", type=int, default=None, help="warm-up per chain per fit (default: 500)")
    p.add_argument("--chains", type=int, default=DEFAULT_CHAINS, help="chains per fit (default: %(default)s)")
    p.add_argument(
        "--max-rhat", type=float, default=MAX_RHAT,
        help="continue a fit's chains by --draws while its largest R-hat exceeds this (default: %(default)s, the gate of a real fit)",
    )
    p.add_argument(
        "--min-ess", type=float, default=MIN_ESS,
        help="... or while its smallest bulk or tail ESS is below this (default: %(default)s, the gate of a real fit; 0: not checked)",
    )
    p.add_argument("--max-extensions", type=int, default=3, help="most continuations per fit under --max-rhat and --min-ess (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="local worker processes for the fits (default: %(default)s; 1 runs in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None, help="run the fits on this dask.distributed scheduler instead (e.g. tcp://host:8786)")
    p.add_argument("--no-progress", action="store_true", help="no count of finished fits while they run (the summary is still printed)")
    p.add_argument(
        "--chunk", type=int, default=None,
        help="simulated studies per worker task, and per progress line; each worker process compiles once and runs task after task "
             "(default: group 10, hierarchical 1: its fits take minutes)",
    )
    p.add_argument(
        "--as-published", action="store_true",
        help="hierarchical model: calibrate on the simulated studies whose claims come out as the study published them "
             "(kept by their data alone, so the ranks stay uniform; the summary says how many were simulated)",
    )
    p.add_argument(
        "--only", metavar="SIMS", default=None,
        help="fit only these simulated studies of the calibration the other options describe (comma-separated, numbered from 0 "
             "as in fits.csv), with the same data, true values and seeds as in the whole run: to re-check fits that failed the "
             "gate; prints their diagnostics instead of the uniformity tests",
    )
    p.add_argument("--alpha", type=float, default=0.01, help="family-wise level of the uniformity tests (default: %(default)s)")
    p.add_argument("--out", type=Path, default=ROOT / "results", help="parent of the result folder (default: results/)")
    p.add_argument(
        "--grid", metavar="GROUP", default=None,
        help="group model only: instead of fitting, compute each simulated study's exact posterior of GROUP's parameters on a grid "
        "(no sampler) and print PIT uniformity and coverage by region of the prior",
    )
    p.add_argument("--reps", type=int, default=None, help="with --grid: simulated cohorts per likelihood table (default: the model's)")
    p.add_argument("--shape", choices=["sinh-arcsinh", "normal"], default=None, help="with --grid: shape of the synthetic likelihood (default: the model's)")
    p.add_argument(
        "--grid-source", choices=["simulated", "likelihood"], default="simulated",
        help="with --grid: data from the cohort simulator, or drawn from the likelihood itself (an exact posterior: the reference for regions; default: %(default)s)",
    )
    a = p.parse_args(argv)
    families = list(facts[a.model].families)
    if a.family is None:
        a.family = facts[a.model].default_family
    elif a.family not in families:
        p.error(f"--family {a.family} does not apply to the {a.model} model; use one of: {', '.join(families)}")
    group_model = a.model == "group"
    if a.as_published and group_model:
        p.error("--as-published: only the hierarchical model's simulated studies report claims")
    # half a real group fit's 1000 + 1000: 200 simulated studies stayed calibrated with the
    # same 4 gate failures (all divergences) and a smallest bulk ESS of 468, in 440 s instead
    # of 706 s (benchmarks/README.md, "Calibration of the group model")
    a.draws = a.draws if a.draws is not None else (500 if group_model else 250)
    a.tune = a.tune if a.tune is not None else 500
    # a worker keeps its compiled sampler from task to task, so a small chunk costs only
    # sending the task (with the model's tables); progress is reported per chunk
    a.chunk = a.chunk if a.chunk is not None else (10 if group_model else 1)
    if a.chunk < 1:
        p.error("--chunk must be >= 1")
    if a.sims < 10:
        p.error("--sims must be >= 10 for a meaningful uniformity test")
    if a.chains < 2 or a.draws * a.chains < 99:
        p.error("need --chains >= 2 and --draws * --chains >= 99")
    if not 0 < a.alpha < 1:
        p.error("--alpha must be between 0 and 1")
    if a.workers < 1:
        p.error("--workers must be >= 1")
    if a.only is not None:
        if a.grid is not None:
            p.error("--only refits simulated studies; --grid fits none")
        try:
            a.only = [int(s) for s in a.only.split(",")]
        except ValueError:
            p.error(f"--only: {a.only!r} is not a comma-separated list of simulated studies (e.g. --only 3,7,16)")
    return a


def main(argv=None) -> int:
    """Run the calibration and write the result folder in this process; returns the exit
    code.  From the command line it runs in a child process supervised by
    :func:`reanalysis.supervisor.run`, which makes Ctrl-C stop it and its workers at once."""
    args = parse_args(argv)
    from reanalysis.supervisor import phase

    phase("setup")
    from models.priors import PriorError, get_priors
    from models.study import StudyError, load_study

    try:
        study = load_study(args.study)
        priors = get_priors(args.model, args.priors)
    except (StudyError, PriorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    client = None
    if args.scheduler and args.grid is None:
        from reanalysis.execution import SchedulerError, connect

        try:
            client = connect(args.scheduler)
        except SchedulerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_INPUT

    from reanalysis import calibration, results
    from reanalysis.execution import describe
    from reanalysis.figures import plots

    if args.only is not None:
        try:
            args.only = calibration.chosen_studies(args.only, args.sims)
        except ValueError as exc:
            print(f"error: --only: {exc} (--sims {args.sims})", file=sys.stderr)
            return EXIT_INPUT

    t0 = time.perf_counter()
    if args.grid is not None:
        if args.model != "group" or args.grid not in study.group_ids:
            print(f"error: --grid needs the group model and one of the groups {', '.join(study.group_ids)}", file=sys.stderr)
            return EXIT_INPUT
        df = calibration.group_grid_check(
            study, priors, args.family, args.grid, args.sims, args.seed, reps=args.reps, shape=args.shape, source=args.grid_source
        )
        summary = calibration.grid_check_summary(df, float(study.assumption("rounding", 0.0) or 0.0))
        import pandas as pd

        with pd.option_context("display.width", 160):
            print(summary.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        print(f"\n{args.sims} simulated studies of group {args.grid} ({args.family}), exact grid posteriors in {time.perf_counter() - t0:.0f} s")
        return EXIT_OK

    counted = []

    def progress(done, total, elapsed):
        eta = elapsed / done * (total - done)
        counter(f"calibration fits {done}/{total}, {elapsed:.0f} s elapsed, ~{eta:.0f} s left")
        counted.append(done)

    try:
        res = calibration.run_sbc(
            study, priors, args.family, args.sims, args.seed, args.draws, args.tune, args.chains, args.workers, chunk=args.chunk,
            progress=None if args.no_progress else progress, model=args.model, max_rhat=args.max_rhat, min_ess=args.min_ess or None,
            max_extensions=args.max_extensions, client=client, as_published=args.as_published, only=args.only,
        )
    except calibration.CalibrationError as exc:
        # the pool is stopped and nothing was written; the worker's traceback would bury the
        # one line that says which fit failed and why
        if counted:
            end_counter()
        print(f"error: {exc}; no result folder was written", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if client is not None:
            client.close()
    if not args.no_progress:
        end_counter()
    refit = args.only is not None
    # a few refitted studies are no sample for a uniformity test
    table = None if refit else calibration.uniformity(res, args.alpha)
    regions = calibration.coverage_by_region(res, study) if args.model == "group" and not refit else None
    failed_fits = int((~res.fits["gate_ok"]).sum())
    name = results.result_name(study.id, f"sbc-{args.model}-{args.family}")
    with results.staged_result_dir(args.out, name) as stage:
        res.ranks.to_csv(stage / "ranks.csv", index=False)
        phase("write")
        res.fits.to_csv(stage / "fits.csv", index=False)
        if table is not None:
            table.to_csv(stage / "uniformity.csv", index=False)
        if regions is not None:
            regions.to_csv(stage / "coverage_by_region.csv", index=False)
        if not refit:
            (stage / "figures").mkdir()
            fig = plots.sbc_ecdf_figure(res.ranks, calibration.ecdf_difference, calibration.ecdf_band(args.sims, 0.99))
            from reanalysis.figures.workers import DPI

            fig.savefig(stage / "figures" / "sbc_ecdf.png", dpi=DPI)
        results.write_json(
            stage / "manifest.json",
            results.run_manifest(
                study,
                ROOT,
                model=args.model,
                family=args.family,
                prior_set=args.priors,
                priors=priors,
                seed=args.seed,
                sims=args.sims,
                only=args.only,
                sampler={
                    "draws": args.draws, "tune": args.tune, "chains": args.chains,
                    "execution": describe(args.workers, args.scheduler), "scheduler": args.scheduler,
                    "workers": None if args.scheduler else args.workers,
                    "max_rhat": args.max_rhat, "min_ess": args.min_ess, "max_extensions": args.max_extensions,
                },
                rank_draws=calibration.N_RANK_DRAWS,
                as_published=args.as_published,
                simulated_studies=res.simulated,
                alpha=args.alpha,
                fits_failing_diagnostics=failed_fits,
                compiled={"sampler_programs": int(res.fits["sampler_programs_compiled"].sum()), "xla_compiled": int(res.fits["xla_compiled"].sum())},
                seconds=round(time.perf_counter() - t0, 1),
            ),
        )
    import pandas as pd

    fits = res.fits
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        if refit:
            print(f"simulated studies {', '.join(map(str, args.only))} of the {args.sims} of seed {args.seed}, refitted "
                  "(ranks.csv has their ranks; too few for a uniformity test):")
            shown = ["sim", "seconds", "draws_per_chain", "divergences", "max_rhat", "min_ess_bulk", "min_ess_tail", "mean_steps",
                     "smallest_step_size", "gate_ok"]
            print(fits[shown].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        else:
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        if regions is not None:
            print("\ncoverage by region of the prior (true mean in rounding units, true CV of the parameter's group):")
            print(regions.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(
        f"\n{len(fits)} simulations in {time.perf_counter() - t0:.0f} s (median {fits['seconds'].median():.1f} s per fit); "
        f"fits failing the diagnostics gate of a real fit (a divergence, R-hat > {MAX_RHAT} or ESS < {MIN_ESS:.0f}): {failed_fits}; "
        f"with divergences: {int((fits['divergences'] > 0).sum())}; R-hat > {MAX_RHAT}: {int((fits['max_rhat'] > MAX_RHAT).sum())}; "
        f"ESS < {MIN_ESS:.0f}: {int((fits[['min_ess_bulk', 'min_ess_tail']].min(axis=1) < MIN_ESS).sum())}; "
        f"largest R-hat {fits['max_rhat'].max():.4f}; smallest bulk ESS {fits['min_ess_bulk'].min():.0f}"
    )
    if args.as_published:
        print(f"simulated studies whose claims came out as published: {args.sims} kept of {res.simulated} simulated "
              f"({args.sims / res.simulated:.2%})")
    if "draws_per_chain" in fits:
        print(f"draws per chain used: {fits['draws_per_chain'].value_counts().sort_index().to_dict()}")
    print(f"compiled: {int(fits['sampler_programs_compiled'].sum())} sampler program(s) for {len(fits)} fits "
          f"(each worker process compiles its own, once); XLA compiled {int(fits['xla_compiled'].sum())} executable(s)")
    print(f"Results: {Path(args.out) / name}")
    if refit:
        if failed_fits:
            failing = ", ".join(str(v) for v in fits.loc[~fits["gate_ok"], "sim"])
            print(f"DIAGNOSTICS: simulated studies {failing} fail the diagnostics gate of a real fit", file=sys.stderr)
            return EXIT_DIAGNOSTICS
        return EXIT_OK
    if not table["uniform"].all():
        bad = ", ".join(table.loc[~table["uniform"], "parameter"])
        print(f"MISCALIBRATED at alpha={args.alpha} (Bonferroni): {bad}", file=sys.stderr)
        return EXIT_MISCALIBRATED
    return EXIT_OK

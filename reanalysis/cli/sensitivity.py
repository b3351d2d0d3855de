"""Refit the analysis under a grid of scenarios (priors, families, which published statistics
are used, declared assumptions) and report which conclusions survive.

Exit codes: 0 every scenario ran with good diagnostics; 2 bad input (study file, grid file,
option, unreachable scheduler; nothing is run or written); 3 some scenarios failed (an error
or failed sampler diagnostics; the others are complete and everything is written, with the
reason per scenario); 130 interrupted (nothing written); 1 unexpected error.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

T_START = time.perf_counter()

from reanalysis.cli.parser import Parser  # noqa: E402 (stdlib only)
from reanalysis.results import file_sha256, progress_logger  # noqa: E402 (stdlib only: keeps --help fast)
from reanalysis.settings import DEFAULT_STUDY, ROOT  # noqa: E402 (stdlib only)
from reanalysis.supervisor import phase  # noqa: E402 (stdlib only)

#: The scenario grid a run uses when none is named.
DEFAULT_GRID = ROOT / "data" / "sensitivity" / "default.yaml"
#: Program name in usage lines (``reanalysis sensitivity`` from the console script).
PROG = "sensitivity.py"
log = progress_logger(T_START)


def parse_args(argv=None) -> argparse.Namespace:
    p = Parser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1] + "\nResults go to OUT/<study>-sensitivity-<UTC time>-<random>/.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--study", type=Path, default=DEFAULT_STUDY, help="study file (YAML); default: %(default)s")
    p.add_argument("--grid", type=Path, default=DEFAULT_GRID, help="scenario grid (YAML); default: %(default)s")
    p.add_argument("--out", type=Path, default=ROOT / "results", help="parent folder of the result folder (default: results/)")
    p.add_argument("--workers", type=int, default=2, help="local worker processes (default: %(default)s; 1 runs in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None, help="run on this dask.distributed scheduler instead (e.g. tcp://host:8786)")
    for name, help_ in (("draws", "kept draws per chain"), ("tune", "warm-up iterations per chain"), ("chains", "chains per scenario"),
                        ("seed", "random seed of every scenario"), ("reps", "simulated cohorts per likelihood evaluation"),
                        ("ppc-draws", "posterior draws for the predictive checks")):
        p.add_argument(f"--{name}", type=int, default=None, help=f"{help_} (default: the grid's sampling block)")
    p.add_argument("--no-cache", action="store_true", help="compile every scenario's model afresh (for benchmarks)")
    p.add_argument("--no-progress", action="store_true", help="no line per finished scenario (the start, errors and the summary are still printed)")
    p.add_argument("--no-share", action="store_true", help="sample every scenario even when its posterior equals another's (for benchmarks)")
    p.add_argument("--no-warm-start", action="store_true",
                   help="start every scenario's chains afresh with the full warm-up, instead of from the default scenario's "
                        "adaptation (models sampled with JAX; for benchmarks); implies --no-reweight")
    p.add_argument("--no-reweight", action="store_true",
                   help="sample every scenario, instead of first importance-weighting the default scenario's draws towards "
                        "a scenario of the same model structure (models sampled with JAX; for benchmarks)")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be >= 1")
    for name, low in (("draws", 1), ("tune", 1), ("chains", 2), ("reps", 1), ("ppc_draws", 1)):
        v = getattr(args, name)
        if v is not None and v < low:
            p.error(f"--{name.replace('_', '-')} must be >= {low}")
    return args


def main(argv=None) -> int:
    """Run the grid and write the result folder in this process; returns the exit code.  From
    the command line it runs in a child process supervised by :func:`reanalysis.supervisor.run`,
    which makes Ctrl-C stop it and its workers at once."""
    args = parse_args(argv)
    phase("setup")
    from reanalysis import sensitivity as sens
    from reanalysis.execution import describe
    from models.study import StudyError, load_study

    try:
        study = load_study(args.study)
        grid = sens.load_grid(args.grid)
        left_out: list[dict] = []
        specs = sens.expand_grid(grid, study, args.grid, left_out)
    except (StudyError, sens.GridError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return sens.EXIT_INPUT
    overrides = {k: getattr(args, k) for k in ("draws", "tune", "chains", "seed", "reps", "ppc_draws") if getattr(args, k) is not None}
    if args.no_warm_start:
        overrides["warm_start"] = False
    if args.no_reweight:
        overrides["reweight"] = False
    sampling = grid.sampling.model_copy(update=overrides)
    try:
        sens.check_reps(specs, sampling.reps, "--reps" if "reps" in overrides else f"{args.grid}: sampling.reps")
    except sens.GridError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return sens.EXIT_INPUT
    client = None
    if args.scheduler:
        from reanalysis.execution import SchedulerError, connect

        try:
            client = connect(args.scheduler)
        except SchedulerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return sens.EXIT_INPUT
    where = f"Dask scheduler {args.scheduler}" if client else f"{args.workers} local worker process{'es' if args.workers > 1 else ''}"
    warm = ""
    if sens.warm_starts(specs[0], sampling):
        weighted = "importance-weighted from its draws where reliable, else " if sampling.reweight else ""
        warm = f"; the others {weighted}from its adaptation with {sampling.warm_tune} warm-up"
    for item in left_out:
        log(f"left out by the grid: {item['name']} ({item['reason']})")
    log(f"study {study.id}, grid {args.grid}: {len(specs)} scenarios on {where}; "
        f"{sampling.chains} chains x ({sampling.tune} + {sampling.draws}) for the default{warm}")
    from reanalysis import results as res

    timings = {"setup": time.perf_counter() - T_START}
    t = time.perf_counter()
    try:
        results = sens.run_grid(specs, sampling, workers=args.workers, cache=not args.no_cache,
                                share_posteriors=not args.no_share, progress=None if args.no_progress else log, client=client)
    finally:
        if client is not None:
            client.close()
    timings["scenarios"] = time.perf_counter() - t
    failed = [sp.name for sp in specs if results[sp.name]["status"] != "ok"]
    name = res.result_name(study.id, "sensitivity")
    t = time.perf_counter()
    with res.staged_result_dir(args.out, name) as stage:
        timings["total"] = time.perf_counter() - T_START
        manifest = res.run_manifest(
            study, ROOT,
            grid={"path": str(args.grid), "sha256": file_sha256(args.grid), "description": grid.description,
                  "factorial_reason": grid.factorial.reason if grid.factorial else None},
            sampling=sampling.model_dump(),
            execution={"backend": describe(args.workers, client=client),
                       "scheduler": args.scheduler, "workers": None if client else args.workers,
                       "compiled_model_cache": not args.no_cache, "share_identical_posteriors": not args.no_share,
                       "warm_start": sens.warm_starts(specs[0], sampling), "compiled": sens.compile_summary(results)},
            scenarios=sens.scenario_manifest(specs, results),
            left_out=left_out,
            failed=failed,
            timings_seconds={k: round(v, 3) for k, v in timings.items()},
        )
        phase("write")
        tables = sens.write_outputs(stage, specs, results, study, manifest)
    final = Path(args.out) / name
    log(f"wrote {final} ({time.perf_counter() - t:.1f} s)")
    print_report(tables, specs, final, timings, failed, sens.compile_summary(results), left_out)
    return sens.EXIT_FAILED if failed else sens.EXIT_OK


def print_report(tables, specs, final, timings, failed, compiled: dict | None = None, left_out: list | None = None) -> None:
    import pandas as pd

    st = tables["stability"]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 70):
        print(f"\n== Conclusion stability ({len(specs)} scenarios; changed = differs from the default) ==")
        if len(st):
            summary = st.groupby("conclusion", sort=False).agg(
                default=("default_state", "first"), changed_in=("changed", "sum"), scenarios=("scenario", "size")
            )
            print(summary.to_string())
            changed = st[st["changed"]]
            if len(changed):
                print("\nScenarios that change a conclusion:")
                print(changed[["scenario", "conclusion", "default_state", "state", "value", "status"]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
            else:
                print("\nNo scenario changes a headline conclusion.")
    if failed:
        print(f"\n{len(failed)} scenario(s) FAILED (see status/reason in sensitivity.csv): {', '.join(failed)}", file=sys.stderr)
    if left_out:
        print(f"\n{len(left_out)} scenario(s) left out by the grid, each with its reason (manifest.json: left_out): "
              + "; ".join(item["name"] for item in left_out))
    if compiled and compiled["sampler_programs"]:
        print(f"\nCompiled: {compiled['sampler_programs']} sampler program(s); XLA compiled {compiled['xla_compiled']} executable(s) and read "
              f"{compiled['xla_from_cache']} from its cache, {compiled['xla_seconds']:.1f} s in all (sensitivity.csv: per scenario)")
    print(f"\nResults: {final}  (total {timings['total']:.1f} s, scenarios {timings['scenarios']:.1f} s)")

"""Fit a model to a study's published summary statistics and check it against the paper.

Exit codes: 0 success; 2 bad input (study file, option); 3 sampler diagnostics failed, of
the fit or of a family it was compared with (results are still written, marked as failed in
manifest.json and family_comparison.csv); 130 interrupted (nothing
written); 1 unexpected error.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

T_START = time.perf_counter()

from reanalysis.cli.parser import Parser  # noqa: E402 (stdlib only)
from reanalysis.results import progress_logger, stderr_is_terminal  # noqa: E402 (stdlib only: keeps --help fast)
from reanalysis.settings import (  # noqa: E402 (stdlib only)
    DEFAULT_CHAINS,
    DEFAULT_PPC_DRAWS,
    DEFAULT_PRIORS,
    DEFAULT_SEED,
    DEFAULT_STUDY,
    EXIT_DIAGNOSTICS,
    EXIT_INPUT,
    EXIT_OK,
    MIN_CHAINS,
    ROOT,
)
from reanalysis.supervisor import announce, phase  # noqa: E402 (stdlib only)

log = progress_logger(T_START)
#: Program name in usage lines (``reanalysis fit`` from the console script).
PROG = "fit.py"


def parse_args(argv=None) -> argparse.Namespace:
    # the models' facts are read from their source: importing them imports PyMC (seconds)
    from reanalysis.model_facts import model_facts
    from models.priors import PRIOR_SETS

    facts, targets = model_facts()
    p = Parser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1] + "\nResults go to OUT/<study>-<model>-<UTC time>-<random>/.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--study", type=Path, default=DEFAULT_STUDY, help="study file (YAML); default: %(default)s")
    p.add_argument(
        "--model",
        choices=list(facts),
        default=None,
        help="model to fit (default: hierarchical when the study file declares covariates, else group)",
    )
    group_families = facts["group"].families
    residual_families = facts["hierarchical"].families
    p.add_argument(
        "--family",
        choices=list(group_families) + list(residual_families),
        default=None,
        help="group model: population distribution of each group ("
        + "; ".join(group_families.values())
        + "); hierarchical model: "
        + "; ".join(f"{k}: {v}" for k, v in residual_families.items())
        + " (default: lognormal / normal)",
    )
    prior_names = sorted({n for sets in PRIOR_SETS.values() for n in sets})
    p.add_argument("--priors", default=DEFAULT_PRIORS, choices=prior_names, help="named prior set (default: %(default)s; skeptical and enthusiastic: hierarchical model)")
    p.add_argument(
        "--draws", type=int, default=None,
        help=f"kept draws per chain (default: the model's: {', '.join(f'{m} {a.default_draws}' for m, a in facts.items())})",
    )
    extending = {m: a for m, a in facts.items() if a.extends}
    p.add_argument(
        "--max-draws", type=int, default=None,
        help=f"{', '.join(extending)} model: continue the chains by another --draws draws each while an estimand's bulk or "
        f"tail ESS is below {targets['TARGET_ESS']} or its R-hat above {targets['MAX_RHAT']}, up to this many per chain (default: "
        f"{', '.join(str(a.max_draws) for a in extending.values())}; equal to --draws for exactly --draws)",
    )
    p.add_argument(
        "--tune", type=int, default=None,
        help=f"warm-up iterations per chain (default: the model's: {', '.join(f'{m} {a.default_tune}' for m, a in facts.items())})",
    )
    p.add_argument("--chains", type=int, default=DEFAULT_CHAINS, help="number of chains (default: %(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed of the whole run (default: %(default)s)")
    reps_help = "; ".join(f"{m} model {a.default_reps}, at least {a.min_reps}" for m, a in facts.items())
    p.add_argument("--reps", type=int, default=None, help=f"simulated cohorts per likelihood evaluation (default: the model's: {reps_help})")
    p.add_argument("--ppc-draws", type=int, default=DEFAULT_PPC_DRAWS, help="posterior draws used for predictive checks (default: %(default)s)")
    p.add_argument("--out", type=Path, default=ROOT / "results", help="parent folder of the result folder (default: results/)")
    p.add_argument("--publish-figures", type=Path, default=None, metavar="DIR", help="also copy the figures to DIR (make fit uses figures/)")
    p.add_argument(
        "--compare-families", action="store_true",
        help="also fit the model's other families with the same settings and compare them on the published numbers "
        "(which each reproduces, a predictive score): family_comparison.csv, a console and a report section",
    )
    p.add_argument("--report", action="store_true", help="also write report.html in the result folder (see scripts/report.py)")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--no-progress", action="store_true", help="no progress bar while sampling (default: a bar when stderr is a terminal)")
    bar.add_argument("--progress", action="store_true", help="a progress bar while sampling even when stderr is not a terminal (it redraws with carriage returns)")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--quiet", action="store_true", help="print only the result folder and the verdict (no tables)")
    output.add_argument("--json", action="store_true", help="print one JSON object (study, model, diagnostics, estimands, checks, verdict) instead of the tables")
    args = p.parse_args(argv)
    for name in ("draws", "max_draws", "tune", "ppc_draws"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.chains < MIN_CHAINS:
        p.error(f"--chains must be >= {MIN_CHAINS} (R-hat compares chains)")
    for opt, path in (("--out", args.out), ("--publish-figures", args.publish_figures)):
        problem = _unwritable(path) if path is not None else None
        if problem:
            p.error(f"{opt} {path}: {problem}")
    if args.reps is not None and args.reps < 1:
        p.error("--reps must be >= 1")
    return args


def _unwritable(path: Path) -> str | None:
    """Why ``path`` cannot become an output folder, or None.  Checked before any work, so a
    bad path fails in a second instead of after sampling; nothing is created here."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return "exists and is not a folder"
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable"
    return None


def main(argv=None) -> int:
    """Fit and write the result folder in this process; returns the exit code.  From the
    command line it runs in a child process supervised by :func:`reanalysis.supervisor.run`,
    which makes Ctrl-C stop it at once."""
    args = parse_args(argv)
    phase("setup")
    from models.study import StudyError, load_study

    try:
        study = load_study(args.study)
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    from reanalysis.figures.workers import FigureWorkers

    # forked now, before JAX starts its threads (reanalysis.figures.workers)
    with FigureWorkers() as figure_pool:
        return run_fit(args, study, figure_pool)


def run_fit(args: argparse.Namespace, study, figure_pool) -> int:
    """Everything after the study file is read: :func:`reanalysis.api.fit`, the result
    folder (:meth:`reanalysis.api.Fit.save`, figures by ``figure_pool``), the console
    report; returns the exit code."""
    import pytensor

    from models.priors import PriorError
    from reanalysis.analysis import AnalysisError, resolve_options
    from reanalysis.api import fit

    if "traceback__limit" not in os.environ.get("PYTENSOR_FLAGS", ""):
        # PyTensor records a Python stack for every graph variable it creates (only for its
        # own error messages); the covariate model's graphs spend 2-3 s of a fit on it
        pytensor.config.traceback__limit = 0

    try:
        resolve_options(study, args.model, args.family, args.priors, args.draws, args.max_draws, args.reps)
    except (AnalysisError, PriorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    imports = time.perf_counter() - T_START
    result = fit(
        study, model=args.model, family=args.family, priors=args.priors, seed=args.seed, draws=args.draws, max_draws=args.max_draws,
        tune=args.tune, chains=args.chains, reps=args.reps, ppc_draws=args.ppc_draws, progressbar=args.progress or (not args.no_progress and stderr_is_terminal()), log=log,
    )
    if args.compare_families:
        result.compare_families(tune=args.tune, ppc_draws=args.ppc_draws, log=log)
    result.timings = {"imports": imports, **result.timings}
    result.started = T_START
    log("writing the result folder (tables, idata.nc, figures)")
    final = result.save(args.out, figure_pool=figure_pool)
    log(f"written: {final}")
    if args.report:
        from reanalysis.report.html import write_report

        log(f"report: {write_report(final)}")
    diag = result.diagnostics
    print_console(args, result, final)
    if args.publish_figures:
        publish(final / "figures", result.figure_files, args.publish_figures)
    failed_families = [] if result.family_comparison is None else [
        f"the {r['family']} family of the comparison failed its sampler diagnostics (max R-hat {r['max_rhat']:.3f}, "
        f"min bulk ESS {r['min_ess_bulk']:.0f}, {r['divergences']} divergences)"
        for _, r in result.family_comparison.iterrows() if not r["diagnostics_ok"] and r["family"] != result.family
    ]
    if not diag.ok or failed_families:
        print("\n" + "!" * 78, file=sys.stderr)
        print("SAMPLER DIAGNOSTICS FAILED - do not trust these results:", file=sys.stderr)
        for p in [*(diag.problems if not diag.ok else []), *failed_families]:
            print(f"  - {p}", file=sys.stderr)
        print("Try more --tune/--draws; results were written with diagnostics.ok = false.", file=sys.stderr)
        print("!" * 78, file=sys.stderr)
        return EXIT_DIAGNOSTICS
    return EXIT_OK


def publish(figdir: Path, names: list[str], dest: Path) -> None:
    """Copy the figures ``names`` of ``figdir`` to ``dest``: all are copied under temporary
    names first (announced to the supervisor, which removes them if the run is stopped),
    then renamed over the published ones, so a stopped run leaves no half-copied figure."""
    import shutil

    for folder in reversed([p for p in (dest, *dest.parents) if not p.exists()]):
        announce("mkdir", folder)
    dest.mkdir(parents=True, exist_ok=True)
    staged = []
    for f in names:
        tmp = dest / f".incomplete-{f}"
        announce("staging", tmp)
        shutil.copy2(figdir / f, tmp)
        staged.append((tmp, dest / f))
    for tmp, target in staged:
        os.replace(tmp, target)


def print_console(args: argparse.Namespace, result, final: Path) -> None:
    """The fit's stdout (:mod:`reanalysis.report.console`): the tables, then the verdict last;
    with ``--quiet`` the result folder and the verdict; with ``--json`` one JSON object."""
    from reanalysis.report import console

    sentences = verdict_sentences(result)
    if args.json:
        report = console.json_report(result.study.id, result.model, result.family, result.seed, final, result.diagnostics,
                                     result.estimands, result.checks, sentences)
        lines = [console.json_text(report)]
    elif args.quiet:
        lines = console.quiet_lines(final, sentences)
    else:
        lines = console.report_lines(result.study.id, result.estimands, result.checks, result.evidence, result.diagnostics, final,
                                     result.timings, result.informativeness, result.published_items, result.family_comparison,
                                     study=result.study)
        lines += console.verdict_lines(sentences)
    print("\n".join(lines))


def verdict_sentences(result) -> list[str]:
    """The verdict (:func:`reanalysis.report.verdict.verdict`) of a fit, with the measurement
    plausibility audit when the study declares reference measurements."""
    from reanalysis.report import plausibility
    from reanalysis.report.verdict import verdict

    study, table = result.study, result.estimands
    try:
        audit = plausibility.declared_audit(study, table)
    except plausibility.PlausibilityError as exc:
        audit = None
        log(f"warning: measurement plausibility not assessed ({exc})")
    return verdict(study, table, result.checks, result.idata.posterior, result.informativeness, audit, diagnostics_ok=result.diagnostics.ok)

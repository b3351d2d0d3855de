#!/usr/bin/env python
"""Fit a model to a study's published summary statistics and check it against the paper.

Exit codes: 0 success; 2 bad input (study file, option); 3 sampler diagnostics failed
(results are still written, marked as failed in manifest.json); 130 interrupted (nothing
written); 1 unexpected error.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

T_START = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STUDY = ROOT / "data" / "studies" / "lasemi2018.yaml"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from models.results import progress_logger  # noqa: E402 (stdlib only: keeps --help fast)
from models.supervisor import announce, phase  # noqa: E402 (stdlib only)

log = progress_logger(T_START)
EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_DIAGNOSTICS, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def parse_args(argv=None) -> argparse.Namespace:
    # the models' facts are read from their source: importing them imports PyMC (seconds)
    from models.model_facts import model_facts
    from models.priors import PRIOR_SETS

    facts, targets = model_facts()
    p = argparse.ArgumentParser(
        prog="fit.py",
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
    p.add_argument("--priors", default="default", choices=prior_names, help="named prior set (default: %(default)s; skeptical and enthusiastic: hierarchical model)")
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
    p.add_argument("--chains", type=int, default=4, help="number of chains (default: %(default)s)")
    p.add_argument("--seed", type=int, default=20180302, help="random seed of the whole run (default: %(default)s)")
    reps_help = "; ".join(f"{m} model {a.default_reps}, at least {a.min_reps}" for m, a in facts.items())
    p.add_argument("--reps", type=int, default=None, help=f"simulated cohorts per likelihood evaluation (default: the model's: {reps_help})")
    p.add_argument("--ppc-draws", type=int, default=2000, help="posterior draws used for predictive checks (default: %(default)s)")
    p.add_argument("--out", type=Path, default=ROOT / "results", help="parent folder of the result folder (default: results/)")
    p.add_argument("--publish-figures", type=Path, default=None, metavar="DIR", help="also copy the figures to DIR (make fit uses figures/)")
    p.add_argument("--report", action="store_true", help="also write report.html in the result folder (see scripts/report.py)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar while sampling")
    args = p.parse_args(argv)
    for name in ("draws", "max_draws", "tune", "ppc_draws"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.chains < 2:
        p.error("--chains must be >= 2 (R-hat compares chains)")
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
    command line it runs in a child process supervised by :func:`models.supervisor.run`,
    which makes Ctrl-C stop it at once."""
    args = parse_args(argv)
    phase("setup")
    from models.study import StudyError, load_study

    try:
        study = load_study(args.study)
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    from models.figure_workers import FigureWorkers

    # forked now, before JAX starts its threads (models.figure_workers)
    with FigureWorkers() as figure_pool:
        return fit(args, study, figure_pool)


def fit(args: argparse.Namespace, study, figure_pool) -> int:
    """Everything after the study file is read: fit, check, write the result folder (figures
    by ``figure_pool``), print the report; returns the exit code."""
    import pytensor

    from models import evidence, results
    from models.analysis import AnalysisError, draws_plan, model_api, reps_problem, run_analysis
    from models.priors import PriorError, get_priors

    if "traceback__limit" not in os.environ.get("PYTENSOR_FLAGS", ""):
        # PyTensor records a Python stack for every graph variable it creates (only for its
        # own error messages); the covariate model's graphs spend 2-3 s of a fit on it
        pytensor.config.traceback__limit = 0

    args.model = args.model or ("hierarchical" if study.covariates else "group")
    api = model_api(args.model)
    args.family = args.family or api.default_family
    try:
        if args.family not in api.families:
            raise AnalysisError(f"--family {args.family} does not apply to the {args.model} model; choose one of: {', '.join(api.families)}")
        get_priors(args.model, args.priors)
        problem = reps_problem(api, args.reps)
        if problem:
            raise AnalysisError(f"--reps {problem}")
        args.draws, args.max_draws = draws_plan(api, args.draws, args.max_draws)
    except (AnalysisError, PriorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    # after the option checks, so that a bad option's error is the only line on stderr
    log(f"study {study.id}: {', '.join(f'{g} (n={study.n(g)})' for g in study.group_ids)}")
    timings = {"imports": time.perf_counter() - T_START}
    analysis = run_analysis(
        study,
        model=args.model,
        family=args.family,
        priors=args.priors,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        seed=args.seed,
        reps=args.reps,
        ppc_draws=args.ppc_draws,
        progressbar=not args.no_progress,
        log=log,
        max_draws=args.max_draws,
    )
    timings.update(analysis.timings)
    idata, table, diag, free = analysis.idata, analysis.table, analysis.diagnostics, analysis.free
    check_tab, pstats, summary, priors, reps = analysis.checks, analysis.pstats, analysis.summary, analysis.priors, analysis.reps
    bf = evidence_rows(study, evidence)
    t = time.perf_counter()
    info = informativeness_rows(analysis, study, table)
    timings["informativeness"] = time.perf_counter() - t

    # level-versus-covariate view of a covariate model (predictive cohorts, regression lines)
    design = getattr(analysis.model, "design", None)
    view = None
    if design is not None:
        from models.effects import covariate_view

        view = covariate_view(idata, study, design, analysis.model.residual_df, seed=args.seed)

    # what became of every number and claim of the study file in this fit
    from models.published_items import published_items

    items = published_items(study, args.model, check_tab["key"])

    name = results.result_name(study.id, args.model)
    with results.staged_result_dir(args.out, name) as stage:
        figdir = stage / "figures"
        figdir.mkdir()
        t_figures = time.perf_counter()
        for fname, builder, fargs in figure_jobs(idata, study, pstats, check_tab, info, view, free, api):
            figure_pool.submit(fname, builder, *fargs, folder=figdir)
        phase("figures")
        # the tables are written while the workers draw
        t = time.perf_counter()
        idata.to_netcdf(stage / "idata.nc")
        phase("write")
        summary.to_csv(stage / "summary.csv")
        table.to_csv(stage / "estimands.csv", index=False)
        check_tab.to_csv(stage / "checks.csv", index=False)
        bf.to_csv(stage / "evidence.csv", index=False)
        info.to_csv(stage / "informativeness.csv", index=False)
        items.to_csv(stage / "published_items.csv", index=False)
        timings["write"] = time.perf_counter() - t
        figure_names = figure_pool.results()
        timings["figures"] = time.perf_counter() - t_figures
        timings["total"] = time.perf_counter() - T_START
        manifest = results.run_manifest(
            study,
            ROOT,
            model=args.model,
            family=args.family,
            prior_set=args.priors,
            priors=priors,
            likelihood={"kind": "synthetic (multivariate normal on log statistics, common random numbers)", "reps": reps},
            seed=args.seed,
            sampler={**idata.posterior.attrs, "draws_per_block": args.draws, "max_draws": args.max_draws},
            diagnostics=diag.as_dict(),
            timings_seconds={k: round(v, 3) for k, v in timings.items()},
            # each figure in its worker; "figures" above is the wall time of all of them
            figure_seconds={k: round(v, 3) for k, v in figure_pool.seconds.items()},
            files=sorted(["idata.nc", "summary.csv", "estimands.csv", "checks.csv", "evidence.csv", "informativeness.csv", "published_items.csv"]
                         + [f"figures/{f}" for f in figure_names]),
        )
        results.write_json(stage / "manifest.json", manifest)
    final = Path(args.out) / name
    phase("final")
    if args.report:
        from models.report import write_report

        log(f"report: {write_report(final)}")
    print_report(study, table, check_tab, bf, diag, final, timings, info, items)
    print_verdict(study, table, check_tab, idata, info, diag)
    if args.publish_figures:
        publish(final / "figures", figure_names, args.publish_figures)
    if not diag.ok:
        print("\n" + "!" * 78, file=sys.stderr)
        print("SAMPLER DIAGNOSTICS FAILED - do not trust these results:", file=sys.stderr)
        for p in diag.problems:
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


def figure_jobs(idata, study, pstats, check_tab, info, view, free, api) -> list[tuple[str, str, tuple]]:
    """The fit's figures as ``(file name, models.plots builder, arguments)``, the slowest
    first (models.figure_workers draws them in that order)."""
    jobs = [
        ("prior_posterior.png", "prior_posterior_figure", (idata, free, api.parameter_scales, study)),
        ("rank_plots.png", "rank_figure", (idata, free)),
        ("predictive_checks.png", "predictive_figure", (pstats, check_tab, study)),
        ("group_values.png", "group_values_figure", (idata, study)),
    ]
    if view is not None:
        jobs.append(("level_vs_covariate.png", "covariate_figure", (view, study)))
    if "effect_percent" in idata.posterior:
        jobs.append(("percent_effects.png", "percent_effects_figure", (idata, study, info)))
    if study.comparisons:
        jobs += [("ratio_posterior.png", "ratio_figure", (idata, study)), ("effects_forest.png", "effects_forest_figure", (idata, study))]
    return jobs


def evidence_rows(study, evidence):
    """JZS Bayes factors for each comparison whose groups report mean, SD and n."""
    import pandas as pd

    rows = []
    for cid, comp in study.comparisons.items():
        a, b = (study.reported(g) for g in comp.groups)
        if not all(k in a and k in b for k in ("mean", "sd")):
            continue
        t, df = evidence.t_from_summary(a["mean"], a["sd"], study.n(comp.groups[0]), b["mean"], b["sd"], study.n(comp.groups[1]))
        for r in evidence.bayes_factor_robustness(t, study.n(comp.groups[0]), study.n(comp.groups[1])):
            rows.append({"comparison": cid, "t": t, "df": df, "prior_scale_r": r["r"], "log10_bf10": r["log10_bf10"]})
    return pd.DataFrame(rows, columns=["comparison", "t", "df", "prior_scale_r", "log10_bf10"])


def informativeness_rows(analysis, study, table):
    """Contraction, power-scaling sensitivity and a plain label per estimand.  A failure
    here (e.g. a model whose likelihood PyMC cannot evaluate per draw) is reported and
    leaves an empty table; it never discards the fit."""
    import pandas as pd

    from models import informativeness as inf

    try:
        ps = inf.psens_table(analysis, study, keys=table["estimand"], labels=False)
        return inf.informativeness_table(table, analysis.idata.posterior, inf.prior_estimands(analysis, study), ps)
    except Exception as exc:  # noqa: BLE001
        log(f"warning: informativeness not computed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
        return pd.DataFrame(columns=inf.COLUMNS)


def print_verdict(study, table, check_tab, idata, info, diag) -> None:
    """The verdict (models.verdict) as the console's last lines, wrapped to 100 columns."""
    import textwrap

    from models import plausibility
    from models.verdict import verdict

    audit = None
    if study.reference is not None:
        try:
            audit = plausibility.audit(study, table)
        except plausibility.PlausibilityError as exc:
            log(f"warning: measurement plausibility not assessed ({exc})")
    print("\n== Verdict ==")
    for sentence in verdict(study, table, check_tab, idata.posterior, info, audit, diagnostics_ok=diag.ok):
        print(textwrap.fill(sentence, width=100, initial_indent="- ", subsequent_indent="  "))


def published_items_text(items) -> list[str]:
    """Console lines of the published-items account: counts by role, then every item the
    fit did not use, with the reason."""
    counts = items["role"].value_counts()
    lines = [", ".join(f"{counts.get(r, 0)} {r}" for r in ("likelihood", "check", "unused")) + f" (of {len(items)})"]
    for _, r in items[items["role"] == "unused"].iterrows():
        lines.append(f"  unused: {r['item']} ({r['value']}): {r['reason']}")
    return lines


def print_report(study, table, check_tab, bf, diag, final, timings, info=None, items=None) -> None:
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.max_colwidth", 60):
        print(f"\n== Estimands ({study.id}; posterior median and 95% HDI) ==")
        t = table[["label", "units", "median", "hdi_low", "hdi_high", "r_hat", "ess_bulk", "ess_tail"]]
        print(t.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        if len(bf):
            print("\n== Bayes factor for the group difference (JZS, from reported means and SDs) ==")
            print(bf.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print("\n== Checks against the published numbers (medians first) ==")
        cols = ["item", "published", "predictive_median", "predictive_low", "predictive_high", "p_two_sided", "share_at_or_above", "share_claim_holds", "verdict"]
        c = check_tab[cols].rename(columns={"p_two_sided": "p (two-sided)", "share_at_or_above": "share >= published", "share_claim_holds": "claim holds"})
        print(c.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-"))
        print("p (two-sided): predictive p-value, small = the model rarely produces the published value\n"
              "share >= published: share of simulated cohorts at or above it; claim holds: share of simulated cohorts in which the claim holds")
        if info is not None and len(info):
            from models.informativeness import console_table

            print("\n== How much each estimand comes from the paper (contraction; power-scaling sensitivity and precision shares, 90% Monte Carlo intervals) ==")
            print(console_table(info).to_string(index=False))
        if items is not None:
            print("\n== Published items: what this fit did with each number and claim (published_items.csv) ==")
            print("\n".join(published_items_text(items)))
    print(
        f"\nDiagnostics: {diag.divergences} divergences, max R-hat {diag.max_rhat:.4f}, "
        f"min bulk ESS {diag.min_ess_bulk:.0f}, min tail ESS {diag.min_ess_tail:.0f} -> {'OK' if diag.ok else 'FAILED'}"
    )
    print(f"Results: {final}  (total {timings['total']:.1f} s, sampling {timings['sample']:.1f} s)")


if __name__ == "__main__":
    from models.supervisor import run

    sys.exit(run(main, parse_args))

"""The Python API: reanalyse a study in a notebook as ``scripts/fit.py`` does on the command line.

>>> import reanalysis                                                    # doctest: +SKIP
>>> study = reanalysis.load_study("data/studies/lasemi2018.yaml")         # doctest: +SKIP
>>> result = reanalysis.fit(study)                                       # doctest: +SKIP
>>> result.estimands[["estimand", "median", "hdi_low", "hdi_high"]]      # doctest: +SKIP
>>> result.save("results")                                               # doctest: +SKIP

:func:`fit` and the command line share their defaults (:mod:`reanalysis.settings`, and each
model's own: :mod:`reanalysis.registry`) and their pipeline: ``fit.py`` is a :func:`fit`
followed by :meth:`Fit.save` and console output, so both write the same result folder.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from reanalysis.settings import DEFAULT_CHAINS, DEFAULT_PPC_DRAWS, DEFAULT_PRIORS, DEFAULT_SEED, ROOT

#: The tables of a result folder: file name -> :class:`Fit` attribute.
TABLES = {
    "summary.csv": "summary",
    "estimands.csv": "estimands",
    "checks.csv": "checks",
    "evidence.csv": "evidence",
    "informativeness.csv": "informativeness",
    "published_items.csv": "published_items",
}
EVIDENCE_COLUMNS = ["comparison", "t", "df", "prior_scale_r", "log10_bf10"]


def load_study(path):
    """Read and validate a study file.

    Parameters
    ----------
    path : str or Path
        A study file (YAML; ``docs/study-file.md`` describes its fields).

    Returns
    -------
    models.study.Study

    Raises
    ------
    models.study.StudyError
        One line naming the file, the field and what to change.

    Examples
    --------
    >>> study = load_study("data/studies/lasemi2018.yaml")  # doctest: +SKIP
    >>> study.group_ids                                     # doctest: +SKIP
    ['control', 'ms']
    """
    from models.study import load_study as _load

    return _load(path)


@dataclass
class Fit:
    """One fitted model of a study, with everything ``fit.py`` writes to a result folder.

    Attributes
    ----------
    study : models.study.Study
    idata : arviz.InferenceData
        Posterior with the estimands, sample statistics and prior draws.
    estimands : pandas.DataFrame
        One row per estimand: posterior median, 95% HDI, R-hat and ESS.
    checks : pandas.DataFrame
        Posterior predictive checks against every published number and claim.
    diagnostics : reanalysis.diagnostics.Diagnostics
        Divergences, R-hat and ESS against the gate (``.ok``).
    evidence : pandas.DataFrame
        JZS Bayes factors of each comparison with reported means and SDs.
    informativeness : pandas.DataFrame
        How much each estimand comes from the paper rather than the prior.
    published_items : pandas.DataFrame
        What the fit did with every number and claim of the study file.
    summary : pandas.DataFrame
        ``arviz.summary`` of every variable.
    model, family, prior_set, seed : str, str, str, int
        The settings the fit ran with (defaults filled in).
    folder : Path or None
        The result folder, once :meth:`save` wrote it.
    figure_files : list of str
        The figures :meth:`save` wrote (PNG and SVG), in ``folder / "figures"``.
    family_comparison : pandas.DataFrame or None
        Every family of the model side by side, once :meth:`compare_families` ran
        (``family_comparison.csv``).
    """

    study: Any
    analysis: Any
    evidence: Any
    informativeness: Any
    published_items: Any
    view: Any
    draws: int
    max_draws: int
    timings: dict = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    folder: Path | None = None
    figure_files: list = field(default_factory=list)
    family_comparison: Any = None

    # -- the analysis' parts ---------------------------------------------------------------
    @property
    def idata(self):
        return self.analysis.idata

    @property
    def estimands(self):
        return self.analysis.table

    @property
    def checks(self):
        return self.analysis.checks

    @property
    def diagnostics(self):
        return self.analysis.diagnostics

    @property
    def summary(self):
        return self.analysis.summary

    @property
    def model(self) -> str:
        return self.analysis.model_name

    @property
    def family(self) -> str:
        return self.analysis.family

    @property
    def prior_set(self) -> str:
        return self.analysis.prior_set

    @property
    def seed(self) -> int:
        return self.analysis.seed

    def __repr__(self) -> str:
        d = self.diagnostics
        return (f"<Fit {self.study.id}: {self.model} model, {self.family}, priors {self.prior_set}, seed {self.seed}; "
                f"{len(self.estimands)} estimands, diagnostics {'OK' if d.ok else 'FAILED'}>")

    # -- figures ---------------------------------------------------------------------------
    def figure_jobs(self) -> list[tuple[str, str, tuple]]:
        """The fit's figures as ``(file name, reanalysis.figures.plots builder, arguments)``,
        the slowest first (:class:`reanalysis.figures.workers.FigureWorkers` draws them in
        that order).  A figure of estimands the model does not compute (population medians
        and means, ratios, P(superiority): the built-in models' estimands) is left out."""
        from reanalysis.analysis import model_api

        idata, study, a = self.idata, self.study, self.analysis
        api = model_api(self.model)
        post = idata.posterior
        ratios = {"ratio_of_medians", "ratio_of_means"}
        candidates = [
            ("prior_posterior.png", "prior_posterior_figure", (idata, a.free, api.parameter_scales, study), set()),
            ("rank_plots.png", "rank_figure", (idata, a.free, study), set()),
            ("predictive_checks.png", "predictive_figure", (a.pstats, a.checks, study), set()),
            ("group_values.png", "group_values_figure", (idata, study), {"median", "mean"}),
        ]
        if self.view is not None:
            candidates.append(("level_vs_covariate.png", "covariate_figure", (self.view, study), set()))
        candidates.append(("percent_effects.png", "percent_effects_figure", (idata, study, self.informativeness), {"effect_percent"}))
        if study.comparisons:
            candidates += [("ratio_posterior.png", "ratio_figure", (idata, study), ratios),
                           ("effects_forest.png", "effects_forest_figure", (idata, study), ratios | {"prob_superiority"})]
        return [(name, builder, args) for name, builder, args, needs in candidates if all(v in post for v in needs)]

    def figures(self) -> dict:
        """The fit's figures, drawn in this process: file name -> matplotlib Figure.

        Examples
        --------
        >>> figs = result.figures()                          # doctest: +SKIP
        >>> figs["ratio_posterior.png"].savefig("ratio.png")  # doctest: +SKIP
        """
        from reanalysis.figures import plots

        return {name: getattr(plots, builder)(*args) for name, builder, args in self.figure_jobs()}

    def compare_families(self, families=None, tune: int | None = None, ppc_draws: int = DEFAULT_PPC_DRAWS, log: Callable[[str], None] | None = None):
        """Fit the model's other families with this fit's settings and compare them all on
        the published numbers (:func:`reanalysis.family_comparison.compare_families`); the
        table is kept as :attr:`family_comparison` and saved as ``family_comparison.csv``.

        Parameters
        ----------
        families : list of str, optional
            Families to compare, this fit's among them (default: all of the model's).
        tune : int, optional
            Warm-up iterations of the other fits (default: the model's).
        ppc_draws : int
            Posterior draws of their predictive checks.
        log : callable, optional
            Receives progress lines.

        Returns
        -------
        pandas.DataFrame
        """
        from reanalysis.family_comparison import compare_families

        self.family_comparison = compare_families(
            self.study, self.analysis, families, log=log, draws=self.draws, max_draws=self.max_draws, tune=tune,
            chains=self.idata.posterior.sizes["chain"], ppc_draws=ppc_draws,
        )
        return self.family_comparison

    def tables(self) -> dict:
        """File name -> table of the result folder (:data:`TABLES`, and the family comparison
        when there is one)."""
        out = {fname: getattr(self, attr) for fname, attr in TABLES.items()}
        if self.family_comparison is not None:
            out["family_comparison.csv"] = self.family_comparison
        return out

    # -- the result folder -----------------------------------------------------------------
    def save(self, out="results", figure_pool=None) -> Path:
        """Write the result folder ``out/<study>-<model>-<UTC time>-<random>/``, as ``fit.py``
        does: ``idata.nc``, the tables of :data:`TABLES`, ``figures/`` (PNG and SVG) and
        ``manifest.json``.  Written in a staging folder renamed at the end: an error or
        Ctrl-C leaves nothing.

        Parameters
        ----------
        out : str or Path
            Parent folder of the result folder (created if needed).
        figure_pool : reanalysis.figures.workers.FigureWorkers, optional
            Worker processes that draw the figures while the tables are written (default:
            drawn in this process).

        Returns
        -------
        Path
            The result folder (also :attr:`folder`).
        """
        from reanalysis import results
        from reanalysis.figures.workers import InlineFigures
        from reanalysis.supervisor import phase

        pool = figure_pool if figure_pool is not None else InlineFigures()
        timings = dict(self.timings)
        name = results.result_name(self.study.id, self.model)
        with results.staged_result_dir(Path(out), name) as stage:
            figdir = stage / "figures"
            figdir.mkdir()
            t_figures = time.perf_counter()
            for fname, builder, fargs in self.figure_jobs():
                pool.submit(fname, builder, *fargs, folder=figdir)
            phase("figures")
            # the tables are written while the workers draw
            t = time.perf_counter()
            self.idata.to_netcdf(stage / "idata.nc")
            phase("write")
            tables = self.tables()
            for fname, table in tables.items():
                table.to_csv(stage / fname, index=fname == "summary.csv")
            timings["write"] = time.perf_counter() - t
            figure_names = pool.results()
            timings["figures"] = time.perf_counter() - t_figures
            timings["total"] = time.perf_counter() - self.started
            manifest = results.run_manifest(
                self.study,
                ROOT,
                model=self.model,
                family=self.family,
                prior_set=self.prior_set,
                priors=self.analysis.priors,
                likelihood={"kind": "synthetic (multivariate normal on log statistics, common random numbers)", "reps": self.analysis.reps},
                seed=self.seed,
                sampler={**self.idata.posterior.attrs, "draws_per_block": self.draws, "max_draws": self.max_draws},
                diagnostics=self.diagnostics.as_dict(),
                timings_seconds={k: round(v, 3) for k, v in timings.items()},
                # each figure in its worker; "figures" above is the wall time of all of them
                figure_seconds={k: round(v, 3) for k, v in pool.seconds.items()},
                files=sorted(["idata.nc", *tables] + [f"figures/{f}" for f in figure_names]),
            )
            results.write_json(stage / "manifest.json", manifest)
        self.timings = timings
        self.folder = Path(out) / name
        self.figure_files = figure_names
        phase("final")
        return self.folder

    def report(self, path=None) -> Path:
        """Write the HTML report of the saved fit (:func:`reanalysis.report.html.write_report`).

        Parameters
        ----------
        path : str or Path, optional
            Where to write it (default: ``report.html`` in the result folder).  A fit not
            saved yet is saved first, to ``results/``.

        Returns
        -------
        Path
        """
        from reanalysis.report.html import render_report, write_report

        if self.folder is None:
            self.save()
        if path is None:
            return write_report(self.folder)
        path = Path(path)
        path.write_text(render_report(self.folder), encoding="utf-8")
        return path


def fit(
    study,
    model: str | None = None,
    family: str | None = None,
    priors: str = DEFAULT_PRIORS,
    seed: int = DEFAULT_SEED,
    draws: int | None = None,
    max_draws: int | None = None,
    tune: int | None = None,
    chains: int = DEFAULT_CHAINS,
    reps: int | None = None,
    ppc_draws: int = DEFAULT_PPC_DRAWS,
    progressbar: bool = True,
    log: Callable[[str], None] | None = None,
) -> Fit:
    """Fit a model to a study's published summary statistics and check it against the paper.

    The defaults are the command line's (``scripts/fit.py``): the same call gives the same
    numbers.

    Parameters
    ----------
    study : Study or str or Path
        A study (:func:`load_study`) or the path of its file.
    model : str, optional
        Registered model (:data:`reanalysis.registry.MODELS`); default ``"hierarchical"``
        when the study declares covariates, else ``"group"``.
    family : str, optional
        Population (group model) or residual (hierarchical model) family; default: the
        model's.
    priors : str
        Named prior set (:data:`models.priors.PRIOR_SETS`).
    seed : int
        Seed of the whole fit: sampler, likelihood deviates, predictive checks.
    draws, max_draws, tune : int, optional
        Kept draws per chain, the most a fit may extend to while an estimand's ESS or R-hat
        falls short (JAX-sampled models), warm-up iterations; default: the model's.
    chains : int
        Chains (at least 2).
    reps : int, optional
        Simulated cohorts per likelihood evaluation; default: the model's.
    ppc_draws : int
        Posterior draws used for the predictive checks.
    progressbar : bool
        Sampling progress bar on stderr.
    log : callable, optional
        Receives one-line progress messages.

    Returns
    -------
    Fit

    Raises
    ------
    reanalysis.analysis.AnalysisError, models.priors.PriorError
        An option the model does not support (unknown model, family or prior set, too few
        ``reps``, ``max_draws`` below ``draws``); raised before any sampling.

    Examples
    --------
    >>> import reanalysis                                                      # doctest: +SKIP
    >>> result = reanalysis.fit("data/studies/lasemi2018.yaml", model="group", draws=300)  # doctest: +SKIP
    >>> result.diagnostics.ok                                                  # doctest: +SKIP
    True
    """
    from models.study import Study
    from reanalysis.analysis import resolve_options, run_analysis

    started = time.perf_counter()
    if not isinstance(study, Study):
        study = load_study(study)
    model, family, draws, max_draws = resolve_options(study, model, family, priors, draws, max_draws, reps)
    if log:
        # after the option checks, so that a bad option's error is the only line on stderr
        log(f"study {study.id}: {', '.join(f'{g} (n={study.n(g)})' for g in study.group_ids)}")
    analysis = run_analysis(
        study, model=model, family=family, priors=priors, draws=draws, tune=tune, chains=chains, seed=seed, reps=reps,
        ppc_draws=ppc_draws, progressbar=progressbar, log=log, max_draws=max_draws,
    )
    return finish(study, analysis, draws, max_draws, started=started, log=log)


def finish(study, analysis, draws: int, max_draws: int, started: float | None = None, log: Callable[[str], None] | None = None) -> Fit:
    """The rest of a fit after sampling and checks: Bayes factors, informativeness, the
    covariate view and the published-items account, as a :class:`Fit`."""
    from reanalysis.analysis import model_api
    from reanalysis.report.published_items import published_items

    timings = dict(analysis.timings)
    bf = evidence_table(study)
    t = time.perf_counter()
    if log:
        log("informativeness: power-scaling the prior and the likelihood of every estimand")
    info = informativeness_table(analysis, study, log)
    timings["informativeness"] = time.perf_counter() - t
    # level-versus-covariate view of a covariate model (predictive cohorts, regression lines)
    view = model_api(analysis.model_name).covariate_view(analysis.idata, study, analysis.model, seed=analysis.seed)
    items = published_items(study, analysis.model_name, analysis.checks["key"], family=analysis.family)
    return Fit(study=study, analysis=analysis, evidence=bf, informativeness=info, published_items=items, view=view, draws=draws,
               max_draws=max_draws, timings=timings, started=started if started is not None else time.perf_counter())


def evidence_table(study):
    """JZS Bayes factors (:mod:`models.evidence`) for each comparison whose groups report
    mean, SD and n, at each prior scale of the robustness check."""
    import pandas as pd

    from models import evidence

    rows = []
    for cid, comp in study.comparisons.items():
        a, b = (study.reported(g) for g in comp.groups)
        if not all(k in a and k in b for k in ("mean", "sd")):
            continue
        n1, n2 = study.n(comp.groups[0]), study.n(comp.groups[1])
        t, df = evidence.t_from_summary(a["mean"], a["sd"], n1, b["mean"], b["sd"], n2)
        for r in evidence.bayes_factor_robustness(t, n1, n2):
            rows.append({"comparison": cid, "t": t, "df": df, "prior_scale_r": r["r"], "log10_bf10": r["log10_bf10"]})
    return pd.DataFrame(rows, columns=EVIDENCE_COLUMNS)


def informativeness_table(analysis, study, log: Callable[[str], None] | None = None):
    """Contraction, power-scaling sensitivity and a plain label per estimand.  A failure
    here (e.g. a model whose likelihood PyMC cannot evaluate per draw) is reported through
    ``log`` and leaves an empty table; it never discards the fit."""
    import pandas as pd

    from reanalysis import informativeness as inf

    try:
        ps = inf.psens_table(analysis, study, keys=analysis.table["estimand"], labels=False)
        return inf.informativeness_table(analysis.table, analysis.idata.posterior, inf.prior_estimands(analysis, study), ps)
    except Exception as exc:  # noqa: BLE001
        if log:
            log(f"warning: informativeness not computed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
        return pd.DataFrame(columns=inf.COLUMNS)


class CommandError(RuntimeError):
    """A run of :func:`run_sensitivity` or :func:`run_sbc` that ended with a non-zero exit
    code; ``code`` is the command's (:mod:`reanalysis.settings`), the message its error."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _run_command(module: str, argv: list[str], ok: tuple[int, ...]) -> Path:
    """Run the command-line ``main`` of ``module`` in this process on ``argv`` (its output
    shown as it comes) and return the result folder it reports."""
    import contextlib
    import importlib
    import io
    import re
    import sys

    class _Tee(io.TextIOBase):
        def __init__(self, *streams):
            self.streams = streams

        def write(self, text):
            for s in self.streams:
                s.write(text)
            return len(text)

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(_Tee(sys.stdout, out)), contextlib.redirect_stderr(_Tee(sys.stderr, err)):
        code = importlib.import_module(module).main([str(a) for a in argv])
    found = re.findall(r"^Results: (\S+)", out.getvalue(), flags=re.M)
    if code not in ok or not found:
        lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("error:")] or err.getvalue().splitlines()[-1:]
        raise CommandError(lines[-1] if lines else f"exit code {code}", code)
    return Path(found[-1])


def _options(**options) -> list[str]:
    argv = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        if isinstance(value, (list, tuple, set)):
            value = ",".join(str(v) for v in value)  # a list option (``only``) as the command takes it
        argv += [f"--{name.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return argv


def run_sensitivity(study=None, grid=None, out="results", workers: int = 2, scheduler: str | None = None, **sampling) -> Path:
    """Refit the analysis under a grid of scenarios and write the sensitivity result folder,
    as ``scripts/sensitivity.py`` does (the same function, in this process).

    Parameters
    ----------
    study : str or Path, optional
        Study file (default: the project's study, :data:`reanalysis.settings.DEFAULT_STUDY`).
    grid : str or Path, optional
        Scenario grid (default: ``data/sensitivity/default.yaml``).
    out : str or Path
        Parent folder of the result folder.
    workers : int
        Local worker processes (1: in this process).
    scheduler : str, optional
        Address of a dask.distributed scheduler to run the scenarios on instead.
    **sampling
        Overrides of the grid's sampling block: ``draws``, ``tune``, ``chains``, ``seed``,
        ``reps``, ``ppc_draws``.

    Returns
    -------
    Path
        The result folder (``sensitivity.csv``, ``stability.csv``, ``manifest.json``, ...),
        also when some scenarios failed (their status and reason are in it).

    Raises
    ------
    CommandError
        Bad input (study, grid or option; nothing is run or written).

    Examples
    --------
    >>> folder = reanalysis.run_sensitivity(draws=500)  # doctest: +SKIP
    """
    from reanalysis.settings import EXIT_FAILED, EXIT_OK

    argv = _options(study=study, grid=grid, out=out, workers=workers, scheduler=scheduler, **sampling)
    return _run_command("reanalysis.cli.sensitivity", argv, ok=(EXIT_OK, EXIT_FAILED))


def run_sbc(study=None, model: str = "group", sims: int = 100, out="results", **options) -> Path:
    """Simulation-based calibration of ``model`` on the design of ``study``, as
    ``scripts/sbc.py`` does (the same function, in this process).

    Parameters
    ----------
    study : str or Path, optional
        Study file whose design is simulated (default: the project's study).
    model : str
        Model to calibrate.
    sims : int
        Simulated studies.
    out : str or Path
        Parent folder of the result folder.
    **options
        The command's other options by name: ``family``, ``priors``, ``seed``, ``draws``,
        ``tune``, ``chains``, ``workers``, ``scheduler`` (a dask.distributed address),
        ``chunk``, ``alpha``, ``max_rhat``, ``only`` (a list of simulated studies to refit
        alone, as ``--only``), ...

    Returns
    -------
    Path
        The result folder (``ranks.csv``, ``uniformity.csv``, ``manifest.json``, ...), also
        when a parameter fails the uniformity test (``uniformity.csv`` says which) or, with
        ``only``, a refitted study fails the diagnostics gate (``fits.csv`` says which).

    Raises
    ------
    CommandError
        Bad input (nothing is run or written).

    Examples
    --------
    >>> folder = reanalysis.run_sbc(sims=20, workers=2)  # doctest: +SKIP
    """
    from reanalysis.settings import EXIT_DIAGNOSTICS, EXIT_MISCALIBRATED, EXIT_OK

    argv = _options(study=study, model=model, sims=sims, out=out, **options)
    return _run_command("reanalysis.cli.sbc", argv, ok=(EXIT_OK, EXIT_MISCALIBRATED, EXIT_DIAGNOSTICS))

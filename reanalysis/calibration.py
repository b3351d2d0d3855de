"""Simulation-based calibration (Talts et al. 2018; Modrak et al. 2023).

Draw parameters from the model's own prior, simulate the statistics a study with the same
design would publish, fit, and record the rank of each true value among thinned posterior
draws.  If the model, the simulator and the sampler agree, ranks are uniform.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
import pymc as pm
from scipy import stats as sps

from models.families import get_family
from reanalysis.sampling import CompiledNuts
from models.cohort import modelled_associations
from models.simulate import round_reported
from models.study import Study
from models.labels import estimand_key, variable_of
from reanalysis.settings import MAX_DIVERGENCES, MAX_RHAT, MIN_ESS

#: Thinned posterior draws each true value is ranked among; ranks take 0..L (L + 1 values).
N_RANK_DRAWS = 99
#: Equal-width bins of the chi-square uniformity test (L + 1 = 100 values, 10 per bin).
N_BINS = 10


class CalibrationError(RuntimeError):
    """A calibration fit failed (and with it the run); ``str()`` is one line naming the
    simulated study and the error."""


@dataclass
class SbcResult:
    ranks: pd.DataFrame  # one row per (simulation, parameter)
    fits: pd.DataFrame  # one row per simulation: diagnostics and timing
    seconds: float
    #: With ``as_published``: the studies simulated to keep ``sims`` (else ``sims``).
    simulated: int | None = None


def parameter_names(model: pm.Model, names=None) -> list[tuple[str, str, int | None]]:
    """Scalar parameters as (label, variable, flat index) for every variable of ``names``
    (default: the free variables; a matrix such as ``effect_z[deviation, covariate]`` gives one
    entry per element).  The group model's are always ``log_mean`` and ``log_cv``, even
    where it samples the location in other units (``models.group.median_only``)."""
    import itertools

    out = []
    for name in names if names is not None else [rv.name for rv in model.free_RVs]:
        dims = model.named_vars_to_dims.get(name, ())
        if dims:
            for i, combo in enumerate(itertools.product(*(model.coords[d] for d in dims))):
                out.append((estimand_key(name, *combo), name, i))
        else:
            out.append((name, name, None))
    return out


def run_sbc(
    study: Study,
    priors: dict,
    family: str,
    sims: int,
    seed: int,
    draws: int = 250,
    tune: int = 500,
    chains: int = 4,
    workers: int = 2,
    chunk: int = 10,
    progress=None,
    model: str = "group",
    max_rhat: float | None = None,
    max_extensions: int = 0,
    scheduler: str | None = None,
    client=None,
    min_ess: float | None = None,
    as_published: bool = False,
    only=None,
) -> SbcResult:
    """Run ``sims`` calibration fits of ``model`` (``"group"`` or ``"hierarchical"``).

    Prior draws and simulated data are made here, in one seeded stream; the fits run in
    ``workers`` processes, ``chunk`` simulated studies per task; each process builds the
    model and compiles the sampler once, for its first chunk, and reuses them for the
    chunks it runs next.

    Parameters
    ----------
    study : Study
        Design of the simulated studies (must have been loaded from a file).
    priors : dict
        Prior set of the model (the prior tested).
    family : str
        Family the data are simulated from and the model assumes.
    sims, seed : int
        Number of simulated studies; seed of the whole calibration.
    draws, tune, chains : int
        Sampler settings of each fit; ``draws * chains`` must be at least 99.
    workers, chunk : int
        Local worker processes (1: in this process), and simulated studies per worker task.
    scheduler, client : optional
        Run the chunks on a dask.distributed cluster instead (its address, or a client):
        :func:`reanalysis.execution.run_tasks`.
    progress : callable, optional
        Called as ``progress(done, total, elapsed_seconds)`` as fits complete.
    model : str
        Registered model (:data:`reanalysis.registry.MODELS`).
    max_rhat, min_ess, max_extensions : float, float, int
        A fit whose largest R-hat exceeds ``max_rhat``, or whose smallest bulk or tail
        ESS of the ranked parameters is below ``min_ess``, has its chains continued by
        ``draws`` draws, up to ``max_extensions`` times (the gate of a real fit; the ranks
        then use all draws).  ``fits`` records the draws per chain each fit used and
        whether it passed the gate (``gate_ok``: also no divergence).
    as_published : bool
        Hierarchical model: keep only the simulated studies whose claims come out as the
        study published them (:func:`_hierarchical_tasks`).
    only : iterable of int, optional
        Fit only these simulated studies (numbered from 0, as ``fits``' ``sim`` column) of
        the calibration the other arguments describe: the same simulated data, true values
        and per-study seed as in the whole run, so a fit that failed the gate can be
        re-checked alone.  Too few studies for the uniformity tests, which the caller
        should not run on the result.

    Raises
    ------
    ValueError
        ``only`` names no study, or one outside ``0 .. sims - 1`` (:func:`chosen_studies`).
    CalibrationError
        A fit failed, or a worker process died: the other fits are stopped at once and
        their workers killed (:func:`reanalysis.execution.run_tasks`).
    """
    from concurrent.futures import BrokenExecutor

    from reanalysis.analysis import model_api, precomputed
    from reanalysis.execution import run_tasks
    from reanalysis.supervisor import phase

    if draws * chains < N_RANK_DRAWS:
        raise ValueError(f"draws * chains must be >= {N_RANK_DRAWS}")
    if as_published and model != "hierarchical":
        raise ValueError(f"as_published: only the hierarchical model's simulated studies report claims, not the {model} model's")
    chosen = None if only is None else chosen_studies(only, sims)
    t0 = time.perf_counter()
    # built once here (the gamma family's tables take minutes), before the tasks' prior
    # draws build the model from them, and sent to the workers
    built = precomputed(model_api(model), study, family, None, seed)
    make_tasks = {"group": _group_tasks, "hierarchical": _hierarchical_tasks}[model]
    # the whole calibration's studies are simulated, in its one seeded stream, before any
    # is left out: a study fitted alone is the one the whole run fits
    tasks, simulated = make_tasks(study, priors, family, sims, seed, **({"as_published": True} if as_published else {}))
    if chosen is not None:
        keep = set(chosen)
        tasks = [t for t in tasks if t["sim"] in keep]
    setup = dict(
        study_path=str(study.path), priors=priors, family=family, seed=seed, draws=draws, tune=tune, chains=chains, model=model,
        max_rhat=max_rhat, min_ess=min_ess, max_extensions=max_extensions, precomputed=built,
    )
    chunks = [(setup, tasks[i : i + chunk]) for i in range(0, len(tasks), chunk)]
    rank_rows, fit_rows = [], []

    def record(result) -> None:
        ranks, fits = result
        rank_rows.extend(ranks)
        fit_rows.extend(fits)
        if progress:
            progress(len(fit_rows), len(tasks), time.perf_counter() - t0)

    # each worker process builds and compiles once and keeps its sampler for the chunks it
    # runs next (_worker_sampler); small chunks then cost no compile and balance the load
    try:
        run_tasks(_fit_chunk, chunks, record, workers=workers, scheduler=scheduler, client=client, on_start=lambda: phase("pool"))
    except BrokenExecutor as exc:  # a worker killed from outside (out of memory, a signal)
        raise CalibrationError(f"a calibration worker process died ({str(exc).rstrip('.')})") from exc
    ranks = pd.DataFrame(rank_rows).sort_values(["sim", "parameter"], kind="stable").reset_index(drop=True)
    fits = pd.DataFrame(fit_rows).sort_values("sim").reset_index(drop=True)
    return SbcResult(ranks, fits, time.perf_counter() - t0, simulated)


def chosen_studies(only, sims: int) -> list[int]:
    """The simulated studies ``only`` names, sorted and once each, checked against a
    calibration of ``sims`` studies (numbered from 0).

    Raises
    ------
    ValueError
        None named, or one outside ``0 .. sims - 1``; the message names them.
    """
    chosen = sorted({int(s) for s in only})
    if not chosen:
        raise ValueError("no simulated study given")
    outside = [s for s in chosen if not 0 <= s < sims]
    if outside:
        raise ValueError(f"simulated study {', '.join(map(str, outside))} is not one of the calibration's {sims} (numbered 0-{sims - 1})")
    return chosen


def _group_tasks(study: Study, priors: dict, family: str, sims: int, seed: int) -> tuple[list[dict], int]:
    """Prior draws and simulated reported statistics for the group model: the tasks, and the
    studies simulated for them (``sims``)."""
    from models.group import build_model

    from models.group import LOG_CV_BOUNDS
    from models.simulate import reported_statistics, simulate_cohorts
    from models.statistics import modelled_values
    from models.two_group import claims_hold

    fam = get_family(family)
    model = build_model(study, priors, family=family, seed=seed)
    # the model truncates its CV prior to the likelihood tables' range; pm.draw samples the
    # untruncated distribution, so draws outside are rejected (about 1e-5 of them under the
    # default prior) and more are drawn until there are enough
    draws = []
    extra = 0
    while sum(len(d[0]) for d in draws) < sims:
        prior = pm.draw([model["log_mean"], model["log_cv"], model["mean"], model["cv"]], draws=sims, random_seed=seed + extra)
        prior = [np.asarray(a) for a in prior]
        inside = np.all((prior[1] >= LOG_CV_BOUNDS[0]) & (prior[1] <= LOG_CV_BOUNDS[1]), axis=1)
        draws.append([a[inside] for a in prior])
        extra += 1
    log_mean, log_cv, mean, cv = (np.concatenate([d[i] for d in draws])[:sims] for i in range(4))
    rng = np.random.default_rng(seed)
    tasks = []
    for s in range(sims):
        truth = {g: (mean[s, i], cv[s, i]) for i, g in enumerate(study.group_ids)}
        cohorts = simulate_cohorts(study, fam, truth, rng)
        reported = reported_statistics(study, cohorts)
        tasks.append(
            {
                "sim": s,
                "truth": {"log_mean": log_mean[s], "log_cv": log_cv[s]},
                # a published test the model fits is observed as whether it holds on the
                # simulated study's own cohorts
                "data": {
                    **{f"log_stats_{g}": np.log(modelled_values(study.reported(g), reported[g])) for g in study.group_ids},
                    **claims_hold(model.two_group_terms, cohorts),
                },
                "reported": {g: " ".join(f"{v:g}" for v in reported[g]) for g in study.group_ids},
            }
        )
    return tasks, sims


def simulate_covariate_studies(study: Study, model: pm.Model, values: dict, seed: int) -> dict[str, np.ndarray]:
    """Simulated studies of the hierarchical covariate model, one per parameter draw.

    Each draw gets one cohort (fresh covariates and residuals,
    :func:`models.effects.simulate_predictive`); the result is what the paper would show:
    its reported statistics (rounded as declared) and whether each modelled claim holds.

    Parameters
    ----------
    values : dict
        ``alpha``, ``slope``, ``sigma`` (and ``u`` with a categorical covariate), each with a
        leading axis over draws.

    Returns
    -------
    dict
        Observed-data name of the model (``log_stats_<group>``, ``claim_holds_<name>``) ->
        array over draws, ready for ``pm.Data.set_value`` or a compiled sampler.
    """
    from models.effects import simulate_predictive
    from models.hierarchical import comparison_claims, fitted_statistics
    from models.statistics import group_test_pvalue, sample_statistics

    shown = [n for n in ("alpha", "slope", "sigma", "u") if n in values]
    draws = len(values["alpha"])
    dims = {n: list(model.named_vars_to_dims.get(n, ())) for n in shown}
    coords = {k: list(v) for k, v in model.coords.items()}
    fake = az.from_dict(posterior={n: np.asarray(values[n])[None] for n in shown}, coords=coords, dims=dims)
    cohorts, assoc = simulate_predictive(fake, study, model.design, model.residual_df, n_draws=draws, seed=seed)
    q_method = int(study.setting("quantile_method"))
    width = float(study.assumption("rounding", 0.0) or 0.0)
    # the model observes log(statistic / reference level) (models.hierarchical.build_model);
    # the cohorts are in the analyte's units, and so is the rounding
    ref = float(study.assumption("reference_level", 1.0))
    data = {}
    for g in study.group_ids:
        stats = sample_statistics(np, cohorts[g], study.n(g), list(fitted_statistics(study, g)), q_method)
        data[f"log_stats_{g}"] = np.log(round_reported(stats, width) / ref)
    for name in modelled_associations(study):
        data[f"claim_holds_{name}"] = assoc[f"association.{name}.holds"].astype(float)
    for cc in comparison_claims(study):
        a, b = (cohorts[g] for g in cc["groups"])
        p = group_test_pvalue(a, b, cc["test"])
        data[f"claim_holds_{cc['name'].replace('.', '_')}"] = (p < 2 * sps.norm.sf(cc["bounds"][0])).astype(float)
    return data


#: Most studies simulated to keep those whose claims come out as published; on Lasemi et
#: al. 2018 about 1 in 250 do (benchmarks/README.md), so 100 kept studies take about 25,000.
MAX_SIMULATED = 2_000_000


def _hierarchical_tasks(study: Study, priors: dict, family: str, sims: int, seed: int, as_published: bool = False) -> tuple[list[dict], int]:
    """Prior draws and simulated studies (:func:`simulate_covariate_studies`) for the
    hierarchical covariate model: the tasks, and the studies simulated for them.

    With ``as_published``, only the simulated studies whose claims come out as the study
    published them (every ``claim_holds_*`` equal to the study's own) are kept, drawn in
    seeded batches until there are ``sims``.  The ranks stay uniform: a study is kept by
    its data alone, so the kept parameter draws come from the prior given the claims, and
    each kept study's posterior is still the exact target.  This calibrates the model where the published
    study is, without the two-mode posteriors a claim that fails can leave
    (benchmarks/README.md, "Covariate-model calibration, 10 studies").
    """
    from models.hierarchical import build_model

    model = build_model(study, priors, family=family, seed=seed)
    # the sampled parameters and the population effects, which the model derives from the
    # groups' mean slopes (models.hierarchical.pooled_effects)
    ranked = [rv.name for rv in model.free_RVs] + ["effect"]
    shown = ["alpha", "slope", "sigma"] + (["u"] if "u" in model.named_vars else [])

    def simulate(n: int, draw_seed: int) -> tuple[dict, dict]:
        values = pm.draw([model[v] for v in ranked + shown], draws=n, random_seed=draw_seed)
        values = dict(zip(ranked + shown, (np.asarray(v) for v in values)))
        return values, simulate_covariate_studies(study, model, values, draw_seed + 1)

    simulated = sims
    if not as_published:
        values, data = simulate(sims, seed)
    else:
        published = {k: float(np.asarray(model[k].get_value())) for k in model.named_vars if k.startswith("claim_holds_")}
        if not published:
            raise ValueError(f"{study.path}: as_published needs claims, and the study's modelled claims are none")
        rng, kept, simulated, found = np.random.default_rng(seed), [], 0, 0
        while found < sims:
            if simulated >= MAX_SIMULATED:
                raise ValueError(
                    f"{study.path}: only {found} of {simulated} simulated studies report the published claims "
                    f"({', '.join(published)}); calibrate without as_published, or on fewer studies"
                )
            batch = max(1000, 50 * sims)
            values, data = simulate(batch, int(rng.integers(2**31 - 2)))
            keep = np.all([data[k] == v for k, v in published.items()], axis=0)
            kept.append(({k: v[keep] for k, v in values.items()}, {k: v[keep] for k, v in data.items()}))
            simulated, found = simulated + batch, found + int(keep.sum())
        values = {k: np.concatenate([v[k] for v, _ in kept])[:sims] for k in kept[0][0]}
        data = {k: np.concatenate([d[k] for _, d in kept])[:sims] for k in kept[0][1]}
    printed = _printed(study, model, values)
    tasks = []
    for s in range(sims):
        tasks.append(
            {
                "sim": s,
                "truth": {n: values[n][s] for n in ranked},
                "printed": {k: float(v[s]) for k, v in printed.items()},
                "data": {k: v[s] for k, v in data.items()},
                "reported": {g: " ".join(f"{v:g}" for v in np.exp(data[f"log_stats_{g}"][s])) for g in study.group_ids},
            }
        )
    return tasks, simulated


def _printed(study: Study, model: pm.Model, values) -> dict[str, np.ndarray]:
    """The covariate model's printed estimands (:func:`models.effects.printed_estimands`)
    for parameter values with a leading axis over draws (a dict, or a posterior Dataset)."""
    from models.effects import posterior_arrays, printed_estimands

    p = posterior_arrays(values, model.design) if isinstance(values, xr.Dataset) else values
    return printed_estimands(p, study, model.design, model.residual_df)


def _rank_row(sim: int, label: str, x: np.ndarray, true: float, keep: np.ndarray) -> dict:
    """Rank of ``true`` among the thinned draws ``x[keep]``, whether the central 50% and
    90% intervals of ``x`` cover it, and the posterior median (regions of the estimate,
    :func:`coverage_by_region`)."""
    lo50, hi50, lo90, hi90, med = np.quantile(x, [0.25, 0.75, 0.05, 0.95, 0.5])
    return {
        "sim": sim, "parameter": label, "truth": true, "rank": int(np.sum(x[keep] < true)), "in_50": bool(lo50 <= true <= hi50),
        "in_90": bool(lo90 <= true <= hi90), "median": float(med),
    }


def _fit_chunk(chunk: tuple[dict, list[dict]]) -> tuple[list[dict], list[dict]]:
    """Worker: fit each simulated study of ``chunk = (setup, tasks)`` (:func:`_fit_studies`).

    Raises
    ------
    CalibrationError
        Any error of the fits, named by the simulated study (or the chunk's set-up) in one
        line; the original error is its cause.
    """
    setup, tasks = chunk
    at: dict = {}
    try:
        return _fit_studies(setup, tasks, at)
    except Exception as exc:
        where = f"simulated study {at['sim']}" if "sim" in at else f"the set-up of simulated studies {tasks[0]['sim']}-{tasks[-1]['sim']}"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CalibrationError(
            f"calibration fit failed ({setup['model']} model, {setup['family']}, seed {setup['seed']}), {where}: {type(exc).__name__}"
            + (f": {reason}" if reason else "")
        ) from exc


def _fit_studies(setup: dict, tasks: list[dict], at: dict) -> tuple[list[dict], list[dict]]:
    """Fit each simulated study of ``tasks`` with this process's compiled sampler of
    ``setup`` (:func:`_worker_sampler`); ``at["sim"]`` is the simulated study being fitted
    (for :func:`_fit_chunk`'s error)."""
    from reanalysis.analysis import model_api
    from reanalysis.jax_setup import compile_counts

    api = model_api(setup["model"])
    counts = compile_counts()
    worker = f"{socket.gethostname()}:{os.getpid()}"  # which process fitted (and compiled)
    study, model, runner = _worker_sampler(setup, list(tasks[0]["data"]))
    # the parameters whose true values the simulated studies were drawn with
    params = parameter_names(model, list(tasks[0]["truth"]))
    rank_rows, fit_rows = [], []
    for task in tasks:
        s = at["sim"] = task["sim"]
        t = time.perf_counter()
        # chains start from this simulated study's statistics, as its own fit would
        api.set_starting_values(model, study, setup["priors"], task["data"])
        idata = runner.run(seed=setup["seed"] + 1 + s, data=task["data"])
        var_names = list(dict.fromkeys(v for _, v, _ in params))
        summ = az.summary(idata, var_names=var_names, kind="diagnostics")
        extensions = 0
        # a diverged fit fails the gate whatever its draws: not continued (as in a real fit)
        while (_short_of_gate(summ, setup) and extensions < setup.get("max_extensions", 0)
               and int(idata.sample_stats["diverging"].sum()) <= MAX_DIVERGENCES):
            idata = runner.extend()
            summ = az.summary(idata, var_names=var_names, kind="diagnostics")
            extensions += 1
        post = idata.posterior
        stats = idata.sample_stats
        divergences = int(stats["diverging"].sum())
        # compiled while fitting this study (the chunk's first pays for all of them)
        compiled, counts = compile_counts(since=counts), compile_counts()
        fit_rows.append(
            {
                "sim": s,
                "worker": worker,
                "seconds": time.perf_counter() - t,
                "draws_per_chain": int(post.sizes["draw"]),
                "divergences": divergences,
                "max_rhat": float(summ["r_hat"].max()),
                "min_ess_bulk": float(summ["ess_bulk"].min()),
                "min_ess_tail": float(summ["ess_tail"].min()),
                # the geometry a failed gate comes with: long trajectories, small steps
                "mean_steps": float(stats["n_steps"].mean()), "smallest_step_size": float(stats["step_size"].min()),
                "sampler_programs_compiled": compiled["sampler_programs"], "xla_compiled": compiled["xla_compiled"],
                "gate_ok": bool(divergences <= MAX_DIVERGENCES and summ["r_hat"].max() <= MAX_RHAT
                                and min(summ["ess_bulk"].min(), summ["ess_tail"].min()) >= MIN_ESS),
                **{f"reported_{g}": v for g, v in task["reported"].items()},
            }
        )
        total = post.sizes["chain"] * post.sizes["draw"]
        keep = np.linspace(0, total - 1, N_RANK_DRAWS).round().astype(int)
        for label, var, idx in params:
            x = post[var].values.reshape(total, -1)[:, idx if idx is not None else 0]
            true = float(np.ravel(task["truth"][var])[idx] if idx is not None else task["truth"][var])
            rank_rows.append(_rank_row(s, label, x, true, keep))
        if task.get("printed"):
            # what the tables print (population ratios, effects in percent), so an error in
            # a derived estimand shows up as miscalibration, not only one in the parameters
            for label, x in _printed(study, model, post).items():
                rank_rows.append(_rank_row(s, label, x, task["printed"][label], keep))
    return rank_rows, fit_rows


#: This worker process's study, model and compiled sampler of the calibration it last ran
#: chunks of: the next chunk of the same calibration reuses them (keyed by
#: :func:`_sampler_key`), so a worker builds and compiles once however many chunks it runs.
_WORKER_SAMPLER: dict = {}


def _sampler_key(setup: dict, data_names: list[str]) -> tuple:
    """What a calibration's compiled sampler depends on: the study file's bytes (a
    long-lived cluster worker may see the file change between runs), the model, its priors
    and family, the seed (the likelihood tables' deviates) and the sampler's settings."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256(Path(setup["study_path"]).read_bytes()).hexdigest()
    return (digest, setup["model"], repr(setup["priors"]), setup["family"], setup["seed"],
            setup["draws"], setup["tune"], setup["chains"], tuple(data_names))


def _worker_sampler(setup: dict, data_names: list[str]):
    """``(study, model, runner)`` of ``setup`` in this process: built and compiled by the
    first chunk, reused by the next ones (only the last calibration's is kept, so a
    long-lived worker holds one compiled sampler)."""
    from reanalysis.analysis import model_api
    from models.study import load_study

    key = _sampler_key(setup, data_names)
    if key not in _WORKER_SAMPLER:
        _WORKER_SAMPLER.clear()
        api = model_api(setup["model"])
        study = load_study(setup["study_path"])
        model = api.build_model(study, setup["priors"], family=setup["family"], seed=setup["seed"], **setup["precomputed"])
        runner = CompiledNuts(
            model, data_names, draws=setup["draws"], tune=setup["tune"], chains=setup["chains"], progressbar=False, **api.nuts_options()
        )
        _WORKER_SAMPLER[key] = (study, model, runner)
    return _WORKER_SAMPLER[key]


def _short_of_gate(summ, setup: dict) -> bool:
    """Whether a calibration fit's ranked parameters fall short of the R-hat or ESS limits
    ``setup`` asks for (None: not checked): more draws of the same chains may help."""
    rhat, ess = setup.get("max_rhat"), setup.get("min_ess")
    return bool((rhat is not None and summ["r_hat"].max() > rhat)
                or (ess is not None and min(summ["ess_bulk"].min(), summ["ess_tail"].min()) < ess))


def ecdf_difference(ranks: np.ndarray, n_draws: int = N_RANK_DRAWS, grid: int = 100):
    """ECDF of fractional ranks minus the uniform CDF on ``grid`` points in (0, 1)."""
    u = (np.asarray(ranks) + 0.5) / (n_draws + 1)
    z = np.linspace(0, 1, grid + 1)[1:-1]
    return z, (u[None, :] <= z[:, None]).mean(axis=1) - z


def ecdf_band(n_sims: int, prob: float = 0.99, n_draws: int = N_RANK_DRAWS, reps: int = 2000, seed: int = 0) -> float:
    """Half-width of a simultaneous ``prob`` band for the ECDF difference of ``n_sims``
    uniform ranks, by simulation (a discrete-rank variant of Säilynoja et al. 2022)."""
    rng = np.random.default_rng(seed)
    sims = rng.integers(0, n_draws + 1, size=(reps, n_sims))
    stat = np.array([np.abs(ecdf_difference(r, n_draws)[1]).max() for r in sims])
    return float(np.quantile(stat, prob))


def uniformity(result: SbcResult, alpha: float = 0.01) -> pd.DataFrame:
    """Per parameter: chi-square test on binned ranks, ECDF maximum deviation and its
    simulated p-value, 50% and 90% interval coverage, and pass/fail at ``alpha`` with a
    Bonferroni correction across parameters.  A parameter fails if either test rejects
    (the chi-square misses smooth shifts that the ECDF band catches, and vice versa)."""
    ranks = result.ranks
    params = list(dict.fromkeys(ranks["parameter"]))
    level = alpha / len(params)
    n = ranks["sim"].nunique()
    rng = np.random.default_rng(12345)
    null = np.array([np.abs(ecdf_difference(rng.integers(0, N_RANK_DRAWS + 1, n))[1]).max() for _ in range(2000)])
    rows = []
    for p in params:
        r = ranks.loc[ranks["parameter"] == p]
        counts = np.bincount(r["rank"].values * N_BINS // (N_RANK_DRAWS + 1), minlength=N_BINS)
        chi2 = sps.chisquare(counts)
        dev = float(np.abs(ecdf_difference(r["rank"].values)[1]).max())
        rows.append(
            {
                "parameter": p,
                "sims": len(r),
                "chi2": float(chi2.statistic),
                "p_chi2": float(chi2.pvalue),
                "ecdf_max_diff": dev,
                "p_ecdf": float((null >= dev).mean()),
                "coverage_50": float(r["in_50"].mean()),
                "coverage_90": float(r["in_90"].mean()),
                "bonferroni_level": level,
                "uniform": bool(chi2.pvalue >= level and (null >= dev).mean() >= level),
            }
        )
    return pd.DataFrame(rows)


# --- sampler-free calibration of the group model's likelihood ------------------------------
def _grid_cdf(grid: np.ndarray, weights: np.ndarray, x: float) -> float:
    """CDF at ``x`` of a density given by ``weights`` on the equally spaced cell centres
    ``grid`` (piecewise uniform within cells)."""
    h = grid[1] - grid[0]
    edges = np.concatenate([[grid[0] - h / 2], grid + h / 2])
    c = np.concatenate([[0.0], np.cumsum(weights)])
    return float(np.interp(x, edges, c / c[-1]))


def _grid_quantiles(grid: np.ndarray, weights: np.ndarray, probs) -> np.ndarray:
    h = grid[1] - grid[0]
    edges = np.concatenate([[grid[0] - h / 2], grid + h / 2])
    c = np.concatenate([[0.0], np.cumsum(weights)])
    return np.interp(probs, c / c[-1], edges)


def group_grid_check(
    study: Study, priors: dict, family: str, group: str, sims: int, seed: int, reps: int | None = None,
    coarse: int = 161, fine: int = 81, span: float = 5.0, shape: str | None = None, source: str = "simulated",
) -> pd.DataFrame:
    """Calibration of the group model's likelihood without a sampler.

    For each of ``sims`` parameter draws from the (normal) priors of one group, the
    statistics the study would publish are simulated (:func:`models.simulate.simulate_reported`,
    rounding included) and the exact posterior of (log_mean, log_cv) under the model's own
    likelihood table is computed on a grid: a coarse grid over the prior +- ``span`` SDs
    locates the posterior, a fine grid over where its density is within e^-25 of the mode
    resolves it.  With a calibrated likelihood the marginal posterior CDFs at the true
    values (PIT) are uniform.

    ``shape`` selects the likelihood's shape (default: the model's).  With ``source =
    "likelihood"`` the data are drawn from the likelihood itself
    (:func:`models.likelihood.table_sample`) instead of the cohort simulator: the posterior
    is then exact by construction, and the summary shows what a perfect likelihood gives in
    each region (regions by true value are not calibrated even then; see
    :func:`grid_check_summary`).

    Returns
    -------
    pd.DataFrame
        One row per simulation: the true ``log_mean`` and ``log_cv``, the true ``mean``
        (natural units) and ``cv``, and per parameter ``pit_<p>``, ``in50_<p>``, ``in90_<p>``
        (central posterior intervals) and ``median_<p>`` (posterior median).
    """
    from models.group import DEFAULT_REPS, DEFAULT_SHAPE, LOG_CV_BOUNDS, build_tables, rounding_width
    from reanalysis.disk_cache import DiskStore
    from models.likelihood import group_logp_at, observed_rounded_log, table_sample

    for p in ("log_mean", "log_cv"):
        if priors[p]["dist"] != "normal":
            raise ValueError("the grid check needs normal priors")
    if source not in ("simulated", "likelihood"):
        raise ValueError(f"unknown data source {source!r}; choose simulated or likelihood")
    i = study.group_ids.index(group)
    table = build_tables(study, family, reps or DEFAULT_REPS, seed=20180302, shape=shape or DEFAULT_SHAPE, store=DiskStore())[i]
    ref = float(study.assumption("reference_level", 1.0))
    width = rounding_width(study)
    # the table's location axis: log(mean / width) with rounding, else the log mean
    shift = np.log(ref / width) if width > 0 else np.log(ref)
    fam = get_family(family)
    (mm, sm), (mc, sc) = ((priors[p]["mu"], priors[p]["sigma"]) for p in ("log_mean", "log_cv"))
    lo_c, hi_c = max(mc - span * sc, LOG_CV_BOUNDS[0]), min(mc + span * sc, LOG_CV_BOUNDS[1])

    def log_post(x, lm, lc):
        lm, lc = lm.ravel(), lc.ravel()
        lp = group_logp_at(table, x, lm + shift, lc)
        lp = lp - 0.5 * ((lm - mm) / sm) ** 2 - 0.5 * ((lc - mc) / sc) ** 2
        return np.where(np.isfinite(lp), lp, -np.inf)

    from models.simulate import simulate_reported
    from models.statistics import modelled_values

    rng = np.random.default_rng(seed)
    gm = np.linspace(mm - span * sm, mm + span * sm, coarse)
    gc = np.linspace(lo_c, hi_c, coarse)
    CM, CC = np.meshgrid(gm, gc, indexing="ij")
    rows = []
    for s in range(sims):
        lm = rng.normal(mm, sm)
        lc = rng.normal(mc, sc)
        while not LOG_CV_BOUNDS[0] <= lc <= LOG_CV_BOUNDS[1]:  # the model's truncated prior
            lc = rng.normal(mc, sc)
        if source == "simulated":
            # the likelihood's statistics (a mean's interval as its half-width and midpoint)
            rep = modelled_values(study.reported(group), simulate_reported(study, fam, {g: (ref * np.exp(lm), np.exp(lc)) for g in study.group_ids}, rng)[group])
            obs = np.log(rep)
            x = observed_rounded_log(np, obs, width) if width > 0 else obs
            shown = rep
        else:
            x = table_sample(table, lm + shift, lc, rng)
            shown = x
        lp = log_post(x, CM, CC).reshape(CM.shape)
        im, ic = np.nonzero(lp > lp.max() - 25.0)
        fm = np.linspace(gm[max(im.min() - 2, 0)], gm[min(im.max() + 2, coarse - 1)], fine)
        fc = np.linspace(gc[max(ic.min() - 2, 0)], gc[min(ic.max() + 2, coarse - 1)], fine)
        FM, FC = np.meshgrid(fm, fc, indexing="ij")
        lp = log_post(x, FM, FC).reshape(FM.shape)
        w = np.exp(lp - lp.max())
        row = {"sim": s, "log_mean": lm, "log_cv": lc, "mean": ref * np.exp(lm), "cv": np.exp(lc), "reported": " ".join(f"{v:g}" for v in shown)}
        for name, grid, marg, true in (("log_mean", fm, w.sum(axis=1), lm), ("log_cv", fc, w.sum(axis=0), lc)):
            row[f"pit_{name}"] = _grid_cdf(grid, marg, true)
            q05, q25, q50, q75, q95 = _grid_quantiles(grid, marg, [0.05, 0.25, 0.5, 0.75, 0.95])
            row[f"in50_{name}"] = bool(q25 <= true <= q75)
            row[f"in90_{name}"] = bool(q05 <= true <= q95)
            row[f"median_{name}"] = float(q50)
        rows.append(row)
    return pd.DataFrame(rows)


#: Regions of the group model's prior in which calibration is reported separately: the
#: population mean in rounding units (below 10, reported statistics take few distinct
#: values) and the CV.
REGIONS = {
    "all": lambda mean_units, cv: np.ones(np.shape(cv), bool),
    "mean < 10 units": lambda mean_units, cv: mean_units < 10,
    "mean >= 10 units": lambda mean_units, cv: mean_units >= 10,
    "CV < 1": lambda mean_units, cv: cv < 1,
    "CV 1-2": lambda mean_units, cv: (cv >= 1) & (cv <= 2),
    "CV > 2": lambda mean_units, cv: cv > 2,
}


#: What a region is defined by: the true value, or the posterior median (the estimate).
#: Only regions of the estimate are calibrated for a correct posterior: given the data, the
#: truth is distributed as the posterior, so coverage holds whatever subset of the data is
#: selected.  Selecting by the true value instead selects data that the prior pulls one
#: way: above the prior's centre the posterior is shifted down, so the PIT is above 0.5 and
#: the coverage below nominal even for an exact posterior (the grid check with data drawn
#: from the likelihood itself shows it).
REGION_BASES = ("truth", "estimate")


def grid_check_summary(df: pd.DataFrame, width: float) -> pd.DataFrame:
    """Per region of :data:`REGIONS` (by truth and by estimate, :data:`REGION_BASES`) and
    parameter: studies, mean PIT, 50%/90% coverage and the KS p-value of the PITs against
    the uniform distribution."""
    w = width if width > 0 else 1.0
    rows = []
    for basis in REGION_BASES:
        if basis == "truth":
            units, cv = df["mean"].to_numpy() / w, df["cv"].to_numpy()
        else:
            units = df["mean"].to_numpy() / np.exp(df["log_mean"].to_numpy()) * np.exp(df["median_log_mean"].to_numpy()) / w
            cv = np.exp(df["median_log_cv"].to_numpy())
        for region, rule in REGIONS.items():
            if basis == "estimate" and region == "all":
                continue
            d = df[rule(units, cv)]
            for p in ("log_mean", "log_cv"):
                rows.append(
                    {
                        "basis": basis,
                        "region": region,
                        "parameter": p,
                        "sims": len(d),
                        "pit_mean": float(d[f"pit_{p}"].mean()) if len(d) else np.nan,
                        "coverage_50": float(d[f"in50_{p}"].mean()) if len(d) else np.nan,
                        "coverage_90": float(d[f"in90_{p}"].mean()) if len(d) else np.nan,
                        "ks_p": float(sps.kstest(d[f"pit_{p}"], "uniform").pvalue) if len(d) >= 5 else np.nan,
                    }
                )
    return pd.DataFrame(rows)


def coverage_by_region(result: SbcResult, study: Study) -> pd.DataFrame:
    """SBC coverage of the group model's parameters by region of the prior (:data:`REGIONS`,
    from the mean and CV of the parameter's own group: true values, and posterior medians,
    :data:`REGION_BASES`): simulations, mean rank fraction, 50% and 90% interval coverage
    and the chi-square p of the binned ranks."""
    ranks = result.ranks.copy()
    ranks["group"] = ranks["parameter"].str.extract(r"\[(.*)\]")[0]
    ranks["var"] = ranks["parameter"].map(variable_of)
    ref = float(study.assumption("reference_level", 1.0))
    width = float(study.assumption("rounding", 0.0) or 0.0) or 1.0
    rows = []
    for basis, column in (("truth", "truth"), ("estimate", "median")):
        if column not in ranks:
            continue
        where = ranks.pivot_table(index=["sim", "group"], columns="var", values=column).reset_index()
        where["units"] = ref * np.exp(where["log_mean"]) / width
        where["cv"] = np.exp(where["log_cv"])
        r_all = ranks.merge(where[["sim", "group", "units", "cv"]], on=["sim", "group"])
        for region, rule in REGIONS.items():
            if basis == "estimate" and region == "all":
                continue
            d = r_all[rule(r_all["units"].to_numpy(), r_all["cv"].to_numpy())]
            for p in dict.fromkeys(result.ranks["parameter"]):
                r = d[d["parameter"] == p]
                counts = np.bincount(r["rank"].to_numpy() * N_BINS // (N_RANK_DRAWS + 1), minlength=N_BINS)
                rows.append(
                    {
                        "basis": basis,
                        "region": region,
                        "parameter": p,
                        "sims": len(r),
                        "mean_rank_fraction": float(((r["rank"] + 0.5) / (N_RANK_DRAWS + 1)).mean()) if len(r) else np.nan,
                        "coverage_50": float(r["in_50"].mean()) if len(r) else np.nan,
                        "coverage_90": float(r["in_90"].mean()) if len(r) else np.nan,
                        "p_chi2": float(sps.chisquare(counts).pvalue) if len(r) >= 20 else np.nan,
                    }
                )
    return pd.DataFrame(rows)

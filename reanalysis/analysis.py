"""One analysis of a study, from model building to checks: the pipeline shared by
``scripts/fit.py`` (one fit) and :mod:`reanalysis.sensitivity` (many refits).

The model is looked up by name in the registry (:mod:`reanalysis.registry`): a
:class:`models.interface.Model` builds the PyMC model and computes its estimands, predictive
cohorts and checks, so the runner below holds no model-specific code.

Repeated fits of one model structure can share one compiled log density
(:class:`CompiledCache`): prior parameters enter the graph as shared variables, so scenarios
that change only values (a prior set, an assumption the graph does not read) reuse the
compiled function instead of compiling it again.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import numpy as np

from models.interface import Model
from models.study import Study
from reanalysis.settings import DEFAULT_CHAINS, DEFAULT_PPC_DRAWS, DEFAULT_PRIOR_DRAWS, DEFAULT_PRIORS, DEFAULT_SEED
from reanalysis.supervisor import phase

class AnalysisError(ValueError):
    """An unknown model name or an option the model does not support."""


def model_api(name: str) -> Model:
    """The registered model ``name`` (:func:`reanalysis.registry.get_model`).

    Raises
    ------
    AnalysisError
        If ``name`` is not registered.
    """
    from reanalysis.registry import UnknownModel, get_model

    try:
        return get_model(name)
    except UnknownModel as exc:
        raise AnalysisError(str(exc)) from None


def default_model(study: Study) -> str:
    """The model a fit of ``study`` uses when none is named: the covariate model
    (``hierarchical``) when the study file declares covariates, else ``group``."""
    return "hierarchical" if study.covariates else "group"


def resolve_options(
    study: Study, model: str | None = None, family: str | None = None, priors: str = DEFAULT_PRIORS,
    draws: int | None = None, max_draws: int | None = None, reps: int | None = None,
) -> tuple[str, str, int, int]:
    """``(model, family, draws, max_draws)`` of a fit, the defaults filled in (the one
    place the command line and the API take them from), after checking every option
    against the model.

    Raises
    ------
    AnalysisError
        An unknown model, a family the model does not have, a study the model cannot fit
        (:meth:`models.interface.Model.study_problem`), too few ``reps``, or ``max_draws``
        that :func:`draws_plan` rejects.
    models.priors.PriorError
        A prior set the model does not have.
    """
    model = model or default_model(study)
    api = model_api(model)
    family = family or api.default_family
    if family not in api.families:
        raise AnalysisError(f"--family {family} does not apply to the {model} model; choose one of: {', '.join(api.families)}")
    api.get_priors(priors)
    problem = api.study_problem(study)
    if problem:
        raise AnalysisError(problem)
    problem = reps_problem(api, reps)
    if problem:
        raise AnalysisError(f"--reps {problem}")
    draws, max_draws = draws_plan(api, draws, max_draws)
    return model, family, draws, max_draws


def reps_problem(api: Model, reps: int | None) -> str | None:
    """Why ``reps`` simulated cohorts per evaluation are too few for the model of ``api``
    (``"<reps>: the <model> model needs at least <min>..."``), or None (``None``: its default)."""
    if reps is not None and reps < api.min_reps:
        return f"{reps}: the {api.name} model needs at least {api.min_reps} simulated cohorts per evaluation"
    return None


def draws_plan(api: Model, draws: int | None, max_draws: int | None) -> tuple[int, int]:
    """Kept draws per chain and the most a fit may extend to, from the options given
    (``None``: the model's defaults, ``DEFAULT_DRAWS`` and ``MAX_DRAWS`` of its module).

    Raises
    ------
    AnalysisError
        ``max_draws`` below ``draws``, or above it for a model whose sampler cannot
        continue its chains.
    """
    draws = draws or api.default_draws
    if max_draws is None:
        return draws, max(draws, api.max_draws or draws) if api.extends else draws
    if max_draws < draws:
        raise AnalysisError(f"--max-draws {max_draws} is below --draws {draws}; give at least {draws}")
    if max_draws > draws and not api.extends:
        raise AnalysisError(f"--max-draws: the {api.name} model's sampler (PyMC) draws exactly --draws; drop --max-draws or give --draws {max_draws}")
    return draws, max_draws


@dataclass
class Analysis:
    """Everything one analysis produced.

    Attributes
    ----------
    idata : az.InferenceData
        Posterior (with estimands), sample_stats, observed_data, and prior draws of the
        sampled parameters when requested.
    table : pd.DataFrame
        Estimands (posterior median, 95% HDI, diagnostics); see ``estimand_table``.
    diagnostics : reanalysis.diagnostics.Diagnostics
        Divergences, R-hat and ESS against the thresholds.
    checks : pd.DataFrame
        Posterior predictive checks against every published number.
    pstats : dict
        The simulated statistics behind ``checks``.
    summary : pd.DataFrame or None
        ``az.summary`` of every variable (None when not requested).
    timings : dict
        Seconds per phase: ``build``, ``sample``, ``estimands_and_checks``.
    priors : dict
        The prior set's values (plain numbers).
    free : list of str
        Names of the sampled parameters.
    model : pm.Model
        The model sampled (with a compiled cache, its shared inputs hold this analysis'
        values only until the next analysis of the same structure).
    runner : reanalysis.sampling.CompiledNuts or None
        The JAX sampler of the fit, which can continue its chains (:func:`extend_draws`)
        and give its adaptation for a warm start; None for PyMC's sampler.
    """

    idata: Any
    table: Any
    diagnostics: Any
    checks: Any
    pstats: dict
    summary: Any
    timings: dict
    priors: dict
    free: list
    model: Any
    model_name: str
    family: str
    prior_set: str
    reps: int
    seed: int
    cache_hit: bool = False
    runner: Any = None


def run_analysis(
    study: Study,
    model: str | None = None,
    family: str | None = None,
    priors: str = DEFAULT_PRIORS,
    draws: int | None = None,
    tune: int | None = None,
    chains: int = DEFAULT_CHAINS,
    seed: int = DEFAULT_SEED,
    reps: int | None = None,
    ppc_draws: int = DEFAULT_PPC_DRAWS,
    progressbar: bool = True,
    prior_draws: int = DEFAULT_PRIOR_DRAWS,
    summary: bool = True,
    cores: int | None = None,
    cache: "CompiledCache | None" = None,
    log: Callable[[str], None] | None = None,
    max_draws: int | None = None,
) -> Analysis:
    """Build, sample, compute estimands, diagnostics and predictive checks.

    Parameters
    ----------
    study : Study
        Validated study (possibly modified by a sensitivity scenario).
    model, family, priors : str
        Registered model (:data:`reanalysis.registry.MODELS`; None: :func:`default_model`),
        population family (None: the model's), named prior set.
    draws, tune, chains, seed : int
        NUTS settings (``draws`` and ``tune`` None: the model's); ``seed`` also fixes the
        likelihood's deviates and the checks.
    reps : int, optional
        Simulated cohorts per likelihood evaluation (default: the model's).
    ppc_draws : int
        Posterior draws used for predictive checks.
    progressbar : bool
        Sampling progress bar on stderr.
    prior_draws : int
        Prior draws of the sampled parameters added to ``idata`` (0: none).
    summary : bool
        Also compute ``az.summary`` of every variable.
    cores : int, optional
        Processes for the chains (default: one per chain up to the CPU count); a pool
        worker passes 1 so workers x chains do not oversubscribe the machine.
    cache : CompiledCache, optional
        Reuse compiled log densities across calls (chains then run in this process).
    log : callable, optional
        Receives one-line progress messages.
    max_draws : int, optional
        Up to this many draws per chain (default: the model's, :func:`draws_plan`): while an estimand's bulk or
        tail ESS is below :data:`reanalysis.diagnostics.TARGET_ESS` or its R-hat above
        :data:`reanalysis.diagnostics.MAX_RHAT`, the chains continue by another ``draws`` draws
        each (:func:`extend_draws`; models sampled with JAX only).

    Returns
    -------
    Analysis

    Raises
    ------
    AnalysisError, models.priors.PriorError
        Unknown model, family or prior set.
    """
    model, family, draws, max_draws = resolve_options(study, model, family, priors, draws, max_draws, reps)
    fit = fit_posterior(study, model, family, priors, draws, tune, chains, seed, reps, progressbar, prior_draws, cores, cache, log)
    extend_draws(fit, study, max_draws, log)
    if log:
        log(f"estimands and posterior predictive checks ({ppc_draws} simulated studies of the published sizes)")
    return summarise(fit, study, ppc_draws=ppc_draws, summary=summary)


def estimand_diagnostics(api: Model, idata, study: Study, family: str, model) -> tuple:
    """Add the estimands of the model of ``api`` to ``idata`` (in place; ``model``: the
    PyMC model it was sampled from) and return ``(table, diagnostics)``: the estimand table
    and the sampler diagnostics the gate and the ESS stopping rule read."""
    from reanalysis import diagnostics

    api.add_estimands(idata, study, family, model)
    table = api.estimand_table(idata, study)
    return table, diagnostics.check_diagnostics(idata, table)


def add_estimand_table(fit: Analysis, study: Study) -> Analysis:
    """Add the estimands to ``fit.idata`` (in place) and fill ``fit.table`` and
    ``fit.diagnostics`` (:func:`estimand_diagnostics`); the time goes to
    ``fit.timings["estimands_and_checks"]``."""
    t = time.perf_counter()
    fit.table, fit.diagnostics = estimand_diagnostics(model_api(fit.model_name), fit.idata, study, fit.family, fit.model)
    # a new dict: copies of one fit (sensitivity scenarios sharing a posterior) share the old
    fit.timings = {**fit.timings, "estimands_and_checks": fit.timings.get("estimands_and_checks", 0.0) + time.perf_counter() - t}
    return fit


def extend_draws(fit: Analysis, study: Study, max_draws: int, log: Callable[[str], None] | None = None) -> Analysis:
    """Continue the chains of ``fit`` while its estimands fall short of the ESS target or the
    R-hat gate (:func:`reanalysis.diagnostics.needs_more_draws`) and another block of draws fits
    within ``max_draws`` per chain.

    A sequential stopping rule on the effective sample size (Gong & Flegal 2016; Vats,
    Flegal & Jones 2019): a posterior that mixes well stops at the first block, a harder one
    (another seed, study or prior set) gets more draws instead of failing the gate.  The
    chains keep their adapted step size and mass matrix; the earlier draws stay as they were.
    Divergences are not a reason to extend: more draws do not remove them.  Leaves
    ``fit.table`` and ``fit.diagnostics`` filled in for the final draws.
    """
    from reanalysis.diagnostics import needs_more_draws

    runner = fit.runner
    if fit.table is None:
        add_estimand_table(fit, study)
    if runner is None:
        return fit
    while needs_more_draws(fit.diagnostics) and fit.idata.posterior.attrs["draws"] + runner.draws <= max_draws:
        d = fit.diagnostics
        if log:
            log(
                f"min bulk/tail ESS {d.min_ess_bulk:.0f}/{d.min_ess_tail:.0f}, max R-hat {d.max_rhat:.3f} after "
                f"{fit.idata.posterior.attrs['draws']} draws per chain: {runner.draws} more (up to {max_draws})"
            )
        t = time.perf_counter()
        phase("extend")
        idata = runner.extend()
        # groups the runner does not make (prior draws) carry over
        carried = {g: fit.idata[g] for g in fit.idata.groups() if g not in idata.groups()}
        if carried:  # ArviZ refuses an empty set of groups
            idata.add_groups(carried)
        fit.idata = idata
        fit.timings = {**fit.timings, "sample": fit.timings["sample"] + time.perf_counter() - t}
        add_estimand_table(fit, study)
    return fit


def fit_posterior(
    study: Study,
    model: str | None = None,
    family: str | None = None,
    priors: str = DEFAULT_PRIORS,
    draws: int | None = None,
    tune: int | None = None,
    chains: int = DEFAULT_CHAINS,
    seed: int = DEFAULT_SEED,
    reps: int | None = None,
    progressbar: bool = True,
    prior_draws: int = DEFAULT_PRIOR_DRAWS,
    cores: int | None = None,
    cache: "CompiledCache | None" = None,
    log: Callable[[str], None] | None = None,
    adaptation: Any = None,
    warm_tune: int | None = None,
    reweight_from: Any = None,
    sampler: str | None = None,
    target_accept: float | None = None,
) -> Analysis:
    """The sampling half of :func:`run_analysis` (same parameters): an :class:`Analysis`
    whose ``idata`` holds the posterior (and prior draws) but no estimands or checks yet.

    ``adaptation`` (:class:`reanalysis.nuts_chains.Adaptation`, models sampled with JAX
    only): start the chains from another fit's step sizes, mass matrices and positions,
    with ``warm_tune`` warm-up iterations of step-size adaptation instead of ``tune``.
    ``target_accept`` (JAX only): the step-size adaptation's target instead of the model's
    own (a stricter one after divergences).  With ``cache``, ``runner`` is the cached
    sampler: the next analysis of the same structure in that cache reuses it."""
    from reanalysis.sampling import sample_nuts

    model = model or default_model(study)
    api = model_api(model)
    family = family or api.default_family
    if family not in api.families:
        raise AnalysisError(f"unknown family {family!r} for model {model!r}; choose one of: {', '.join(api.families)}")
    prior_values = api.get_priors(priors)
    reps = reps or api.default_reps
    tune = tune or api.default_tune
    draws = draws or api.default_draws
    use_jax = (sampler or api.sampler) == "jax"
    if reweight_from is not None and (cache is None or not use_jax):
        raise ValueError("importance weighting needs the compiled JAX chains of the compiled-model cache (its runners know their structure)")
    if target_accept is not None and not use_jax:
        raise ValueError("a target acceptance of its own needs the compiled JAX chains")
    if use_jax:
        from reanalysis.sampling import configure_jax

        configure_jax()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    cache_hit, step_factory, runner, data = False, None, None, None
    if cache is None:
        pm_model = api.build_model(study, prior_values, family=family, reps=reps, seed=seed, **precomputed(api, study, family, reps, seed))
    elif use_jax:
        pm_model, runner, data, cache_hit = cache.jax_runner(api, study, prior_values, family, reps, seed, draws, tune, chains)
    else:
        pm_model, step_factory, cache_hit = cache.get(api, study, prior_values, family, reps, seed)
        cores = 1
    timings["build"] = time.perf_counter() - t
    if log:
        reuse = "" if cache is None else f" (compiled model {'reused' if cache_hit else 'new'})"
        log(f"sampling {chains} chains x ({tune} warm-up + {draws} draws), {family} family{reuse}")
    t = time.perf_counter()
    if use_jax:
        # a large log density: XLA fuses it, where PyMC's C backend pays per operation
        # (reanalysis.sampling, module docstring)
        if runner is None:  # compiled here, so "sample" times compilation for both samplers
            from reanalysis.sampling import CompiledNuts

            runner = CompiledNuts(
                pm_model, draws=draws, tune=tune, chains=chains, progressbar=progressbar, chain_method="parallel", log_densities=True,
                graph_key=graph_cache_key(api, study, prior_values, family, reps, seed), **api.nuts_options(),
            )
        if reweight_from is not None:
            idata = runner.reweighted(reweight_from, data, seed)
            runner = None
        else:
            idata = runner.run(seed=seed, data=data, adaptation=adaptation, tune=warm_tune if adaptation is not None else None, target_accept=target_accept)
    else:
        # PyMC's INFO lines ("Multiprocess sampling ...", "NUTS: [log_mean, log_cv]") name
        # internal variables and repeat the toolkit's own log; its warnings still show
        with quiet_logger("pymc"):
            idata = sample_nuts(
                pm_model, draws=draws, tune=tune, chains=chains, seed=seed, progressbar=progressbar, cores=cores, step_factory=step_factory,
                target_accept=api.target_accept,
            )
    timings["sample"] = time.perf_counter() - t
    t = time.perf_counter()
    free = [v.name for v in pm_model.free_RVs]
    if prior_draws:
        import pymc as pm

        if log:
            log(f"sampled in {timings['sample']:.1f} s; drawing {prior_draws} prior draws (prior-versus-posterior figure, contraction)")

        # prior draws of the sampled parameters (prior-versus-posterior figure) and of the
        # deterministics the estimands read (posterior-to-prior contraction)
        names = free + [d.name for d in pm_model.deterministics]
        # a JAX fit compiles nothing on the C backend, and loading its module cache alone
        # takes 7-10 s: the Python linker draws the priors in under 2 s
        compile_kwargs = {"mode": "FAST_COMPILE"} if use_jax else None
        with quiet_logger("pymc.sampling.forward"):  # its "Sampling: [...]" names internal variables
            idata.extend(pm.sample_prior_predictive(draws=prior_draws, model=pm_model, var_names=names, random_seed=seed, compile_kwargs=compile_kwargs))
    timings["prior_draws"] = time.perf_counter() - t
    return Analysis(
        idata=idata, table=None, diagnostics=None, checks=None, pstats={}, summary=None, timings=timings,
        priors=prior_values, free=free, model=pm_model, model_name=model, family=family, prior_set=priors,
        reps=reps, seed=seed, cache_hit=cache_hit, runner=runner,
    )


def without_estimands(fit: Analysis) -> Analysis:
    """A copy of ``fit`` with its own copy of the draws of the sampled model's variables
    only (no estimands, table, diagnostics or checks): ready for :func:`summarise` with
    another study file, e.g. a sensitivity scenario that shares this posterior."""
    import copy

    names = set(fit.model.named_vars)
    idata = copy.deepcopy(fit.idata)
    idata.posterior = idata.posterior[[v for v in idata.posterior.data_vars if v in names]]
    other = copy.copy(fit)
    other.idata, other.table, other.diagnostics, other.checks, other.pstats = idata, None, None, None, {}
    return other


@contextlib.contextmanager
def quiet_logger(name: str, level: int = logging.WARNING):
    """Raise logger ``name`` to ``level`` for the duration (its INFO lines are not for users)."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


def summarise(fit: Analysis, study: Study, ppc_draws: int = 2000, summary: bool = True) -> Analysis:
    """Add estimands, diagnostics and predictive checks for ``study`` to a fitted posterior.

    ``fit.idata`` gains the estimands in place (:func:`add_estimand_table`, unless
    ``fit.table`` holds them already, as after :func:`extend_draws`); pass a copy to
    summarise one posterior for several studies (e.g. scenarios that differ only in
    assumptions the model does not read).
    Returns ``fit`` with ``table``, ``diagnostics``, ``checks``, ``pstats`` and ``summary``
    filled in; the prior-draw time is folded into ``timings["estimands_and_checks"]``.
    """
    from models.checks import COLUMNS as CHECK_COLUMNS
    from models.estimands import HDI_PROB
    from models.estimands import summary as az_summary

    api = model_api(fit.model_name)
    if fit.table is None:
        add_estimand_table(fit, study)
    t = time.perf_counter()
    idata, family = fit.idata, fit.family
    cohorts = api.predictive_cohorts(idata, study, family, n_draws=ppc_draws, seed=fit.seed, model=fit.model)
    fit.pstats = api.predictive_statistics(cohorts, study)
    fit.checks = api.check_table(fit.pstats, study)
    missing = [c for c in CHECK_COLUMNS if c not in fit.checks.columns]
    if missing:
        # a model's own check table feeds the figures, the report and the published-items account
        raise TypeError(f"the {fit.model_name} model's check_table lacks columns {', '.join(missing)} (models.checks.COLUMNS; models.checks.number_row builds a row)")
    fit.summary = az_summary(idata, hdi_prob=HDI_PROB, round_to="none") if summary else None
    timings = {k: v for k, v in fit.timings.items() if k != "prior_draws"}
    timings["estimands_and_checks"] = fit.timings.get("prior_draws", 0.0) + fit.timings.get("estimands_and_checks", 0.0) + time.perf_counter() - t
    fit.timings = timings
    return fit


# -- compiled-model cache --------------------------------------------------------------------
#: Prefix of the shared variables that carry prior parameters.
PRIOR_PREFIX = "prior."


def _shared_priors(priors: dict) -> tuple[dict, dict]:
    """A copy of ``priors`` whose numeric parameters are PyTensor shared scalars, and those
    shared variables by name (``prior.<parameter>.<key>``).  A ``fixed`` prior's value stays
    a number: it sets the model's structure (e.g. the residual df fixes the likelihood's
    scale-mixture nodes), so two values are two compiled models."""
    import pytensor

    out, shared = {}, {}
    for param, spec in priors.items():
        out[param] = {}
        for key, value in spec.items():
            if key != "dist" and spec.get("dist") != "fixed" and isinstance(value, (int, float)) and not isinstance(value, bool):
                sv = pytensor.shared(np.float64(value), name=f"{PRIOR_PREFIX}{param}.{key}")
                shared[sv.name] = sv
                out[param][key] = sv
            else:
                out[param][key] = value
    return out, shared


def structure_key(model, terms: list | None = None) -> str:
    """SHA-256 of everything a compiled NUTS step depends on except shared-variable values.

    Covers the log density and deterministics as graphs (operations, constants by value,
    shared variables by name, type and shape), the initial values and the coords.  Two
    models with the same key can share one compiled ``logp_dlogp`` function once their
    shared variables hold the same values.  ``terms``: the log density as the terms of
    :func:`reanalysis.sampling.log_density_terms`, when the caller has them (each
    ``model.logp`` call takes seconds for a large model); keys of one kind compare only
    with keys of the same kind.
    """
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import io_toposort

    h = hashlib.sha256()
    outputs = (list(terms) if terms is not None else [model.logp()]) + list(model.deterministics)
    ids: dict = {}

    def leaf(v) -> str:
        if isinstance(v, SharedVariable):
            value = np.asarray(v.get_value(borrow=True))
            return f"shared:{v.name}:{v.type}:{value.shape}"
        if isinstance(v, Constant):
            data = np.asarray(v.data)
            # object constants (slices) by value: their bytes are pointers, new every build
            body = repr(v.data).encode() if data.dtype == object else data.tobytes()
            return f"const:{v.type}:{data.shape}:{hashlib.sha256(body).hexdigest()}"
        return f"var:{v.name}:{v.type}"

    def ref(v) -> str:
        if v not in ids:
            ids[v] = f"L{len(ids)}"
            h.update(f"{ids[v]}={leaf(v)};".encode())
        return ids[v]

    for node in io_toposort([], outputs):
        args = ",".join(ref(i) for i in node.inputs)
        h.update(f"{node.op}({args});".encode())
        for o in node.outputs:
            ids[o] = f"N{len(ids)}"
            h.update(f"{ids[o]};".encode())
    for o in outputs:
        h.update(f"out:{ids.get(o, ref(o))};".encode())
    for rv, iv in model.rvs_to_initial_values.items():
        h.update(f"init:{rv.name}:{np.asarray(iv).tobytes().hex() if iv is not None else None};".encode())
    h.update(repr(sorted((k, tuple(v)) for k, v in model.coords.items())).encode())
    return h.hexdigest()


@dataclass
class _Entry:
    model: Any
    shared: dict
    compiled: Any  # PyMC's compiled logp_dlogp function, or a CompiledNuts (JAX models)


@dataclass
class CompiledCache:
    """Per-process cache of compiled log densities, keyed by :func:`structure_key`.

    A model is built for every analysis (cheap); when its structure is already cached, the
    cached model is sampled instead, with its shared variables (prior parameters, data)
    set to the new values, so PyTensor does not compile the same log density again.  The
    oldest entry is dropped beyond ``size`` entries.
    """

    size: int = 8
    entries: "OrderedDict[str, _Entry]" = field(default_factory=OrderedDict)
    hits: int = 0
    misses: int = 0
    #: the last build (:meth:`_keyed`): a scenario whose importance weighting failed is
    #: then sampled without building its model again
    last: tuple | None = None

    def get(self, api: Model, study: Study, priors: dict, family: str, reps: int, seed: int):
        """Return ``(model, step_factory, hit)`` for an analysis with these settings.

        ``step_factory(chains, seed, target_accept)`` gives per-chain initial points and a NUTS step on the
        cached compiled function, initialised as ``pm.sample(init="jitter+adapt_diag")``.
        """
        model, key, shared, _ = self._keyed(api, study, priors, family, reps, seed)
        entry = self.entries.get(key)
        hit = entry is not None
        if hit:
            self.hits += 1
            self.entries.move_to_end(key)
            for name, sv in shared.items():
                if name in entry.shared:
                    entry.shared[name].set_value(sv.get_value())
        else:
            self.misses += 1
            entry = _Entry(model, shared, None)
            self.entries[key] = entry
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return entry.model, (lambda chains, seed, target_accept=0.8: self._step(entry, chains, seed, target_accept)), hit

    def jax_runner(self, api: Model, study: Study, priors: dict, family: str, reps: int, seed: int, draws: int, tune: int, chains: int):
        """Return ``(model, runner, data, hit)`` for a model that samples with JAX.

        ``model`` is built for these settings (its design and shared values are this
        analysis' own, for the estimands and checks); ``runner`` is the
        :class:`reanalysis.sampling.CompiledNuts` of its structure, created on the first call
        with every named shared input (data and prior parameters) as a replaceable input,
        so a later scenario of the same structure skips the graph conversion (about 15 s
        for the covariate model); ``data`` holds this model's values of those inputs.
        The runner's programs take those values as arguments: new values compile nothing.
        The runner has the model's own sampler settings
        (:meth:`models.interface.Model.nuts_options`); a run's target acceptance is an
        argument of :meth:`reanalysis.sampling.CompiledNuts.run`, so a stricter one needs no
        other runner.
        """
        from reanalysis.sampling import CompiledNuts, data_inputs

        model, key, shared, terms = self._keyed(api, study, priors, family, reps, seed)
        shared = data_inputs(model, shared=shared)
        full = f"{key}:jax:{draws}:{tune}:{chains}"
        entry = self.entries.get(full)
        hit = entry is not None
        if hit:
            self.hits += 1
            self.entries.move_to_end(full)
        else:
            self.misses += 1
            runner = CompiledNuts(
                model, sorted(shared), draws=draws, tune=tune, chains=chains, progressbar=False, chain_method="parallel", log_densities=True,
                terms=terms, **api.nuts_options(),
            )
            runner.structure = full
            entry = self.entries[full] = _Entry(model, shared, runner)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        data = {name: np.asarray(sv.get_value()) for name, sv in shared.items()}
        return model, entry.compiled, data, hit

    def _keyed(self, api: Model, study: Study, priors: dict, family: str, reps: int, seed: int):
        """:func:`build_keyed` with the log density's terms it computed
        (:func:`reanalysis.sampling.log_density_terms`: a new runner reuses them), or its
        last result when asked again for the same study object and settings (the model's
        shared values are unchanged: a cached model holds its own)."""
        settings = (api.name, json.dumps(priors, sort_keys=True, default=repr), family, reps, seed)
        if self.last is not None and self.last[0] is study and self.last[1] == settings:
            return self.last[2]
        built = _build_keyed(api, study, priors, family, reps, seed)
        self.last = (study, settings, built)
        return built

    @staticmethod
    def _step(entry: _Entry, chains: int, seed: int, target_accept: float = 0.8):
        import pymc as pm
        from pymc.blocking import DictToArrayBijection
        from pymc.sampling.mcmc import _get_seeds_per_chain, _init_jitter
        from pymc.step_methods.hmc import quadpotential

        model = entry.model
        if entry.compiled is None:
            entry.compiled = model.logp_dlogp_function(ravel_inputs=True)
            entry.compiled.trust_input = True
        func = entry.compiled
        seeds = _get_seeds_per_chain(seed, chains)

        def logp_fn(ip):
            q, _ = DictToArrayBijection.map(ip)
            return func([q], extra_vars={})[0]

        # the same initialisation as pm.sample's default (init_nuts, "jitter+adapt_diag"),
        # on the cached function, so a reused model samples exactly as a fresh one
        points = _init_jitter(model, [None] * chains, seeds=seeds, jitter=True, jitter_max_retries=10, logp_fn=logp_fn)
        data = [DictToArrayBijection.map(p).data for p in points]
        mean = np.mean(data, axis=0)
        potential = quadpotential.QuadPotentialDiagAdapt(len(mean), mean, np.ones_like(mean), 10, rng=seeds[0])
        step = pm.NUTS(potential=potential, model=model, rng=seeds[0], initial_point=points[0], logp_dlogp_func=func, target_accept=target_accept)
        names = {v.name for v in model.value_vars}
        return [{k: v for k, v in p.items() if k in names} for p in points], step


def precomputed(api: Model, study: Study, family: str, reps: int | None, seed: int) -> dict:
    """The model's precomputed build options (:meth:`models.interface.Model.precomputed`),
    kept between runs in the table cache (:class:`reanalysis.disk_cache.DiskStore`)."""
    from reanalysis.disk_cache import DiskStore

    return api.precomputed(study, family, reps, seed, store=DiskStore())


def build_keyed(api: Model, study: Study, priors: dict, family: str, reps: int, seed: int):
    """Build a model with prior parameters as shared variables where the builder allows it.

    Returns ``(model, structure key, shared variables by name)``; see :func:`structure_key`.
    """
    return _build_keyed(api, study, priors, family, reps, seed)[:3]


def _build_keyed(api: Model, study: Study, priors: dict, family: str, reps: int, seed: int):
    """:func:`build_keyed`, and the terms of the log density the key was taken from."""
    from reanalysis.sampling import named_shared_inputs

    options = precomputed(api, study, family, reps, seed)
    try:
        tensor_priors, _ = _shared_priors(priors)
        model = api.build_model(study, tensor_priors, family=family, reps=reps, seed=seed, **options)
    except Exception as exc:  # noqa: BLE001
        # the builder needs a prior parameter as a number (e.g. for starting values; PyTensor
        # raises TypeError there): then the prior values are part of the structure.  Any
        # real error of the builder is raised again by this second call.
        model = api.build_model(study, priors, family=family, reps=reps, seed=seed, **options)
        # said aloud: a silent fallback once hid that no two prior sets shared a sampler
        warnings.warn(
            f"{api.name} model: prior values built in as constants because the builder rejected them as tensors "
            f"({type(exc).__name__}: {exc}); scenarios that differ only in prior values will each compile their own sampler",
            RuntimeWarning,
            stacklevel=2,
        )
    from reanalysis.sampling import log_density_terms

    # one log-density graph for the key and the shared inputs (two would take twice as long)
    terms = log_density_terms(model)
    key = f"{api.name}:{structure_key(model, terms[0])}"
    return model, key, named_shared_inputs(model, terms), terms


#: Packages whose code shapes a model's graph or its rewriting for JAX.
GRAPH_PACKAGES = ("pymc", "pytensor", "numpy", "scipy", "jax", "jaxlib")


def source_files() -> dict:
    """Every Python source file of the ``models`` and ``reanalysis`` packages, sub-packages
    included: ``{path relative to the packages' parent (POSIX): absolute path}``, sorted.
    What a cached graph may depend on (:func:`graph_cache_key`)."""
    from pathlib import Path

    import models

    packages = (Path(models.__file__).resolve().parent, Path(__file__).resolve().parent)
    root = packages[0].parent
    return dict(sorted((p.relative_to(root).as_posix(), p) for pkg in packages for p in pkg.rglob("*.py")))


def graph_cache_key(api: Model, study: Study, priors: dict, family: str, reps: int, seed: int) -> str:
    """SHA-256 of everything ``api.build_model(study, priors, family=, reps=, seed=)`` and the
    rewriting of its graph depend on: the model, the study as validated, the prior values,
    family, reps and seed, the source of both packages (:func:`source_files`) and the versions of
    :data:`GRAPH_PACKAGES` (the key of :class:`reanalysis.sampling.CompiledNuts`' graph cache).

    Unlike :func:`structure_key` it needs no model: computing a large model's log density,
    which that key hashes, is what the cache saves.
    """
    import pytensor

    from reanalysis.results import package_versions

    h = hashlib.sha256()
    for part in (api.name, study.model_dump_json(), json.dumps(priors, sort_keys=True, default=repr), family, reps, seed):
        h.update(f"{part}\x00".encode())
    for name, path in source_files().items():
        h.update(name.encode() + b"\x00" + path.read_bytes())
    h.update(json.dumps(package_versions(GRAPH_PACKAGES), sort_keys=True).encode())
    h.update(f"floatX={pytensor.config.floatX}".encode())
    return h.hexdigest()


class BuildKeys(NamedTuple):
    """What a grid needs to know of one build before it samples: see :func:`build_keys`."""

    #: Equal for two analyses exactly when they sample the same posterior with the same draws.
    posterior: str
    #: Equal when they sample with one compiled program (:func:`build_keyed`).
    structure: str
    #: The sampler's parameters, name -> shape (:func:`reanalysis.sampling.parameter_layout`):
    #: one run's adaptation can start another's chains only when these are equal.
    layout: dict


def build_keys(api: Model, study: Study, priors: dict, family: str, reps: int, seed: int) -> BuildKeys:
    """The :class:`BuildKeys` of one build.  The posterior key covers the structure, the
    shared-variable values and the seed (sampler settings are not included; callers add
    them)."""
    from reanalysis.sampling import parameter_layout

    model, key, shared = build_keyed(api, study, priors, family, reps, seed)
    h = hashlib.sha256(key.encode())
    for name in sorted(shared):
        value = np.asarray(shared[name].get_value(borrow=True))
        h.update(f"{name}:{value.dtype}:{value.shape}:".encode() + value.tobytes())
    h.update(f"seed:{seed}".encode())
    return BuildKeys(h.hexdigest(), key, parameter_layout(model))


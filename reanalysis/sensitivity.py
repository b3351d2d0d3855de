"""Sensitivity runs: a grid of scenarios around the default analysis, run in parallel, and
the tables that say which conclusions survive.

A *scenario* is a named set of overrides of the default analysis (:class:`Scenario`): the
model, the population family, the prior set, which published statistics enter the
likelihood (``all``, ``means_sds``, ``medians``) and values of the study's declared
assumptions.  A *grid file* (YAML, :class:`Grid`) lists the base analysis, the sampler
settings, one-at-a-time variations (generated: every prior set, every family, every
statistics subset, every ``vary:`` value of every declared assumption), a small full
factorial, and any hand-written scenarios.  It is validated once, like a study file: an
unknown key, model, family, prior set, statistics subset or assumption is a one-line error
naming the file and the field.

Scenarios that sample the same posterior (same compiled structure, same values, same seed:
e.g. an assumption that only the checks read) are sampled once and summarised for each of
them.  Distinct posteriors run as tasks on a local process pool or a Dask cluster; each
worker process keeps a :class:`reanalysis.analysis.CompiledCache`, so scenarios that change only
values (a prior set) reuse the compiled log density.
"""
from __future__ import annotations

import copy
import itertools
import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import Field, ValidationError

from models.study import StrictModel, Study, first_error, one_line, StudyLoader
from models.labels import variable_of
from reanalysis.settings import EXIT_ERROR, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK  # noqa: F401 (the script's exit codes)
from reanalysis.execution import quiet_libraries, run_tasks
from reanalysis.supervisor import phase

#: Statistics kept by each ``statistics`` subset (None: all the study reports).
STATISTIC_SUBSETS: dict[str, tuple[str, ...] | None] = {
    "all": None,
    "means_sds": ("mean", "sd"),
    "medians": ("median",),
}
Subset = Literal["all", "means_sds", "medians"]
EVERY = "every"

#: Null value of each effect estimand (by variable name): its "no difference" value.
EFFECT_NULLS = {"ratio_of_medians": 1.0, "ratio_of_means": 1.0, "difference_in_medians": 0.0, "prob_superiority": 0.5}
#: P(ratio > threshold) conclusions flip when the probability crosses this.
CLAIM_PROBABILITY_CUT = 0.5



class GridError(Exception):
    """An invalid grid file; ``str()`` is the one-line message ``<file>: <field>: <problem>``."""


# -- grid schema -----------------------------------------------------------------------------
class Overrides(StrictModel):
    """Overrides of the default analysis; unset fields keep the base analysis' value."""

    model: str | None = None
    family: str | None = None
    priors: str | None = None
    statistics: Subset | None = None
    assumptions: dict[str, Any] = Field(default_factory=dict)


class Scenario(Overrides):
    """A hand-written scenario: a name and its overrides."""

    name: str = Field(min_length=1)


class Sampling(StrictModel):
    """Sampler settings shared by every scenario."""

    draws: int = Field(default=1000, ge=1, strict=True)
    tune: int = Field(default=1000, ge=1, strict=True)
    chains: int = Field(default=4, ge=2, strict=True)
    seed: int = Field(default=20180302, strict=True)
    reps: int | None = Field(default=None, ge=1, strict=True)  # each model's own minimum: check_reps
    ppc_draws: int = Field(default=1000, ge=1, strict=True)
    #: ESS stopping rule: continue a scenario's chains by ``draws`` while an estimand falls
    #: short of the ESS target or the R-hat gate, up to this many draws per chain (None: the
    #: model's own limit; models whose sampler cannot continue draw exactly ``draws``)
    max_draws: int | None = Field(default=None, ge=1, strict=True)
    #: start each scenario whose parameters have the default scenario's layout from the
    #: default's adapted step sizes, mass matrices and last positions (models sampled with
    #: JAX), with ``warm_tune`` iterations of step-size adaptation; a warm-started scenario
    #: that fails its diagnostics is refitted from a cold start with ``tune``
    warm_start: bool = True
    warm_tune: int = Field(default=200, ge=1, strict=True)
    #: before a warm start, importance-weight the default scenario's draws towards the
    #: scenario's posterior when both have one model structure (a scenario that changes only
    #: values: a prior set, an assumption the likelihood reads as a number); used when the
    #: Pareto k is below 0.7 and the resampled draws pass the diagnostics gate, sampled
    #: otherwise (reanalysis/reweighting.py)
    reweight: bool = True
    #: a scenario sampled with the compiled JAX chains whose fit diverged is sampled again
    #: at this target acceptance (smaller steps; a warm start again, then cold), when it is
    #: above the model's own; None: no second attempt (docs/decisions/divergence-retry.md)
    retry_target_accept: float | None = Field(default=0.999, gt=0.5, lt=1.0)
    #: ``model``: each scenario samples with its model's own sampler (as ``fit.py`` does);
    #: ``jax``: with the compiled JAX chains whatever the model's own sampler (a model
    #: registered with PyMC's): compiled once per structure in each worker, so that warm starts,
    #: importance weighting and the ESS rule apply (docs/decisions/warm-starts.md)
    sampler: Literal["model", "jax"] = "model"


class OneAtATime(StrictModel):
    """Variations of one choice at a time; ``every`` means every available value, and
    ``assumptions: from_study`` every ``vary:`` value of every declared assumption."""

    model: list[str] | None = None
    priors: Literal["every"] | list[str] | None = None
    family: Literal["every"] | list[str] | None = None
    statistics: Literal["every"] | list[Subset] | None = None
    assumptions: Literal["from_study"] | dict[str, list[Any]] | None = None


class Factorial(StrictModel):
    """A full factorial: every combination of the listed values."""

    model: list[str] | None = Field(default=None, min_length=1)
    priors: list[str] | None = Field(default=None, min_length=1)
    family: list[str] | None = Field(default=None, min_length=1)
    statistics: list[Subset] | None = Field(default=None, min_length=1)
    assumptions: dict[str, list[Any]] = Field(default_factory=dict)
    #: why these choices (kept in the manifest)
    reason: str | None = None


class LeaveOut(StrictModel):
    """Scenarios the grid leaves out, and why: every scenario whose settings equal all the
    given ones (e.g. a family with a statistics subset the model cannot sample)."""

    model: str | None = None
    family: str | None = None
    priors: str | None = None
    statistics: Subset | None = None
    reason: str = Field(min_length=1)

    def matches(self, spec: "Spec") -> bool:
        given = self.model_dump(exclude={"reason"}, exclude_none=True)
        return bool(given) and all(getattr(spec, k) == v for k, v in given.items())


class Grid(StrictModel):
    """A validated grid file."""

    description: str | None = None
    base: Overrides = Field(default_factory=Overrides)
    sampling: Sampling = Field(default_factory=Sampling)
    one_at_a_time: OneAtATime = Field(default_factory=OneAtATime)
    factorial: Factorial | None = None
    scenarios: list[Scenario] = Field(default_factory=list)
    leave_out: list[LeaveOut] = Field(default_factory=list)


# -- resolved scenarios ----------------------------------------------------------------------
@dataclass
class Spec:
    """A fully resolved scenario: every setting filled in, overrides applied to the study."""

    name: str
    kind: str  # default | one_at_a_time | factorial | custom
    model: str
    family: str
    priors: str
    statistics: str
    assumptions: dict[str, Any]  # only those that differ from the study file
    study: Study = field(repr=False)

    @property
    def settings(self) -> tuple:
        return (self.model, self.family, self.priors, self.statistics, _canon(self.assumptions))

    def changes(self, base: "Spec") -> str:
        """What differs from ``base``, e.g. ``priors=wide, assumption rounding=0``."""
        out = [f"{k}={getattr(self, k)}" for k in ("model", "family", "priors", "statistics") if getattr(self, k) != getattr(base, k)]
        out += [f"{k}={_short(v)}" for k, v in sorted(self.assumptions.items())]
        return ", ".join(out) or "none"


def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _short(value) -> str:
    """A compact one-line rendering of an assumption value."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def apply_overrides(study: Study, statistics: str = "all", assumptions: dict | None = None) -> Study:
    """A copy of ``study`` with only the ``statistics`` subset reported and the given
    assumption values, validated again as a study file.

    Raises
    ------
    ValueError
        ``"<field>: <problem>"`` for an unknown subset or assumption, or a study that the
        overrides make invalid (e.g. a group left without any statistic).
    """
    if statistics not in STATISTIC_SUBSETS:
        raise ValueError(f"statistics: unknown subset {statistics!r} (choose one of: {', '.join(STATISTIC_SUBSETS)})")
    keep = STATISTIC_SUBSETS[statistics]
    data = study.model_dump()
    if keep is not None:
        for gid, grp in data["groups"].items():
            kept = {k: v for k, v in grp["statistics"].items() if k in keep}
            if not kept:
                raise ValueError(
                    f"statistics: subset {statistics!r} leaves group {gid!r} without a statistic "
                    f"(it reports {', '.join(grp['statistics'])})"
                )
            grp["statistics"] = kept
    for name, value in (assumptions or {}).items():
        if name not in data["assumptions"]:
            raise ValueError(
                f"assumptions.{name}: not an assumption of study {study.id} (declared: {', '.join(data['assumptions']) or 'none'})"
            )
        data["assumptions"][name]["value"] = value
    try:
        new = Study.model_validate(data)
    except ValidationError as exc:
        raise ValueError(first_error(exc)) from None
    return new.model_copy(update={"path": study.path, "sha256": study.sha256})


def load_grid(path: str | Path) -> Grid:
    """Read and validate the schema of a grid file (safe YAML, no duplicate keys).

    Raises
    ------
    GridError
        One line, ``"<file>: <field>: <problem>"``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GridError(f"{path}: cannot read the grid file ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = yaml.load(text, Loader=StudyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise GridError(one_line(f"{path}: invalid YAML: {getattr(exc, 'problem', None) or exc}")) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise GridError(f"{path}: the top level must be a mapping (base, sampling, one_at_a_time, factorial, scenarios)")
    try:
        return Grid.model_validate(data)
    except ValidationError as exc:
        raise GridError(one_line(f"{path}: {first_error(exc, Grid)}")) from None


def check_reps(specs: list[Spec], reps: int | None, where: str) -> None:
    """Raise a one-line :class:`GridError` naming ``where`` when ``reps`` is below the
    minimum of a model some scenario fits (``None``: each model's default)."""
    from reanalysis.analysis import model_api, reps_problem

    for model in dict.fromkeys(sp.model for sp in specs):
        problem = reps_problem(model_api(model), reps)
        if problem:
            raise GridError(f"{where} {problem}")


def expand_grid(grid: Grid, study: Study, path: str | Path = "grid", left_out: list | None = None) -> list[Spec]:
    """Resolve a grid against a study: the default scenario first, then one-at-a-time
    variations, the factorial and the hand-written scenarios, without duplicates (a
    scenario with the same settings as an earlier one is dropped) and without those the
    grid's ``leave_out`` names; ``left_out``, when given, receives ``{"name", "reason"}``
    of each of those.

    Raises
    ------
    GridError
        One line naming the file and the field, for an unknown model, family, prior set,
        statistics subset or assumption, or overrides that make the study invalid.
    """
    from reanalysis.analysis import model_api
    from reanalysis.registry import MODELS

    def fail(where: str, problem: str) -> GridError:
        return GridError(one_line(f"{path}: {where}: {problem}"))

    def resolve(where: str, kind: str, name: str, ov: Overrides | dict, base: Spec | None) -> Spec:
        ov = ov if isinstance(ov, dict) else ov.model_dump(exclude_unset=True)
        model = ov.get("model") or (base.model if base else "group")
        if model not in MODELS:
            raise fail(f"{where}.model", f"unknown model {model!r} (choose one of: {', '.join(MODELS)})")
        api = model_api(model)
        same_model = base is not None and base.model == model
        family = ov.get("family") or (base.family if same_model else api.default_family)
        if family not in api.families:
            raise fail(f"{where}.family", f"unknown family {family!r} for model {model!r} (choose one of: {', '.join(api.families)})")
        priors = ov.get("priors") or (base.priors if same_model else "default")
        sets = api.prior_set_names()
        if priors not in sets:
            raise fail(f"{where}.priors", f"unknown prior set {priors!r} for model {model!r} (choose one of: {', '.join(sets)})")
        statistics = ov.get("statistics") or (base.statistics if base else "all")
        assumptions = dict(base.assumptions) if base else {}
        assumptions.update(ov.get("assumptions") or {})
        for a, value in list(assumptions.items()):
            if a not in study.assumptions:
                raise fail(f"{where}.assumptions.{a}", f"not an assumption of study {study.id} (declared: {', '.join(study.assumptions) or 'none'})")
            if _canon(value) == _canon(study.assumptions[a].value):
                del assumptions[a]  # the study's own value: no override
        try:
            new_study = apply_overrides(study, statistics, assumptions)
        except ValueError as exc:
            raise fail(where, str(exc)) from None
        return Spec(name, kind, model, family, priors, statistics, assumptions, new_study)

    base = resolve("base", "default", "default", grid.base, None)
    specs = [base]
    oat = grid.one_at_a_time
    api = model_api(base.model)

    def values(field_name: str, given, every: list) -> list:
        return every if given == EVERY else list(given or [])

    for m in oat.model or []:
        specs.append(resolve("one_at_a_time", "one_at_a_time", f"model={m}", {"model": m}, base))
    for p in values("priors", oat.priors, api.prior_set_names()):
        specs.append(resolve("one_at_a_time", "one_at_a_time", f"priors={p}", {"priors": p}, base))
    for f in values("family", oat.family, list(api.families)):
        specs.append(resolve("one_at_a_time", "one_at_a_time", f"family={f}", {"family": f}, base))
    for s in values("statistics", oat.statistics, list(STATISTIC_SUBSETS)):
        specs.append(resolve("one_at_a_time", "one_at_a_time", f"statistics={s}", {"statistics": s}, base))
    if oat.assumptions == "from_study":
        varied = {a: list(spec.vary) for a, spec in study.assumptions.items() if spec.vary}
    else:
        varied = dict(oat.assumptions or {})
    for a, vals in varied.items():
        for v in vals:
            specs.append(resolve("one_at_a_time", "one_at_a_time", f"{a}={_short(v)}", {"assumptions": {a: v}}, base))

    fac = grid.factorial
    if fac is not None:
        axes = [(k, getattr(fac, k)) for k in ("model", "priors", "family", "statistics") if getattr(fac, k)]
        axes += [(f"assumptions.{a}", vals) for a, vals in fac.assumptions.items()]
        for combo in itertools.product(*[vals for _, vals in axes]):
            ov: dict[str, Any] = {"assumptions": {}}
            for (k, _), v in zip(axes, combo):
                if k.startswith("assumptions."):
                    ov["assumptions"][k.split(".", 1)[1]] = v
                else:
                    ov[k] = v
            name = "factorial: " + ", ".join(f"{k.removeprefix('assumptions.')}={_short(v)}" for (k, _), v in zip(axes, combo))
            specs.append(resolve("factorial", "factorial", name, ov, base))
    for i, sc in enumerate(grid.scenarios):
        ov = sc.model_dump(exclude_unset=True)
        ov.pop("name")
        specs.append(resolve(f"scenarios.{i}", "custom", sc.name, ov, base))

    for i, rule in enumerate(grid.leave_out):
        if rule.matches(base):
            raise fail(f"leave_out.{i}", "it matches the default scenario, which every other scenario is compared with")
    out, seen, names = [], set(), set()
    for sp in specs:
        if sp.settings in seen:
            continue
        if sp.name in names:
            raise fail("scenarios", f"scenario name {sp.name!r} is used twice")
        seen.add(sp.settings)
        names.add(sp.name)
        rule = next((r for r in grid.leave_out if r.matches(sp)), None)
        if rule is not None:
            if left_out is not None:
                left_out.append({"name": sp.name, "reason": " ".join(rule.reason.split())})
            continue
        out.append(sp)
    return out


# -- running ---------------------------------------------------------------------------------
#: One compiled-model cache per worker process (threads of a Dask worker share it, under
#: the lock: a cached model's shared inputs hold one scenario's values at a time).
_CACHE = None
_CACHE_LOCK = threading.Lock()


def _worker_cache():
    global _CACHE
    if _CACHE is None:
        from reanalysis.analysis import CompiledCache

        _CACHE = CompiledCache()
    return _CACHE


def run_task(task: dict) -> list[dict]:
    """Sample one posterior and summarise it for every scenario that shares it.

    ``task`` holds ``members`` (list of :class:`Spec` as dicts with the modified study),
    ``sampling`` (a :class:`Sampling` dict), ``cache`` (bool), ``psens`` (bool: also compute
    power-scaling sensitivity, for the default scenario) and optionally ``adaptation`` (a
    warm start, :class:`reanalysis.nuts_chains.Adaptation`), ``keep_adaptation`` (bool:
    return this fit's adaptation, for the default scenario) and ``cold_reason`` (why a
    cold start, said in its result's ``start``).  Returns one result dict per
    member (see :func:`_scenario_result`); an exception becomes a failed result, never a
    lost task.  Runs in a worker process (pool or Dask).
    """
    import pytensor

    from reanalysis.analysis import summarise, without_estimands
    from reanalysis.jax_setup import compile_counts

    # a Dask worker runs no pool initializer: the task quietens its own process
    quiet_libraries()
    s = task["sampling"]
    members = task["members"]
    first = members[0]
    t0 = time.perf_counter()
    counts0 = compile_counts()
    out = []
    try:
        use_cache = task.get("cache", True)
        lock = _CACHE_LOCK if use_cache else _NullLock()
        # extreme scenarios (e.g. a CV the data barely constrain) give degenerate draws, such
        # as a gamma median that underflows to 0 and a ratio of medians that is infinite;
        # their diagnostics say so, numpy's warnings would only clutter stderr
        # no stack traces on graph nodes (as for the posterior keys): an error becomes a
        # one-line reason, and building a graph is faster without them
        with lock, np.errstate(divide="ignore", invalid="ignore", over="ignore"), pytensor.config.change_flags(traceback__limit=0):
            fit, start = _fit_with_fallback(task, first, s, _worker_cache() if use_cache else None)
            psens = None
            if task.get("psens"):
                try:
                    psens = _psens_table(fit, first["study"])
                except Exception as exc:  # noqa: BLE001 - the cheap diagnostic must not fail the scenario
                    psens = [{"error": _reason(exc)}]  # psens_comparison writes it into psens.csv
            adaptation = base = None
            if task.get("keep_adaptation") and fit.runner is not None:
                adaptation = fit.runner.adaptation()
                # only draws that passed the gate may stand in for another scenario's
                base = fit.runner.base_draws(first["name"]) if s.get("reweight") and fit.diagnostics.ok else None
        sample_seconds = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - any sampler error fails the scenarios, not the run
        reason = _reason(exc)
        return [_failed(m, reason, time.perf_counter() - t0) for m in members]
    compiled = compile_counts(since=counts0)
    for i, m in enumerate(members):
        t1 = time.perf_counter()
        try:
            # the first member's estimands came with the ESS rule; another member (another
            # study file, e.g. an assumption only the estimands or checks read) gets its own
            this = copy.copy(fit) if i == 0 else without_estimands(fit)
            if i == 0 and len(members) > 1:
                this.idata = copy.deepcopy(fit.idata)
            # and simulate degenerate cohorts (as above)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                summarise(this, m["study"], ppc_draws=s["ppc_draws"], summary=False)
            shared = i > 0
            out.append(_scenario_result(m, this, 0.0 if shared else sample_seconds, time.perf_counter() - t1, shared_with=first["name"] if shared else None,
                                        psens=None if shared else psens, start=start, compiled=None if shared else compiled,
                                        adaptation=None if shared else adaptation, base=None if shared else base))
        except Exception as exc:  # noqa: BLE001
            out.append(_failed(m, _reason(exc), time.perf_counter() - t1))
    return out


def _fit_with_fallback(task: dict, member: dict, s: dict, cache) -> tuple:
    """Sample ``member``'s posterior as ``task`` asks; returns ``(fit, start)``, ``start``
    saying where the draws came from: ``cold``, ``warm``, ``importance-weighted from
    <scenario> (...)``, or the start that followed an unreliable weighting or a failed fit,
    with the reason.  Draws of the default scenario (``task["base"]``) are weighted first
    when the scenario has the default's model structure; a warm start whose layout does not
    fit the model, or whose fit fails the diagnostics gate, is followed by a cold fit.  A
    fit that diverged is sampled again at ``retry_target_accept`` (a warm start again when
    there was one, then cold): weighting, warm starts and a second target only save time
    or trade it for smaller steps, they never decide a scenario's result."""
    from reanalysis.analysis import add_estimand_table, draws_plan, extend_draws, fit_posterior, model_api
    from reanalysis.reweighting import PARETO_K_MAX, described

    api = model_api(member["model"])
    jax = s.get("sampler") == "jax" or getattr(api, "sampler", None) == "jax"
    retry = s.get("retry_target_accept")
    retry = retry if jax and retry and retry > getattr(api, "target_accept", 1.0) else None

    def sampled(adaptation, reweight_from=None, target_accept=None):
        return fit_posterior(
            member["study"], member["model"], member["family"], member["priors"], s["draws"], s["tune"], s["chains"],
            s["seed"], s["reps"], progressbar=False, prior_draws=0, cores=task.get("cores", 1), cache=cache,
            adaptation=adaptation, warm_tune=s.get("warm_tune"), reweight_from=reweight_from,
            sampler="jax" if s.get("sampler") == "jax" else None, target_accept=target_accept,
        )

    def fit(adaptation, target_accept=None):
        _, max_draws = draws_plan(api, s["draws"], s.get("max_draws"))
        return extend_draws(sampled(adaptation, target_accept=target_accept), member["study"], max_draws)

    def diverged(f) -> bool:
        return retry is not None and bool(getattr(f.diagnostics, "divergences", 0))

    def cold(label: str) -> tuple:
        first = fit(None)
        if first.diagnostics.ok or not diverged(first):
            return first, label
        return fit(None, retry), f"{label}, then at target acceptance {retry} after it diverged ({first.diagnostics.problems[0]})"

    before = ""
    base = task.get("base")
    if base is not None and cache is not None:
        try:
            weighted = sampled(None, reweight_from=base)
        except ValueError as exc:  # another model structure (CompiledNuts.reweighted)
            if "importance weighting" not in str(exc):
                raise
        else:
            attrs = weighted.idata.posterior.attrs
            if attrs["pareto_k"] < PARETO_K_MAX:  # else the estimands of a few repeated draws say nothing
                add_estimand_table(weighted, member["study"])
                if weighted.diagnostics.ok:
                    return weighted, described(attrs)
                why = weighted.diagnostics.problems[0]
            else:
                why = f"unreliable: Pareto k {attrs['pareto_k']:.2f} >= {PARETO_K_MAX}"
            before = f" after {described(attrs)} failed ({why})"
    adaptation = task.get("adaptation")
    if adaptation is None:
        fitted, label = cold(f"cold ({task['cold_reason']})" if task.get("cold_reason") else "cold")
        return fitted, label + before
    try:
        warm = fit(adaptation)
    except ValueError as exc:  # another layout of parameters (CompiledNuts.run)
        if "warm start" not in str(exc):
            raise
        fitted, label = cold(f"cold ({PARAMETERS_DIFFER})")
        return fitted, label + before
    if warm.diagnostics.ok:
        return warm, "warm" + before
    why = "; ".join(warm.diagnostics.problems[:2])
    if not diverged(warm):
        fitted, label = cold(f"cold after a failed warm start ({why})")
        return fitted, label + before
    again = fit(adaptation, retry)
    if again.diagnostics.ok:
        return again, f"warm at target acceptance {retry} after a warm start diverged ({why})" + before
    why_again = "; ".join(again.diagnostics.problems[:2])
    return fit(None, retry), f"cold at target acceptance {retry} after warm starts failed ({why}; then {why_again})" + before


class _NullLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return one_line(f"{type(exc).__name__}: {text[0] if text else ''}")[:300]


def _failed(member: dict, reason: str, seconds: float) -> dict:
    return {"name": member["name"], "status": "failed", "reason": reason, "rows": [], "checks": [], "divergences": None,
            "seconds": seconds, "cache_hit": None, "shared_with": None, "psens": None, "start": "", "compiled": None, "adaptation": None, "base": None}


def _effect_null(key: str, units: str) -> float | None:
    """The no-effect value of an estimand, or None when it is not an effect.

    Known effect variables (:data:`EFFECT_NULLS`); otherwise by name and units, so effects
    of other models qualify without code here: percent changes (units containing ``%``)
    and ``difference``/``effect``/``slope``/``change`` names at 0, ``ratio``/``fold`` at 1.
    Spreads and scales (``spread``, ``scale``, ``sigma``, ``sd`` names) have none: they are
    positive by construction, so "its interval excludes 0" would say nothing.
    """
    var = variable_of(key)
    if key.startswith("P("):
        return None
    if var in EFFECT_NULLS:
        return EFFECT_NULLS[var]
    if re.search(r"spread|scale|sigma|(^|_)sd($|_)", var):
        return None
    if "%" in str(units) or "percent" in str(units):
        return 0.0
    if re.search(r"ratio|fold", var):
        return 1.0
    if re.search(r"difference|effect|slope|change", var):
        return 0.0
    return None


def _draws(post, key: str) -> np.ndarray | None:
    var = variable_of(key)
    if var not in post:
        return None
    da = post[var]
    if "[" in key:
        idx = [i.strip() for i in key[len(var) + 1 : -1].split(",")]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        if len(extra) != len(idx):
            return None
        da = da.sel(dict(zip(extra, idx)))
    return np.asarray(da.values).ravel()


def _scenario_result(member: dict, fit, sample_seconds: float, summary_seconds: float, shared_with, psens, start: str = "cold", compiled=None, adaptation=None, base=None) -> dict:
    diag = fit.diagnostics
    post = fit.idata.posterior
    rows = []
    for _, r in fit.table.iterrows():
        null = _effect_null(r["estimand"], r["units"])
        p_below = np.nan
        if null is not None:
            x = _draws(post, r["estimand"])
            if x is not None:
                p_below = float(np.mean(x < null))
        rows.append(
            {
                "estimand": r["estimand"], "label": r["label"], "units": r["units"], "median": r["median"],
                "hdi_low": r["hdi_low"], "hdi_high": r["hdi_high"], "sd": r["sd"], "null": np.nan if null is None else null,
                "p_effect_below_null": p_below, "r_hat": r["r_hat"], "ess_bulk": r["ess_bulk"], "ess_tail": r["ess_tail"],
            }
        )
    checks = fit.checks[["key", "item", "published", "p_two_sided", "share_at_or_above", "share_claim_holds", "verdict"]].to_dict("records")
    return {
        "name": member["name"], "status": "ok" if diag.ok else "failed",
        "reason": "" if diag.ok else "diagnostics: " + "; ".join(diag.problems[:3]) + (f" (+{len(diag.problems) - 3} more)" if len(diag.problems) > 3 else ""),
        "rows": rows, "checks": checks, "divergences": diag.divergences, "seconds": sample_seconds + summary_seconds,
        "cache_hit": fit.cache_hit, "shared_with": shared_with, "psens": psens, "start": start, "compiled": compiled,
        "draws": int(fit.idata.posterior.sizes["draw"]), "adaptation": adaptation, "base": base,
    }


def _psens_table(fit, study: Study) -> list[dict] | None:
    """Power-scaling sensitivity of the default fit (:func:`reanalysis.informativeness.psens_table`)
    as records."""
    from reanalysis.informativeness import psens_table

    return psens_table(fit, study).to_dict("records")


# -- orchestration ---------------------------------------------------------------------------
#: Simulated cohorts of the models built only to compare scenarios' posteriors.
KEY_REPS = 10
#: Tasks the posterior keys are split into on a dask cluster (a local pool: one per worker).
KEY_TASKS = 4


def group_by_posterior(
    specs: list[Spec], sampling: Sampling, keys: dict[int, str] | None = None, structures: dict[int, str] | None = None,
) -> list[list[Spec]]:
    """Scenarios that sample exactly the same posterior (see
    :func:`reanalysis.analysis.posterior_and_structure_keys`), the default's group first, then in the
    order of :func:`spread_structures` (grid order without ``structures``).

    Keys are computed on models built with :data:`KEY_REPS` simulated cohorts: building the
    full likelihood tables for every scenario here would cost seconds each, and a builder
    reads the same study fields whatever the number of cohorts, so equal keys mean equal
    posteriors at the real number too.  A scenario whose model cannot be built gets a group
    of its own, so its worker records the error.  ``keys``: scenario index -> key, computed
    already (by :func:`posterior_keys` in the workers), with ``structures`` (scenario index
    -> structure key); default: both computed here.
    """
    if keys is None:
        found = posterior_keys({"key_members": list(enumerate(map(_member, specs))), "seed": sampling.seed})
        keys, structures = found["keys"], found["structures"]
    groups: dict[str, list[int]] = {}
    for i in range(len(specs)):
        groups.setdefault(keys[i], []).append(i)
    indices = list(groups.values())
    if structures:
        indices = spread_structures(indices, [structures[g[0]] for g in indices])
    return [[specs[i] for i in g] for g in indices]


def spread_structures(groups: list, structures: list[str]) -> list:
    """``groups`` with the first kept first, then every model structure's first group (in
    their order), then every structure's second group, and so on.

    Scenarios of one structure share a compiled program (XLA's persistent cache serves it
    to the other workers), so the first of each goes first: two workers do not compile the
    same program side by side while another structure waits, and the longest tasks (those
    that compile) start before the short ones that fill the end of the run.
    ``structures[i]``: the structure key of ``groups[i]``.
    """
    seen: dict[str, int] = {}
    rank = []
    for key in structures:
        rank.append(seen.get(key, 0))
        seen[key] = rank[-1] + 1
    order = sorted(range(1, len(groups)), key=lambda i: (rank[i], i))
    return groups[:1] + [groups[i] for i in order]


def posterior_keys(task: dict) -> dict:
    """Worker: ``{"keys": {index: posterior key}, "structures": {index: structure key},
    "layouts": {index: parameter layout}}`` of the scenarios ``task["key_members"]``
    (``(index, member)`` pairs, :func:`_member`) at seed ``task["seed"]``
    (:class:`reanalysis.analysis.BuildKeys`); a scenario whose model cannot be built gets
    the keys ``unbuildable-<index>`` and no layout."""
    import pytensor

    from reanalysis.analysis import build_keys, model_api

    quiet_libraries()
    keys, structures, layouts = {}, {}, {}
    # no stack traces on graph nodes: graph building is about a third faster
    with pytensor.config.change_flags(traceback__limit=0):
        for i, m in task["key_members"]:
            api = model_api(m["model"])
            try:
                keys[i], structures[i], layouts[i] = build_keys(api, m["study"], api.get_priors(m["priors"]), m["family"], KEY_REPS, task["seed"])
            except Exception:  # noqa: BLE001 - the model cannot be built: the worker records why
                keys[i] = structures[i] = f"unbuildable-{i}"
                layouts[i] = None
    return {"keys": keys, "structures": structures, "layouts": layouts}


def grid_task(task: dict):
    """Worker: a grid's task, either the posterior keys of some scenarios
    (:func:`posterior_keys`) or one posterior's scenarios (:func:`run_task`)."""
    return posterior_keys(task) if "key_members" in task else run_task(task)


def _member(sp: Spec) -> dict:
    return {"name": sp.name, "model": sp.model, "family": sp.family, "priors": sp.priors, "study": sp.study}


def run_grid(
    specs: list[Spec],
    sampling: Sampling,
    workers: int = 2,
    scheduler: str | None = None,
    cache: bool = True,
    share_posteriors: bool = True,
    progress: Callable[[str], None] | None = None,
    client=None,
) -> dict[str, dict]:
    """Run every scenario; return scenario name -> result (see :func:`run_task`).

    Parameters
    ----------
    specs : list of Spec
        From :func:`expand_grid`; the first is the default (it also gets ``az.psens``).
    sampling : Sampling
        Sampler settings for every scenario.
    workers : int
        Processes of the local pool (ignored with ``scheduler``/``client``); 1 runs in
        this process.
    scheduler : str, optional
        Address of a running dask.distributed scheduler; one task per distinct posterior.
    cache : bool
        Reuse compiled log densities within each worker process.
    share_posteriors : bool
        Sample scenarios with identical posteriors once.
    progress : callable, optional
        Receives "scenarios done/total, elapsed, ~remaining" lines.
    client : distributed.Client, optional
        An existing client instead of ``scheduler``.
    """
    results: dict[str, dict] = {}
    keys: dict[int, str] = {}
    structures: dict[int, str] = {}
    layouts: dict[int, dict | None] = {}
    tasks: list[dict] = []
    t0 = time.perf_counter()
    tasks_done = [0]
    in_process = workers <= 1 and client is None and not scheduler

    def record(batch) -> None:
        if isinstance(batch, dict):  # posterior keys of some scenarios
            keys.update(batch["keys"])
            structures.update(batch["structures"])
            layouts.update(batch["layouts"])
            return
        for r in batch:
            results[r["name"]] = r
        tasks_done[0] += 1
        if progress:
            done = len(results)
            elapsed = time.perf_counter() - t0
            # by tasks, not scenarios: scenarios sharing a posterior finish together
            remaining = elapsed / tasks_done[0] * (len(tasks) - tasks_done[0])
            last = f"{batch[0]['name']} {batch[0]['status']}" + (f"; start: {batch[0]['start']}" if batch[0].get("start") else "")
            if len(batch) > 1:
                last += f", +{len(batch) - 1} sharing its posterior"
            progress(f"scenarios {done}/{len(specs)}, elapsed {_hms(elapsed)}, ~remaining {_hms(remaining)} ({last})")

    def scenario_tasks() -> list[dict]:
        groups = group_by_posterior(specs, sampling, keys, structures) if share_posteriors else [[sp] for sp in specs]
        built = [
            {"members": [_member(sp) for sp in g], "sampling": sampling.model_dump(), "cache": cache, "psens": g[0] is specs[0]}
            for g in groups
        ]
        if in_process:
            # no pool: the chains may use every core, as a single fit.py run does
            built = [{**task, "cores": None} for task in built]
        tasks[:] = built
        return built

    def stages():
        # each stage is built when the one before has completed (run_tasks' ``then``)
        if share_posteriors:
            # the posterior keys first, computed by the workers (each builds the models of
            # its share of the scenarios): grouping then takes half the time on two workers,
            # and overlaps their start
            chunks = 1 if in_process else (max(1, workers) if client is None and not scheduler else KEY_TASKS)
            indexed = list(enumerate(_member(sp) for sp in specs))
            yield [{"key_members": indexed[c::chunks], "seed": sampling.seed} for c in range(chunks)]
        scenario = scenario_tasks()
        if warm_starts(specs[0], sampling) and len(scenario) > 1:
            # the default scenario first; the others then start from its adaptation, except
            # those it cannot start, which run beside it
            cold, warm = split_cold(scenario[1:], {specs[i].name: layouts.get(i) for i in layouts}, specs[0].name)
            yield [{**scenario[0], "keep_adaptation": True}, *cold]
            if warm:
                yield _warm_tasks(results, specs[0].name, warm)
        else:
            yield scenario

    staged = stages()
    run_tasks(grid_task, next(staged), record, workers=workers, scheduler=scheduler, client=client, on_start=lambda: phase("pool"),
              then=lambda: next(staged, []))
    return results


#: Why a scenario did not start from the default's adaptation: its parameters differ.
PARAMETERS_DIFFER = "parameters differ from the default's"


def split_cold(tasks: list[dict], layouts: dict[str, dict | None], default: str) -> tuple[list[dict], list[dict]]:
    """``(cold, warm)``: the scenario tasks after the default's split by whether a warm start
    from the default's adaptation can serve them.  Those whose parameters (their first
    member's layout, ``layouts``: scenario name -> parameter layout from the keys stage)
    differ from the default's would be refused it (:meth:`CompiledNuts.run`) and refitted
    cold anyway, so they need not wait for the default: they run beside it, on a worker
    that would otherwise be idle, marked with :data:`PARAMETERS_DIFFER`; so does one whose
    model could not be built (layout None), which records its error there.  A scenario
    whose layout is unknown (no keys stage) waits, as does one of the default's layout."""
    base = layouts.get(default)
    cold, warm = [], []
    for task in tasks:
        name = task["members"][0]["name"]
        if base is not None and name in layouts and layouts[name] != base:
            cold.append({**task, "cold_reason": PARAMETERS_DIFFER})
        else:
            warm.append(task)
    return cold, warm


def _warm_tasks(results: dict, default: str, tasks: list[dict]) -> list[dict]:
    """The last stage of a grid with warm starts: ``tasks`` with the adaptation that the
    default scenario's result carries (in ``results`` by then).  Its adaptation is used
    even when its fit failed the gate (an ESS or R-hat shortfall says little of its step
    size and mass matrix): every warm start passes the gate itself or is refitted cold."""
    adaptation, base = (results.get(default, {}).get(k) for k in ("adaptation", "base"))
    return [{**task, "adaptation": adaptation, "base": base} for task in tasks]


def warm_starts(base: Spec, sampling: Sampling) -> bool:
    """Whether the scenarios start from the default scenario's adaptation: asked for, and
    the grid samples with JAX (``sampling.sampler``, or the model's own; PyMC's sampler has
    no warm start here)."""
    from reanalysis.analysis import model_api

    return sampling.warm_start and (sampling.sampler == "jax" or model_api(base.model).sampler == "jax")


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


# -- tables ----------------------------------------------------------------------------------
RESULT_COLUMNS = [
    "scenario", "kind", "changes", "model", "family", "priors", "statistics", "assumptions", "estimand", "label", "units",
    "median", "hdi_low", "hdi_high", "sd", "null", "p_effect_below_null", "r_hat", "ess_bulk", "ess_tail", "divergences",
    "status", "reason", "same_posterior_as", "start", "draws", "compiled_model_reused", "sampler_programs_compiled", "xla_compiled", "seconds",
]


def results_table(specs: list[Spec], results: dict[str, dict]) -> pd.DataFrame:
    """One row per scenario and estimand (one row with an empty estimand for a scenario that
    failed before producing estimands), in grid order."""
    base = specs[0]
    rows = []
    for sp in specs:
        r = results[sp.name]
        common = {
            "scenario": sp.name, "kind": sp.kind, "changes": sp.changes(base), "model": sp.model, "family": sp.family,
            "priors": sp.priors, "statistics": sp.statistics, "assumptions": _canon(sp.assumptions) if sp.assumptions else "",
            "divergences": r["divergences"], "status": r["status"], "reason": r["reason"],
            "same_posterior_as": r["shared_with"] or "", "start": r.get("start", ""), "draws": r.get("draws"),
            "compiled_model_reused": r["cache_hit"], **_compiled_columns(r), "seconds": round(r["seconds"], 3),
        }
        for row in r["rows"] or [{}]:
            rows.append({**common, **row})
    df = pd.DataFrame(rows)
    for c in RESULT_COLUMNS:
        if c not in df:
            df[c] = np.nan
    return df[RESULT_COLUMNS]


def _compiled_columns(result: dict) -> dict:
    c = result.get("compiled") or {}
    return {"sampler_programs_compiled": c.get("sampler_programs"), "xla_compiled": c.get("xla_compiled")}


def compile_summary(results: dict[str, dict]) -> dict:
    """Compilation over a run: sampler programs traced and XLA executables compiled or read
    from the persistent cache, summed over the scenarios' tasks (each counted in its worker)."""
    total = {"sampler_programs": 0, "xla_compiled": 0, "xla_from_cache": 0, "xla_seconds": 0.0}
    for r in results.values():
        for k in total:
            total[k] += (r.get("compiled") or {}).get(k, 0)
    total["xla_seconds"] = round(total["xla_seconds"], 3)
    return total


def checks_table(specs: list[Spec], results: dict[str, dict]) -> pd.DataFrame:
    """One row per scenario and predictive check (two-sided predictive p-value, shares and
    verdict, as :func:`models.checks.check_table`)."""
    rows = [{"scenario": sp.name, **c} for sp in specs for c in results[sp.name]["checks"]]
    return pd.DataFrame(rows, columns=["scenario", "key", "item", "published", "p_two_sided", "share_at_or_above", "share_claim_holds", "verdict"])


def to_dataset(table: pd.DataFrame):
    """The results table as an xarray Dataset with dims (scenario, estimand)."""
    import xarray as xr

    t = table[table["estimand"].notna() & (table["estimand"] != "")]
    scen = list(dict.fromkeys(table["scenario"]))
    est = list(dict.fromkeys(t["estimand"]))
    data = {}
    for col in ("median", "hdi_low", "hdi_high", "sd", "p_effect_below_null", "r_hat", "ess_bulk", "ess_tail"):
        arr = np.full((len(scen), len(est)), np.nan)
        for _, r in t.iterrows():
            arr[scen.index(r["scenario"]), est.index(r["estimand"])] = r[col]
        data[col] = (("scenario", "estimand"), arr)
    per = table.drop_duplicates("scenario").set_index("scenario").loc[scen]
    coords = {"scenario": scen, "estimand": est}
    for col in ("kind", "changes", "family", "priors", "statistics", "assumptions", "status", "reason"):
        coords[col] = ("scenario", per[col].fillna("").astype(str).to_numpy())
    coords["divergences"] = ("scenario", per["divergences"].astype(float).to_numpy())
    units = t.drop_duplicates("estimand").set_index("estimand").loc[est]
    coords["units"] = ("estimand", units["units"].astype(str).to_numpy())
    coords["null"] = ("estimand", units["null"].astype(float).to_numpy())
    return xr.Dataset(data, coords=coords, attrs={"hdi_prob": 0.95})


def stability_table(table: pd.DataFrame, study: Study | None = None, default: str = "default") -> pd.DataFrame:
    """Flag every scenario in which a headline conclusion differs from the default's.

    Conclusions, generic in the estimand keys:

    * effect (``null`` is set): the side of the null the 95% HDI lies on (``above``,
      ``below``, ``includes null``); flagged when it differs from the default's;
    * claim probability (estimand ``P(...)``): whether it exceeds 0.5; flagged on crossing;
    * approximate percent claim (a study association with relation ``~`` and a value v,
      e.g. "approximately -10% per decade"): whether the posterior median of a percent
      estimand naming that covariate lies in [v - |v|, v + |v|] (0-20% decline for -10);
      flagged when that differs from the default.  Active only when such an estimand exists.

    Failed scenarios are listed with ``flag = "failed"``.  Returns one row per scenario and
    conclusion: scenario, conclusion, estimand, default_value, value, default_state, state,
    changed (bool), status.
    """
    t = table[table["estimand"].notna() & (table["estimand"] != "")]
    d = t[t["scenario"] == default].set_index("estimand")
    if d.empty:
        return pd.DataFrame(columns=["scenario", "conclusion", "estimand", "default_state", "state", "default_value", "value", "changed", "status", "reason"])
    rules = []  # (estimand, conclusion, state function, value function)
    for key, r in d.iterrows():
        if key.startswith("P("):
            rules.append((key, f"{key} > {CLAIM_PROBABILITY_CUT:g}", lambda x: "> 0.5" if x["median"] > CLAIM_PROBABILITY_CUT else "<= 0.5", "median"))
        elif pd.notna(r["null"]):
            null = float(r["null"])
            rules.append((key, f"95% HDI of {key} excludes {null:g}", lambda x, n=null: _side(x, n), "median"))
    if study is not None:
        for aid, assoc in study.associations.items():
            if assoc.relation == "~" and assoc.value is not None:
                lo, hi = sorted((assoc.value - abs(assoc.value), assoc.value + abs(assoc.value)))
                for key, r in d.iterrows():
                    if assoc.covariate in key and ("%" in str(r["units"]) or "percent" in str(r["units"])):
                        rules.append((key, f"{key} within {lo:g} to {hi:g} ({aid} claim)", lambda x, lo=lo, hi=hi: "inside" if lo <= x["median"] <= hi else "outside", "median"))
    rows = []
    scenarios = list(dict.fromkeys(table["scenario"]))
    status = table.drop_duplicates("scenario").set_index("scenario")
    for sc in scenarios:
        st = status.loc[sc]
        s = t[t["scenario"] == sc].set_index("estimand")
        for key, concl, fn, col in rules:
            dstate = fn(d.loc[key])
            if key not in s.index:
                rows.append({"scenario": sc, "conclusion": concl, "estimand": key, "default_state": dstate, "state": "n/a", "default_value": d.loc[key, col], "value": np.nan, "changed": False, "status": st["status"], "reason": st["reason"]})
                continue
            state = fn(s.loc[key])
            rows.append({"scenario": sc, "conclusion": concl, "estimand": key, "default_state": dstate, "state": state, "default_value": d.loc[key, col], "value": s.loc[key, col], "changed": state != dstate, "status": st["status"], "reason": st["reason"]})
    return pd.DataFrame(rows)


def _side(row, null: float) -> str:
    if row["hdi_low"] > null:
        return "above"
    if row["hdi_high"] < null:
        return "below"
    return "includes null"


def influence_table(table: pd.DataFrame, default: str = "default") -> pd.DataFrame:
    """How far each one-at-a-time choice moves each effect and claim probability: the
    largest shift of the posterior median from the default's, in default posterior SDs
    (claim probabilities: in absolute probability).  Rows: choice (priors, family,
    statistics, or one assumption), estimand, max_shift_sd, scenario; sorted by the largest
    shift of any headline estimand, which is how the factorial's choices were picked."""
    t = table[(table["estimand"].notna()) & (table["estimand"] != "")]
    d = t[t["scenario"] == default].set_index("estimand")
    rows = []
    for _, r in t[t["kind"] == "one_at_a_time"].iterrows():
        key = r["estimand"]
        if key not in d.index or not (key.startswith("P(") or pd.notna(d.loc[key, "null"])):
            continue
        choice = r["changes"].split("=")[0]
        if key.startswith("P("):
            shift = abs(r["median"] - d.loc[key, "median"])
        else:
            sd = d.loc[key, "sd"]
            shift = abs(r["median"] - d.loc[key, "median"]) / sd if sd > 0 else np.nan
        rows.append({"choice": choice, "estimand": key, "scenario": r["scenario"], "shift": shift})
    df = pd.DataFrame(rows, columns=["choice", "estimand", "scenario", "shift"])
    if df.empty:
        return pd.DataFrame(columns=["choice", "estimand", "max_shift", "scenario", "choice_max_shift"])
    idx = df.groupby(["choice", "estimand"])["shift"].idxmax()
    out = df.loc[idx].rename(columns={"shift": "max_shift"})
    out["choice_max_shift"] = out.groupby("choice")["max_shift"].transform("max")
    return out.sort_values(["choice_max_shift", "choice", "max_shift"], ascending=[False, True, False]).reset_index(drop=True)


#: Power-scaling sensitivity above this flags a quantity as sensitive (priorsense's rule).
PSENS_THRESHOLD = 0.05
#: A refit moving the posterior median by more than this many default posterior SDs counts
#: as sensitive.
REFIT_SHIFT_SD = 0.5


def psens_comparison(psens: list[dict] | None, table: pd.DataFrame, default: str = "default") -> pd.DataFrame:
    """``az.psens`` of the default fit next to the spread of the refits, per estimand.

    Columns: psens_prior, psens_likelihood, psens_diagnosis (the label of
    :func:`reanalysis.informativeness.label`, ``-`` without one), refit_prior_shift_sd
    (largest shift of the median over the prior-set scenarios, in default posterior SDs), refit_any_shift_sd (over every one-at-a-time
    scenario), and ``agree``: whether "prior-sensitive by psens" (the lower end of its Monte
    Carlo interval at or above the threshold) equals "prior-sensitive by refitting" (shift >
    0.5 SD).  When the diagnostic failed (``psens`` is ``[{"error": reason}]``),
    one row whose psens_diagnosis gives the reason.
    """
    cols = ["estimand", "psens_prior", "psens_likelihood", "psens_diagnosis", "default_median", "default_sd", "refit_prior_shift_sd", "refit_prior_scenarios", "refit_any_shift_sd", "agree"]
    if not psens:
        return pd.DataFrame(columns=cols)
    if psens[0].get("error"):  # say so instead of an empty table
        return pd.DataFrame([{"estimand": "", "psens_diagnosis": f"az.psens failed: {psens[0]['error']}"}], columns=cols)
    p = pd.DataFrame(psens).set_index("estimand")
    t = table[(table["estimand"].notna()) & (table["estimand"] != "")]
    d = t[t["scenario"] == default].set_index("estimand")
    rows = []
    for key, r in d.iterrows():
        if key not in p.index:
            continue
        pp, pl = p.loc[key, "psens_prior"], p.loc[key, "psens_likelihood"]
        # the label of reanalysis.informativeness (Monte Carlo intervals, direction of the shifts)
        diag = p.loc[key, "label"] if "label" in p.columns and isinstance(p.loc[key, "label"], str) else "-"
        # prior-sensitive only when the Monte Carlo interval lies above the threshold
        pp_lo = p.loc[key, "psens_prior_lo"] if "psens_prior_lo" in p.columns else pp
        others = t[(t["estimand"] == key) & (t["kind"] == "one_at_a_time")]
        prior_runs = others[others["changes"].str.fullmatch(r"priors=[^,]+")]
        sd = r["sd"] if r["sd"] > 0 else np.nan
        shift_p = float((prior_runs["median"] - r["median"]).abs().max() / sd) if len(prior_runs) else np.nan
        shift_a = float((others["median"] - r["median"]).abs().max() / sd) if len(others) else np.nan
        agree = (pp_lo >= PSENS_THRESHOLD) == (shift_p > REFIT_SHIFT_SD) if np.isfinite(shift_p) else None
        rows.append({"estimand": key, "psens_prior": pp, "psens_likelihood": pl, "psens_diagnosis": diag, "default_median": r["median"], "default_sd": r["sd"], "refit_prior_shift_sd": shift_p, "refit_prior_scenarios": ", ".join(prior_runs["scenario"]), "refit_any_shift_sd": shift_a, "agree": agree})
    return pd.DataFrame(rows, columns=cols)


def key_estimands(table: pd.DataFrame, default: str = "default") -> list[str]:
    """Estimands that get a figure: every effect and claim probability of the default."""
    d = table[(table["scenario"] == default) & table["estimand"].notna() & (table["estimand"] != "")]
    return [k for k, n in zip(d["estimand"], d["null"]) if k.startswith("P(") or pd.notna(n)]


def figure_name(estimand: str) -> str:
    """A file name for an estimand key: ``ratio_of_medians[control_vs_ms]`` ->
    ``ratio_of_medians-control_vs_ms.png``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", estimand).strip("-")
    return f"{name}.png"


# -- outputs ---------------------------------------------------------------------------------
def write_outputs(stage: Path, specs: list[Spec], results: dict[str, dict], study: Study, manifest: dict) -> dict[str, pd.DataFrame]:
    """Write every output of a sensitivity run into ``stage`` (a staging folder) and return
    the tables: sensitivity.csv / .nc, checks.csv, stability.csv, influence.csv, psens.csv,
    figures/<estimand>.png and manifest.json (``manifest`` plus the file list)."""
    from reanalysis.figures import sensitivity as sensitivity_plots
    from reanalysis.figures.workers import DPI

    table = results_table(specs, results)
    tables = {
        "sensitivity": table,
        "checks": checks_table(specs, results),
        "stability": stability_table(table, study),
        "influence": influence_table(table),
        "psens": psens_comparison(results[specs[0].name].get("psens"), table),
    }
    files = []
    for name, df in tables.items():
        df.to_csv(stage / f"{name}.csv", index=False)
        files.append(f"{name}.csv")
    to_dataset(table).to_netcdf(stage / "sensitivity.nc", engine="h5netcdf")
    files.append("sensitivity.nc")
    figdir = stage / "figures"
    figdir.mkdir()
    for key in key_estimands(table):
        fig = sensitivity_plots.forest_figure(table, key, study=study)
        fig.savefig(figdir / figure_name(key), dpi=DPI)
        sensitivity_plots.plt.close(fig)
        files.append(f"figures/{figure_name(key)}")
    from reanalysis.results import write_json

    write_json(stage / "manifest.json", {**manifest, "files": sorted(files + ["manifest.json"])})
    return tables


def scenario_manifest(specs: list[Spec], results: dict[str, dict]) -> list[dict]:
    """Per scenario: settings, status, reason, seconds, and what was reused."""
    base = specs[0]
    return [
        {
            "name": sp.name, "kind": sp.kind, "changes": sp.changes(base), "model": sp.model, "family": sp.family,
            "priors": sp.priors, "statistics": sp.statistics, "assumptions": sp.assumptions,
            "status": results[sp.name]["status"], "reason": results[sp.name]["reason"],
            "seconds": round(results[sp.name]["seconds"], 3), "same_posterior_as": results[sp.name]["shared_with"],
            "start": results[sp.name].get("start", ""), "draws": results[sp.name].get("draws"),
            "compiled_model_reused": results[sp.name]["cache_hit"], "compiled": results[sp.name].get("compiled"),
        }
        for sp in specs
    ]

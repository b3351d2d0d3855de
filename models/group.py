"""The group model: one population distribution per group, fitted to every reported
summary statistic of that group at once through a synthetic likelihood.

Parameters (per group, dims ``group``):

* ``log_mean`` - log of the population mean relative to the study's ``reference_level``;
* ``log_cv`` - log of the population coefficient of variation; its prior is truncated to the
  CV range of the likelihood tables (:data:`LOG_CV_BOUNDS`).

When every group publishes its median alone, the location is sampled as ``loc_z`` instead
(:func:`median_only`): ``log_mean`` is then derived, with exactly the same prior.

Derived: ``mean`` and ``cv`` in natural units.  Estimands (ratios, superiority, ...) are
computed from the posterior afterwards by :mod:`models.estimands`, outside the graph.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.logprob.transforms import Transform

from .families import get_family
from .likelihood import (
    CV_RANGE,
    build_rounded_table,
    build_table,
    observed_rounded_log,
    rounded_table_logp,
    table_logp,
    table_rows,
)
from .priors import prior_variable
from .statistics import modelled_statistics
from .simulate import sorted_normals, uniform_rounding_errors
from .study import Study
from .two_group import two_group_terms

#: Simulated cohorts per group of the likelihood tables.  The tables are built once per
#: model, so the count costs build time only (lognormal ~13 s, gamma ~50 s per group of 29
#: at 4000), never sampling time.  With 400 the Monte Carlo error of the moments miscalibrated
#: the posterior (grid-posterior PIT KS p 1e-4 to 5e-3 over three deviate seeds; 0.42 with
#: 4000; docs/decisions/group-likelihood-calibration.md).
DEFAULT_REPS = 4000
#: Version of the way tables are computed, part of their cache key: 2 = the gamma quantile
#: interpolated between exact values at many deviates of one shape (models.families); 3 = the
#: shape fit's sums in another order (models.likelihood.FIT_BLOCK; values within 3e-14).
TABLE_METHOD = 3
#: What each sampled parameter measures (axis labels of the prior-versus-posterior figure).
PARAMETER_SCALES = {
    "log_mean": "log of mean / reference level",
    "log_cv": "log of the coefficient of variation",
    "loc_z": "population median against the published one, in sampling SDs of a median",
}

#: Fewest simulated cohorts a fit accepts (the scripts' former flat minimum): the covariance
#: of the log statistics is estimated from them, so it needs clearly more cohorts than
#: statistics (up to 7).
MIN_REPS = 10


#: Added to every rounding variance of the covariate model's first-order likelihood (which
#: imports it): keeps the covariance positive definite when a study declares no rounding.
ROUNDING_FLOOR = 1e-10
#: Shape of the synthetic likelihood (:data:`models.likelihood.SHAPES`): each statistic
#: sinh-arcsinh transformed before the normal.  The plain normal was biased at CV > 1
#: (docs/decisions/group-likelihood-calibration.md).
DEFAULT_SHAPE = "sinh-arcsinh"

#: Name prefix of the shared inputs holding each group's likelihood table (then the group).
TABLE_INPUT_PREFIX = "likelihood_table_"

#: Bounds of ``log_cv``: the CV range of the likelihood tables.  The CV prior is truncated
#: to it (an interval transform, value name ``log_cv_scaledinterval__``; the prior
#: density inside is unchanged up to a constant),
#: so no draw ever sees a likelihood clamped flat at a table edge.  It removes ~1e-5 of the
#: default prior's mass and ~2% of the "wide" set's.
LOG_CV_BOUNDS = (float(np.log(CV_RANGE[0])), float(np.log(CV_RANGE[1])))
#: Tables already built in this process, keyed by everything they depend on: refits of the
#: same design (recovery tests, calibration workers) skip the simulation.
_TABLES: dict[tuple, list] = {}


def rounding_width(study: Study) -> float:
    """Declared rounding of published values (assumption ``rounding``), 0 if undeclared."""
    return float(study.assumption("rounding", 0.0) or 0.0)


@dataclass(frozen=True)
class GroupData:
    """What the likelihood of one group needs, derived once from the study file."""

    group: str
    n: int
    names: tuple[str, ...]
    observed: np.ndarray


def group_data(study: Study) -> list[GroupData]:
    """Per-group statistics the likelihood observes (:func:`modelled_statistics` of the
    published ones), in file order.  (Their rounding variance is computed inside the model
    from the observed values, so swapped data get their own.)"""
    out = []
    for g in study.group_ids:
        rep = modelled_statistics(study.reported(g))
        out.append(GroupData(g, study.n(g), tuple(rep), np.array(list(rep.values()), dtype=float)))
    return out


def moment_estimates(rep: dict[str, float], prefer: str = "mean") -> tuple[float, float | None]:
    """A group's centre and CV from whatever it reports: the ``prefer``-red statistic (else
    the mean, else the median, else the first one) and SD / mean clipped to [0.02, 3]
    (None without both)."""
    centre = rep.get(prefer, rep.get("mean", rep.get("median", next(iter(rep.values())))))
    cv = float(np.clip(rep["sd"] / rep["mean"], 0.02, 3.0)) if "sd" in rep and "mean" in rep else None
    return centre, cv


def _prior_centre_cv(priors: dict) -> float:
    """The CV at the centre of the ``log_cv`` prior, clipped to [0.02, 3]: a group's starting
    CV when it reports no SD.  The prior's centre may be a shared variable (the compiled-model
    cache gives prior values as inputs); its current value is the starting point then (the
    initial values are part of the cache's structure key)."""
    mu = priors["log_cv"].get("mu", np.log(0.5))
    mu = mu.get_value() if hasattr(mu, "get_value") else mu
    return float(np.clip(np.exp(float(mu)), 0.02, 3.0))


def starting_values(study: Study, ref: float, priors: dict) -> tuple[np.ndarray, np.ndarray]:
    """Moment estimates of (log_mean, log_cv) per group (:func:`moment_estimates`; without
    a reported SD, the CV at the prior's centre)."""
    lm, lc = [], []
    for g in study.group_ids:
        centre, cv = moment_estimates(modelled_statistics(study.reported(g)), prefer="mean")
        if cv is None:
            cv = _prior_centre_cv(priors)
        lm.append(np.log(centre / ref))
        lc.append(np.log(cv))
    return np.array(lm), np.array(lc)


#: Slope of the sampler's unconstrained scale against ``log_mean`` and ``log_cv`` (at the
#: centre of its range): PyMC jitters each chain's initial point by U(-1, 1) on the
#: unconstrained scale, so chains start within about 0.1 of the moment estimates.  With a
#: jitter of 1 (2.3 for ``log_cv`` under a plain logit interval), chains often started
#: where the synthetic likelihood is far worse than at the estimates, climbed to a spurious
#: local mode at large CV and stayed there (calibration, docs/decisions/group-likelihood-calibration.md: one chain apart in 13 of 200
#: lognormal and 86 of 200 gamma fits; that mode was 150 log units below the true one in
#: the case examined).  The scale does not change the posterior, and warm-up adapts the
#: step size and mass matrix to it.
START_JITTER = 0.1


# Module-level classes, so that a model using them pickles (the graph cache of
# reanalysis.sampling stores rewritten graphs with their transforms).
class Scaled(Transform):
    """``y = x / slope``: the unconstrained scale of ``log_mean`` (:data:`START_JITTER`)."""

    name = "scaled"

    def __init__(self, slope: float):
        self.slope = float(slope)

    def forward(self, value, *inputs):
        return value / self.slope

    def backward(self, value, *inputs):
        return value * self.slope

    def log_jac_det(self, value, *inputs):
        return pt.zeros_like(value) + np.log(self.slope)


class ScaledInterval(Transform):
    """``y = w / (4 slope) * logit((x - lo) / w)`` for ``x`` in (lo, hi), ``w = hi - lo``:
    the truncation of ``log_cv`` to the tables' range, with slope ``dx/dy = slope`` at the
    centre of the range (a plain logit has 4 / w there, 0.43 for this range)."""

    # no underscore: PyMC reads the untransformed name as what precedes the last "_" of
    # the value name, so "scaled_interval" made "log_cv_scaled" (log densities failed)
    name = "scaledinterval"

    def __init__(self, lower: float, upper: float, slope: float):
        self.lower, self.width, self.slope = float(lower), float(upper - lower), float(slope)

    def forward(self, value, *inputs):
        u = (value - self.lower) / self.width
        return self.width / (4.0 * self.slope) * (pt.log(u) - pt.log1p(-u))

    def backward(self, value, *inputs):
        return self.lower + self.width * pt.sigmoid(4.0 * self.slope * value / self.width)

    def log_jac_det(self, value, *inputs):
        t = 4.0 * self.slope * value / self.width
        return np.log(4.0 * self.slope) - pt.softplus(-t) - pt.softplus(t)


def set_starting_values(model: pm.Model, study: Study, priors: dict, data: dict) -> None:
    """Point the model's initial values at the moment estimates of other data.

    :func:`build_model` starts chains at the estimates from the study file's numbers; when
    the observed data are swapped (calibration fits simulated studies with one compiled
    model), the chains must start from the new data's estimates, as a fit of those data
    would.  ``data`` maps ``log_stats_<group>`` to log reported statistics in the study's
    order.
    """
    ref = float(study.assumption("reference_level", 1.0))
    lm, lc = [], []
    for d in group_data(study):
        rep = dict(zip(d.names, np.exp(np.asarray(data[f"log_stats_{d.group}"], dtype=float))))
        centre, cv = moment_estimates(rep, prefer="mean")
        if cv is None:
            cv = _prior_centre_cv(priors)
        lm.append(np.log(centre / ref))
        lc.append(np.clip(np.log(cv), *LOG_CV_BOUNDS))
    if "loc_z" in model.named_vars:  # located at the data's medians already (_median_located_mean)
        model.rvs_to_initial_values[model["loc_z"]] = np.zeros(len(lm))
    else:
        model.rvs_to_initial_values[model["log_mean"]] = np.array(lm)
    model.rvs_to_initial_values[model["log_cv"]] = np.array(lc)


def median_only(study: Study) -> bool:
    """Whether every group publishes its median and nothing else the likelihood reads.

    Then the CV is set by its prior alone, and the published median pins the location to
    within its sampling SD, ``sqrt(pi/2) sigma / sqrt(n)`` on the log scale for the
    lognormal (``sigma = sqrt(log(1 + CV^2))``): that width shrinks with the CV, a funnel between
    ``log_mean`` and ``log_cv`` on which NUTS diverged (Lasemi et al. 2018 with the medians
    alone: 326 divergences at target acceptance 0.8, 5 at 0.99 in five times the time).
    :func:`build_model` then samples the location in units of that width around the
    published median (``loc_z``), where the posterior is close to N(0, 1) at every CV.
    """
    return _medians_alone(group_data(study))


def _medians_alone(data: list) -> bool:
    """:func:`median_only` of the groups' likelihood data (:func:`group_data`)."""
    return all(d.names == ("median",) for d in data)


def build_tables(
    study: Study, family: str = "lognormal", reps: int = DEFAULT_REPS, seed: int = 20180302, shape: str = DEFAULT_SHAPE, store=None
) -> list:
    """The likelihood table of each group of ``study``, in file order.

    With a declared rounding width the tables simulate the rounding
    (:func:`models.likelihood.build_rounded_table`), otherwise they are scale-family tables
    (:func:`models.likelihood.build_table`).  Deviates (and rounding errors) come from one
    stream seeded with ``seed``, group after group.  A table depends only on the design
    (sizes, reported statistic names, quantile method, rounding), never on reported values.
    ``shape`` is the likelihood's shape (:data:`models.likelihood.SHAPES`).  ``store``, an
    object with ``get(key)`` and ``put(key, value)`` (e.g. :class:`reanalysis.disk_cache.DiskStore`),
    keeps the tables between runs: building them is most of a cold fit's time for the
    families whose quantile has no closed form (gamma: minutes for groups of 200).
    """
    fam = get_family(family)
    data = group_data(study)
    width = rounding_width(study)
    q_method = int(study.setting("quantile_method"))
    # TABLE_METHOD: tables kept by an earlier method of computing them are not read back
    key = ("group-tables", TABLE_METHOD, fam.name, reps, seed, q_method, width > 0, shape, tuple((d.n, d.names) for d in data))
    if key not in _TABLES:
        tables = store.get(key) if store is not None else None
        if tables is None:
            rng = np.random.default_rng(seed)
            tables = []
            for d in data:
                z = sorted_normals(rng, reps, d.n)
                if width > 0:
                    errors = uniform_rounding_errors(rng, reps, len(d.names))
                    tables.append(build_rounded_table(fam, z, errors, d.names, q_method, shape=shape))
                else:
                    tables.append(build_table(fam, z, d.names, q_method, shape=shape))
            if store is not None:
                store.put(key, tables)
        _TABLES[key] = tables
    return _TABLES[key]


def build_model(
    study: Study,
    priors: dict,
    family: str = "lognormal",
    reps: int = DEFAULT_REPS,
    seed: int = 20180302,
    tables: list | None = None,
) -> pm.Model:
    """Build the group model for ``study``.

    Parameters
    ----------
    study : Study
        Validated study; every group with reported statistics enters the likelihood.
    priors : dict
        Prior set for model ``"group"`` (see :func:`models.priors.get_priors`).  The CV
        prior is truncated to :data:`LOG_CV_BOUNDS`.
    family : str
        Population family (see :data:`models.families.FAMILIES`).
    reps : int
        Simulated cohorts per group for the synthetic likelihood.
    seed : int
        Seed of the fixed deviates (common random numbers); part of the model definition.
    tables : list, optional
        The groups' likelihood tables as :func:`build_tables` returns them for this design,
        family, ``reps`` and ``seed`` (calibration workers get them from the parent).

    Returns
    -------
    pm.Model
        With coords ``group`` and ``statistic_<group>``; observed variables ``stats_<group>``
        hold the log reported statistics.  ``model.group_tables`` holds the tables.
    """
    get_family(family)  # an unknown family fails before any simulation
    data = group_data(study)
    ref = float(study.assumption("reference_level", 1.0))
    width = rounding_width(study)
    if tables is None:
        tables = build_tables(study, family, reps, seed)
    if len(tables) != len(data) or any(t.k != len(d.names) for t, d in zip(tables, data)):
        raise ValueError("the given likelihood tables do not match the study's groups")
    coords = {"group": study.group_ids}
    for d in data:
        coords[f"statistic_{d.group}"] = list(d.names)

    with pm.Model(coords=coords) as model:
        start_mean, start_cv = starting_values(study, ref, priors)
        # Chains start (jittered) at moment estimates from the reported statistics: from the
        # prior's centre, a chain can reach a spurious local mode of the synthetic likelihood
        # at very large CV (seen with the gamma family) and stay there.
        # (and close to them: START_JITTER)
        observed = {d.group: pm.Data(f"log_stats_{d.group}", np.log(d.observed), dims=f"statistic_{d.group}") for d in data}

        def cv_variable():
            return prior_variable(
                "log_cv", priors["log_cv"], dims="group", initval=np.clip(start_cv, *LOG_CV_BOUNDS),
                transform=ScaledInterval(*LOG_CV_BOUNDS, START_JITTER),
            )

        if _medians_alone(data):
            log_cv = cv_variable()
            log_mean = _median_located_mean(data, priors["log_mean"], observed, log_cv, ref)
        else:
            # log_mean first: the order of the sampled variables fixes a seed's draws
            log_mean = prior_variable("log_mean", priors["log_mean"], dims="group", initval=start_mean, transform=Scaled(START_JITTER))
            log_cv = cv_variable()
        mean = pm.Deterministic("mean", ref * pt.exp(log_mean), dims="group")
        cv = pm.Deterministic("cv", pt.exp(log_cv), dims="group")

        for i, (d, table) in enumerate(zip(data, tables)):
            # the table is a named shared input, not a constant: the compiled sampler takes
            # it as an argument (XLA compiled an 18 MB constant in seconds per program), and
            # models that differ only in their tables (the family) share one program
            rows = pytensor.shared(table_rows(table), name=f"{TABLE_INPUT_PREFIX}{d.group}")
            if width > 0:

                def logp(value, lmean, lc, _support, table=table, rows=rows):
                    # the observed data stay log(reported) (calibration swaps them); the
                    # rounding scale is computed from them in the graph
                    obs = observed_rounded_log(pt, value, width)
                    return rounded_table_logp(pt, table, obs, lmean - np.log(width), lc, rows)

            else:

                def logp(value, lmean, lc, _support, table=table, rows=rows):
                    return table_logp(pt, table, value, lmean, lc, rows)

            pm.CustomDist(
                f"stats_{d.group}",
                pt.log(mean[i]),
                log_cv[i],
                np.zeros(len(d.names)),
                logp=logp,
                signature="(),(),(s)->(s)",
                observed=observed[d.group],
                dims=f"statistic_{d.group}",
            )
        # imported here: the covariate model imports this module
        from .hierarchical import declare_observed

        terms = two_group_terms(study, family)
        # each claim's probability built inside its log density (models.deferred: PyMC
        # rewrites a parameter's graph on every derivation)
        claims = {}
        for term in terms:
            safe = term.name.replace(".", "_")
            held = two_group_log_prob(study, term, log_mean, log_cv, observed, ref, width)
            claims[f"claim_{safe}"] = ([held], pm.Data(f"claim_holds_{safe}", 1.0), None)
        declare_observed(claims)
    model.group_tables = tables
    model.two_group_terms = terms
    return model


def median_location(xp, log_cv, n) -> tuple:
    """``(log(median / mean), SD of the log sample median)`` of a lognormal population at
    ``log_cv`` for samples of ``n``: ``-sigma^2 / 2`` and ``sqrt(pi / 2) sigma / sqrt(n)``,
    ``sigma^2 = log(1 + CV^2)`` (``xp``: NumPy or PyTensor).  The shift and scale of
    :func:`_median_located_mean`, for every family: any shift and scale give the same
    model; these centre the lognormal best, and centred the gamma better than the gamma's
    own median and density did (Lasemi et al. 2018, medians alone, wide priors: 12
    divergences against 913; the gamma's log(median / mean) bends sharply at large CV).
    """
    sigma2 = xp.log1p(xp.exp(2.0 * log_cv))
    return -0.5 * sigma2, np.sqrt(np.pi / 2) * xp.sqrt(sigma2) / np.sqrt(n)


def _median_located_mean(data: list, prior: dict, observed: dict, log_cv, ref: float):
    """``log_mean`` of a study whose groups publish their medians alone (:func:`median_only`),
    as a deterministic of ``loc_z``: ``log_mean = m - r(cv) + s(cv) loc_z``, with ``m`` the
    published log median relative to the reference level and ``r``, ``s`` from
    :func:`median_location`.

    For every CV this is a shift and a scaling of ``log_mean``, so the location-scale prior
    of ``log_mean`` becomes the same family for ``loc_z`` given ``log_cv``, with location
    ``(mu - m + r) / s`` and scale ``sigma_prior / s``: the joint prior of (``log_mean``,
    ``log_cv``) is exactly the model's, prior draws included.  ``m`` is read from the
    observed data, so swapped data (calibration) keep the parameterisation centred.
    """
    if prior["dist"] not in ("normal", "student_t"):
        raise ValueError(f"log_mean prior {prior['dist']!r}: the median-located parameterisation needs a location-scale prior")
    ratio, scale = median_location(pt, log_cv, np.array([d.n for d in data], dtype=float))
    shift = pt.stack([observed[d.group][0] for d in data]) - np.log(ref) - ratio
    z_prior = {**prior, "mu": (prior.get("mu", 0.0) - shift) / scale, "sigma": prior.get("sigma", 1.0) / scale}
    loc_z = prior_variable("loc_z", z_prior, dims="group", initval=np.zeros(len(data)))
    return pm.Deterministic("log_mean", shift + scale * loc_z, dims="group")


def two_group_log_prob(study: Study, term, log_mean, log_cv, observed: dict, ref: float, width: float):
    """Log probability that a published two-group test prints its published value, given
    the groups' published statistics (:mod:`models.two_group`), as a tensor.

    ``observed`` maps each group to its log published statistics (the ``pm.Data`` the
    group's likelihood reads, so swapped data move this term too).
    """
    from .two_group import conditional_law, event_log_prob, lognormal_params

    ids = study.group_ids
    params = [lognormal_params(pt, log_mean[ids.index(g)], log_cv[ids.index(g)]) for g in term.groups]
    obs = []
    for g, names in zip(term.groups, term.conditioned):
        own = list(modelled_statistics(study.reported(g)))
        # in reference units, as the law's populations
        obs.append(observed[g][[own.index(x) for x in names]] - np.log(ref) if names else None)
    mu, v, _ = conditional_law(pt, term, params, obs, rounding=width / ref)
    return event_log_prob(pt, mu, v, term.bounds)

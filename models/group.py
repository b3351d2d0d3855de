"""The group model: one population distribution per group, fitted to every reported
summary statistic of that group at once through a synthetic likelihood.

Parameters (per group, dims ``group``):

* ``log_mean`` - log of the population mean relative to the study's ``reference_level``;
* ``log_cv`` - log of the population coefficient of variation.

Derived: ``mean`` and ``cv`` in natural units.  Estimands (ratios, superiority, ...) are
computed from the posterior afterwards by :mod:`models.estimands`, outside the graph.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .families import get_family
from .likelihood import build_table, mvn_logp, rounding_variance_log, table_moments
from .priors import prior_variable
from .simulate import sorted_normals
from .study import Study

#: Simulated cohorts per group and likelihood evaluation.  400 keeps the Monte Carlo error of
#: the estimated covariance small (relative SE of a variance ~ sqrt(2/400) = 7%) at low cost.
DEFAULT_REPS = 400
#: What each sampled parameter measures (axis labels of the prior-versus-posterior figure).
PARAMETER_SCALES = {"log_mean": "log of mean / reference level", "log_cv": "log of the coefficient of variation"}
#: Fewest simulated cohorts a fit accepts (the scripts' former flat minimum): the covariance
#: of the log statistics is estimated from them, so it needs clearly more cohorts than
#: statistics (up to 7).
MIN_REPS = 10


#: Added to every rounding variance: keeps the covariance positive definite when a study
#: declares no rounding.
ROUNDING_FLOOR = 1e-10


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
    """Per-group reported statistics, in file order.  (Their rounding variance is computed
    inside the model from the observed values, so swapped data get their own.)"""
    out = []
    for g in study.group_ids:
        rep = study.reported(g)
        out.append(GroupData(g, study.n(g), tuple(rep), np.array(list(rep.values()), dtype=float)))
    return out


def moment_estimates(rep: dict[str, float], prefer: str = "mean") -> tuple[float, float | None]:
    """A group's centre and CV from whatever it reports: the ``prefer``-red statistic (else
    the mean, else the median, else the first one) and SD / mean clipped to [0.02, 3]
    (None without both)."""
    centre = rep.get(prefer, rep.get("mean", rep.get("median", next(iter(rep.values())))))
    cv = float(np.clip(rep["sd"] / rep["mean"], 0.02, 3.0)) if "sd" in rep and "mean" in rep else None
    return centre, cv


def starting_values(study: Study, ref: float, priors: dict) -> tuple[np.ndarray, np.ndarray]:
    """Moment estimates of (log_mean, log_cv) per group (:func:`moment_estimates`; without
    a reported SD, the CV at the prior's centre)."""
    lm, lc = [], []
    for g in study.group_ids:
        centre, cv = moment_estimates(study.reported(g), prefer="mean")
        if cv is None:
            # read only here: a prior given as a shared variable (compiled-model cache) is
            # then not needed as a number
            cv = float(np.clip(np.exp(priors["log_cv"].get("mu", np.log(0.5))), 0.02, 3.0))
        lm.append(np.log(centre / ref))
        lc.append(np.log(cv))
    return np.array(lm), np.array(lc)


def build_model(
    study: Study,
    priors: dict,
    family: str = "lognormal",
    reps: int = DEFAULT_REPS,
    seed: int = 20180302,
) -> pm.Model:
    """Build the group model for ``study``.

    Parameters
    ----------
    study : Study
        Validated study; every group with reported statistics enters the likelihood.
    priors : dict
        Prior set for model ``"group"`` (see :func:`models.priors.get_priors`).
    family : str
        Population family (see :data:`models.families.FAMILIES`).
    reps : int
        Simulated cohorts per group for the synthetic likelihood.
    seed : int
        Seed of the fixed deviates (common random numbers); part of the model definition.

    Returns
    -------
    pm.Model
        With coords ``group`` and ``statistic_<group>``; observed variables ``stats_<group>``
        hold the log reported statistics.
    """
    fam = get_family(family)
    data = group_data(study)
    ref = float(study.assumption("reference_level", 1.0))
    rng = np.random.default_rng(seed)
    width = rounding_width(study)
    q_method = int(study.assumption("quantile_method", 7))
    coords = {"group": study.group_ids}
    for d in data:
        coords[f"statistic_{d.group}"] = list(d.names)

    with pm.Model(coords=coords) as model:
        start_mean, start_cv = starting_values(study, ref, priors)
        # Chains start (jittered) at moment estimates from the reported statistics: from the
        # prior's centre, a chain can reach a spurious local mode of the synthetic likelihood
        # at very large CV (seen with the gamma family) and stay there.
        log_mean = prior_variable("log_mean", priors["log_mean"], dims="group", initval=start_mean)
        log_cv = prior_variable("log_cv", priors["log_cv"], dims="group", initval=start_cv)
        mean = pm.Deterministic("mean", ref * pt.exp(log_mean), dims="group")
        cv = pm.Deterministic("cv", pt.exp(log_cv), dims="group")

        for i, d in enumerate(data):
            table = build_table(fam, sorted_normals(rng, reps, d.n), d.names, q_method)

            def logp(value, lm, lc, _support, table=table):
                mu, cov = table_moments(pt, table, lm, lc)
                # rounding variance from the observed values themselves, so the same graph
                # serves other data (calibration swaps the data, not the model)
                extra = rounding_variance_log(pt.exp(value), width) + ROUNDING_FLOOR
                return mvn_logp(pt, value, mu, cov + pt.diag(extra), k=table.k)

            pm.CustomDist(
                f"stats_{d.group}",
                pt.log(mean[i]),
                log_cv[i],
                np.zeros(len(d.names)),
                logp=logp,
                signature="(),(),(s)->(s)",
                observed=pm.Data(f"log_stats_{d.group}", np.log(d.observed), dims=f"statistic_{d.group}"),
                dims=f"statistic_{d.group}",
            )
    return model

"""The hierarchical covariate model: a regression for every simulated subject, fitted to every
published number and claim of the study at once (DESIGN section 3).

For subject ``i`` of group ``g`` in a simulated cohort (design from :mod:`models.cohort`)::

    log(K_i / reference_level) = alpha[g] + sum_c slope[g, c] * x_ic + u[level_i] + sigma[g] * eps_i

* ``alpha[g] = intercept + group_difference[g]`` (the first group is the reference, so
  ``group_difference`` has one entry per other group);
* ``slope[g, c] = effect[c] + effect_spread[c] * effect_z[g, c]`` for a covariate defined in
  several groups (partial pooling through the population-level ``effect`` and
  ``effect_spread``, non-centred), ``effect[c]`` for a covariate of one group;
* ``u = category_spread * category_z``: the categorical breakdown (subtype) as a random
  effect with a hierarchical scale;
* residuals ``eps``: standard normal (family ``normal``, i.e. lognormal levels) or Student-t
  (family ``student_t``), fixed deviates (common random numbers).

Likelihood, one observed term per published item:

* each group's reported statistics (mean, SD, median, ...): multivariate normal synthetic
  likelihood of the log statistics over ``reps`` cohorts, plus declared rounding; quantiles
  are kernel-smoothed over a few ranks so the log density has no gradient jumps
  (:func:`models.statistics.smooth_sample_statistics`);
* each association claim: the probability, under a normal approximation of the estimate's
  distribution over the simulated cohorts, that a cohort's estimate satisfies the claim
  (an interval for "approximately", a one-sided t threshold for "significantly", a sign
  otherwise) - a censored observation of the estimate;
* each comparison claim that is not a function of reported numbers (``p_value``): the same,
  for the declared group test's statistic.
"""
from __future__ import annotations

import math

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .cohort import Design, build_design, claim_design, cohort_log_levels, group_test_statistic, modelled_associations, regression_estimate, residual_deviates
from .group import ROUNDING_FLOOR, moment_estimates, rounding_width
from .likelihood import mvn_logp, rounding_variance_log, synthetic_moments
from .priors import PriorError, prior_variable
from .statistics import DEFAULT_GROUP_TEST, smooth_sample_statistics
from .study import Study

#: Residual families on the log scale.
FAMILIES = {
    "normal": "normal residuals on the log scale (lognormal levels)",
    "student_t": "Student-t residuals on the log scale (heavier tails; df from the prior set)",
}
DEFAULT_FAMILY = "normal"
#: Simulated cohorts per likelihood evaluation.  Each cohort has every subject of the study,
#: so the cost per evaluation is reps x N; 40 keeps the relative Monte Carlo error of the
#: estimated SDs of the statistics near sqrt(1/80) = 11% (measured trade-off: README, speed).
DEFAULT_REPS = 40
#: Comparison-claim statistics that are functions of reported numbers when those are given;
#: they enter through the numbers and are only checked, never counted twice.
_REDUNDANT = {"ratio_of_means": "mean", "ratio_of_medians": "median"}
#: Cohorts used for group-test claims.  A rank statistic compares every pair of subjects
#: (n_a x n_b per cohort), which made it half the cost of a likelihood evaluation at 100
#: cohorts; the normal approximation of its distribution needs only its mean and SD.
TEST_REPS = 20


def resolve_priors(study: Study, priors: dict, design: Design) -> dict:
    """Turn a prior set into per-parameter values for this study.

    ``effect.<covariate>`` entries override ``effect`` for one covariate; a prior mean of
    ``"claimed"`` is taken from the study's claims: the log of ``1 + value/100`` for an
    approximate percent claim, ``-+claimed_size`` for a directional claim, and for
    ``group_difference`` minus the log of a ratio claimed between the first group and another.

    Returns
    -------
    dict
        ``effect_mu``, ``effect_sigma`` (arrays over covariates) and ``group_difference``
        (list of specs over the non-reference groups), plus the set's other entries.

    Raises
    ------
    PriorError
        For an ``effect.<name>`` key naming no covariate of the study.
    """
    out = {k: v for k, v in priors.items() if not k.startswith("effect.")}
    for key in priors:
        if key.startswith("effect.") and key.split(".", 1)[1] not in design.covariates:
            raise PriorError(f"prior {key!r}: no covariate {key.split('.', 1)[1]!r} in the study (known: {', '.join(design.covariates)})")
    mus, sigmas = [], []
    claims = {a.covariate: a for a in study.associations.values()}
    for c in design.covariates:
        spec = dict(priors.get(f"effect.{c}", priors["effect"]))
        if spec.get("dist") != "normal":
            raise PriorError(f"prior effect.{c}: the effects take normal priors")
        mu = spec["mu"]
        if mu == "claimed":
            a = claims.get(c)
            if a is None or a.direction in (None, "none"):
                mu = 0.0
            elif a.relation == "~":
                mu = math.log1p(a.value / 100.0)
            else:
                mu = (-1.0 if a.direction == "lower" else 1.0) * float(spec.get("claimed_size", 0.2))
        mus.append(float(mu))
        sigmas.append(float(spec["sigma"]))
    out["effect_mu"], out["effect_sigma"] = np.array(mus), np.array(sigmas)
    first = design.groups[0]
    diffs = []
    for g in design.groups[1:]:
        spec = {k: v for k, v in priors["group_difference"].items() if k != "claimed_size"}
        if spec.get("mu") == "claimed":
            spec["mu"] = 0.0
            for comp in study.comparisons.values():
                for cl in comp.claims.values():
                    if cl.statistic.startswith("ratio_of") and cl.value and set(comp.groups) == {first, g}:
                        sign = -1.0 if comp.groups[0] == first else 1.0
                        spec["mu"] = sign * math.log(cl.value)
        diffs.append(spec)
    out["group_difference"] = diffs
    return out


def log_ndtr(z):
    """``log Phi(z)`` for tensors, stable in the lower tail and differentiable everywhere.

    Written with ``erfc`` (accurate in double precision down to z = -20) and an asymptotic
    series below -20 (relative error < 1e-12 there), instead of PyMC's ``normal_lcdf``, whose
    ``erfcx`` has no JAX implementation.
    """
    zc = pt.maximum(z, -20.0)
    main = pt.log(0.5 * pt.erfc(-zc / math.sqrt(2.0)))
    zt = pt.minimum(z, -20.0)
    series = 1.0 - 1.0 / zt**2 + 3.0 / zt**4 - 15.0 / zt**6 + 105.0 / zt**8
    tail = -0.5 * zt**2 - pt.log(-zt) - 0.5 * math.log(2.0 * math.pi) + pt.log(series)
    return pt.switch(z < -20.0, tail, main)


def normal_lcdf(mu, sigma, x):
    """``log P(X <= x)`` for ``X ~ Normal(mu, sigma)``."""
    return log_ndtr((x - mu) / sigma)


def _claim_logp(kind: str):
    """Log probability that the simulated estimates ``sim`` (reps,) satisfy a claim with
    bounds ``(lo, hi)``, under a normal approximation of their distribution."""

    def logp(lo, sim, hi):
        m = pt.mean(sim)
        s = pt.sqrt(pt.sum((sim - m) ** 2) / (sim.shape[0] - 1)) + 1e-9
        if kind == "interval":
            return pm.math.logdiffexp(normal_lcdf(m, s, hi), normal_lcdf(m, s, lo))
        if kind == "below":
            return normal_lcdf(m, s, lo)
        if kind == "above":
            return normal_lcdf(-m, s, -lo)
        if kind == "beyond":  # |statistic| > lo
            return pm.math.logaddexp(normal_lcdf(m, s, -lo), normal_lcdf(-m, s, -lo))
        raise ValueError(kind)

    return logp


def comparison_claims(study: Study) -> list[dict]:
    """Comparison claims entering the likelihood: p-value claims (two-sided, through the
    declared ``group_test``); ratios of reported statistics are only checked."""
    from scipy import stats as sps

    out = []
    test = study.assumption("group_test", DEFAULT_GROUP_TEST)
    for cid, comp in study.comparisons.items():
        for k, cl in comp.claims.items():
            if cl.statistic in _REDUNDANT and all(_REDUNDANT[cl.statistic] in study.reported(g) for g in comp.groups):
                continue
            if cl.statistic == "p_value" and cl.relation == "<":
                out.append(
                    {"name": f"{cid}.{k}", "groups": comp.groups, "test": test, "kind": "beyond", "bounds": (float(sps.norm.isf(cl.value / 2)),)}
                )
    return out


def starting_point(study: Study, design: Design, ref: float) -> dict:
    """Starting values from the group model's moment estimates
    (:func:`models.group.moment_estimates`): group levels at the reported medians (log
    levels are median-like) and residual SDs from the reported CV; every effect at 0."""
    lev, sig = [], []
    for g in design.groups:
        centre, cv = moment_estimates(study.reported(g), prefer="median")
        cv = 0.5 if cv is None else cv
        lev.append(math.log(centre / ref))
        sig.append(math.log(math.sqrt(math.log1p(cv**2))))
    return {"intercept": lev[0], "group_difference": np.array(lev[1:]) - lev[0], "log_sigma": np.array(sig)}


def build_model(study: Study, priors: dict, family: str = DEFAULT_FAMILY, reps: int = DEFAULT_REPS, seed: int = 20180302) -> pm.Model:
    """Build the hierarchical covariate model for ``study``.

    Parameters
    ----------
    study : Study
        Needs ``covariates``; uses every group's reported statistics, the modelled
        associations (:func:`models.cohort.modelled_associations`) and p-value claims.
    priors : dict
        Prior set for model ``"hierarchical"`` (:func:`models.priors.get_priors`).
    family : {"normal", "student_t"}
        Residual family on the log scale.
    reps : int
        Simulated cohorts per likelihood evaluation.
    seed : int
        Seed of the fixed design and deviates; part of the model definition.

    Returns
    -------
    pm.Model
        Free parameters ``intercept``, ``group_difference``, ``effect``, ``effect_spread``,
        ``effect_z``, ``category_spread``, ``category_z``, ``log_sigma``; deterministics
        ``alpha``, ``slope`` (group x covariate), ``sigma``, ``u``.  Design arrays and
        observed values are ``pm.Data``, so scenarios that change only values can swap them.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown residual family {family!r}; use one of: {', '.join(FAMILIES)}")
    if not study.covariates:
        raise ValueError(f"{study.id}: the hierarchical model needs 'covariates' in the study file")
    design = build_design(study, reps, seed)
    pr = resolve_priors(study, priors, design)
    if family == "student_t" and "residual_df" not in pr:
        raise PriorError("the student_t family needs 'residual_df' ({'dist': 'fixed', 'value': ...}) in the prior set")
    df = float(pr["residual_df"]["value"]) if family == "student_t" else None
    eps = residual_deviates(reps, design.n, seed, df)
    ref = float(study.assumption("reference_level", 1.0))
    width = rounding_width(study)
    q_method = int(study.assumption("quantile_method", 7))
    G, C = len(design.groups), len(design.covariates)
    pooled = [j for j in range(C) if design.defined[:, j].sum() > 1]
    pooled_names = [design.covariates[j] for j in pooled]
    coords = {
        "group": list(design.groups),
        "contrast": list(design.groups[1:]),
        "covariate": list(design.covariates),
        "pooled_covariate": pooled_names,
        "level": list(design.levels),
    }
    for g in design.groups:
        coords[f"statistic_{g}"] = list(study.reported(g))
    start = starting_point(study, design, ref)
    assoc = {name: claim_design(study, design, name, a) for name, a in modelled_associations(study).items()}

    with pm.Model(coords=coords) as model:
        x = pm.Data("design_x", design.x)
        onehot = pm.Data("design_levels", design.onehot)
        e = pm.Data("residual_deviates", eps)
        gi = design.group_index

        intercept = prior_variable("intercept", pr["intercept"], initval=start["intercept"])
        if G > 1:
            gd = pm.Normal(
                "group_difference",
                mu=np.array([s["mu"] for s in pr["group_difference"]]),
                sigma=np.array([s["sigma"] for s in pr["group_difference"]]),
                dims="contrast",
                initval=start["group_difference"],
            )
            alpha = pm.Deterministic("alpha", intercept + pt.concatenate([pt.zeros(1), gd]), dims="group")
        else:
            alpha = pm.Deterministic("alpha", intercept + pt.zeros(1), dims="group")
        effect = pm.Normal("effect", mu=pr["effect_mu"], sigma=pr["effect_sigma"], dims="covariate")
        slope = pt.zeros((G, C)) + effect[None, :]
        if pooled:
            spread = prior_variable("effect_spread", pr["effect_spread"], dims="pooled_covariate")
            z = pm.Normal("effect_z", 0.0, 1.0, dims=("group", "pooled_covariate"))
            slope = pt.set_subtensor(slope[:, pooled], slope[:, pooled] + spread[None, :] * z)
        slope = pm.Deterministic("slope", slope * design.defined, dims=("group", "covariate"))
        if design.levels:
            cspread = prior_variable("category_spread", pr["category_spread"])
            cz = pm.Normal("category_z", 0.0, 1.0, dims="level")
            u = pm.Deterministic("u", cspread * cz, dims="level")
        else:
            u = None
        log_sigma = prior_variable("log_sigma", pr["log_sigma"], dims="group", initval=start["log_sigma"])
        sigma = pm.Deterministic("sigma", pt.exp(log_sigma), dims="group")

        eta = cohort_log_levels(pt, alpha, slope, u, sigma, x, onehot, e, gi)

        for g in design.groups:
            names = list(study.reported(g))
            k = len(names)
            n = study.n(g)
            level = pt.sort(pt.exp(eta[:, design.slices[g]]), axis=-1)
            sim = pt.log(smooth_sample_statistics(pt, level, n, names, quantile_method=q_method))

            def logp(value, sim, _support, k=k):
                mu, cov = synthetic_moments(sim)
                extra = rounding_variance_log(pt.exp(value) * ref, width) + ROUNDING_FLOOR
                return mvn_logp(pt, value, mu, cov + pt.diag(extra), k=k)

            observed = np.log(np.array([study.reported(g)[s] for s in names]) / ref)
            pm.CustomDist(
                f"stats_{g}",
                sim,
                np.zeros(k),
                logp=logp,
                signature="(r,s),(s)->(s)",
                observed=pm.Data(f"log_stats_{g}", observed, dims=f"statistic_{g}"),
                dims=f"statistic_{g}",
            )

        for name, cd in assoc.items():
            y = eta[:, cd.index]
            coef, tstat = regression_estimate(
                pt, y, pm.Data(f"claim_X_{name}", cd.X), pm.Data(f"claim_P_{name}", cd.P), pm.Data(f"claim_v_{name}", cd.v), cd.df
            )
            sim = coef if cd.statistic == "coefficient" else tstat
            lo, hi = (cd.bounds[0], cd.bounds[-1])
            pm.CustomDist(
                f"claim_{name}",
                sim,
                pm.Data(f"claim_hi_{name}", hi),
                logp=_claim_logp(cd.kind),
                signature="(r),()->()",
                observed=pm.Data(f"claim_lo_{name}", lo),
            )

        for cc in comparison_claims(study):
            a, b = (pt.exp(eta[:TEST_REPS, design.slices[g]]) for g in cc["groups"])
            sim = group_test_statistic(pt, a, b, *(study.n(g) for g in cc["groups"]), cc["test"])
            safe = cc["name"].replace(".", "_")
            pm.CustomDist(
                f"claim_{safe}",
                sim,
                cc["bounds"][0],
                logp=_claim_logp(cc["kind"]),
                signature="(r),()->()",
                observed=pm.Data(f"claim_lo_{safe}", cc["bounds"][0]),
            )
    # kept for estimands and predictive checks (plain NumPy, no I/O)
    model.design, model.residual_df = design, df
    return model


# hooks of the analysis pipeline (models.analysis.model_api); imported last because
# models.effects needs nothing from this module but the shared cohort simulator
from .effects import add_estimands, estimand_table  # noqa: E402,F401
from .effects import predictive_cohorts as simulate_predictive  # noqa: E402,F401

"""Named prior sets, as plain values keyed by parameter name.

A prior is ``{"dist": <name>, **parameters}``.  Group means are stated relative to the
study's declared ``reference_level`` assumption (``log_mean = log(mean / reference_level)``),
so one prior set serves studies in any units.  Unknown set names and unknown parameter keys
are errors, never ignored.
"""
from __future__ import annotations

import math
from copy import deepcopy

PRIOR_SETS: dict[str, dict[str, dict[str, dict]]] = {
    "group": {
        # Weakly informative: a group mean within a factor of ~400 of the reference level
        # (95%), and a coefficient of variation between about 0.07 and 3.5 (95%).
        "default": {
            "log_mean": {"dist": "normal", "mu": 0.0, "sigma": 3.0},
            "log_cv": {"dist": "normal", "mu": math.log(0.5), "sigma": 1.0},
        },
        # Wider on both, for sensitivity runs.
        "wide": {
            "log_mean": {"dist": "normal", "mu": 0.0, "sigma": 6.0},
            "log_cv": {"dist": "normal", "mu": math.log(0.5), "sigma": 2.0},
        },
        # Narrower spread prior: CV mostly between 0.2 and 1.3.
        "narrow": {
            "log_mean": {"dist": "normal", "mu": 0.0, "sigma": 1.5},
            "log_cv": {"dist": "normal", "mu": math.log(0.5), "sigma": 0.5},
        },
    },
}


# The hierarchical covariate model (models/hierarchical.py).  Effects are on the log scale
# per unit of the covariate's model scale (e.g. per decade); ``"claimed"`` as a prior mean is
# resolved from the study file's claims (see models.hierarchical.resolve_priors), so the
# enthusiastic set is centred on what the paper says, without study-specific code.
_H_COMMON = {
    # log level of the first group's reference subject, relative to reference_level
    "intercept": {"dist": "normal", "mu": 0.0, "sigma": 3.0},
    # residual SD on the log scale (what covariates leave unexplained): 95% between about
    # 0.11 and 0.8.  Residual SDs below ~0.1 would mean the covariates explain nearly all
    # between-person variation; there the population is a few sharp spikes at the design's
    # subjects, the fixed design stops being a usable quadrature, and NUTS diverged
    # (README, "hierarchical model").  The "wide" set relaxes it.
    "log_sigma": {"dist": "normal", "mu": math.log(0.3), "sigma": 0.5},
    # between-group SD of a covariate's slope (partial pooling across groups)
    "effect_spread": {"dist": "halfnormal", "sigma": 0.1},
    # SD of the categorical (subtype) effects
    "category_spread": {"dist": "halfnormal", "sigma": 0.3},
    # degrees of freedom of Student-t residuals (used with --family student_t only)
    "residual_df": {"dist": "fixed", "value": 5.0},
}
PRIOR_SETS["hierarchical"] = {
    # Weakly informative: groups within a factor of ~50 of each other (95%), effects within
    # a factor of ~2.7 per unit (95%).
    "default": {
        **_H_COMMON,
        "group_difference": {"dist": "normal", "mu": 0.0, "sigma": 2.0},
        "effect": {"dist": "normal", "mu": 0.0, "sigma": 0.5},
    },
    # Centred on no difference and no effect: groups within a factor of ~2 (95%), effects
    # within about +-20% per unit (95%).
    "skeptical": {
        **_H_COMMON,
        "group_difference": {"dist": "normal", "mu": 0.0, "sigma": 0.35},
        "effect": {"dist": "normal", "mu": 0.0, "sigma": 0.1},
    },
    # Centred on the published claims ("claimed"), moderately sure; a claim that gives only a
    # direction is centred at claimed_size in that direction.
    "enthusiastic": {
        **_H_COMMON,
        "group_difference": {"dist": "normal", "mu": "claimed", "sigma": 0.3},
        "effect": {"dist": "normal", "mu": "claimed", "sigma": 0.15, "claimed_size": 0.2},
    },
    # Scale variants of the default, for sensitivity runs.
    "wide": {
        **_H_COMMON,
        "log_sigma": {"dist": "normal", "mu": math.log(0.5), "sigma": 2.0},
        "effect_spread": {"dist": "halfnormal", "sigma": 0.3},
        "group_difference": {"dist": "normal", "mu": 0.0, "sigma": 4.0},
        "effect": {"dist": "normal", "mu": 0.0, "sigma": 1.0},
    },
    "narrow": {
        **_H_COMMON,
        "log_sigma": {"dist": "normal", "mu": math.log(0.5), "sigma": 0.5},
        "effect_spread": {"dist": "halfnormal", "sigma": 0.05},
        "group_difference": {"dist": "normal", "mu": 0.0, "sigma": 1.0},
        "effect": {"dist": "normal", "mu": 0.0, "sigma": 0.25},
    },
}


class PriorError(ValueError):
    """An unknown prior set or parameter."""


def get_priors(model: str, name: str = "default", overrides: dict | None = None, sets: dict | None = None) -> dict:
    """Return a copy of prior set ``name`` for ``model``, with ``overrides`` merged in.

    ``sets``: the model's own prior sets (:attr:`models.interface.Model.prior_sets`) instead
    of its entry of :data:`PRIOR_SETS`.

    Raises
    ------
    PriorError
        If the model, the set, or an override key is unknown.
    """
    if sets is None:
        if model not in PRIOR_SETS:
            raise PriorError(f"no prior sets for model {model!r}; known: {', '.join(PRIOR_SETS)}")
        sets = PRIOR_SETS[model]
    if name not in sets:
        raise PriorError(f"unknown prior set {name!r} for model {model!r}; choose one of: {', '.join(sets)}")
    priors = deepcopy(sets[name])
    for key, value in (overrides or {}).items():
        if key not in priors:
            raise PriorError(f"unknown prior parameter {key!r}; known: {', '.join(priors)}")
        priors[key] = dict(value)
    return priors


def prior_variable(name: str, spec: dict, **kw):
    """A PyMC random variable from a prior value ``{"dist": ..., **parameters}`` (inside a
    model context); ``kw`` (dims, initval, ...) is passed on."""
    import pymc as pm

    dists = {"normal": pm.Normal, "student_t": pm.StudentT, "halfnormal": pm.HalfNormal}
    dist = spec["dist"]
    if dist not in dists:
        raise PriorError(f"prior {name}: unsupported distribution {dist!r}; use one of {', '.join(dists)}")
    params = {k: v for k, v in spec.items() if k != "dist"}
    return dists[dist](name, **params, **kw)

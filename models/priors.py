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


class PriorError(ValueError):
    """An unknown prior set or parameter."""


def get_priors(model: str, name: str = "default", overrides: dict | None = None) -> dict:
    """Return a copy of prior set ``name`` for ``model``, with ``overrides`` merged in.

    Raises
    ------
    PriorError
        If the model, the set, or an override key is unknown.
    """
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

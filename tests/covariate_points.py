"""Points of the covariate model's sampled parameters with chosen slopes, for tests that
evaluate its log density (the model samples pooled slopes through their mean:
models.hierarchical.pooled_effects)."""
from __future__ import annotations

import numpy as np


def with_slopes(model, point: dict, slopes: dict) -> dict:
    """``point`` (parameter name -> value, as ``model.initial_point()``) with every group's
    slope of each covariate in ``slopes`` (covariate -> value) set to that value.

    A pooled covariate's value goes to its ``slope_mean`` and its group deviations
    (``effect_z``) to 0; a covariate of one group's goes to ``effect_single``.
    """
    out = {k: np.array(v, dtype=float) for k, v in point.items()}
    pooled = list(model.coords["pooled_covariate"])
    for c, value in slopes.items():
        if c in pooled:
            out["slope_mean"][pooled.index(c)] = value
            out["effect_z"][:, pooled.index(c)] = 0.0
        else:
            out["effect_single"][list(model.coords["single_covariate"]).index(c)] = value
    return out

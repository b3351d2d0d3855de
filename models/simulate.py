"""Cohort simulation shared by the likelihood, posterior predictive checks and calibration.

A simulated group is ``family.quantile(xp, z, mean, cv)`` applied to row-sorted standard
normal deviates ``z``: sorted rows stay sorted under the increasing quantile transform, so
order statistics need no sort inside the model graph (see :mod:`models.families`).
"""
from __future__ import annotations

import numpy as np

from .families import Family
from .statistics import sample_statistics


def sorted_normals(rng: np.random.Generator, reps: int, n: int) -> np.ndarray:
    """``reps`` rows of ``n`` standard normal deviates, each row sorted ascending."""
    return np.sort(rng.standard_normal((reps, n)), axis=-1)


def simulate_group(xp, family: Family, z_sorted, mean, cv):
    """Row-sorted samples of one group.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``pytensor.tensor``.
    family : Family
        Population family.
    z_sorted : array (reps, n)
        Row-sorted standard normal deviates (common random numbers in the likelihood,
        fresh deviates in predictive checks).
    mean, cv : scalar or array broadcastable against (reps, 1)
        Population mean and coefficient of variation.
    """
    return family.quantile(xp, z_sorted, mean, cv)


def simulate_group_statistics(xp, family: Family, z_sorted, mean, cv, names, quantile_method: int = 7):
    """Reported statistics (``names``, last axis) of simulated samples of one group."""
    n = int(z_sorted.shape[-1]) if xp is np else int(z_sorted.type.shape[-1])
    x = simulate_group(xp, family, z_sorted, mean, cv)
    return sample_statistics(xp, x, n, names, quantile_method)

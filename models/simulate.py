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


def uniform_rounding_errors(rng: np.random.Generator, reps: int, k: int) -> np.ndarray:
    """``reps`` rows of ``k`` rounding errors, uniform on (-1/2, 1/2) rounding units: the
    fixed errors that simulate rounding in the likelihood tables (common random numbers,
    like the deviates)."""
    return rng.uniform(-0.5, 0.5, size=(reps, k))


def dithered_statistics(stats_std, scale, errors):
    """Statistics in rounding units with simulated rounding: ``scale * stats_std + errors``.

    Parameters
    ----------
    stats_std : array (..., reps, k)
        Statistics of cohorts of a population with mean 1.
    scale : array broadcastable against (..., 1, 1)
        Population mean in rounding units (mean / width).
    errors : array (reps, k)
        Fixed uniform errors (:func:`uniform_rounding_errors`).

    Returns
    -------
    array (..., reps, k)
        Unrounded statistic plus an independent uniform error of one rounding unit: its
        density at a lattice point is exactly the probability that the statistic rounds
        there (see :mod:`models.likelihood`), so it is rounding made continuous.
    """
    return scale * stats_std + errors


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
    n = int(z_sorted.shape[-1])
    x = simulate_group(xp, family, z_sorted, mean, cv)
    return sample_statistics(xp, x, n, names, quantile_method)


def simulate_reported(study, family: Family, params: dict[str, tuple[float, float]], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Simulate the statistics a study like ``study`` would publish.

    Parameters
    ----------
    study : Study
        Supplies the design: each group's size, which statistics it reports, the quantile
        method and the rounding of published values (assumptions ``quantile_method`` and
        ``rounding``).
    family : Family
    params : dict
        group id -> (population mean, CV).
    rng : np.random.Generator

    Returns
    -------
    dict
        group id -> reported statistics in the study's order, rounded as the study declares.
        A value that rounds to zero is reported as half the rounding width (a published
        positive value cannot be zero).
    """
    return reported_statistics(study, simulate_cohorts(study, family, params, rng))


def simulate_cohorts(study, family: Family, params: dict[str, tuple[float, float]], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One sorted cohort of each group's published size (group id -> array (n,)), group
    after group from ``rng``: the cohorts behind :func:`simulate_reported`, from which a
    simulated study's test statistics are computed too."""
    out = {}
    for g in study.group_ids:
        mean, cv = params[g]
        out[g] = simulate_group(np, family, sorted_normals(rng, 1, study.n(g)), mean, cv)[0]
    return out


def reported_statistics(study, cohorts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The statistics each group of ``study`` reports, computed on ``cohorts`` and rounded
    as the study declares (:func:`round_reported`)."""
    q_method = int(study.setting("quantile_method"))
    width = float(study.assumption("rounding", 0.0) or 0.0)
    out = {}
    for g in study.group_ids:
        x = cohorts[g]
        stats = sample_statistics(np, x[None], x.shape[-1], tuple(study.reported(g)), q_method)[0]
        out[g] = round_reported(stats, width)
    return out


def round_reported(stats: np.ndarray, width: float) -> np.ndarray:
    """Round simulated statistics as a paper would publish them (multiples of ``width``;
    0 = no rounding); a value that rounds to zero is reported as half the width, since a
    published positive value cannot be zero."""
    if width > 0:
        return np.maximum(np.round(stats / width) * width, width / 2)
    return stats

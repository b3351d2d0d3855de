"""Importance weighting of one fit's draws towards another posterior of the same model
structure: a sensitivity scenario that changes only values (a prior set, an assumption
entering the likelihood as a number) need not be sampled when the draws of the default
scenario cover its posterior well.

The weight of a draw ``z`` (unconstrained parameters) is the ratio of the two joint
densities, ``exp(U_base(z) - U_new(z))`` with ``U`` the sampler's potential under each
scenario's values; the Jacobians of the transforms are the same and cancel.  The weights
are Pareto-smoothed (PSIS, Vehtari et al. 2024); their Pareto ``k`` says whether they can be
trusted (below :data:`PARETO_K_MAX`), and the draws are then resampled, systematically and
within each chain, so that every summary, R-hat and ESS of the toolkit applies unchanged:
a draw of large weight repeats in place, which the chains' autocorrelation, and hence
their ESS, takes into account.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

#: Pareto k at or above which smoothed importance weights are not trusted (Vehtari et al.
#: 2024: the estimate's error no longer falls as the sample grows).
PARETO_K_MAX = 0.7


@dataclass
class BaseDraws:
    """The draws a scenario may be importance-weighted from, chains first.

    Attributes
    ----------
    name : str
        The scenario that sampled them.
    structure : str
        Key of the compiled model structure they were sampled with; only a scenario of the
        same structure can use them.
    position : dict
        Parameter name -> (chains, draws, ...) unconstrained draws.
    data : dict
        That scenario's values of the model's replaceable inputs.
    stats : dict
        Sampler statistics of each draw (chains, draws), carried with the resampled draws.
    """

    name: str
    structure: str
    position: dict
    data: dict
    stats: dict


def pareto_smoothed(log_ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pareto-smoothed importance weights from log density ratios.

    Parameters
    ----------
    log_ratio : np.ndarray
        Shape (replicate, draw): log target density minus log proposal density (any
        constant offset).

    Returns
    -------
    weights, k : np.ndarray
        Weights normalised per replicate (replicate, draw), and Pareto k (replicate,).
    """
    import arviz as az

    with warnings.catch_warnings():
        # ArviZ warns of a large k itself; callers read k
        warnings.simplefilter("ignore")
        lw, k = az.psislw(np.asarray(log_ratio, dtype=float))
    return np.exp(np.asarray(lw)), np.atleast_1d(np.asarray(k, dtype=float))


def systematic_indices(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Systematic resampling of each row of ``weights`` (rows: chains), in the rows' order.

    Returns (chains, draws) indices into each row: draw ``i`` of a row appears about
    ``draws * w_i`` times, in place, with the least resampling noise of the usual schemes.
    """
    w = np.asarray(weights, dtype=float)
    w = w / w.sum(axis=1, keepdims=True)
    n = w.shape[1]
    points = (rng.uniform(size=(w.shape[0], 1)) + np.arange(n)) / n
    cum = np.cumsum(w, axis=1)
    cum[:, -1] = 1.0  # rounding must not leave the last point beyond the last draw
    return np.stack([np.searchsorted(c, p, side="right") for c, p in zip(cum, points)])


@dataclass
class Reweighting:
    """The outcome of weighting one fit's draws towards another posterior.

    Attributes
    ----------
    indices : np.ndarray
        (chains, draws) resampled draw of each chain.
    pareto_k : float
        Pareto k of the log ratios of all draws.
    efficiency : float
        Kish's effective share of the smoothed weights, ``1 / (n * sum(w^2))``: 1 when the
        two posteriors are the same, small when a few draws carry the weight.
    """

    indices: np.ndarray
    pareto_k: float
    efficiency: float


def described(attrs) -> str:
    """Where importance-weighted draws came from, in words, from their posterior's
    ``attrs`` (:meth:`reanalysis.sampling.CompiledNuts.reweighted`)."""
    return f"importance-weighted from {attrs['importance_from']} (Pareto k {attrs['pareto_k']:.2f}, efficiency {attrs['importance_efficiency']:.2f})"


def reweight(log_ratio: np.ndarray, seed: int) -> Reweighting:
    """Pareto-smooth the (chains, draws) ``log_ratio`` over all draws and resample each
    chain by the smoothed weights (:func:`systematic_indices`)."""
    log_ratio = np.asarray(log_ratio, dtype=float)
    chains, draws = log_ratio.shape
    w, k = pareto_smoothed(log_ratio.reshape(1, -1))
    w = w.reshape(chains, draws)
    efficiency = float(1.0 / (w.size * np.sum(w**2)))
    indices = systematic_indices(w, np.random.default_rng(seed))
    return Reweighting(indices=indices, pareto_k=float(k[0]), efficiency=efficiency)

"""Synthetic likelihood of reported summary statistics (Wood 2010; Price et al. 2018).

The reported statistics of a group are treated as one draw of a statistic vector whose
distribution is approximated by a multivariate normal on the log scale, with mean and
covariance estimated from ``reps`` cohorts simulated with *fixed* deviates (common random
numbers).  Holding the deviates fixed makes the log density a smooth, deterministic function
of the parameters, so gradient-based samplers work.  Unlike the textbook asymptotic normal
for a sample SD, the covariance here is the finite-sample one of the assumed family, so it
cannot be inflated by drifting the scale parameter upward (../DESIGN.md, "a measured trap").

Rounding of published values (a declared assumption, width ``w``) adds the variance of a
uniform rounding error, ``w**2 / 12``, to each statistic (on the log scale, divided by the
squared reported value).
"""
from __future__ import annotations

import numpy as np


def rounding_variance_log(observed: np.ndarray, width: float) -> np.ndarray:
    """Log-scale variance added by rounding each reported value to a multiple of ``width``."""
    observed = np.asarray(observed, dtype=float)
    return (width**2 / 12.0) / observed**2


def mvn_synthetic_logp(xp, observed_log, sim_log, extra_var):
    """Gaussian synthetic log likelihood of one statistic vector.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``pytensor.tensor``.
    observed_log : array (k,)
        Log of the reported statistics.
    sim_log : array (reps, k)
        Log statistics of cohorts simulated at the current parameters.
    extra_var : array (k,)
        Variance added to the diagonal (rounding); also keeps the covariance positive
        definite when a statistic is nearly deterministic.

    Returns
    -------
    scalar
        ``log N(observed_log | mean(sim_log), cov(sim_log) + diag(extra_var))``.
    """
    reps, k = sim_log.shape if xp is np else (sim_log.type.shape[0], len(extra_var))
    mu = xp.mean(sim_log, axis=0)
    centred = sim_log - mu
    cov = xp.dot(centred.T, centred) / (reps - 1) + xp.diag(xp.as_tensor(extra_var) if xp is not np else extra_var)
    if xp is np:
        chol = np.linalg.cholesky(cov)
        resid = np.linalg.solve(chol, observed_log - mu)
        logdet = 2.0 * np.sum(np.log(np.diag(chol)))
    else:
        from pytensor.tensor.slinalg import cholesky, solve_triangular

        chol = cholesky(cov, lower=True)
        resid = solve_triangular(chol, observed_log - mu, lower=True)
        logdet = 2.0 * xp.sum(xp.log(xp.diag(chol)))
    return -0.5 * (xp.sum(resid**2) + logdet + k * np.log(2.0 * np.pi))

"""Large-sample distributions of published statistics for a population that is a finite
mixture of lognormal components (the covariate model's subjects).

In the covariate model a subject's log level is ``m_i + s_i * eps`` with ``m_i`` given by its
covariates, so a group's population is an equal-weight mixture of lognormals over the
subjects of the (fixed) cohort design, which acts as a quadrature of the covariate
distribution.  Everything a paper reports about that population has a closed form or a
one-dimensional root:

* raw and partial moments of a lognormal component are exponentials times normal CDFs;
* population quantiles solve ``F(q) = p`` (a few Newton steps on the log scale, written out
  so the same code runs in NumPy and inside a PyTensor graph, gradients included);
* the joint large-sample covariance of sample mean, SD and quantiles comes from their
  influence functions (mean: ``X - mu``; SD: ``((X - mu)^2 - sigma^2) / (2 sigma)``;
  quantile p: ``(p - 1{X <= q_p}) / f(q_p)``; e.g. Serfling 1980, ch. 2 and 6);
* the statistics are then approximately jointly normal on the log scale (delta method, with
  the second-order correction of the mean so that ``E exp(log stat)`` is the statistic's
  expectation, including the ``O(1/n)`` bias of the sample SD).

Against simulating cohorts inside the likelihood this removes Monte Carlo noise and the
gradient jumps of sample quantiles, and costs a few vector operations.  How close it is to
the finite-sample distribution is measured in ``tests/test_asymptotic.py`` against the
cohort simulator; the posterior predictive checks always use exact sample statistics of
simulated cohorts.

All functions take ``xp`` (``numpy`` or ``pytensor.tensor``); component arrays are 1-D.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .statistics import QUANTILE_P

SQRT2 = math.sqrt(2.0)
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
#: Statistics with a large-sample normal distribution; sample extremes have none.
SUPPORTED = ("mean", "sd", *QUANTILE_P)
#: Newton steps for a population quantile.  From the moment-matched normal start the
#: log-scale mixture CDF converges to 1e-12 in at most 5 steps in the tests; 8 leaves margin
#: and keeps the graph small.
NEWTON_STEPS = 8


def ndtr(xp, z):
    """Standard normal CDF on NumPy or PyTensor."""
    erfc = special.erfc if xp is np else xp.erfc
    return 0.5 * erfc(-z / SQRT2)


def npdf(xp, z):
    """Standard normal density on NumPy or PyTensor."""
    return xp.exp(-0.5 * z**2 - LOG_SQRT_2PI)


def quantile_log(xp, m, s, p: float, steps: int = NEWTON_STEPS):
    """Log of the ``p`` quantile of the equal-weight mixture of ``lognormal(m_i, s_i)``.

    Newton's method on ``G(y) = mean_i Phi((y - m_i)/s_i) - p``, started at the quantile of
    the normal with the mixture's log-scale mean and variance; each step is clipped to one
    log unit so a flat start cannot throw it far.  In a graph the iterations carry no
    gradient: one more Newton step from the converged root gives the implicit-function
    derivative ``-dG/dtheta / G'`` exactly, with a fraction of the graph.
    """
    from scipy.stats import norm

    def step(y, m, s):
        z = (y - m) / s
        return y - xp.clip((ndtr(xp, z).mean() - p) / (npdf(xp, z) / s).mean(), -1.0, 1.0)

    if xp is np:
        m0, s0 = m, s
    else:
        from pytensor.gradient import disconnected_grad

        m0, s0 = disconnected_grad(m), disconnected_grad(s)
    mean = m0.mean()
    y = mean + float(norm.ppf(p)) * xp.sqrt(((m0 - mean) ** 2).mean() + (s0**2).mean())
    for _ in range(steps - 1):
        y = step(y, m0, s0)
    return step(y, m, s)


def mixture_mean_cv2(xp, m, s):
    """Log of the mean and squared CV of the equal-weight mixture of ``lognormal(m_i, s_i)``
    (the squared CV is the variance in units of the squared mean)."""
    log_mu = xp.log(xp.exp(m + 0.5 * s**2).mean())
    return log_mu, xp.exp(2.0 * (m - log_mu) + 2.0 * s**2).mean() - 1.0


def statistic_moments(xp, m, s, n: int, names):
    """Approximate mean vector and covariance of the log of reported sample statistics.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``pytensor.tensor``.
    m, s : array (M,)
        Log-scale locations and scales of the mixture components (equal weights).
    n : int
        Sample size of the group.
    names : sequence of str
        Statistics among :data:`SUPPORTED`, in the order of the result.

    Returns
    -------
    mu : array (k,)
        Approximate ``E log(statistic)``.
    cov : array (k, k)
        Approximate covariance of the log statistics.
    """
    unknown = [s_ for s_ in names if s_ not in SUPPORTED]
    if unknown:
        raise ValueError(
            f"statistic(s) {', '.join(unknown)} have no large-sample normal distribution; the covariate model uses {', '.join(SUPPORTED)}"
        )
    stack = (lambda v: np.stack(v)) if xp is np else xp.stack
    # work in units of the population mean (Y = X / mu) so central moments do not cancel
    log_mu, var = mixture_mean_cv2(xp, m, s)
    mc = m - log_mu

    def raw(k):
        return xp.exp(k * mc + 0.5 * k**2 * s**2).mean()

    e2, e3, e4 = var + 1.0, raw(3), raw(4)
    sd = xp.sqrt(var)
    mu3 = e3 - 3.0 * e2 + 2.0
    mu4 = e4 - 4.0 * e3 + 6.0 * e2 - 3.0
    kurt = mu4 / var**2
    # value (in Y units), influence-function pieces per statistic
    value, log_value = {}, {}
    quant = {}
    for name in names:
        if name in QUANTILE_P:
            p = QUANTILE_P[name]
            y = quantile_log(xp, m, s, p)
            z = (y - m) / s
            dens_log = (npdf(xp, z) / s).mean()  # density of log X at y
            q = xp.exp(y - log_mu)
            f = dens_log / q  # density of Y at q
            pm1 = (xp.exp(mc + 0.5 * s**2) * ndtr(xp, z - s)).mean()
            pm2 = (xp.exp(2.0 * mc + 2.0 * s**2) * ndtr(xp, z - 2.0 * s)).mean()
            quant[name] = (p, f, pm1, pm2)
            value[name], log_value[name] = q, y - log_mu
        elif name == "mean":
            value[name], log_value[name] = 1.0, 0.0
        else:
            value[name], log_value[name] = sd, 0.5 * xp.log(var)

    def cov_y(a, b):
        """n * Cov of statistics a and b (Y units)."""
        kinds = (a if a in ("mean", "sd") else "q", b if b in ("mean", "sd") else "q")
        if kinds == ("mean", "mean"):
            return var
        if kinds == ("sd", "sd"):
            return (mu4 - var**2) / (4.0 * var)
        if set(kinds) == {"mean", "sd"}:
            return mu3 / (2.0 * sd)
        if kinds == ("q", "q"):
            (p1, f1, *_), (p2, f2, *_) = quant[a], quant[b]
            return (min(p1, p2) - p1 * p2) / (f1 * f2)
        qn, other = (a, b) if kinds[0] == "q" else (b, a)
        p, f, pm1, pm2 = quant[qn]
        if other == "mean":
            return -(pm1 - p) / f
        return -(pm2 - 2.0 * pm1 + p - var * p) / (2.0 * sd * f)

    k = len(names)
    cov = [[None] * k for _ in range(k)]
    for i, a in enumerate(names):
        for j in range(i, k):
            b = names[j]
            cov[i][j] = cov[j][i] = cov_y(a, b) / (n * value[a] * value[b])
    mean = []
    for i, a in enumerate(names):
        lv = log_value[a]
        if a == "sd":
            # E s = sigma (1 - (kurtosis - 1) / (8 n)) to first order (E s^2 = sigma^2),
            # written as an exponential so that it stays positive at any kurtosis
            lv = lv - (kurt - 1.0) / (8.0 * n)
        mean.append(log_mu + lv - 0.5 * cov[i][i])
    return stack(mean), stack([stack(row) for row in cov])


def residual_nodes(df: float | None, k: int = 8) -> np.ndarray:
    """Variance multipliers of the residual family as an equal-weight scale mixture.

    Normal residuals are one node (1.0).  A Student-t with ``df`` degrees of freedom is a
    normal whose variance is multiplied by ``V ~ InvGamma(df/2, df/2)``; it is represented by
    ``V`` at the midpoints of ``k`` equal-probability bins, which keeps every moment of the
    levels finite (a log-t population has no mean) while keeping the heavy tail within the
    range a cohort of a few dozen subjects can show.
    """
    if df is None:
        return np.ones(1)
    w = special.gammaincinv(df / 2.0, (np.arange(k) + 0.5) / k) * 2.0 / df
    return 1.0 / w


@dataclass(frozen=True)
class FiniteSampleCorrection:
    """Spline tables (over log CV) that correct the large-sample moments of one group's log
    statistics towards their finite-sample values.

    For a single-location population of the residual family (no covariates) at every CV of
    :data:`models.likelihood.LOG_CV_GRID`, the finite-sample mean and covariance of the log
    statistics are simulated with fixed deviates and compared with :func:`statistic_moments`:
    ``delta`` is the difference of the means and ``weight`` the simulated covariance divided
    by the outer product of the large-sample SDs.  The covariate model's group, a mixture
    over subjects, then gets ``mean = large-sample mean + delta(cv)`` and
    ``cov = D weight(cv) D`` with ``D`` its own large-sample SDs, i.e. the finite-sample
    behaviour of the residual family at the same CV with the mixture's own sensitivity.
    Without it the sample SD's variance, which grows with the fourth moment, let the scale
    drift upward (DESIGN, "a measured trap").
    """

    grid: np.ndarray
    delta_coef: np.ndarray  # (4, m - 1, k)
    weight_coef: np.ndarray  # (4, m - 1, k * k)
    k: int


def build_correction(nodes: np.ndarray, n: int, names, reps: int = 2000, seed: int = 0, grid=None) -> FiniteSampleCorrection:
    """Simulate the correction tables for a group of ``n`` subjects (NumPy, at build time).

    Parameters
    ----------
    nodes : array (K,)
        Residual variance multipliers (:func:`residual_nodes`).
    n : int
        Group size.
    names : sequence of str
        Reported statistics.
    reps : int
        Simulated cohorts per grid point (fixed deviates, shared across the grid).
    """
    from scipy.interpolate import CubicSpline
    from scipy.optimize import brentq

    from .likelihood import LOG_CV_GRID, synthetic_moments
    from .statistics import sample_statistics

    grid = LOG_CV_GRID if grid is None else grid
    rng = np.random.default_rng([seed, n, len(nodes)])
    eps = rng.standard_normal((reps, n)) * np.sqrt(nodes[rng.integers(0, len(nodes), size=(reps, n))])
    k = len(names)
    zeros = np.zeros(len(nodes))
    deltas, weights = [], []
    for log_cv in grid:
        # the residual scale with this CV: CV^2 = mean_k exp(s^2 v_k) - 1 (rises with s)
        s = brentq(lambda s: math.log(np.mean(np.exp(s**2 * nodes)) - 1.0) - 2.0 * log_cv, 1e-6, 10.0)
        sim = np.log(sample_statistics(np, np.sort(np.exp(s * eps), axis=-1), n, names))
        mu_f, cov_f = synthetic_moments(sim)
        mu_a, cov_a = statistic_moments(np, zeros, s * np.sqrt(nodes), n, names)
        sd_a = np.sqrt(np.diag(cov_a))
        deltas.append(mu_f - mu_a)
        weights.append((cov_f / np.outer(sd_a, sd_a)).ravel())
    d = CubicSpline(grid, np.array(deltas), axis=0)
    w = CubicSpline(grid, np.array(weights), axis=0)
    return FiniteSampleCorrection(np.asarray(grid), d.c, w.c, k)


def corrected_moments(xp, correction: FiniteSampleCorrection, m, s, n: int, names):
    """:func:`statistic_moments` corrected to finite samples with ``correction``.

    Returns
    -------
    mu : array (k,); cov : array (k, k)
    """
    from .likelihood import _spline_eval

    mu, cov = statistic_moments(xp, m, s, n, names)
    log_cv = 0.5 * xp.log(mixture_mean_cv2(xp, m, s)[1])
    delta = _spline_eval(xp, correction.delta_coef, correction.grid, log_cv)
    weight = _spline_eval(xp, correction.weight_coef, correction.grid, log_cv).reshape((correction.k, correction.k))
    weight = 0.5 * (weight + weight.T)
    sd = xp.sqrt(xp.diagonal(cov) if xp is not np else np.diag(cov))
    return mu + delta, weight * sd[:, None] * sd[None, :]

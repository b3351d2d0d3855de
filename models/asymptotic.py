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

:func:`corrected_moments` then moves that law to finite samples with tables simulated for
the residual family, read at the mixture's kurtosis (:class:`FiniteSampleCorrection`).

Against simulating cohorts inside the likelihood this removes Monte Carlo noise and the
gradient jumps of sample quantiles, and costs a few vector operations.  How close it is to
the finite-sample distribution is measured in ``tests/models/test_asymptotic.py`` against the
cohort simulator; the posterior predictive checks always use exact sample statistics of
simulated cohorts.

All functions take ``xp`` (``numpy`` or ``pytensor.tensor``); component arrays are 1-D.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .statistics import QUANTILE_P

SQRT2 = math.sqrt(2.0)
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
#: Statistics with a large-sample normal distribution; sample extremes have none.
SUPPORTED = ("mean", "sd", *QUANTILE_P)
#: Steps of the bracketed Newton iteration for a population quantile
#: (:func:`quantile_log`).  From the moment-matched normal start, 12 reach the root to 1e-10
#: component scales on every mixture of benchmarks/check_quantile_solver.py: two clusters 8
#: to 200 component scales apart with a fifth to a half of the weight in one, and random
#: mixtures with a shifted subgroup (at most 10 steps, median 4).  The unbracketed iteration
#: it replaced (6 Newton steps, each clipped to half the mixture's log-scale SD) stopped more
#: than one component scale short of the root at 45 of those 140 quantiles (up to 33): a
#: kinked, steep log density where the residual SD is small and subtypes or covariates
#: separate the subjects.
NEWTON_STEPS = 12
#: The bracket's half-width beyond the outermost components, in their scales: the mixture's
#: CDF is below ``Phi(-8.5)`` (1e-17) at its lower end and above 1 minus that at its upper.
BRACKET_SCALES = 8.5


def ndtr(xp, z):
    """Standard normal CDF on NumPy or PyTensor."""
    erfc = special.erfc if xp is np else xp.erfc
    return 0.5 * erfc(-z / SQRT2)


def npdf(xp, z):
    """Standard normal density on NumPy or PyTensor."""
    return xp.exp(-0.5 * z**2 - LOG_SQRT_2PI)


def _wmean(f, w):
    """Mean over the last axis, weighted by ``w`` (weights summing to 1; ``None``: equal)."""
    return f.mean(axis=-1) if w is None else (w * f).sum(axis=-1)


def quantile_log(xp, m, s, p, steps: int = NEWTON_STEPS, w=None):
    """Log of the ``p`` quantile(s) of the weighted mixture of ``lognormal(m_i, s_i)``.

    Newton's method on ``G(y) = sum_i w_i Phi((y - m_i)/s_i) - p`` inside a bracket that
    every step narrows (the iterate becomes its lower end where ``G < 0``, else its upper
    end); a Newton step that would leave the bracket, or cannot be taken (``G'`` underflows
    in a gap between distant components), is replaced by the bracket's midpoint.  It starts
    at the quantile of the normal with the mixture's log-scale mean and variance, inside a
    bracket :data:`BRACKET_SCALES` component scales beyond the outermost components
    (:data:`NEWTON_STEPS`).  In a graph the iterations carry no gradient: one more Newton step
    from the converged root gives the implicit-function derivative ``-dG/dtheta / G'``
    exactly, with a fraction of the graph.

    Parameters
    ----------
    m, s : array (..., M)
        Component locations and scales (leading axes: independent mixtures, e.g. groups).
    p : float or array (Q,)
        Probabilities.
    steps : int
        Bracketed steps before the last, differentiable Newton step.
    w : array (..., M), optional
        Component weights summing to 1 (zero for padding); default equal weights.

    Returns
    -------
    array (...) for a scalar ``p``, else (..., Q).
    """
    from scipy.stats import norm

    scalar = np.ndim(p) == 0
    p = np.atleast_1d(np.asarray(p, dtype=float))
    wq = None if w is None else w[..., None, :]
    where = np.where if xp is np else xp.switch

    def cdf_and_density(y, m, s):
        z = (y[..., :, None] - m[..., None, :]) / s[..., None, :]
        return _wmean(ndtr(xp, z), wq) - p, _wmean(npdf(xp, z) / s[..., None, :], wq)

    if xp is np:
        m0, s0 = m, s
    else:
        from .gradient import stop_gradient

        m0, s0 = stop_gradient(m), stop_gradient(s)
    mean = _wmean(m0, w)
    sd = xp.sqrt(_wmean((m0 - mean[..., None]) ** 2 + s0**2, w))[..., None]
    # (..., Q): one bracket per quantile
    lo = (m0 - BRACKET_SCALES * s0).min(axis=-1)[..., None] + 0.0 * p
    hi = (m0 + BRACKET_SCALES * s0).max(axis=-1)[..., None] + 0.0 * p
    y = xp.clip(mean[..., None] + norm.ppf(p) * sd, lo, hi)
    for _ in range(steps):
        g, density = cdf_and_density(y, m0, s0)
        below = g < 0
        lo, hi = where(below, y, lo), where(below, hi, y)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = y - g / density
        # NaN and infinite steps fail both comparisons: the midpoint then
        inside = (newton >= lo) & (newton <= hi)
        y = where(inside, newton, 0.5 * (lo + hi))
    g, density = cdf_and_density(y, m, s)
    y = y - xp.clip(g / density, -0.5 * sd, 0.5 * sd)
    return y[..., 0] if scalar else y


def mixture_mean_cv2(xp, m, s, w=None):
    """Log of the mean and squared CV of the weighted mixture of ``lognormal(m_i, s_i)``
    over the last axis (the squared CV is the variance in units of the squared mean)."""
    log_mu = xp.log(_wmean(xp.exp(m + 0.5 * s**2), w))
    return log_mu, _wmean(xp.exp(2.0 * (m - log_mu[..., None]) + 2.0 * s**2), w) - 1.0


def statistic_moments(xp, m, s, n, names, w=None, bias: bool = True):
    """Approximate mean vector and covariance of the log of reported sample statistics.

    Every statistic's influence function is a combination of the functions
    ``phi = (1, Y, Y^2, 1{Y <= q_1}, ..., 1{Y <= q_Q})`` (``Y``: a level in units of the
    population mean; mean ``Y - 1``; SD ``((Y - 1)^2 - var) / (2 sd)``; quantile ``p``
    ``(p - 1{Y <= q_p}) / f(q_p)``), so their joint covariance is ``A E[phi phi'] A'`` with
    a coefficient matrix ``A`` and the Gram matrix of ``phi``, whose entries are raw and
    partial moments of the lognormal components.  All of it is vectorised over leading axes.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``pytensor.tensor``.
    m, s : array (..., M)
        Log-scale locations and scales of the mixture components.
    n : int or array (...)
        Sample size(s).
    names : sequence of str
        Statistics among :data:`SUPPORTED`, in the order of the result.
    w : array (..., M), optional
        Component weights summing to 1 (zero for padding); default equal weights.
    bias : bool
        Include the first-order small-sample bias of the log statistics in ``mu``; without
        it ``mu`` is the log of the population's own value of each statistic (what
        :func:`corrected_moments` adds its simulated bias to).

    Returns
    -------
    mu : array (..., k)
        Approximate ``E log(statistic)`` (with ``bias``), else the log population values.
    cov : array (..., k, k)
        Approximate covariance of the log statistics.
    """
    unknown = [s_ for s_ in names if s_ not in SUPPORTED]
    if unknown:
        raise ValueError(
            f"statistic(s) {', '.join(unknown)} have no large-sample normal distribution; the covariate model uses {', '.join(SUPPORTED)}"
        )
    stack = np.stack if xp is np else xp.stack
    k = len(names)
    n = np.asarray(n, dtype=float)
    # work in units of the population mean (Y = X / mu) so central moments do not cancel
    log_mu, var = mixture_mean_cv2(xp, m, s, w)
    mc = m - log_mu[..., None]

    def raw(j, z=None):
        """``E[Y^j]``, or with ``z`` the partial moments ``E[Y^j 1{Y <= q}]`` (..., Q)."""
        if z is None:
            return _raw_moment(xp, mc, s, j, w)
        term = _component_moment(xp, mc, s, j)
        return _wmean(term[..., None, :] * ndtr(xp, z - j * s[..., None, :]), None if w is None else w[..., None, :])

    e2, e3, e4 = var + 1.0, raw(3), raw(4)
    one = xp.ones_like(var)
    sd = xp.sqrt(var)
    quantiles = [x for x in names if x in QUANTILE_P]
    Q = len(quantiles)
    p = np.array([QUANTILE_P[x] for x in quantiles])
    rows = [[one, one, e2], [one, e2, e3], [e2, e3, e4]]
    gram = stack([stack(r, axis=-1) for r in rows], axis=-2)
    if Q:
        y = quantile_log(xp, m, s, p, w=w)  # (..., Q)
        z = (y[..., :, None] - m[..., None, :]) / s[..., None, :]
        dens_log = _wmean(npdf(xp, z) / s[..., None, :], None if w is None else w[..., None, :])
        f = dens_log / xp.exp(y - log_mu[..., None])  # density of Y at its quantiles
        # the influence functions at the level F(y) the Newton iterate reached, not p: the
        # same where it converged, and a Gram matrix of actual expectations (positive
        # semi-definite) where it did not (a median in the gap of subtypes 20 component
        # scales apart, at the edge of the covariate model's posterior)
        level = _wmean(ndtr(xp, z), None if w is None else w[..., None, :])  # (..., Q)
        right = stack([level, raw(1, z), raw(2, z)], axis=-2)  # (..., 3, Q)
        corner = xp.minimum(level[..., :, None], level[..., None, :])
        gram = xp.concatenate(
            [xp.concatenate([gram, right], axis=-1), xp.concatenate([xp.swapaxes(right, -1, -2), corner], axis=-1)], axis=-2
        )
    # coefficient rows: a constant pattern scaled per statistic, the SD row with -var at 1
    pattern, minus_var, at_level = np.zeros((k, 3 + Q)), np.zeros((k, 3 + Q)), np.zeros((k, 3 + Q))
    scale, log_value, levels = [], [], []
    for i, name in enumerate(names):
        if name == "mean":
            pattern[i, :2] = (-1.0, 1.0)
            levels.append(0.0 * one)
            scale.append(one)
            log_value.append(0.0 * one)
        elif name == "sd":
            pattern[i, :3] = (1.0, -2.0, 1.0)
            minus_var[i, 0] = 1.0
            levels.append(0.0 * one)
            scale.append(0.5 / sd)
            log_value.append(0.5 * xp.log(var))
        else:
            j = quantiles.index(name)
            at_level[i, 0], pattern[i, 3 + j] = 1.0, -1.0
            levels.append(level[..., j])
            scale.append(1.0 / f[..., j])
            log_value.append(y[..., j] - log_mu)
    A = (pattern - var[..., None, None] * minus_var + stack(levels, axis=-1)[..., :, None] * at_level) * stack(scale, axis=-1)[..., :, None]
    AG = (A[..., :, :, None] * gram[..., None, :, :]).sum(axis=-2)
    cov_y = (AG[..., :, None, :] * A[..., None, :, :]).sum(axis=-1)  # n * Cov, Y units
    log_value = stack(log_value, axis=-1)
    value = xp.exp(log_value)
    cov = cov_y / (n[..., None, None] * value[..., :, None] * value[..., None, :])
    if not bias:
        return log_mu[..., None] + log_value, cov
    is_sd = np.array([x == "sd" for x in names], dtype=float)
    # E s = sigma (1 - (kurtosis - 1) / (8 n)) to first order (E s^2 = sigma^2), written as
    # an exponential so that it stays positive at any kurtosis; the -var/2 makes
    # E exp(log stat) the statistic's expectation
    kurt = _kurtosis(var, e3, e4)
    mean = log_mu[..., None] + log_value - 0.5 * (cov * np.eye(k)).sum(axis=-1) - is_sd * ((kurt - 1.0) / (8.0 * n))[..., None]
    return mean, cov


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


def mixture_kurtosis(xp, m, s, w=None):
    """Kurtosis (``E (X - mu)^4 / sigma^4``; 3 for a normal) of the weighted mixture of
    ``lognormal(m_i, s_i)`` over the last axis."""
    log_mu, var = mixture_mean_cv2(xp, m, s, w)
    mc = m - log_mu[..., None]
    return _kurtosis(var, _raw_moment(xp, mc, s, 3, w), _raw_moment(xp, mc, s, 4, w))


def _component_moment(xp, mc, s, j: int):
    """``E[Y^j]`` of each component ``lognormal(mc_i, s_i)``."""
    return xp.exp(j * mc + 0.5 * j**2 * s**2)


def _raw_moment(xp, mc, s, j: int, w=None):
    """``E[Y^j]`` of the weighted mixture (one expression for :func:`statistic_moments` and
    :func:`mixture_kurtosis`, so that a graph holding both computes it once)."""
    return _wmean(_component_moment(xp, mc, s, j), w)


def _kurtosis(var, e3, e4):
    """Kurtosis from the squared CV and the raw moments ``E[Y^3]``, ``E[Y^4]`` of ``Y = X / E X``."""
    return (e4 - 4.0 * e3 + 6.0 * (var + 1.0) - 3.0) / var**2


#: CVs of the residual family whose kurtoses bound the correction's grid (below the lower
#: one the family is nearly normal and the correction constant; its excess kurtosis, 0.04
#: for normal residuals, is still far above the rounding of a kurtosis computed from raw
#: moments; the upper one is models.likelihood.CV_RANGE's).
CORRECTION_CV_RANGE = (0.05, 50.0)


@dataclass(frozen=True)
class FiniteSampleCorrection:
    """Spline tables that correct the large-sample moments of one group's log statistics
    towards their finite-sample values, indexed by the population's kurtosis.

    For a single-location population of the residual family (no covariates), at every
    point of :attr:`grid` (``log(kurtosis - k0)``, ``k0`` the family's kurtosis in the
    small-CV limit), the finite-sample mean and covariance of the log statistics are
    simulated with fixed deviates and compared with :func:`statistic_moments`:

    * ``transport``: ``T = V M`` with ``T R T' = W``, where ``R`` is the large-sample
      correlation matrix, ``W`` the simulated covariance in units of the large-sample SDs,
      ``V`` the diagonal of ratios of simulated to large-sample SDs and ``M`` the symmetric
      positive definite map from ``R`` to the simulated correlation matrix (the
      optimal-transport map between the two normal laws; taken between correlation
      matrices because ``W`` spans 15 orders of magnitude at high kurtosis);
    * ``bias``: the simulated mean minus the log population values, in units of the
      simulated variance of each statistic.

    The covariate model's group, a mixture over subjects, gets
    ``cov = D T R_mix T' D`` (``D``, ``R_mix``: its own large-sample SDs and correlations)
    and ``mean = log population values + bias * diag(cov)``, with the tables read at the
    mixture's own kurtosis.  The same-kurtosis family member has the mixture's
    large-sample variance of the log SD (both are ``(kurtosis - 1) / (4 n)``), which is
    what a finite sample cannot show; a same-CV member can be orders of magnitude more
    kurtotic (mixtures of a few distant subtypes at CV 1.8-4.2: kurtosis 11-31, lognormals
    of those CVs 500-1.4e5), and its ratio of finite to large-sample variance (2e-4 for the
    log SD at CV 5, n = 45) made the mixture's statistics nearly deterministic: walls in the
    covariate model's log density (docs/decisions/covariate-likelihood.md).  Without any correction
    the sample SD's variance, which grows with the fourth moment, let the scale drift
    upward (tests/models/test_asymptotic.py measures both).
    """

    grid: np.ndarray
    transport_coef: np.ndarray  # (..., 4, m - 1, k * k)
    bias_coef: np.ndarray  # (..., 4, m - 1, k)
    k: int
    k0: float


def _family_kurtosis(nodes: np.ndarray, s: float) -> float:
    return float(mixture_kurtosis(np, np.zeros(len(nodes)), s * np.sqrt(nodes)))


def _symmetric_sqrt(a: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(a)
    return (vecs * np.sqrt(vals)) @ vecs.T


def transport_map(r: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The symmetric positive definite ``T`` with ``T r T = w`` (both positive definite):
    ``r^-1/2 (r^1/2 w r^1/2)^1/2 r^-1/2``."""
    h = _symmetric_sqrt(r)
    hi = np.linalg.inv(h)
    return hi @ _symmetric_sqrt(h @ w @ h) @ hi


def build_correction(nodes: np.ndarray, n: int, names, reps: int = 2000, seed: int = 0, points: int = 298,
                     quantile_method: int = 7) -> FiniteSampleCorrection:
    """Simulate the correction tables for a group of ``n`` subjects (NumPy, at build time).

    A deterministic function of its arguments, kept per process for the last
    :data:`CORRECTIONS_KEPT` argument sets (read-only arrays): every build of a covariate
    model simulates one table per group, about 0.8 s each, and a sensitivity worker or a
    test process builds the same study many times.

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
    points : int
        Grid points, equally spaced in ``log(kurtosis - k0)`` between the family's members
        at :data:`CORRECTION_CV_RANGE`.
    quantile_method : int
        Hyndman-Fan type of the published quantiles: the simulated statistics use it, so the
        correction carries the type's finite-sample bias (the large-sample moments are the
        population quantile's, the same for every type).
    """
    return _cached_correction(np.asarray(nodes, dtype=float).tobytes(), int(n), tuple(names), int(reps), int(seed), int(points),
                              int(quantile_method))


#: Argument sets of :func:`build_correction` whose tables a process keeps.
CORRECTIONS_KEPT = 32


@functools.lru_cache(maxsize=CORRECTIONS_KEPT)
def _cached_correction(nodes: bytes, n: int, names: tuple, reps: int, seed: int, points: int,
                       quantile_method: int) -> FiniteSampleCorrection:
    c = _simulate_correction(np.frombuffer(nodes), n, names, reps, seed, points, quantile_method)
    for a in (c.grid, c.transport_coef, c.bias_coef):
        a.setflags(write=False)
    return c


def _simulate_correction(nodes: np.ndarray, n: int, names, reps: int, seed: int, points: int,
                         quantile_method: int) -> FiniteSampleCorrection:
    from scipy.interpolate import CubicSpline
    from scipy.optimize import brentq

    from .likelihood import synthetic_moments
    from .statistics import sample_statistics

    def scale_at_cv(cv):
        # the residual scale with this CV: CV^2 = mean_k exp(s^2 v_k) - 1 (rises with s)
        with np.errstate(over="ignore"):  # the bracket's top overflows to +inf, which brentq handles
            return brentq(lambda s: math.log(np.mean(np.exp(s**2 * nodes)) - 1.0) - 2.0 * math.log(cv), 1e-6, 10.0)

    # small-CV limit: Y ~ 1 + s sqrt(v) eps, kurtosis 3 E[v^2] / E[v]^2
    k0 = 3.0 * float(np.mean(nodes**2) / np.mean(nodes) ** 2)
    s_lo, s_hi = (scale_at_cv(cv) for cv in CORRECTION_CV_RANGE)
    x_lo, x_hi = (math.log(_family_kurtosis(nodes, s) - k0) for s in (s_lo, s_hi))
    grid = np.linspace(x_lo, x_hi, points)
    rng = np.random.default_rng([seed, n, len(nodes)])
    eps = rng.standard_normal((reps, n)) * np.sqrt(nodes[rng.integers(0, len(nodes), size=(reps, n))])
    zeros = np.zeros(len(nodes))
    transports, biases = [], []
    for i, x in enumerate(grid):
        s = s_lo if i == 0 else s_hi if i == points - 1 else brentq(
            lambda s: math.log(_family_kurtosis(nodes, s) - k0) - x, s_lo, s_hi)
        sim = np.log(sample_statistics(np, np.sort(np.exp(s * eps), axis=-1), n, names, quantile_method))
        mu_f, cov_f = synthetic_moments(sim)
        mu_a, cov_a = statistic_moments(np, zeros, s * np.sqrt(nodes), n, names, bias=False)
        sd_a, sd_f = np.sqrt(np.diag(cov_a)), np.sqrt(np.diag(cov_f))
        transport = (sd_f / sd_a)[:, None] * transport_map(cov_a / np.outer(sd_a, sd_a), cov_f / np.outer(sd_f, sd_f))
        transports.append(transport.ravel())
        biases.append((mu_f - mu_a) / np.diag(cov_f))
    t = CubicSpline(grid, np.array(transports), axis=0)
    b = CubicSpline(grid, np.array(biases), axis=0)
    return FiniteSampleCorrection(grid, t.c, b.c, len(names), k0)


def stack_corrections(corrections) -> FiniteSampleCorrection:
    """Stack the tables of several groups (same grid, statistics and residual family) on a
    leading axis, for :func:`corrected_moments` on batched components."""
    first = corrections[0]
    if any(c.k != first.k or c.k0 != first.k0 or not np.array_equal(c.grid, first.grid) for c in corrections):
        raise ValueError("corrections to stack need the same grid, statistics and residual family")
    return FiniteSampleCorrection(
        first.grid, np.stack([c.transport_coef for c in corrections]), np.stack([c.bias_coef for c in corrections]),
        first.k, first.k0,
    )


def corrected_moments(xp, correction: FiniteSampleCorrection, m, s, n, names, w=None):
    """:func:`statistic_moments` corrected to finite samples with ``correction`` (one table,
    or tables stacked with :func:`stack_corrections` along the leading axis of ``m``).

    Returns
    -------
    mu : array (..., k); cov : array (..., k, k)
    """
    from .likelihood import spline_eval

    mu, cov = statistic_moments(xp, m, s, n, names, w, bias=False)
    k = correction.k
    # below the grid (a nearly normal or platykurtic mixture) the table's first point holds
    excess = xp.maximum(mixture_kurtosis(xp, m, s, w) - correction.k0, math.exp(correction.grid[0]))
    x = xp.log(excess)
    t = spline_eval(xp, correction.transport_coef, correction.grid, x).reshape((*correction.transport_coef.shape[:-3], k, k))
    sd = xp.sqrt((cov * np.eye(k)).sum(axis=-1))
    r = cov / (sd[..., :, None] * sd[..., None, :])
    tr = (t[..., :, :, None] * r[..., None, :, :]).sum(axis=-2)
    trt = (tr[..., :, None, :] * t[..., None, :, :]).sum(axis=-1)  # T R T'
    cov = trt * sd[..., :, None] * sd[..., None, :]
    bias = spline_eval(xp, correction.bias_coef, correction.grid, x)
    # the bias is simulated whole, relative to the population values (the first-order
    # formula's kurtosis term grows like exp(4 s^2) and had poles where a lognormal's
    # correction met a mixture's own term), and scales with the corrected variance
    return mu + bias * (cov * np.eye(k)).sum(axis=-1), cov


def influence_covariances(xp, m, s, names, w=None):
    """How each mixture component moves the log statistics: per component, the covariances
    of its log level with the statistics' influence functions, in closed form (Stein's lemma).

    A cohort's log statistic is, to first order, ``log T + (1/n) sum_i psi(Y_i)`` with
    ``psi`` the influence function of the log statistic (:func:`statistic_moments`; ``Y``: a
    level in units of the mixture's mean).  A regression coefficient that is linear in the
    subjects' log levels ``Z_i`` therefore covaries with it through
    ``Cov(Z_i, psi(Y_i))``, and a residual variance through ``Cov((Z_i - m_i)^2, psi(Y_i))``.
    For a normal ``Z`` with location ``m`` and scale ``s`` (``c = (log q - m) / s``)::

        Cov(Z, Y) = s^2 E[Y]            Cov((Z - m)^2, Y)   = s^4 E[Y]
        Cov(Z, Y^2) = 2 s^2 E[Y^2]      Cov((Z - m)^2, Y^2) = 4 s^4 E[Y^2]
        Cov(Z, 1{Y <= q}) = -s phi(c)   Cov((Z - m)^2, 1{Y <= q}) = -s^2 c phi(c)

    Parameters
    ----------
    xp : module
        ``numpy`` or ``pytensor.tensor``.
    m, s : array (..., M)
        Log-scale locations and scales of the mixture components.
    names : sequence of str
        Statistics among :data:`SUPPORTED`.
    w : array (..., M), optional
        Component weights summing to 1 (zero for padding); they define the population whose
        statistics these are.

    Returns
    -------
    c1, c2, e : array (..., M, k)
        Per component and statistic: ``Cov(Z, psi)``, ``Cov((Z - m)^2, psi)`` and
        ``E[psi]`` (the component's expected influence, 0 on average over the weights).
    """
    stack = np.stack if xp is np else xp.stack
    log_mu, var = mixture_mean_cv2(xp, m, s, w)
    mc = m - log_mu[..., None]
    ey, ey2 = xp.exp(mc + 0.5 * s**2), xp.exp(2.0 * mc + 2.0 * s**2)
    quantiles = [x for x in names if x in QUANTILE_P]
    if quantiles:
        p = np.array([QUANTILE_P[x] for x in quantiles])
        y = quantile_log(xp, m, s, p, w=w)  # (..., Q), log units of m
        z = (y[..., :, None] - m[..., None, :]) / s[..., None, :]  # (..., Q, M)
        dens_log = _wmean(npdf(xp, z) / s[..., None, :], None if w is None else w[..., None, :])
        f = dens_log / xp.exp(y - log_mu[..., None])  # density of Y at its quantiles
        q = xp.exp(y - log_mu[..., None])  # quantiles in Y units
    c1, c2, e = [], [], []
    for name in names:
        if name == "mean":
            c1.append(s**2 * ey)
            c2.append(s**4 * ey)
            e.append(ey - 1.0)
        elif name == "sd":
            v = var[..., None]
            c1.append(s**2 * (ey2 - ey) / v)
            c2.append(s**4 * (2.0 * ey2 - ey) / v)
            e.append((ey2 - 2.0 * ey + 1.0 - v) / (2.0 * v))
        else:
            j = quantiles.index(name)
            zj = z[..., j, :]
            unit = 1.0 / (f[..., j] * q[..., j])[..., None]  # d log q / d(share below q)
            c1.append(s * npdf(xp, zj) * unit)
            c2.append(s**2 * zj * npdf(xp, zj) * unit)
            e.append((QUANTILE_P[name] - ndtr(xp, zj)) * unit)
    return stack(c1, axis=-1), stack(c2, axis=-1), stack(e, axis=-1)

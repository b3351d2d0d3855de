"""Population distribution families for a positive measurement (e.g. a serum concentration).

Every family is written as a *quantile transform* of standard normal deviates,
``x = Q(Phi(z); theta)``.  That one choice serves three purposes:

* common random numbers: with the deviates ``z`` held fixed, simulated samples are smooth
  functions of the parameters, so a synthetic likelihood built on them is smooth and
  NUTS can sample it;
* order statistics for free: ``Q`` is increasing, so if each row of ``z`` is sorted the
  simulated sample is sorted too, and medians, quartiles and ranges are column picks;
* one simulator: the same function feeds the likelihood tables, posterior predictive checks
  and calibration.  ``xp`` selects NumPy or PyTensor where a family supports both.

Each family is parameterised by its population *mean* and *coefficient of variation* (CV),
so priors are stated on interpretable scales and are comparable across families.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import special, stats


@dataclass(frozen=True)
class Family:
    """A positive-valued population family.

    Attributes
    ----------
    name : str
        Identifier used on the command line (``--family``).
    description : str
        One line for ``--help`` and reports.
    quantile : callable
        ``quantile(xp, z, mean, cv)`` maps standard normal deviates ``z`` to draws.
        ``xp`` is ``numpy`` or ``pytensor.tensor``.
    median : callable
        ``median(xp, mean, cv)``: the population median.
    cdf : callable
        ``cdf(x, mean, cv)``: the distribution function (NumPy only).
    superiority : callable, optional
        ``superiority(mean_a, cv_a, mean_b, cv_b)``: P(X_a > X_b) for independent draws of
        two populations of the family, in closed form (NumPy only).  Without it the
        probability is computed by quadrature (:func:`models.estimands.superiority`).
    """

    name: str
    description: str
    quantile: Callable
    median: Callable
    cdf: Callable
    superiority: Callable | None = None


def _is_numpy(xp) -> bool:
    return xp is np


# --- lognormal ----------------------------------------------------------------------------
def _lognormal_sigma(xp, cv):
    # CV of a lognormal is sqrt(exp(sigma^2) - 1)
    return xp.sqrt(xp.log1p(cv**2))


def _lognormal_quantile(xp, z, mean, cv):
    sigma = _lognormal_sigma(xp, cv)
    mu = xp.log(mean) - 0.5 * sigma**2
    return xp.exp(mu + sigma * z)


def _lognormal_median(xp, mean, cv):
    sigma = _lognormal_sigma(xp, cv)
    return mean * xp.exp(-0.5 * sigma**2)


def _lognormal_cdf(x, mean, cv):
    sigma = _lognormal_sigma(np, cv)
    mu = np.log(mean) - 0.5 * sigma**2
    return special.ndtr((np.log(x) - mu) / sigma)


def _lognormal_superiority(mean_a, cv_a, mean_b, cv_b):
    # log X_a - log X_b is normal
    sa, sb = _lognormal_sigma(np, cv_a), _lognormal_sigma(np, cv_b)
    mu_a, mu_b = np.log(mean_a) - 0.5 * sa**2, np.log(mean_b) - 0.5 * sb**2
    return special.ndtr((mu_a - mu_b) / np.sqrt(sa**2 + sb**2))


# --- gamma --------------------------------------------------------------------------------
#: Deviates of one shape from which :func:`_gamma_std_quantile` interpolates instead of
#: inverting the incomplete gamma function at each (a likelihood table's cohorts: 4000 x n
#: deviates per CV; the inversion costs about 2 us a value).
SPLINE_MIN_SIZE = 20_000
#: Nodes of that interpolation, evenly spaced over the deviates' range.  Its error, measured
#: against the inversion over shapes 1/400 to 10^4 and deviates in (-6.5, 6.5), stays below
#: 1e-10 relative (tests/models/test_families.py), far below any table's Monte Carlo error.
SPLINE_NODES = 4097


def _gamma_std_quantile_exact(z, shape) -> np.ndarray:
    # upper half through the complementary function: ndtr(z) rounds to 1 for large z; each
    # half inverted only where it is used
    z, shape = np.broadcast_arrays(np.asarray(z, dtype=float), np.asarray(shape, dtype=float))
    out = np.empty(z.shape)
    upper = z > 0
    p = special.ndtr(-np.abs(z))
    out[upper] = special.gammainccinv(shape[upper], p[upper])
    out[~upper] = special.gammaincinv(shape[~upper], p[~upper])
    return out


def _gamma_std_quantile_spline(z: np.ndarray, shape: float) -> np.ndarray:
    """The quantile at many deviates of one shape: exact at :data:`SPLINE_NODES` nodes, a
    cubic spline of its logarithm in between (smooth in z in both tails: about
    ``log Phi(z) / shape`` in the lower, ``-log(1 - Phi(z))`` in the upper).  Deviates whose
    quantile underflows at a node next to them are inverted exactly."""
    from scipy.interpolate import CubicSpline

    nodes = np.linspace(z.min(), z.max(), SPLINE_NODES)
    q = _gamma_std_quantile_exact(nodes, shape)
    # increasing in z: the nodes below the first positive one underflowed (tiny shapes)
    first = int(np.argmax(q > 0)) if np.any(q > 0) else len(q)
    if len(q) - first < SPLINE_NODES // 2:
        return _gamma_std_quantile_exact(z, shape)
    spline = CubicSpline(nodes[first:], np.log(q[first:]))
    out = np.empty(z.shape)
    inside = z >= nodes[first]
    out[inside] = np.exp(spline(z[inside]))
    out[~inside] = _gamma_std_quantile_exact(z[~inside], shape)
    return out


def _gamma_std_quantile(xp, z, shape):
    """Quantile of Gamma(shape, 1) at Phi(z) (NumPy only; the model interpolates tables
    built with it, see :mod:`models.likelihood`).  At :data:`SPLINE_MIN_SIZE` or more
    deviates of one shape, interpolated between exact values (error below 1e-10 relative)."""
    if not _is_numpy(xp):
        raise NotImplementedError("the gamma quantile transform runs on NumPy only")
    z, shape = np.asarray(z, dtype=float), np.asarray(shape, dtype=float)
    if shape.ndim == 0 and z.size >= SPLINE_MIN_SIZE and np.all(np.isfinite(z)):
        return _gamma_std_quantile_spline(z, float(shape))
    return _gamma_std_quantile_exact(z, shape)


def _gamma_quantile(xp, z, mean, cv):
    shape = 1.0 / cv**2
    return _gamma_std_quantile(xp, z, shape) * (mean / shape)


def _gamma_median(xp, mean, cv):
    shape = 1.0 / cv**2
    return _gamma_std_quantile(xp, 0.0 * shape, shape) * (mean / shape)


def _gamma_cdf(x, mean, cv):
    shape = 1.0 / cv**2
    return special.gammainc(shape, x * shape / mean)


def _gamma_superiority(mean_a, cv_a, mean_b, cv_b):
    # X = scale * G with G ~ Gamma(shape, 1); G_b / (G_a + G_b) ~ Beta(shape_b, shape_a), and
    # X_a > X_b exactly when it is below scale_a / (scale_a + scale_b)
    shape_a, shape_b = 1.0 / cv_a**2, 1.0 / cv_b**2
    scale_a, scale_b = mean_a / shape_a, mean_b / shape_b
    return special.betainc(shape_b, shape_a, scale_a / (scale_a + scale_b))


# --- Weibull ------------------------------------------------------------------------------
#: Weibull shapes the CV inversion brackets: shape 0.1 has CV ~430 and shape 2000 CV
#: ~6e-4, beyond the likelihood tables' CVs on both sides (models.likelihood.CV_RANGE).
_WEIBULL_LOG_SHAPE = (np.log(0.1), np.log(2000.0))
#: Shape above which a Weibull's mean lies below its median (CV below ~0.32).
WEIBULL_MEAN_BELOW_MEDIAN_SHAPE = 3.4395


def _weibull_log_cv2p1(log_k):
    """log(CV^2 + 1) = lgamma(1 + 2/k) - 2 lgamma(1 + 1/k), decreasing in the shape k."""
    k = np.exp(log_k)
    return special.gammaln(1.0 + 2.0 / k) - 2.0 * special.gammaln(1.0 + 1.0 / k)


def weibull_shape(cv):
    """The Weibull shape ``k`` whose coefficient of variation is ``cv`` (NumPy, elementwise).

    The CV falls monotonically with ``k``, so bisection in ``log k`` on ``log(CV^2 + 1)``
    converges everywhere; 80 halvings of the bracket leave a relative error in ``k`` far
    below double precision's (the interval starts 10 units of ``log k`` wide).
    """
    target = np.log1p(np.asarray(cv, dtype=float) ** 2)
    lo = np.full(target.shape, _WEIBULL_LOG_SHAPE[0])
    hi = np.full(target.shape, _WEIBULL_LOG_SHAPE[1])
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        above = _weibull_log_cv2p1(mid) > target  # CV still too large: shape must grow
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return np.exp(0.5 * (lo + hi))


def _weibull_scale(mean, k):
    return mean / special.gamma(1.0 + 1.0 / k)


def _weibull_quantile(xp, z, mean, cv):
    """Q(Phi(z)) = scale * (-log(1 - Phi(z)))^(1/k), with 1 - Phi(z) = Phi(-z) taken on the
    log scale so neither tail loses digits (NumPy only, like the gamma family)."""
    if not _is_numpy(xp):
        raise NotImplementedError("the Weibull quantile transform runs on NumPy only")
    k = weibull_shape(cv)
    return _weibull_scale(mean, k) * (-special.log_ndtr(-np.asarray(z, dtype=float))) ** (1.0 / k)


def _weibull_median(xp, mean, cv):
    k = weibull_shape(cv)
    return _weibull_scale(mean, k) * np.log(2.0) ** (1.0 / k)


def _weibull_cdf(x, mean, cv):
    k = weibull_shape(cv)
    return -np.expm1(-((np.asarray(x, dtype=float) / _weibull_scale(mean, k)) ** k))


FAMILIES: dict[str, Family] = {
    "lognormal": Family(
        "lognormal",
        "lognormal: log values normal; right-skewed, mean above median",
        _lognormal_quantile,
        _lognormal_median,
        _lognormal_cdf,
        _lognormal_superiority,
    ),
    "gamma": Family(
        "gamma",
        "gamma: right-skewed, less heavy-tailed than the lognormal at the same CV",
        _gamma_quantile,
        _gamma_median,
        _gamma_cdf,
        _gamma_superiority,
    ),
    "weibull": Family(
        "weibull",
        "weibull: skew falls with the CV and turns negative below CV 0.32 (mean below median)",
        _weibull_quantile,
        _weibull_median,
        _weibull_cdf,
    ),
}


def get_family(name: str) -> Family:
    """Return the family called ``name``.

    Raises
    ------
    KeyError
        With the list of known families, when ``name`` is unknown.
    """
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown family {name!r}; choose one of: {', '.join(FAMILIES)}") from None


def scipy_distribution(name: str, mean: float, cv: float):
    """A frozen SciPy distribution for the family, used to cross-check the transforms."""
    if name == "lognormal":
        sigma = float(np.sqrt(np.log1p(cv**2)))
        return stats.lognorm(s=sigma, scale=mean * np.exp(-0.5 * sigma**2))
    if name == "gamma":
        shape = 1.0 / cv**2
        return stats.gamma(a=shape, scale=mean / shape)
    if name == "weibull":
        k = float(weibull_shape(cv))
        return stats.weibull_min(c=k, scale=mean / special.gamma(1.0 + 1.0 / k))
    raise KeyError(name)

"""Default (JZS) Bayes factors for t tests, computed from summary statistics.

This module turns a reported t statistic (or the means, SDs and sample sizes
behind it) into the Jeffreys-Zellner-Siow (JZS) Bayes factor BF10 for the
presence of an effect, as described by

    Rouder, J. N., Speckman, P. L., Sun, D., Morey, R. D., & Iverson, G.
    (2009). Bayesian t tests for accepting and rejecting the null hypothesis.
    Psychonomic Bulletin & Review, 16(2), 225-237.

The numbers are intended to agree with ``ttest.tstat(t, n1, n2, rscale=r,
simple=TRUE)`` from Morey & Rouder's R package *BayesFactor*, which is the
de-facto reference implementation (and the one JASP uses).  The implementation
here is written independently from the published integral (Rouder et al.,
2009, eq. 1, with the Cauchy scale ``r`` made explicit); no code from
BayesFactor was used.

Under H1 the standardized effect size delta has a Cauchy(0, r) prior, written
as a scale mixture: delta | g ~ N(0, g r^2), g ~ Inverse-Gamma(1/2, 1/2).
Integrating delta out analytically leaves a one-dimensional integral over g:

    BF10 = int_0^inf (1 + N g r^2)^(-1/2)
                     (1 + t^2 / ((1 + N g r^2) df))^(-(df + 1)/2)
                     (2 pi)^(-1/2) g^(-3/2) exp(-1/(2 g)) dg
           / (1 + t^2/df)^(-(df + 1)/2)

where N is the effective sample size (n for one-sample / paired designs,
n1 n2 / (n1 + n2) for two independent groups) and df the t-test degrees of
freedom.

For large |t| BF10 can be astronomically large (hundreds of orders of
magnitude), so everything is done in log space: the integral is taken over
u = log g, and the integrand is divided by its maximum before quadrature.
Callers that may meet huge evidence should use :func:`log10_jzs_bayes_factor`.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
from scipy import integrate, optimize

__all__ = [
    "jzs_bayes_factor",
    "log10_jzs_bayes_factor",
    "t_from_summary",
    "bayes_factor_robustness",
]

# Integrand values more than this many natural-log units below the peak are
# treated as zero when choosing the integration range (exp(-60) ~ 1e-26, far
# below the relative accuracy we ask of quad).
_LOG_TAIL_CUTOFF = 60.0

_LOG_FLOAT_MAX = math.log(np.finfo(float).max)


def _as_real(value, name):
    """Convert ``value`` to float, rejecting bools/non-numbers with a clear message."""
    # bool is a subclass of int; a True sample size is always a caller bug.
    if isinstance(value, bool) or not isinstance(value, (Real, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    return float(value)


def _validate(t, n1, n2, r):
    """Check t-test inputs and return (t, N_effective, df) as floats."""
    t = _as_real(t, "t")
    if not math.isfinite(t):
        raise ValueError(f"t must be finite, got {t!r}")
    n1 = _as_real(n1, "n1")
    if not (math.isfinite(n1) and n1 >= 2):
        raise ValueError(f"n1 must be a finite number >= 2, got {n1!r}")
    r = _as_real(r, "r")
    if not (math.isfinite(r) and r > 0):
        raise ValueError(f"r (prior scale) must be finite and > 0, got {r!r}")
    if n2 is None:
        return t, n1, n1 - 1.0
    n2 = _as_real(n2, "n2")
    if not (math.isfinite(n2) and n2 >= 1):
        raise ValueError(f"n2 must be a finite number >= 1, got {n2!r}")
    # With n1 >= 2 and n2 >= 1 we always have n1 + n2 >= 3, i.e. df >= 1.
    return t, n1 * n2 / (n1 + n2), n1 + n2 - 2.0


def _log_integrand(u, t2, n_eff, df, r):
    """Natural log of the g-integrand (already divided by the H0 likelihood),
    including the Jacobian dg = g du of the substitution u = log g.

    Vectorised over ``u``.  Written with logaddexp/log1p so it neither
    overflows for huge g nor loses precision for tiny g.
    """
    u = np.asarray(u, dtype=float)
    # log(1 + N g r^2) without overflow when g = e^u is huge.
    log_s = np.logaddexp(0.0, math.log(n_eff * r * r) + u)
    b = t2 / df
    # Likelihood ratio of H1|g to H0: the two (1 + .)^(-(df+1)/2) kernels.
    lik = -0.5 * log_s - 0.5 * (df + 1.0) * (np.log1p(b * np.exp(-log_s)) - math.log1p(b))
    # Inverse-Gamma(1/2, 1/2) prior on g, times the Jacobian g:
    # log[(2 pi)^(-1/2) g^(-3/2) e^(-1/(2g)) * g] = -log(2 pi)/2 - u/2 - e^(-u)/2.
    prior = -0.5 * math.log(2.0 * math.pi) - 0.5 * u - 0.5 * np.exp(-u)
    return lik + prior


def _log_jzs_bf(t, n_eff, df, r):
    """Natural log of BF10 for validated inputs."""
    t2 = t * t
    f = lambda u: _log_integrand(u, t2, n_eff, df, r)  # noqa: E731

    # Where the mass can lie.  Below u = -10 the prior factor is < exp(-11000),
    # so nothing is lost there.  Above, the integrand peaks no later than
    # roughly N r^2 g ~ (df + 1) t^2 / df and then decays like e^(-u); the
    # extra margin covers that tail down to well past the cutoff.
    u_top = math.log1p((df + 1.0) * t2 / (df * n_eff * r * r) + 1.0 / (n_eff * r * r))
    u_lo, u_hi = -10.0, u_top + 2.0 * _LOG_TAIL_CUTOFF + 10.0

    # The log-integrand is not guaranteed concave in u for all inputs (the
    # likelihood part is convex for small g), so locate the global maximum on
    # a grid first and only then polish it with a local optimiser.
    grid = np.linspace(u_lo, u_hi, 4001)
    vals = f(grid)
    i = int(np.argmax(vals))
    step = grid[1] - grid[0]
    res = optimize.minimize_scalar(
        lambda u: -float(f(u)),
        bounds=(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]),
        method="bounded",
        options={"xatol": 1e-10},
    )
    u_mode = float(res.x)
    log_max = max(float(-res.fun), float(vals[i]))

    # Trim the range to where the scaled integrand is non-negligible; this keeps
    # quad from wasting its budget on a flat-zero region and missing the peak.
    keep = np.nonzero(vals - log_max > -_LOG_TAIL_CUTOFF)[0]
    a = max(grid[keep[0]] - step, u_lo)
    b = min(grid[keep[-1]] + step, u_hi)

    integral, _ = integrate.quad(
        lambda u: math.exp(float(f(u)) - log_max),
        a,
        b,
        points=[u_mode] if a < u_mode < b else None,
        epsabs=0.0,
        epsrel=1e-11,
        limit=200,
    )
    return log_max + math.log(integral)


def log10_jzs_bayes_factor(t, n1, n2=None, r=0.707):
    """Base-10 logarithm of the JZS Bayes factor BF10 for a t statistic.

    Same inputs and model as :func:`jzs_bayes_factor`, but the result is
    returned on the log10 scale so it stays finite however strong the
    evidence is (e.g. t = 20 with groups of 29 and 45).

    Parameters
    ----------
    t : float
        Observed t statistic (sign is irrelevant: the prior is symmetric).
    n1 : float
        Sample size (one-sample / paired) or size of group 1; must be >= 2.
    n2 : float or None, optional
        Size of group 2 for an independent-samples test (>= 1).  ``None``
        (default) means a one-sample or paired test.
    r : float, optional
        Scale of the Cauchy prior on the standardized effect size; must be
        > 0.  Default 0.707 ("medium", sqrt(2)/2, as in BayesFactor/JASP).

    Returns
    -------
    float
        log10(BF10).  Positive values favour H1 (an effect), negative H0.

    Raises
    ------
    ValueError
        If ``t`` is not finite, ``n1 < 2``, ``n2 < 1`` or ``r <= 0``.
    """
    t, n_eff, df = _validate(t, n1, n2, r)
    return _log_jzs_bf(t, n_eff, df, float(r)) / math.log(10.0)


def jzs_bayes_factor(t, n1, n2=None, r=0.707):
    """JZS Bayes factor BF10 for a one- or two-sample t statistic.

    Implements the default Bayesian t test of Rouder et al. (2009): a Cauchy
    prior with scale ``r`` on the standardized effect size under H1, a point
    null under H0, and Jeffreys priors on the nuisance parameters.  Matches
    ``BayesFactor::ttest.tstat(t, n1, n2, rscale = r, simple = TRUE)``.

    Parameters
    ----------
    t : float
        Observed t statistic.
    n1 : float
        Sample size (one-sample / paired; effective N = n1, df = n1 - 1) or
        size of group 1 (two-sample); must be >= 2.
    n2 : float or None, optional
        Size of group 2 (>= 1).  When given, effective N = n1 n2 / (n1 + n2)
        and df = n1 + n2 - 2.
    r : float, optional
        Cauchy prior scale on the effect size (> 0); default 0.707.

    Returns
    -------
    float
        BF10 (evidence for H1 over H0); ``1 / BF10`` is BF01.  Returns
        ``inf`` only if BF10 genuinely exceeds the double-precision range;
        use :func:`log10_jzs_bayes_factor` when that can happen.

    Raises
    ------
    ValueError
        If ``t`` is not finite, ``n1 < 2``, ``n2 < 1`` or ``r <= 0``.

    Examples
    --------
    Rouder et al. (2009) example (t = 2.03, N = 80, r = 1): BF01 ~ 1.56.

    >>> round(1 / jzs_bayes_factor(2.03, 80, r=1), 4)
    1.5574
    """
    t, n_eff, df = _validate(t, n1, n2, r)
    log_bf = _log_jzs_bf(t, n_eff, df, float(r))
    # Explicit check rather than letting exp overflow with a RuntimeWarning.
    if log_bf > _LOG_FLOAT_MAX:
        return math.inf
    return math.exp(log_bf)


def t_from_summary(mean1, sd1, n1, mean2, sd2, n2, welch=False):
    """Two-sample t statistic and degrees of freedom from summary statistics.

    Parameters
    ----------
    mean1, sd1, n1 : float
        Mean, sample standard deviation (n - 1 denominator) and size of
        group 1.
    mean2, sd2, n2 : float
        The same for group 2.
    welch : bool, optional
        If False (default), Student's pooled-variance t with
        df = n1 + n2 - 2.  If True, Welch's unequal-variance t with
        Welch-Satterthwaite degrees of freedom.

    Returns
    -------
    t : float
        (mean1 - mean2) / standard error.
    df : float
        Degrees of freedom (non-integer for Welch).

    Raises
    ------
    ValueError
        If a standard deviation is negative or not finite, a group size is
        too small (each >= 1 and n1 + n2 >= 3 pooled; each >= 2 for Welch),
        or the standard error is zero.
    """
    m1 = _as_real(mean1, "mean1")
    m2 = _as_real(mean2, "mean2")
    s1 = _as_real(sd1, "sd1")
    s2 = _as_real(sd2, "sd2")
    a = _as_real(n1, "n1")
    b = _as_real(n2, "n2")
    for name, v in (("mean1", m1), ("mean2", m2)):
        if not math.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v!r}")
    for name, v in (("sd1", s1), ("sd2", s2)):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be finite and >= 0, got {v!r}")
    # Welch needs a variance estimate from each group (n - 1 in a denominator);
    # the pooled test only needs one residual degree of freedom overall.
    min_n = 2.0 if welch else 1.0
    for name, v in (("n1", a), ("n2", b)):
        if not (math.isfinite(v) and v >= min_n):
            raise ValueError(f"{name} must be a finite number >= {min_n:g}, got {v!r}")
    if a + b < 3:
        raise ValueError(f"n1 + n2 must be >= 3, got n1={a!r}, n2={b!r}")

    if welch:
        v1 = s1 * s1 / a
        v2 = s2 * s2 / b
        se2 = v1 + v2
        if se2 <= 0:
            raise ValueError("standard error is zero (sd1 and sd2 are both 0)")
        df = se2 * se2 / (v1 * v1 / (a - 1.0) + v2 * v2 / (b - 1.0))
    else:
        df = a + b - 2.0
        sp2 = ((a - 1.0) * s1 * s1 + (b - 1.0) * s2 * s2) / df
        se2 = sp2 * (1.0 / a + 1.0 / b)
        if se2 <= 0:
            raise ValueError("standard error is zero (pooled SD is 0)")
    return (m1 - m2) / math.sqrt(se2), df


def bayes_factor_robustness(t, n1, n2=None, widths=(0.5, 0.707, 1.0, 1.414)):
    """JZS Bayes factor across several Cauchy prior widths.

    The same sensitivity check JASP's "Bayes factor robustness check" shows:
    if the conclusion flips between plausible prior widths it is fragile.
    Conventional labels: 0.707 "medium", 1 "wide", 1.414 "ultrawide".

    Parameters
    ----------
    t, n1, n2
        As in :func:`jzs_bayes_factor`.
    widths : iterable of float, optional
        Prior scales r to evaluate (each > 0).

    Returns
    -------
    list of dict
        One dict per width, in the given order, with keys ``"r"``,
        ``"log10_bf10"`` and ``"bf10"`` (``bf10`` may be ``inf`` when the
        value exceeds float range; ``log10_bf10`` is always finite).

    Raises
    ------
    ValueError
        For invalid ``t``, ``n1``, ``n2`` or any width.
    """
    out = []
    for r in widths:
        log10_bf = log10_jzs_bayes_factor(t, n1, n2, r)
        ln_bf = log10_bf * math.log(10.0)
        bf = math.inf if ln_bf > _LOG_FLOAT_MAX else math.exp(ln_bf)
        out.append({"r": float(r), "log10_bf10": log10_bf, "bf10": bf})
    return out

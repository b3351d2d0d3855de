"""Published-statistic functions: the summary statistics a paper reports, computed the way
its authors would have computed them on a sample.

All functions take *row-sorted* samples (last axis = subjects, ascending) and work on NumPy
arrays and PyTensor tensors alike (``xp`` is ``numpy`` or ``pytensor.tensor``), so the
likelihood, the posterior predictive checks and calibration share one definition.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps


#: Hyndman & Fan (1996) sample quantile types 4-9 as ``h = n p + m(p)`` (1-based
#: position; the quantile interpolates linearly between the order statistics around ``h``).
_CONTINUOUS_OFFSET = {
    4: lambda p: 0.0,
    5: lambda p: 0.5,
    6: lambda p: p,
    7: lambda p: 1.0 - p,
    8: lambda p: (p + 1.0) / 3.0,
    9: lambda p: p / 4.0 + 3.0 / 8.0,
}
#: Quantile types a study file may declare (assumption ``quantile_method``), with the
#: software that uses each by default for quartiles and medians.  Sources: Hyndman & Fan
#: (1996), Am Stat 50:361-365, and each package's documentation (R ``quantile``, SAS
#: ``PCTLDEF``, Stata ``summarize``/``centile``, SPSS ``EXAMINE``, Minitab, Excel).
QUANTILE_TYPES = {
    1: "inverse of the empirical CDF (SAS PCTLDEF=3)",
    2: "inverse of the empirical CDF, averaged at discontinuities (SAS default PCTLDEF=5; Stata summarize, detail)",
    3: "nearest even order statistic (SAS PCTLDEF=2)",
    4: "linear interpolation of the empirical CDF (SAS PCTLDEF=1)",
    5: "piecewise linear, midpoints of the steps (Hazen)",
    6: "position (n + 1) p (SPSS, Minitab, Stata centile, Excel QUARTILE.EXC, SAS PCTLDEF=4)",
    7: "position 1 + (n - 1) p (R and NumPy default, Excel QUARTILE.INC, S-PLUS)",
    8: "approximately median-unbiased (Hyndman & Fan's recommendation)",
    9: "approximately unbiased for normal data (Blom)",
}


def _quantile_sorted(x, n: int, p: float, method: int = 7):
    """Sample quantile of row-sorted ``x`` by Hyndman & Fan's (1996) type ``method`` (1-9;
    :data:`QUANTILE_TYPES`).

    ``n`` is passed explicitly because tensor shapes are symbolic; every type picks fixed
    order statistics for a given ``n`` and ``p``, so the result is a static combination of
    at most two of them (and differentiable in the sample, as the likelihood needs).
    """
    if method not in QUANTILE_TYPES:
        raise ValueError(f"quantile method {method!r} is not a Hyndman-Fan type; use one of 1-9")
    np_ = n * p
    if method in (1, 2, 3):
        j = math.floor(np_)
        g = np_ - j
        if method == 1:
            k = j if g == 0.0 else j + 1
        elif method == 2:
            if g == 0.0:
                a, b = _clip_index(j, n), _clip_index(j + 1, n)
                return 0.5 * (x[..., a] + x[..., b])
            k = j + 1
        else:
            # Hyndman & Fan's m = -1/2: the nearest order statistic, the even one on a tie
            j = math.floor(np_ - 0.5)
            k = j if (np_ - 0.5 - j == 0.0 and j % 2 == 0) else j + 1
        return x[..., _clip_index(k, n)]
    h = np_ + _CONTINUOUS_OFFSET[method](p)
    lo = math.floor(h)
    frac = h - lo
    a, b = _clip_index(lo, n), _clip_index(lo + 1, n)
    if frac == 0.0 or a == b:
        return x[..., a]
    return x[..., a] + frac * (x[..., b] - x[..., a])


def _clip_index(k: int, n: int) -> int:
    """0-based index of the 1-based order statistic ``k``, clamped to the sample (positions
    below 1 take the minimum and above n the maximum, as every type does)."""
    return min(max(int(k), 1), n) - 1


def sample_statistic(xp, x_sorted, n: int, name: str, quantile_method: int = 7):
    """One reported statistic of row-sorted samples.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``pytensor.tensor``.
    x_sorted : array (..., n)
        Samples sorted ascending along the last axis.
    n : int
        Sample size (length of the last axis).
    name : str
        ``mean``, ``sd``, ``sem``, ``median``, ``q1``, ``q3``, ``iqr``, ``p5``, ``p10``,
        ``p90``, ``p95``, ``min``, ``max``, ``mean_ci_low``, ``mean_ci_high``, ``gmean``,
        ``gmean_ci_low``, ``gmean_ci_high`` or ``mean_ci_half`` (the half-width of the mean's
        interval).  ``sd`` uses the n - 1 denominator and ``sem`` is ``sd / sqrt(n)``;
        quantiles (and ``iqr``, the width ``q3 - q1``) use ``quantile_method``; the intervals
        are Student t intervals at :data:`CI_LEVEL`, of the values (``mean_ci_*``) or of their
        logarithms transformed back (``gmean_ci_*``, around the geometric mean ``gmean``).

    Returns
    -------
    array (...)
    """
    if name == "mean":
        return xp.mean(x_sorted, axis=-1)
    if name == "sd":
        m = xp.mean(x_sorted, axis=-1)
        return xp.sqrt(xp.sum((x_sorted - m[..., None]) ** 2, axis=-1) / (n - 1))
    if name == "sem":
        return sample_statistic(xp, x_sorted, n, "sd") / math.sqrt(n)
    if name in QUANTILE_P:
        return _quantile_sorted(x_sorted, n, QUANTILE_P[name], quantile_method)
    if name == "iqr":
        # a paper that prints the IQR as one number (the width q3 - q1)
        return _quantile_sorted(x_sorted, n, 0.75, quantile_method) - _quantile_sorted(x_sorted, n, 0.25, quantile_method)
    if name in _T_INTERVALS:
        # a 95% t interval of the mean, of the log values (geometric mean) or its half-width
        logs = name.startswith("gmean")
        y = xp.log(x_sorted) if logs else x_sorted
        centre = xp.mean(y, axis=-1)
        half = t_interval_factor(n) * sample_statistic(xp, y, n, "sem")
        value = centre + _T_INTERVALS[name] * half if name != "mean_ci_half" else half
        return xp.exp(value) if logs else value
    if name == "min":
        return x_sorted[..., 0]
    if name == "max":
        return x_sorted[..., n - 1]
    raise ValueError(f"unknown statistic {name!r}")


#: Level of the confidence intervals a study reports with a mean or a geometric mean.
CI_LEVEL = 0.95
#: Interval statistics: the side of the interval (-1 lower, +1 upper, 0 the centre alone).
_T_INTERVALS = {"mean_ci_low": -1, "mean_ci_high": 1, "mean_ci_half": 0, "gmean": 0, "gmean_ci_low": -1, "gmean_ci_high": 1}


def t_interval_factor(n: int) -> float:
    """Student's t quantile of a two-sided :data:`CI_LEVEL` interval with ``n - 1`` degrees
    of freedom: the interval is ``centre -+ factor * SEM``."""
    return float(sps.t.ppf(0.5 + CI_LEVEL / 2, n - 1))


#: Quantile statistics and their probabilities.
QUANTILE_P = {"median": 0.5, "q1": 0.25, "q3": 0.75, "p5": 0.05, "p10": 0.10, "p90": 0.90, "p95": 0.95}


def sample_statistics(xp, x_sorted, n: int, names, quantile_method: int = 7):
    """Stack several statistics on a new last axis, in the order of ``names``."""
    return xp.stack([sample_statistic(xp, x_sorted, n, s, quantile_method) for s in names], axis=-1)


#: Two-group tests whose p-values the toolkit can simulate (study assumption ``group_test``).
GROUP_TESTS = {
    "mann_whitney": "Mann-Whitney U (Wilcoxon rank-sum), two-sided, normal approximation",
    "welch_t": "Welch's t test (unequal variances), two-sided",
    "student_t": "Student's t test (pooled variance), two-sided",
}
#: The group test assumed when a study file does not declare ``group_test``.
DEFAULT_GROUP_TEST = "mann_whitney"


def group_test_pvalue(a: np.ndarray, b: np.ndarray, test: str) -> np.ndarray:
    """Two-sided p-value of a two-group test, vectorised over leading axes (NumPy only).

    Parameters
    ----------
    a, b : array (..., n_a), (..., n_b)
        Samples of the two groups.
    test : {"mann_whitney", "welch_t", "student_t"}
        Which test the authors are assumed to have used (a study-file assumption).
    """
    if test == "mann_whitney":
        return sps.mannwhitneyu(a, b, axis=-1, alternative="two-sided", method="asymptotic").pvalue
    if test == "welch_t":
        return sps.ttest_ind(a, b, axis=-1, equal_var=False).pvalue
    if test == "student_t":
        return sps.ttest_ind(a, b, axis=-1, equal_var=True).pvalue
    raise ValueError(f"unknown group test {test!r}; use one of {', '.join(GROUP_TESTS)}")


def mann_whitney_u(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mann-Whitney ``U`` of the first sample (pairs with ``a > b``, ties counted half),
    vectorised over leading axes (NumPy only)."""
    return sps.mannwhitneyu(a, b, axis=-1, alternative="two-sided", method="asymptotic").statistic


def group_test_statistic(a: np.ndarray, b: np.ndarray, test: str) -> np.ndarray:
    """The statistic behind :func:`group_test_pvalue`, signed as ``a`` minus ``b``: Student's
    or Welch's t, or Mann-Whitney's normal score with the continuity correction (no ties:
    ``(|U - n_a n_b / 2| - 1/2) / sqrt(n_a n_b (n_a + n_b + 1) / 12)``, 0 where the
    correction exceeds the distance), as the software that prints it computes it."""
    if test == "mann_whitney":
        na, nb = a.shape[-1], b.shape[-1]
        d = mann_whitney_u(a, b) - 0.5 * na * nb
        return np.sign(d) * np.maximum(np.abs(d) - 0.5, 0.0) / math.sqrt(na * nb * (na + nb + 1) / 12.0)
    if test in ("welch_t", "student_t"):
        return sps.ttest_ind(a, b, axis=-1, equal_var=test == "student_t").statistic
    raise ValueError(f"unknown group test {test!r}; use one of {', '.join(GROUP_TESTS)}")


def modelled_statistics(reported: dict[str, float]) -> dict[str, float]:
    """The statistics the likelihood observes for one group's published ones: the same,
    except that a mean's confidence interval enters as its half-width ``mean_ci_half`` (and
    as the mean, its midpoint, when the mean itself is not published).  The half-width is
    positive and proportional to the population mean at a fixed CV, as the likelihood
    tables need, while the lower end of the interval may be negative."""
    if "mean_ci_low" not in reported:
        return dict(reported)
    out = {k: v for k, v in reported.items() if k not in ("mean_ci_low", "mean_ci_high")}
    low, high = reported["mean_ci_low"], reported["mean_ci_high"]
    out.setdefault("mean", (low + high) / 2)
    out["mean_ci_half"] = (high - low) / 2
    return out


def several_group_pvalue(samples, test: str) -> np.ndarray:
    """p-value of a test across several groups, row by row.

    Parameters
    ----------
    samples : list of arrays (..., n_k)
        One array per group, with the same leading axes (one simulated study per row).
    test : {"kruskal_wallis", "anova"}
        Kruskal-Wallis H (chi-square with k - 1 degrees of freedom, corrected for ties) or a
        one-way analysis of variance (F test), as SciPy computes them.
    """
    if test == "kruskal_wallis":
        return np.asarray(sps.kruskal(*samples, axis=-1).pvalue)
    if test == "anova":
        return np.asarray(sps.f_oneway(*samples, axis=-1).pvalue)
    raise ValueError(f"unknown test across several groups {test!r}; use kruskal_wallis or anova")


def modelled_values(names, values) -> np.ndarray:
    """:func:`modelled_statistics` of published statistics given as names and values in
    the same order (a simulated study's), as an array in the likelihood's order."""
    return np.array(list(modelled_statistics(dict(zip(names, values))).values()), dtype=float)

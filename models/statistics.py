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


def _quantile_sorted(x, n: int, p: float, method: int = 7):
    """Sample quantile of row-sorted ``x`` (type 7 of Hyndman & Fan 1996, R's default).

    ``n`` is passed explicitly because tensor shapes are symbolic.
    """
    if method != 7:
        raise ValueError(f"quantile method {method} is not implemented; use 7")
    h = (n - 1) * p
    lo = int(math.floor(h))
    frac = h - lo
    if frac == 0.0 or lo + 1 >= n:
        return x[..., lo]
    return x[..., lo] + frac * (x[..., lo + 1] - x[..., lo])


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
    name : {"mean", "sd", "median", "q1", "q3", "min", "max"}
        Statistic; ``sd`` uses the n - 1 denominator, quartiles use ``quantile_method``.

    Returns
    -------
    array (...)
    """
    if name == "mean":
        return xp.mean(x_sorted, axis=-1)
    if name == "sd":
        m = xp.mean(x_sorted, axis=-1)
        return xp.sqrt(xp.sum((x_sorted - m[..., None]) ** 2, axis=-1) / (n - 1))
    if name == "median":
        return _quantile_sorted(x_sorted, n, 0.5, quantile_method)
    if name == "q1":
        return _quantile_sorted(x_sorted, n, 0.25, quantile_method)
    if name == "q3":
        return _quantile_sorted(x_sorted, n, 0.75, quantile_method)
    if name == "min":
        return x_sorted[..., 0]
    if name == "max":
        return x_sorted[..., n - 1]
    raise ValueError(f"unknown statistic {name!r}")


#: Quantile statistics and their probabilities.
QUANTILE_P = {"median": 0.5, "q1": 0.25, "q3": 0.75}


def sample_statistics(xp, x_sorted, n: int, names, quantile_method: int = 7):
    """Stack several statistics on a new last axis, in the order of ``names``."""
    return xp.stack([sample_statistic(xp, x_sorted, n, s, quantile_method) for s in names], axis=-1)


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
    raise ValueError(f"unknown group test {test!r}; use mann_whitney, welch_t or student_t")

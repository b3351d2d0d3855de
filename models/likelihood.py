"""Synthetic likelihood of reported summary statistics (Wood 2010; Price et al. 2018).

The reported statistics of a group are treated as one draw of a statistic vector whose
distribution is approximated by a multivariate normal on the log scale, with mean and
covariance estimated from ``reps`` cohorts simulated with *fixed* deviates (common random
numbers), so the log density is a smooth, deterministic function of the parameters.  Unlike
the textbook asymptotic normal for a sample SD, the covariance is the finite-sample one of the
assumed family, so it cannot be widened by drifting the scale upward.

Scale families make this cheap.  If ``X = mean * X1`` with ``X1`` of mean 1 and the same CV,
every reported statistic (mean, SD, quantiles, extremes) scales with ``mean``, so on the log
scale the simulated statistics are ``log(mean) + h(cv)`` with ``h`` independent of the mean.
Their covariance depends on the CV only.  We therefore simulate once, on a fine grid of
log CV, and interpolate the mean vector and covariance with cubic splines inside the model:
the sampler then never simulates, yet every value is the synthetic likelihood of the same
simulator (the interpolation error is checked in the tests).

Rounding of published values (a declared assumption, width ``w``) is simulated, not
approximated.  If ``S`` is the vector of unrounded statistics and ``U`` an independent
uniform vector on ``(-w/2, w/2)^k``, then ``P(round(S) = r) = w**k * density of S + U at
r`` exactly, for every ``r`` on the lattice of multiples of ``w`` (a value that rounds to
zero included).  So the synthetic likelihood of rounded statistics is that of ``S + U``,
and the simulated cohorts carry fixed uniform errors as well as fixed deviates.  Rounding
breaks the scale family (``w`` does not scale with the mean), so these tables have a
second axis, ``log(mean / w)`` (:class:`RoundedTable`).  The statistics are modelled on the
scale ``log(1 + (S + U) / w)``, which is finite for a value that rounded to zero and equal
to ``log S`` up to ``w / S`` for large values.  The earlier shortcut, adding ``w**2 / 12``
divided by the squared reported value to each log-scale variance, failed for values within
a few rounding units of zero (docs/decisions/group-likelihood-calibration.md);
:func:`rounding_variance_log` is kept for the covariate model, whose values are large.

Both tables span CV from :data:`CV_RANGE`; the group model truncates its CV prior to that
range, so the likelihood is never evaluated, and never clamped flat, outside it.
"""
from __future__ import annotations

import types
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

from .families import Family
from .simulate import dithered_statistics, simulate_group_statistics

#: CVs the likelihood tables cover.  Under the default prior (log CV ~ Normal(log 0.5, 1))
#: this is log(0.5) -+ 4.6 prior SDs, all but about 1e-5 of the prior mass; the group model
#: truncates its CV prior here.  Above CV 50 a gamma cohort of 29 is mostly zeros in double
#: precision (shape 1/CV**2 = 0.0004: every quantile below ~0.75 underflows).
CV_RANGE = (0.005, 50.0)
#: Grid of log CV for the scale-family tables (no rounding): spacing ~0.031.
LOG_CV_GRID = np.linspace(np.log(CV_RANGE[0]), np.log(CV_RANGE[1]), 298)
#: Grid of log CV of the rounded tables, coarser because they have a second axis (spacing
#: 0.1; the interpolation error is checked against direct simulation in the tests).
ROUNDED_LOG_CV_GRID = np.linspace(np.log(CV_RANGE[0]), np.log(CV_RANGE[1]), 93)
#: Grid of log(mean / rounding width) of the rounded tables, spacing 0.25.  Below 0.01
#: rounding units every statistic rounds to zero whatever the CV (the likelihood is flat
#: there because the data say nothing more); above 1e5 units rounding changes a log
#: statistic by less than 1e-4 of its sampling SD down to CV 0.005, and the scale-family
#: limit holds.
LOG_SCALE_GRID = np.linspace(np.log(1e-2), np.log(1e5), 65)


def rounding_variance_log(observed: np.ndarray, width: float) -> np.ndarray:
    """Log-scale variance added by rounding each reported value to a multiple of ``width``
    (NumPy arrays or tensors): the first-order approximation, good for values of many
    rounding units only (the group model simulates rounding instead; see the module)."""
    return (width**2 / 12.0) / observed**2


def synthetic_moments(sim_log: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean vector and covariance (``reps - 1`` denominator) of simulated log statistics.

    Parameters
    ----------
    sim_log : array or tensor (..., reps, k)
        NumPy array or PyTensor tensor (written with broadcasting only, so both work).
    """
    mu = sim_log.mean(axis=-2)
    c = sim_log - mu[..., None, :]
    cov = (c[..., :, :, None] * c[..., :, None, :]).sum(axis=-3) / (sim_log.shape[-2] - 1)
    return mu, cov


def mvn_logp(xp, x, mu, cov, k: int | None = None):
    """``log N(x | mu, cov)`` for one vector, on NumPy or PyTensor (``xp``).

    Under PyTensor the dimension ``k`` must be given: the Cholesky factorisation and the
    triangular solve are then unrolled into scalar operations.  For the handful of
    statistics a paper reports this is much faster than LAPACK calls, whose fixed overhead
    dominated the sampler's run time on the JAX backend.
    """
    if xp is np:
        chol = np.linalg.cholesky(cov)
        resid = np.linalg.solve(chol, x - mu)
        return -0.5 * (np.sum(resid**2) + 2.0 * np.sum(np.log(np.diag(chol))) + len(x) * np.log(2.0 * np.pi))
    if k is None:
        raise ValueError("mvn_logp on tensors needs the static dimension k")
    # scalar expressions only, so the same loop serves arrays with trailing batch axes
    # (mvn_logp_batch)
    L = [[None] * k for _ in range(k)]
    for j in range(k):
        L[j][j] = xp.sqrt(cov[j, j] - sum((L[j][m] ** 2 for m in range(j)), 0.0))
        for i in range(j + 1, k):
            L[i][j] = (cov[i, j] - sum((L[i][m] * L[j][m] for m in range(j)), 0.0)) / L[j][j]
    r = x - mu
    y = []
    for i in range(k):
        y.append((r[i] - sum((L[i][m] * y[m] for m in range(i)), 0.0)) / L[i][i])
    quad = sum(yi**2 for yi in y)
    logdet = 2.0 * sum(xp.log(L[i][i]) for i in range(k))
    return -0.5 * (quad + logdet + k * np.log(2.0 * np.pi))


_ELEMENTWISE_NUMPY = types.SimpleNamespace(sqrt=np.sqrt, log=np.log)


def mvn_logp_batch(x, mu, cov):
    """``log N(x | mu, cov)`` for many vectors at once (NumPy): ``x``, ``mu`` (..., k) and
    ``cov`` (..., k, k) broadcast; returns (...).  The unrolled Cholesky of
    :func:`mvn_logp`, vectorised over the leading axes (a grid posterior evaluates it at
    thousands of points per data set)."""
    x, mu, cov = np.broadcast_arrays(np.asarray(x, float)[..., None], np.asarray(mu, float)[..., None], np.asarray(cov, float))
    k = cov.shape[-1]
    return mvn_logp(_ELEMENTWISE_NUMPY, np.moveaxis(x[..., 0], -1, 0), np.moveaxis(mu[..., 0], -1, 0), np.moveaxis(cov, (-2, -1), (0, 1)), k=k)


@dataclass(frozen=True)
class ScaleFamilyTable:
    """Spline coefficients of ``h(log cv)`` (k) and the covariance (k*k) of the log
    statistics of one group, over :data:`LOG_CV_GRID`."""

    grid: np.ndarray
    mean_coef: np.ndarray  # (4, m - 1, k)
    cov_coef: np.ndarray  # (4, m - 1, k * k)
    k: int


def build_table(family: Family, z_sorted: np.ndarray, names, quantile_method: int = 7, grid=LOG_CV_GRID) -> ScaleFamilyTable:
    """Simulate standardised cohorts (mean 1) at every grid CV and fit cubic splines.

    Parameters
    ----------
    family : Family
    z_sorted : array (reps, n)
        Fixed, row-sorted standard normal deviates of this group.
    names : sequence of str
        Reported statistics of the group.
    """
    cv = np.exp(grid)[:, None, None]
    sim = simulate_group_statistics(np, family, z_sorted[None], 1.0, cv, names, quantile_method)
    # at the highest CVs a gamma cohort's lower quantiles underflow to 0 in double
    # precision; without rounding the statistics are floored at the smallest normal double,
    # so the moments stay finite (no published value is that small)
    mu, cov = synthetic_moments(np.log(np.maximum(sim, np.finfo(float).tiny)))
    k = len(names)
    mean_spline = CubicSpline(grid, mu, axis=0)
    cov_spline = CubicSpline(grid, cov.reshape(len(grid), k * k), axis=0)
    return ScaleFamilyTable(grid, mean_spline.c, cov_spline.c, k)


def _spline_eval(xp, coef, grid, x):
    """Cubic spline with coefficients ``coef`` (..., 4, m - 1, K) (SciPy's ``c`` layout,
    stacked on leading axes) at ``x`` (...); returns (..., K).  The interval of each batch
    element is gathered from a flattened table with one integer index (a fast take, whose
    gradient is never needed: the tables are constants)."""
    h = grid[1] - grid[0]
    nint = len(grid) - 1
    batch = coef.shape[:-3]
    size = int(np.prod(batch, dtype=int))
    flat = np.moveaxis(coef, -3, -2).reshape((size * nint, 4, coef.shape[-1]))
    xc = xp.clip(x, grid[0], grid[-1]).reshape((size,))
    if xp is np:
        idx = np.clip(np.floor((xc - grid[0]) / h).astype(int), 0, nint - 1)
    else:
        idx = xp.clip(xp.floor((xc - grid[0]) / h).astype("int64"), 0, nint - 1)
        flat = xp.as_tensor(flat)
    c = flat[idx + nint * np.arange(size)]  # (size, 4, K)
    t = (xc - (grid[0] + idx * h))[:, None]
    out = ((c[:, 0] * t + c[:, 1]) * t + c[:, 2]) * t + c[:, 3]
    return out.reshape((*batch, coef.shape[-1]))


def table_moments(xp, table: ScaleFamilyTable, log_mean, log_cv):
    """Mean vector and covariance of the log statistics at (``log_mean``, ``log_cv``)."""
    h = _spline_eval(xp, table.mean_coef, table.grid, log_cv)
    cov = _spline_eval(xp, table.cov_coef, table.grid, log_cv).reshape((table.k, table.k))
    cov = 0.5 * (cov + cov.T)
    return log_mean + h, cov


@dataclass(frozen=True)
class RoundedTable:
    """Bicubic spline coefficients of the mean vector and covariance of the rounded
    statistics of one group on the scale ``log(1 + (S + U) / w)``, over
    (:data:`ROUNDED_LOG_CV_GRID`, :data:`LOG_SCALE_GRID`).

    ``coef`` (cells, 4, 4, k + k * k) holds, per grid cell, the coefficients of powers
    ``3 - a`` of the log-CV offset and ``3 - b`` of the log-scale offset; the mean part is
    stored minus ``softplus(log scale)`` so that both ends of the scale axis are flat limits
    and the clamp there is exact to the table's accuracy.
    """

    cv_grid: np.ndarray
    scale_grid: np.ndarray
    coef: np.ndarray
    k: int


def rounded_log(values_in_units, xp=np):
    """The modelling scale of rounded statistics, ``log(1 + value / w)``, from values in
    rounding units."""
    return xp.log1p(values_in_units)


def observed_rounded_log(xp, log_reported, width: float):
    """Reported values (log, natural units) on the scale of :class:`RoundedTable`.

    A reported value below 3/4 of the width can only be a statistic that rounded to zero
    and was published as half the width (:func:`models.simulate.round_reported`), so it
    is the lattice point 0.
    """
    units = xp.exp(log_reported) / width
    if xp is np:
        units = np.where(units < 0.75, 0.0, units)
    else:
        units = xp.switch(xp.lt(units, 0.75), 0.0, units)
    return xp.log1p(units)


def _softplus(xp, x):
    return np.logaddexp(0.0, x) if xp is np else xp.softplus(x)


def _rounded_moments(stats_std, errors, log_scale):
    """Mean (..., k) and covariance (..., k, k) of ``log(1 + scale * stats_std + errors)``
    at each ``log_scale`` (1-D), for standardised statistics (reps, k)."""
    m = np.exp(np.asarray(log_scale, float))[:, None, None]
    y = rounded_log(dithered_statistics(stats_std[None], m, errors[None]))
    mu = y.mean(axis=-2)
    c = y - mu[:, None, :]
    cov = np.einsum("srk,srl->skl", c, c) / (y.shape[-2] - 1)
    return mu, cov


def build_rounded_table(
    family: Family, z_sorted: np.ndarray, errors: np.ndarray, names, quantile_method: int = 7,
    cv_grid=ROUNDED_LOG_CV_GRID, scale_grid=LOG_SCALE_GRID,
) -> RoundedTable:
    """Simulate standardised cohorts at every grid CV, add the fixed rounding errors at
    every grid scale, and fit a tensor-product cubic spline.

    Parameters
    ----------
    family : Family
    z_sorted : array (reps, n)
        Fixed, row-sorted standard normal deviates of this group.
    errors : array (reps, k)
        Fixed rounding errors in rounding units
        (:func:`models.simulate.uniform_rounding_errors`).
    names : sequence of str
        Reported statistics of the group.
    """
    k = len(names)
    vals = np.empty((len(cv_grid), len(scale_grid), k + k * k))
    soft = np.logaddexp(0.0, scale_grid)[:, None]
    for i, lc in enumerate(cv_grid):
        s = simulate_group_statistics(np, family, z_sorted, 1.0, float(np.exp(lc)), names, quantile_method)
        mu, cov = _rounded_moments(s, errors, scale_grid)
        vals[i, :, :k] = mu - soft
        vals[i, :, k:] = cov.reshape(len(scale_grid), k * k)
    if not np.all(np.isfinite(vals)):
        raise ValueError(f"non-finite synthetic moments for the {family.name} family on the CV grid")
    # a tensor-product spline: splines along the scale axis, then splines of their
    # coefficients along the CV axis (interpolation is linear in the data, so this is the
    # bicubic interpolant of the grid values)
    along_scale = CubicSpline(scale_grid, vals, axis=1).c  # (4, ns - 1, ncv, K)
    both = CubicSpline(cv_grid, along_scale, axis=2).c  # (4, ncv - 1, 4, ns - 1, K)
    coef = np.ascontiguousarray(both.transpose(1, 3, 0, 2, 4)).reshape(-1, 4, 4, k + k * k)
    return RoundedTable(np.asarray(cv_grid), np.asarray(scale_grid), coef, k)


def _spline2_eval(xp, table: RoundedTable, log_cv, log_scale):
    """The tensor-product spline at points (1-D arrays, or scalars on PyTensor); (P, K)."""
    gx, gy = table.cv_grid, table.scale_grid
    hx, hy = gx[1] - gx[0], gy[1] - gy[0]
    nx, ny = len(gx) - 1, len(gy) - 1
    x = xp.clip(log_cv, gx[0], gx[-1]).reshape((-1,))
    y = xp.clip(log_scale, gy[0], gy[-1]).reshape((-1,))
    if xp is np:
        ix = np.clip(np.floor((x - gx[0]) / hx).astype(int), 0, nx - 1)
        iy = np.clip(np.floor((y - gy[0]) / hy).astype(int), 0, ny - 1)
        flat = table.coef
    else:
        ix = xp.clip(xp.floor((x - gx[0]) / hx).astype("int64"), 0, nx - 1)
        iy = xp.clip(xp.floor((y - gy[0]) / hy).astype("int64"), 0, ny - 1)
        flat = xp.as_tensor(table.coef)
    c = flat[ix * ny + iy]  # (P, 4, 4, K)
    tx = (x - (gx[0] + ix * hx))[:, None, None]
    ty = (y - (gy[0] + iy * hy))[:, None, None]
    cy = ((c[:, :, 0] * ty + c[:, :, 1]) * ty + c[:, :, 2]) * ty + c[:, :, 3]  # (P, 4, K)
    tx = tx[:, 0]
    return ((cy[:, 0] * tx + cy[:, 1]) * tx + cy[:, 2]) * tx + cy[:, 3]


def rounded_table_moments(xp, table: RoundedTable, log_scale, log_cv):
    """Mean vector and covariance of the rounded statistics (scale of
    :func:`observed_rounded_log`) at ``log_scale = log(mean / width)`` and ``log_cv``.

    On NumPy, ``log_scale`` and ``log_cv`` may be 1-D arrays of P points: then (P, k) and
    (P, k, k); on PyTensor they are scalars and the result is (k,), (k, k).
    """
    k = table.k
    vals = _spline2_eval(xp, table, log_cv, log_scale)
    mu = vals[:, :k] + _softplus(xp, xp.reshape(log_scale, (-1,)) if xp is not np else np.reshape(log_scale, (-1,)))[:, None]
    cov = vals[:, k:].reshape((-1, k, k))
    cov = 0.5 * (cov + cov.transpose((0, 2, 1)))
    if xp is np:
        return mu, cov
    return mu[0], cov[0]


def rounded_logp_direct(family: Family, z_sorted, errors, names, observed_log, mean_over_width, cv, quantile_method: int = 7) -> float:
    """The synthetic log likelihood of rounded statistics computed by simulation at one
    point (NumPy), without the table; ``observed_log`` on the scale of
    :func:`observed_rounded_log`."""
    s = simulate_group_statistics(np, family, z_sorted, 1.0, cv, names, quantile_method)
    mu, cov = _rounded_moments(s, errors, [np.log(mean_over_width)])
    return float(mvn_logp(np, observed_log, mu[0], cov[0]))


def scale_table_moments_at(table: ScaleFamilyTable, log_mean: np.ndarray, log_cv: np.ndarray):
    """:func:`table_moments` at many points at once (NumPy, 1-D arrays of P points):
    (P, k) and (P, k, k)."""
    log_cv = np.clip(np.asarray(log_cv, float).ravel(), table.grid[0], table.grid[-1])
    h = table.grid[1] - table.grid[0]
    idx = np.clip(np.floor((log_cv - table.grid[0]) / h).astype(int), 0, len(table.grid) - 2)
    t = (log_cv - (table.grid[0] + idx * h))[:, None]
    out = []
    for coef in (table.mean_coef, table.cov_coef):
        c = coef[:, idx]  # (4, P, K)
        out.append(((c[0] * t + c[1]) * t + c[2]) * t + c[3])
    cov = out[1].reshape((-1, table.k, table.k))
    return np.asarray(log_mean, float).ravel()[:, None] + out[0], 0.5 * (cov + cov.transpose(0, 2, 1))


def synthetic_logp_direct(family: Family, z_sorted, names, observed_log, mean, cv, extra_var, quantile_method: int = 7) -> float:
    """The synthetic log likelihood computed by simulation at one point (NumPy), without
    the interpolation table; the reference the table is tested against."""
    sim = simulate_group_statistics(np, family, z_sorted, mean, cv, names, quantile_method)
    mu, cov = synthetic_moments(np.log(np.maximum(sim, np.finfo(float).tiny)))  # as build_table
    return float(mvn_logp(np, observed_log, mu, cov + np.diag(extra_var)))

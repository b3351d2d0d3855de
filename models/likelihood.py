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

The normal is not fitted to the statistics directly.  Above CV 1 the log statistics of a
small cohort are skewed (log sample mean and log SD of a lognormal group of 29: skewness
0.5-0.7 at CV 3-15; a gamma group's are skewed to the left) and their tails are not normal,
so each statistic first goes through a sinh-arcsinh transform (Jones and Pewsey 2009),
``z = sinh(delta * asinh((y - loc) / scale) - eps)``, whose four parameters are tabulated
like the moments: ``loc`` and ``scale`` are the simulated mean and SD, ``eps`` (skewness)
and ``delta`` (tail weight) maximise the normal likelihood of the transformed simulated
values.  The scores ``z`` then get the normal with their simulated mean and covariance (a
Gaussian copula on fitted marginals, a semi-parametric synthetic likelihood in the sense of
An et al. 2020), and the log density of ``y`` adds the log Jacobian of the transform.  With
``eps = 0`` and ``delta = 1`` (shape ``"normal"``) this is exactly the normal synthetic
likelihood of ``y``.  The transform is smooth in ``y`` and, through the splines, in the
parameters, so NUTS can sample it (docs/decisions/group-likelihood-calibration.md has the
measurements).

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
#: Shapes of the synthetic likelihood: each statistic sinh-arcsinh transformed before the
#: normal (the default), or the plain normal of the log statistics.
SHAPES = ("sinh-arcsinh", "normal")
#: Simulated cohorts (the first of the table's) on which each statistic's sinh-arcsinh
#: parameters are fitted; the scores' mean and covariance then come from every cohort.
#: The fit is the costly part of the shape (Newton steps over the cohorts at every grid
#: point).  Fitted on 500, the transform's Monte Carlo error was as large as its gain: the
#: mean log density of fresh lognormal statistics at CV 3 changed by -0.018 to +0.027
#: against the normal over three deviate seeds; on 2000, +0.014 to +0.020 (on all 4000,
#: +0.015 to +0.022) at about half the cost of all 4000.
SHAPE_FIT_REPS = 2000
#: Bounds of the fitted skewness and tail parameters.  Where the statistics are skewed
#: and heavy-tailed but unimodal (CV 1-15 of both families) the fits lie inside; they bind
#: where a statistic is nearly two-valued (a gamma group at CV > 8, whose mean depends on
#: whether one large value occurs and whose median rounds to 0 or not), which no
#: marginal transform makes normal.  Wider bounds (0.3-3 for delta) fitted such statistics
#: with extreme transforms that changed quickly between grid points.
EPS_BOUNDS = (-1.5, 1.5)
DELTA_BOUNDS = (0.6, 1.6)
#: Smallest SD of a simulated statistic: without rounding, a gamma group's lower quantiles
#: near CV 50 are all floored at the same value (see :func:`build_table`).
MIN_SCALE = 1e-9


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


def fit_sinh_arcsinh(u: np.ndarray, iters: int = 20, init=None) -> tuple[np.ndarray, np.ndarray]:
    """Sinh-arcsinh parameters that make standardised values most nearly normal.

    For each column of ``u`` (axis -2 runs over simulated cohorts), ``eps`` and ``delta``
    maximise the profile normal log likelihood of ``z = sinh(delta * asinh(u) - eps)``
    (``mean log|dz/du| - log SD(z) / 2``) by Newton steps, bounded by :data:`EPS_BOUNDS` and
    :data:`DELTA_BOUNDS`.

    Parameters
    ----------
    u : array (..., reps, k)
        Standardised simulated statistics.
    iters : int
        Newton steps (each step at most 0.3 in either parameter).
    init : (eps, delta), optional
        Starting values (..., k), e.g. the fit at the neighbouring grid point; default 0, 1.

    Returns
    -------
    eps, delta : arrays (..., k)
    """
    return _fit_asinh_rows(np.ascontiguousarray(np.swapaxes(_asinh(u), -1, -2)), iters, init)


# NumPy's sinh, cosh, tanh and arcsinh take 4 to 7 times as long as its exp and log on this
# machine (21, 10, 8 and 40 ns a value against 6 and 5), and the table fits spend their time
# in them.  The shape fit needs them only to absolute precision (they enter means of values
# of order one), which exp and log give: about 1e-16 absolute, as the functions themselves
# (not relative precision near zero).  The arguments stay far from overflow: |asinh(u)| is
# below 10 for standardised statistics, so the fit's bounds keep |delta asinh(u) - eps| below 18.
def _sinh_cosh(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sinh(s), cosh(s))`` from one exponential, to absolute precision."""
    e = np.exp(s)
    r = 1.0 / e
    return 0.5 * (e - r), 0.5 * (e + r)


def _asinh(u: np.ndarray) -> np.ndarray:
    """``arcsinh(u)`` from one logarithm, to absolute precision (odd by construction)."""
    x = np.abs(u)
    return np.copysign(np.log(x + np.sqrt(x * x + 1.0)), u)


#: Values per block of :func:`_fit_asinh_rows` (1 MB of doubles): a block's dozen temporary
#: arrays stay in the processor's cache across a Newton step.  The Lasemi tables' fits took
#: half the time in blocks as in one piece; the rows are independent, so the results are
#: the same.
FIT_BLOCK = 1 << 17


def _fit_asinh_rows(a: np.ndarray, iters: int, init) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fit_sinh_arcsinh` of ``a = asinh(u)`` with the cohorts on the last axis
    (..., k, reps), in blocks of rows (:data:`FIT_BLOCK`)."""
    shape, reps = a.shape[:-1], a.shape[-1]
    rows = a.reshape(-1, reps)
    eps = np.zeros(rows.shape[0]) if init is None else np.array(init[0], dtype=float).reshape(-1)
    dl = np.ones(rows.shape[0]) if init is None else np.array(init[1], dtype=float).reshape(-1)
    step = max(1, FIT_BLOCK // reps)
    for i in range(0, rows.shape[0], step):
        block = slice(i, i + step)
        eps[block], dl[block] = _fit_asinh_block(rows[block], iters, eps[block], dl[block])
    return eps.reshape(shape), dl.reshape(shape)


def _fit_asinh_block(a: np.ndarray, iters: int, eps: np.ndarray, dl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Newton steps of :func:`_fit_asinh_rows` for rows ``a`` (rows, reps) from ``eps``
    and ``dl`` (rows,)."""
    a2 = a * a
    flat = ~(np.ptp(a, axis=-1) > 0)

    def mean(v):
        return v.mean(axis=-1)

    ea, ea2 = mean(a), mean(a2)
    for _ in range(iters):
        s = dl[..., None] * a - eps[..., None]
        z, c = _sinh_cosh(s)
        t = z / c
        # cosh^2 = 1 + sinh^2 and sech^2 = 1 - tanh^2 stand in for products of whole arrays
        # (each pass over the cohorts is what a table's build time is made of)
        q = 1.0 - t * t
        zz, zc = z * z, z * c
        ez, ec, ezz, ezc = mean(z), mean(c), mean(zz), mean(zc)
        ed, eaz, eazz, ea2zz = mean(a * c), mean(a * z), mean(a * zz), mean(a2 * zz)
        # a statistic that never varies (no rounding, gamma near CV 50: floored values) has
        # nothing to fit; its parameters are reset to the identity below
        var = np.where(flat, 1.0, ezz - ez**2)
        # derivatives of z: dz/deps = -c, dz/ddelta = a c; d2z/deps2 = z,
        # d2z/ddelta2 = a^2 z, d2z/deps ddelta = -a z
        v_e = 2.0 * (-ezc + ez * ec)
        v_d = 2.0 * (mean(a * zc) - ez * ed)
        v_ee = 2.0 * (1.0 + 2.0 * ezz - ec**2 - ez * ez)  # mean(c^2) = 1 + mean(z^2)
        v_dd = 2.0 * (ea2 + 2.0 * ea2zz - ed**2 - ez * mean(a2 * z))  # mean(a^2 c^2) = mean(a^2) + mean(a^2 z^2)
        v_ed = 2.0 * (-(ea + eazz) - eazz + ec * ed + ez * eaz)  # mean(a c^2) = mean(a) + mean(a z^2)
        g_e = -mean(t) - 0.5 * v_e / var
        g_d = 1.0 / dl + mean(a * t) - 0.5 * v_d / var
        h_ee = mean(q) - 0.5 * (v_ee / var - v_e * v_e / var**2)
        h_dd = -1.0 / dl**2 + mean(a2 * q) - 0.5 * (v_dd / var - v_d * v_d / var**2)
        h_ed = -mean(a * q) - 0.5 * (v_ed / var - v_e * v_d / var**2)
        det = h_ee * h_dd - h_ed**2
        newton = (h_ee < 0) & (det > 0)  # concave there: Newton; else a gradient step
        safe = np.where(newton, det, 1.0)
        step_e = np.where(newton, -(h_dd * g_e - h_ed * g_d) / safe, 0.1 * g_e)
        step_d = np.where(newton, -(h_ee * g_d - h_ed * g_e) / safe, 0.1 * g_d)
        eps = np.clip(eps + np.clip(step_e, -0.3, 0.3), *EPS_BOUNDS)
        dl = np.clip(dl + np.clip(step_d, -0.3, 0.3), *DELTA_BOUNDS)
    return np.where(flat, 0.0, eps), np.where(flat, 1.0, dl)


def _values_len(k: int) -> int:
    return 5 * k + k * k


def shape_values(y: np.ndarray, shape: str = "sinh-arcsinh", init=None, iters: int = 20) -> tuple[np.ndarray, tuple]:
    """What a table stores at one grid point, from simulated statistics ``y`` (..., reps, k)
    on the modelling scale: per statistic ``loc``, ``log scale``, ``eps``, ``log delta``,
    then the mean (k) and covariance (k * k) of the scores; (..., 5k + k^2).  Also returns
    the fitted (eps, delta), to start the next grid point's fit."""
    if shape not in SHAPES:
        raise ValueError(f"unknown likelihood shape {shape!r}; choose one of: {', '.join(SHAPES)}")
    # cohorts on the last, contiguous axis: every reduction below runs over contiguous
    # memory (along axis -2 of y they were strided, several times slower)
    yt = np.ascontiguousarray(np.swapaxes(y, -1, -2))
    loc = yt.mean(axis=-1)
    scale = np.maximum(yt.std(axis=-1, ddof=1), MIN_SCALE)
    u = (yt - loc[..., None]) / scale[..., None]
    if shape == "normal":
        eps, dl = np.zeros_like(loc), np.ones_like(loc)
        z = u
    else:
        a = _asinh(u)
        # fitted on the first SHAPE_FIT_REPS cohorts, or on all of a smaller table (tests and
        # --reps below it): stated here, so the slice never promises more than it takes
        n_fit = min(SHAPE_FIT_REPS, u.shape[-1])
        eps, dl = _fit_asinh_rows(a[..., :n_fit], iters, init)
        z = _sinh_cosh(dl[..., None] * a - eps[..., None])[0]
    zm = z.mean(axis=-1)
    zc = z - zm[..., None]
    zc = (zc @ np.swapaxes(zc, -1, -2)) / (z.shape[-1] - 1)
    k = y.shape[-1]
    # the Cholesky factor is tabulated, with its diagonal on the log scale: interpolated
    # covariances lost positive definiteness between grid points where the scores'
    # correlation is near 1 (gamma, CV > 5); a factor with a positive diagonal never does
    chol = np.linalg.cholesky(zc + LOGP_FLOOR * np.eye(k))
    diag = np.arange(k)
    chol[..., diag, diag] = np.log(chol[..., diag, diag])
    vals = np.concatenate([loc, np.log(scale), eps, np.log(dl), zm, chol.reshape(chol.shape[:-2] + (k * k,))], axis=-1)
    return vals, (eps, dl)


def shape_logp(xp, x, vals, k: int):
    """Synthetic log density of statistics ``x`` (k) given tabulated values ``vals``
    (:func:`shape_values`; with ``loc`` already shifted to the point).

    On NumPy ``x`` is (k,) or broadcasts against ``vals`` (..., K), and the result is (...);
    on PyTensor ``vals`` is one (K,) vector.  The normal of the scores is written out with
    the tabulated Cholesky factor (scalar operations, as in :func:`mvn_logp`).
    """
    if xp is np:
        x, vals = np.asarray(x, float), np.asarray(vals, float)
        batch = np.broadcast_shapes(x.shape[:-1], vals.shape[:-1])
        # statistics on the leading axis, so the scalar code below serves any batch
        x = np.moveaxis(np.broadcast_to(x, batch + x.shape[-1:]), -1, 0)
        vals = np.moveaxis(np.broadcast_to(vals, batch + vals.shape[-1:]), -1, 0)
    loc, log_scale = vals[:k], vals[k : 2 * k]
    eps, log_delta = vals[2 * k : 3 * k], vals[3 * k : 4 * k]
    zm, chol = vals[4 * k : 5 * k], vals[5 * k :]
    u = (x - loc) / xp.exp(log_scale)
    s = xp.exp(log_delta) * xp.arcsinh(u) - eps
    r = xp.sinh(s) - zm
    # log dz/dy: the transform's Jacobian, so the result is a density of y
    log_jac = log_delta + xp.log(xp.cosh(s)) - 0.5 * xp.log1p(u * u) - log_scale
    y, out = [], 0.0
    for i in range(k):
        acc = r[i] - sum((chol[i * k + m] * y[m] for m in range(i)), 0.0)
        y.append(acc / xp.exp(chol[i * k + i]))
        out = out - 0.5 * y[i] ** 2 - chol[i * k + i] + log_jac[i]
    return out - 0.5 * k * np.log(2.0 * np.pi)


#: Added to the diagonal of the scores' covariance before its Cholesky factor is taken:
#: keeps it positive definite where a statistic hardly varies (no rounding, gamma near CV 50).
LOGP_FLOOR = 1e-10


@dataclass(frozen=True)
class ScaleFamilyTable:
    """Cubic-spline coefficients (4, m - 1, 5k + k^2) over :data:`LOG_CV_GRID` of the
    values of :func:`shape_values` for the log statistics of one group at mean 1 (``loc``
    then shifts by the log mean)."""

    grid: np.ndarray
    coef: np.ndarray
    k: int
    shape: str = "sinh-arcsinh"


def build_table(family: Family, z_sorted: np.ndarray, names, quantile_method: int = 7, grid=LOG_CV_GRID, shape: str = "sinh-arcsinh") -> ScaleFamilyTable:
    """Simulate standardised cohorts (mean 1) at every grid CV and fit cubic splines.

    Parameters
    ----------
    family : Family
    z_sorted : array (reps, n)
        Fixed, row-sorted standard normal deviates of this group.
    names : sequence of str
        Reported statistics of the group.
    quantile_method : int
    grid : array
        Log CVs.
    shape : str
        One of :data:`SHAPES`.
    """
    cv = np.exp(grid)[:, None, None]
    sim = simulate_group_statistics(np, family, z_sorted[None], 1.0, cv, names, quantile_method)
    # at the highest CVs a gamma cohort's lower quantiles underflow to 0 in double
    # precision; without rounding the statistics are floored at the smallest normal double,
    # so the values stay finite (no published value is that small)
    vals, _ = shape_values(np.log(np.maximum(sim, np.finfo(float).tiny)), shape)
    spline = CubicSpline(grid, vals, axis=0)
    return ScaleFamilyTable(np.asarray(grid), spline.c, len(names), shape)


def spline_rows(coef) -> np.ndarray:
    """Cubic-spline coefficients ``coef`` (..., 4, m - 1, K) with one row (4, K) per
    interval, the leading axes' intervals one after the other: the layout
    :func:`spline_eval` gathers from."""
    return np.moveaxis(coef, -3, -2).reshape((-1, 4, coef.shape[-1]))


def spline_eval(xp, coef, grid, x, rows=None):
    """Cubic spline with coefficients ``coef`` (..., 4, m - 1, K) (SciPy's ``c`` layout,
    stacked on leading axes) at ``x`` (...); returns (..., K).  The interval of each batch
    element is gathered from a flattened table with one integer index (a fast take, whose
    gradient is never needed: the tables are not parameters).  ``rows``: on PyTensor, the
    coefficients as :func:`spline_rows` lays them out, as a tensor (a shared variable makes
    the table an input of the compiled graph instead of a constant)."""
    h = grid[1] - grid[0]
    nint = len(grid) - 1
    batch = coef.shape[:-3]
    size = int(np.prod(batch, dtype=int))
    flat = spline_rows(coef) if rows is None else rows
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


def _spline_points(table: ScaleFamilyTable, log_cv):
    """The table's spline at many log CVs (NumPy, 1-D): (P, K)."""
    grid = table.grid
    x = np.clip(np.asarray(log_cv, float).ravel(), grid[0], grid[-1])
    h = grid[1] - grid[0]
    idx = np.clip(np.floor((x - grid[0]) / h).astype(int), 0, len(grid) - 2)
    t = (x - (grid[0] + idx * h))[:, None]
    c = table.coef[:, idx]  # (4, P, K)
    return ((c[0] * t + c[1]) * t + c[2]) * t + c[3]


def table_values(xp, table: ScaleFamilyTable, log_mean, log_cv, rows=None):
    """Tabulated values (:func:`shape_values`) at (``log_mean``, ``log_cv``): scalars on
    PyTensor, (K,); 1-D arrays of P points on NumPy, (P, K).  ``rows``: on PyTensor, the
    table's coefficients as a tensor (:func:`table_rows`)."""
    k = table.k
    if xp is np:
        vals = _spline_points(table, log_cv)
        lm = np.asarray(log_mean, float).reshape(-1, 1)
    else:
        vals = spline_eval(xp, table.coef, table.grid, log_cv, rows)
        lm = log_mean
    return xp.concatenate([vals[..., :k] + lm, vals[..., k:]], axis=-1)


def table_logp(xp, table: ScaleFamilyTable, observed_log, log_mean, log_cv, rows=None):
    """Synthetic log likelihood of log statistics ``observed_log`` (k) at (``log_mean``,
    ``log_cv``); on NumPy at P points given as 1-D arrays, (P,).  ``rows``: as for
    :func:`table_values`."""
    return shape_logp(xp, observed_log, table_values(xp, table, log_mean, log_cv, rows), table.k)


@dataclass(frozen=True)
class RoundedTable:
    """Bicubic spline coefficients of the values of :func:`shape_values` for the rounded
    statistics of one group on the scale ``log(1 + (S + U) / w)``, over
    (:data:`ROUNDED_LOG_CV_GRID`, :data:`LOG_SCALE_GRID`).

    ``coef`` (cells, 4, 4, 5k + k^2) holds, per grid cell, the coefficients of powers
    ``3 - a`` of the log-CV offset and ``3 - b`` of the log-scale offset; ``loc`` is
    stored minus ``softplus(log scale)`` so that both ends of the scale axis are flat
    limits and the clamp there is exact to the table's accuracy.
    """

    cv_grid: np.ndarray
    scale_grid: np.ndarray
    coef: np.ndarray
    k: int
    shape: str = "sinh-arcsinh"


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


def _rounded_values(stats_std, errors, log_scale, shape, init=None, iters: int = 20):
    """Values of :func:`shape_values` of ``log(1 + scale * stats_std + errors)`` at each
    ``log_scale`` (1-D), for standardised statistics (reps, k); ``loc`` not yet shifted."""
    m = np.exp(np.asarray(log_scale, float))[:, None, None]
    y = rounded_log(dithered_statistics(stats_std[None], m, errors[None]))
    return shape_values(y, shape, init, iters)


#: Newton steps of the shape fit at a grid point started from its neighbour's fit (the
#: rounded tables fit along the CV axis); a cold start takes 20.  With 4 the grid values
#: equal those of 6 to 0.01 except at 4 of the 6045 points (CV > 35, 0.12 rounding units).
WARM_ITERS = 4


def build_rounded_table(
    family: Family, z_sorted: np.ndarray, errors: np.ndarray, names, quantile_method: int = 7,
    cv_grid=ROUNDED_LOG_CV_GRID, scale_grid=LOG_SCALE_GRID, shape: str = "sinh-arcsinh",
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
    quantile_method : int
    cv_grid, scale_grid : arrays
        Log CVs and log(mean / width).
    shape : str
        One of :data:`SHAPES`.
    """
    k = len(names)
    vals = np.empty((len(cv_grid), len(scale_grid), _values_len(k)))
    soft = np.logaddexp(0.0, scale_grid)[:, None]
    fit = None
    for i, lc in enumerate(cv_grid):
        s = simulate_group_statistics(np, family, z_sorted, 1.0, float(np.exp(lc)), names, quantile_method)
        # the shape parameters change smoothly along the CV axis: each row's fit starts
        # from the previous row's
        v, fit = _rounded_values(s, errors, scale_grid, shape, fit, 20 if fit is None else WARM_ITERS)
        v[:, :k] -= soft
        vals[i] = v
    if not np.all(np.isfinite(vals)):
        raise ValueError(f"non-finite synthetic likelihood values for the {family.name} family on the CV grid")
    # a tensor-product spline: splines along the scale axis, then splines of their
    # coefficients along the CV axis (interpolation is linear in the data, so this is the
    # bicubic interpolant of the grid values)
    along_scale = CubicSpline(scale_grid, vals, axis=1).c  # (4, ns - 1, ncv, K)
    both = CubicSpline(cv_grid, along_scale, axis=2).c  # (4, ncv - 1, 4, ns - 1, K)
    coef = np.ascontiguousarray(both.transpose(1, 3, 0, 2, 4)).reshape(-1, 4, 4, vals.shape[-1])
    return RoundedTable(np.asarray(cv_grid), np.asarray(scale_grid), coef, k, shape)


def _spline2_eval(xp, table: RoundedTable, log_cv, log_scale, rows=None):
    """The tensor-product spline at points (1-D arrays, or scalars on PyTensor); (P, K).
    ``rows``: on PyTensor, the table's coefficients as a tensor (:func:`table_rows`)."""
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
        flat = xp.as_tensor(table.coef if rows is None else rows)
    c = flat[ix * ny + iy]  # (P, 4, 4, K)
    tx = (x - (gx[0] + ix * hx))[:, None, None]
    ty = (y - (gy[0] + iy * hy))[:, None, None]
    cy = ((c[:, :, 0] * ty + c[:, :, 1]) * ty + c[:, :, 2]) * ty + c[:, :, 3]  # (P, 4, K)
    tx = tx[:, 0]
    return ((cy[:, 0] * tx + cy[:, 1]) * tx + cy[:, 2]) * tx + cy[:, 3]


def rounded_table_values(xp, table: RoundedTable, log_scale, log_cv, rows=None):
    """Tabulated values (:func:`shape_values`, ``loc`` shifted to the point) at
    ``log_scale = log(mean / width)`` and ``log_cv``: scalars on PyTensor, (K,); 1-D arrays
    of P points on NumPy, (P, K).  ``rows``: on PyTensor, the table's coefficients as a
    tensor (:func:`table_rows`)."""
    k = table.k
    vals = _spline2_eval(xp, table, log_cv, log_scale, rows)
    ls = xp.reshape(log_scale, (-1,)) if xp is not np else np.reshape(np.asarray(log_scale, float), (-1,))
    out = xp.concatenate([vals[:, :k] + _softplus(xp, ls)[:, None], vals[:, k:]], axis=-1)
    return out if xp is np else out[0]


def rounded_table_logp(xp, table: RoundedTable, observed, log_scale, log_cv, rows=None):
    """Synthetic log likelihood of rounded statistics ``observed`` (on the scale of
    :func:`observed_rounded_log`) at ``log_scale = log(mean / width)`` and ``log_cv``; on
    NumPy at P points given as 1-D arrays, (P,).  ``rows``: as for
    :func:`rounded_table_values`."""
    return shape_logp(xp, observed, rounded_table_values(xp, table, log_scale, log_cv, rows), table.k)


def table_rows(table) -> np.ndarray:
    """Either table's coefficients in the layout its PyTensor evaluation gathers from (one
    row per grid cell), the value of the ``rows`` argument of :func:`table_logp` and
    :func:`rounded_table_logp`."""
    return table.coef if isinstance(table, RoundedTable) else spline_rows(table.coef)


def rounded_logp_direct(family: Family, z_sorted, errors, names, observed_log, mean_over_width, cv, quantile_method: int = 7, shape: str = "sinh-arcsinh") -> float:
    """The synthetic log likelihood of rounded statistics computed by simulation at one
    point (NumPy), without the table (the shape fitted there from a cold start);
    ``observed_log`` on the scale of :func:`observed_rounded_log`."""
    s = simulate_group_statistics(np, family, z_sorted, 1.0, cv, names, quantile_method)
    vals, _ = _rounded_values(s, errors, [np.log(mean_over_width)], shape)
    return float(shape_logp(np, observed_log, vals[0], len(names)))


def synthetic_logp_direct(family: Family, z_sorted, names, observed_log, mean, cv, quantile_method: int = 7, shape: str = "sinh-arcsinh") -> float:
    """The synthetic log likelihood computed by simulation at one point (NumPy), without
    the interpolation table (the shape fitted there from a cold start); the reference the
    table is tested against."""
    sim = simulate_group_statistics(np, family, z_sorted, mean, cv, names, quantile_method)
    vals, _ = shape_values(np.log(np.maximum(sim, np.finfo(float).tiny)), shape)  # as build_table
    return float(shape_logp(np, observed_log, vals, len(names)))


def group_logp_at(table, observed, log_location, log_cv):
    """Either table's log likelihood at P points (NumPy): ``log_location`` is the log mean
    for a :class:`ScaleFamilyTable` and ``log(mean / width)`` for a :class:`RoundedTable`;
    ``observed`` is on the table's scale."""
    if isinstance(table, RoundedTable):
        return rounded_table_logp(np, table, observed, log_location, log_cv)
    return table_logp(np, table, observed, log_location, log_cv)


def table_sample(table, log_location, log_cv, rng: np.random.Generator) -> np.ndarray:
    """One draw of the statistics (on the table's scale) from the synthetic likelihood
    itself at one point (``log_location`` as in :func:`group_logp_at`): the scores from
    their normal, mapped back through the inverse sinh-arcsinh transform.  Data drawn so
    have an exactly known posterior (the reference of the grid check)."""
    k = table.k
    if isinstance(table, RoundedTable):
        vals = rounded_table_values(np, table, np.array([log_location]), np.array([log_cv]))[0]
    else:
        vals = table_values(np, table, np.array([log_location]), np.array([log_cv]))[0]
    chol = np.tril(vals[5 * k :].reshape(k, k))
    chol[np.arange(k), np.arange(k)] = np.exp(np.diag(chol))
    z = vals[4 * k : 5 * k] + chol @ rng.standard_normal(k)
    u = np.sinh((np.arcsinh(z) + vals[2 * k : 3 * k]) / np.exp(vals[3 * k : 4 * k]))
    return vals[:k] + np.exp(vals[k : 2 * k]) * u

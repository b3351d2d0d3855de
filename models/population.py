"""Exact functionals of a group's population under the covariate model.

The covariate model describes a group's population as the equal-weight mixture, over the
subjects of its fixed design (the quadrature of the covariate distribution,
:func:`models.cohort.build_design`) and over the residual family's scale nodes
(:func:`models.asymptotic.residual_nodes`), of lognormal components::

    log(K / reference) ~ sum_{i, k} w_i nu_k Normal(m_i, sigma^2 * node_k)

where ``m_i`` is subject ``i``'s expected log level.  The likelihood matches the published
statistics to this mixture, so the population estimands are functionals of the same mixture,
computed here to floating-point or stated numerical accuracy, never from a finite sample of
simulated subjects (whose sampling error would stand in the estimate without a word):

* mean: closed form, ``sum w_i nu_k exp(m_i + sigma^2 node_k / 2)``;
* quantiles (median): the root of the mixture CDF, by bisection to ``QUANTILE_TOL`` on the log
  scale, checked;
* probability of superiority ``P(X_a > X_b)``: the exact double sum over component pairs
  for normal residuals; with several scale nodes the pair function of the difference in
  locations is tabulated per draw and interpolated (error below ``SUPERIORITY_TOL``, tested).
"""
from __future__ import annotations

import numpy as np
from scipy import special

#: Bisection steps of the mixture quantile: the bracket (at most a few hundred log units)
#: halves each step, so 64 steps reach below 1e-16 of it, the float64 spacing.
BISECTION_STEPS = 64
#: Largest accepted error of a quantile on the log scale (relative error of the level).
QUANTILE_TOL = 1e-9
#: Grid points of the tabulated pair function (residual families with several scale nodes).
SUPERIORITY_GRID = 513
#: Largest error of the tabulated probability of superiority (linear interpolation of a
#: smooth CDF; checked against the exact double sum in the tests).
SUPERIORITY_TOL = 1e-4
#: Values per block of work (draws x components, or draws x component pairs): bounds the
#: memory of a block at a few tens of MB whatever the design size.
BLOCK_VALUES = 2_000_000


def mixture_cdf_log(y, m, s):
    """CDF at log level ``y`` of the equal-weight mixture of ``Normal(m_j, s_j)``.

    Parameters
    ----------
    y : array (D, Q)
    m, s : array (D, M)
        Component locations and scales per draw (equal weights).
    """
    return special.ndtr((y[..., :, None] - m[..., None, :]) / s[..., None, :]).mean(axis=-1)


def mixture_quantile_log(m: np.ndarray, s: np.ndarray, p) -> np.ndarray:
    """Log-scale ``p`` quantiles of equal-weight normal mixtures, one per leading index.

    Bisection on the mixture CDF within a bracket that contains every component's
    ``+-40 s`` range, so it cannot miss the root; the result is checked to lie within
    :data:`QUANTILE_TOL` of the root.

    Parameters
    ----------
    m, s : array (D, M)
    p : float or array (Q,)

    Returns
    -------
    array (D,) for a scalar ``p``, else (D, Q).

    Raises
    ------
    ArithmeticError
        If a bracket does not shrink below :data:`QUANTILE_TOL` (it cannot with 64 steps
        unless the input is not finite).
    """
    scalar = np.ndim(p) == 0
    p = np.atleast_1d(np.asarray(p, dtype=float))
    lo = np.broadcast_to((m - 40.0 * s).min(axis=-1, keepdims=True), m.shape[:-1] + (p.size,)).copy()
    hi = np.broadcast_to((m + 40.0 * s).max(axis=-1, keepdims=True), m.shape[:-1] + (p.size,)).copy()
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        below = mixture_cdf_log(mid, m, s) < p
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
        if np.all(hi - lo < 0.01 * QUANTILE_TOL):
            break
    if not np.all(hi - lo < QUANTILE_TOL):
        raise ArithmeticError("mixture quantile did not converge (non-finite parameters?)")
    y = 0.5 * (lo + hi)
    return y[..., 0] if scalar else y


def mixture_mean_log(m: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Log of the mean level of equal-weight lognormal mixtures (closed form), ``(D, M) -> (D,)``;
    computed with a log-sum-exp so that large scales do not overflow."""
    a = m + 0.5 * s**2
    top = a.max(axis=-1, keepdims=True)
    return top[..., 0] + np.log(np.exp(a - top).mean(axis=-1))


def prob_superiority(ma: np.ndarray, sa_nodes: np.ndarray, mb: np.ndarray, sb_nodes: np.ndarray) -> np.ndarray:
    """``P(X_a > X_b)`` for independent draws from two populations, per leading index.

    Parameters
    ----------
    ma, mb : array (D, Ma), (D, Mb)
        Subject locations (log scale) of the two groups, equal weights.
    sa_nodes, sb_nodes : array (D, K)
        Each group's residual scales, one per equal-weight scale node (one column for
        normal residuals).

    Notes
    -----
    The probability is ``mean_ij h(ma_i - mb_j)`` with
    ``h(d) = mean_kl Phi(d / sqrt(sa_k^2 + sb_l^2))``.  With one node, ``h`` is evaluated
    at every pair (exact).  With several, ``h`` is tabulated on :data:`SUPERIORITY_GRID`
    points spanning the pairs' differences and interpolated linearly, which keeps the cost
    at one pass over the pairs.
    """
    scale = np.sqrt(sa_nodes[:, :, None] ** 2 + sb_nodes[:, None, :] ** 2).reshape(ma.shape[0], -1)  # (D, KK)
    rows = max(1, BLOCK_VALUES // max(1, ma.shape[0] * mb.shape[1]))
    if scale.shape[-1] == 1:
        total = sum(special.ndtr((ma[:, i : i + rows, None] - mb[:, None, :]) / scale[:, :, None]).sum(axis=(-1, -2)) for i in range(0, ma.shape[1], rows))
        return total / (ma.shape[1] * mb.shape[1])
    lo = ma.min(axis=1) - mb.max(axis=1)
    hi = ma.max(axis=1) - mb.min(axis=1)
    hi = np.where(hi > lo, hi, lo + 1e-12)
    grid = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, SUPERIORITY_GRID)[None, :]
    h = special.ndtr(grid[:, :, None] / scale[:, None, :]).mean(axis=-1)  # (D, grid)
    total = np.zeros(ma.shape[0])
    for i in range(0, ma.shape[1], rows):
        d = ma[:, i : i + rows, None] - mb[:, None, :]
        pos = (d - lo[:, None, None]) / (hi - lo)[:, None, None] * (SUPERIORITY_GRID - 1)
        j = np.clip(np.floor(pos).astype(int), 0, SUPERIORITY_GRID - 2)
        flat = j.reshape(d.shape[0], -1)
        hd = np.take_along_axis(h, flat, axis=1).reshape(d.shape)
        hu = np.take_along_axis(h, flat + 1, axis=1).reshape(d.shape)
        total += (hd + (pos - j) * (hu - hd)).sum(axis=(-1, -2))
    return total / (ma.shape[1] * mb.shape[1])


def group_populations(alpha, slope, u, sigma, design, nodes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each group's mixture components for a batch of parameter draws.

    Parameters
    ----------
    alpha : (D, G); slope : (D, G, C); u : (D, L) or None; sigma : (D, G)
        Parameter draws.
    design : models.cohort.Design
        The model's fixed design; every one of its cohorts is used.
    nodes : array (K,)
        Residual variance multipliers (:func:`models.asymptotic.residual_nodes`).

    Returns
    -------
    dict
        group id -> ``(m, s_nodes)``: ``m`` (D, reps * n_g) expected log levels of the
        group's design subjects, ``s_nodes`` (D, K) its residual scales.
    """
    from .cohort import cohort_log_levels

    zero = np.zeros((design.reps, design.n))
    uu = None if u is None else u[:, None, None, :]
    eta = cohort_log_levels(np, alpha[:, None, :], slope[:, None, :, :], uu, sigma[:, None, :], design.x, design.onehot, zero, design.group_index)
    out = {}
    for k, g in enumerate(design.groups):
        m = eta[:, :, design.slices[g]].reshape(eta.shape[0], -1)
        out[g] = (m, sigma[:, k, None] * np.sqrt(nodes)[None, :])
    return out


def components(m: np.ndarray, s_nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten subjects x scale nodes into one list of components, ``(D, M * K)``."""
    K = s_nodes.shape[-1]
    return np.repeat(m, K, axis=-1), np.tile(s_nodes, (1, m.shape[-1]))


def population_estimands(alpha, slope, u, sigma, design, nodes, pairs) -> dict[str, np.ndarray]:
    """Medians, means and pairwise contrasts of the groups' populations, draw by draw.

    Parameters
    ----------
    alpha, slope, u, sigma, design, nodes
        As :func:`group_populations` (all draws; processed in blocks of about
        :data:`BLOCK_VALUES` values).
    pairs : list of (str, str)
        Group pairs ``(a, b)`` to contrast.

    Returns
    -------
    dict
        ``median_log``, ``mean_log`` (D, G) log levels relative to the reference level;
        ``prob_superiority`` (D, P) for the pairs, in order.
    """
    D, G = alpha.shape
    med, mean = np.empty((D, G)), np.empty((D, G))
    sup = np.empty((D, len(pairs)))
    chunk = max(1, BLOCK_VALUES // (design.reps * design.n * len(nodes)))
    for start in range(0, D, chunk):
        sl = slice(start, min(start + chunk, D))
        pops = group_populations(alpha[sl], slope[sl], None if u is None else u[sl], sigma[sl], design, nodes)
        for k, g in enumerate(design.groups):
            cm, cs = components(*pops[g])
            med[sl, k] = mixture_quantile_log(cm, cs, 0.5)
            mean[sl, k] = mixture_mean_log(cm, cs)
        for j, (a, b) in enumerate(pairs):
            sup[sl, j] = prob_superiority(pops[a][0], pops[a][1], pops[b][0], pops[b][1])
    return {"median_log": med, "mean_log": mean, "prob_superiority": sup}

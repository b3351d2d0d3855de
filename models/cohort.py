"""Cohort design and cohort statistics for covariate models.

A simulated cohort has the study's groups, with the published breakdowns (sex, subtype, ...)
exactly as counted and the unreported covariates (age, attack rate, ...) drawn from the
distributions the study file declares as assumptions.  The design is drawn once per model,
``reps`` cohorts at a time, from *fixed* uniforms (common random numbers): changing an
assumption's value moves every simulated subject smoothly instead of redrawing them, and the
synthetic likelihood stays a deterministic function of the parameters.

The functions here are NumPy at build time (:func:`build_design`, :func:`claim_design`) and
``xp``-generic where they act on simulated outcomes (:func:`cohort_log_levels`,
:func:`regression_estimate`), so estimands, posterior predictive checks and calibration
compute a published claim the same way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .study import Association, Study


@dataclass(frozen=True)
class Design:
    """Covariates of ``reps`` simulated cohorts (subjects ordered by group, in file order).

    Attributes
    ----------
    groups : tuple of str
    slices : dict
        group id -> slice of its subjects.
    group_index : array (N,)
        Group number of each subject.
    covariates : tuple of str
        Names of the non-categorical covariates, in ``x``'s last axis.
    x : array (reps, N, C)
        Covariates on the model scale, ``value / per`` centred at its average over the
        subjects where it is defined (over all cohorts); 0 where undefined.
    defined : array (G, C) of bool
        Whether covariate ``c`` is defined in group ``g``.
    categorical : str or None
        The categorical covariate (at most one), modelled as a random effect.
    levels : tuple of str
        Its levels.
    onehot : array (reps, N, L)
        Level indicators centred at the group's level shares; all 0 for subjects of groups
        without the breakdown.
    centre : array (C,)
        What was subtracted from each covariate (model scale), so ``(x + centre) * per``
        is the covariate in its own units where it is defined.
    """

    groups: tuple[str, ...]
    slices: dict
    group_index: np.ndarray
    covariates: tuple[str, ...]
    x: np.ndarray
    defined: np.ndarray
    categorical: str | None
    levels: tuple[str, ...]
    onehot: np.ndarray
    centre: np.ndarray | None = None

    @property
    def reps(self) -> int:
        return self.x.shape[0]

    @property
    def n(self) -> int:
        return self.x.shape[1]

    @property
    def n_max(self) -> int:
        """Size of the largest group: the padded layout's subjects per group."""
        return max(s.stop - s.start for s in self.slices.values())

    @property
    def padded_position(self) -> np.ndarray:
        """(N,) position of each subject in the flattened padded layout (group-major,
        ``n_max`` slots per group)."""
        out = np.empty(self.n, dtype=int)
        for k, g in enumerate(self.groups):
            sl = self.slices[g]
            out[sl] = k * self.n_max + np.arange(sl.stop - sl.start)
        return out

    def padded(self, arr: np.ndarray) -> np.ndarray:
        """Rearrange ``(reps, N, ...)`` per-subject values into ``(G, reps, n_max, ...)``,
        zeros in the padding, so that every group is one slice of a batched array."""
        out = np.zeros((len(self.groups), arr.shape[0], self.n_max) + arr.shape[2:])
        for k, g in enumerate(self.groups):
            sl = self.slices[g]
            out[k, :, : sl.stop - sl.start] = arr[:, sl]
        return out


def _exact_indicator(u: np.ndarray, count: int) -> np.ndarray:
    """Exactly ``count`` ones per row: the subjects with the smallest uniforms."""
    ranks = np.argsort(np.argsort(u, axis=-1), axis=-1)
    return (ranks < count).astype(float)


def _draw(dist, u: np.ndarray) -> np.ndarray:
    """Covariate values from fixed uniforms ``u`` (one group, ``(reps, n)``)."""
    if dist.distribution == "normal":
        return dist.mean + dist.sd * special.ndtri(u)
    if dist.distribution == "gamma":
        shape = (dist.mean / dist.sd) ** 2
        return special.gammaincinv(shape, u) * dist.mean / shape
    # bernoulli: the share is a proportion of the group, so draw an exact count
    return _exact_indicator(u, int(round(dist.share * u.shape[-1])))


def build_design(study: Study, reps: int, seed: int) -> Design:
    """Draw the covariates of ``reps`` cohorts like the study's.

    Parameters
    ----------
    study : Study
        Group sizes, breakdown counts, covariate declarations and assumptions.
    reps : int
    seed : int
        The uniforms depend on the seed, the group sizes and the covariate names only, not on
        assumption values, so scenarios that change an assumption share the same subjects.
    """
    groups = tuple(study.group_ids)
    sizes = [study.n(g) for g in groups]
    starts = np.cumsum([0] + sizes)
    slices = {g: slice(int(starts[i]), int(starts[i + 1])) for i, g in enumerate(groups)}
    N = int(starts[-1])
    group_index = np.repeat(np.arange(len(groups)), sizes)
    rng = np.random.default_rng(seed)
    # one block of uniforms per covariate, in sorted name order, so adding a covariate to the
    # file does not reshuffle the others
    uniforms = {c: rng.uniform(1e-12, 1 - 1e-12, size=(reps, N)) for c in sorted(study.covariates)}

    names = [c for c, cov in study.covariates.items() if not cov.categorical]
    cats = [c for c, cov in study.covariates.items() if cov.categorical]
    if len(cats) > 1:
        raise ValueError(f"covariates: at most one categorical breakdown is supported (got {', '.join(cats)})")
    x = np.zeros((reps, N, len(names)))
    defined = np.zeros((len(groups), len(names)), dtype=bool)
    centre = np.zeros(len(names))
    for j, c in enumerate(names):
        cov = study.covariates[c]
        for g in study.covariate_groups(c):
            sl, gi = slices[g], groups.index(g)
            defined[gi, j] = True
            u = uniforms[c][:, sl]
            if cov.counts is not None:
                breakdown, level = cov.counts.split(".")
                raw = _exact_indicator(u, int(study.groups[g].counts[breakdown][level].value))
            else:
                raw = _draw(study.covariate_distribution(c), u)
            x[:, sl, j] = raw / cov.per
        # centred at the design average where defined: the intercepts then describe an
        # average subject, which removes most of their posterior correlation with the slopes
        # (an uncentred sex indicator made the sampler crawl); effects are unchanged
        inside = np.zeros(N, dtype=bool)
        for g in study.covariate_groups(c):
            inside[slices[g]] = True
        centre[j] = x[:, inside, j].mean()
        x[:, inside, j] -= centre[j]

    categorical, levels, onehot = None, (), np.zeros((reps, N, 0))
    if cats:
        categorical = cats[0]
        breakdown = study.covariates[categorical].counts
        levels = tuple(dict.fromkeys(lv for g in study.covariate_groups(categorical) for lv in study.groups[g].counts[breakdown]))
        onehot = np.zeros((reps, N, len(levels)))
        for g in study.covariate_groups(categorical):
            sl = slices[g]
            ranks = np.argsort(np.argsort(uniforms[categorical][:, sl], axis=-1), axis=-1)
            lo = 0
            for lv, cnt in study.groups[g].counts[breakdown].items():
                hi = lo + int(cnt.value)
                onehot[:, sl, levels.index(lv)] = ((ranks >= lo) & (ranks < hi)).astype(float)
                lo = hi
            # centred within the group (as the other covariates): a level effect then moves
            # subjects relative to their group's average, not the group's level itself, which
            # was confounded with the group difference (posterior correlation -0.77)
            onehot[:, sl, :] -= onehot[:, sl, :].mean(axis=(0, 1))
    return Design(groups, slices, group_index, tuple(names), x, defined, categorical, levels, onehot, centre)


def residual_deviates(reps: int, n: int, seed: int, df: float | None = None) -> np.ndarray:
    """Fixed residual deviates ``(reps, n)``: standard normal, or Student-t with ``df``
    degrees of freedom (a normal divided by an independent sqrt(chi2/df)), as common random
    numbers."""
    rng = np.random.default_rng([seed, 1])
    z = rng.standard_normal((reps, n))
    if df is None:
        return z
    w = special.gammaincinv(df / 2.0, rng.uniform(1e-12, 1 - 1e-12, size=(reps, n))) * 2.0 / df
    return z / np.sqrt(w)


def cohort_log_levels(xp, alpha, slope, u, sigma, x, onehot, eps, group_index):
    """Log levels (relative to the reference level) of simulated cohorts.

    Parameters
    ----------
    alpha : (G,); slope : (G, C); u : (L,) or None; sigma : (G,)
        Parameters (NumPy arrays or tensors); ``u`` is None without a categorical covariate.
    x : (reps, N, C); onehot : (reps, N, L); eps : (reps, N); group_index : (N,)
        Design and residual deviates.
    """
    # ellipsis indexing: the same code serves one parameter set (tensors, in the model) and
    # a batch of posterior draws on leading axes (NumPy, for estimands and checks)
    eta = alpha[..., group_index] + (x * slope[..., group_index, :]).sum(axis=-1) + sigma[..., group_index] * eps
    if u is not None:
        eta = eta + (onehot * u).sum(axis=-1)
    return eta


@dataclass(frozen=True)
class ClaimDesign:
    """How one association claim is computed on a simulated cohort: the least-squares
    coefficient of the covariate in a regression of log levels on one intercept per group
    among the claim's subjects plus the covariate.

    Attributes
    ----------
    name, covariate : str
    subjects : tuple of str
        Groups the claim was computed on (a declared assumption).
    index : array (m,)
        Subject positions within the cohort.
    X : array (reps, m, p)
        Regressors; the covariate is the last column.
    P : array (reps, p, m)
        ``(X'X)^-1 X'`` per cohort, so coefficients are a product with the outcome.
    v : array (reps,)
        The covariate's diagonal element of ``(X'X)^-1``.
    leverage : array (reps, m)
        Diagonal of the hat matrix ``X P``.
    df : int
        Residual degrees of freedom, ``m - p``.
    kind : {"interval", "below", "above"}
        How the claim constrains the estimate (see :func:`claim_rule`).
    statistic : {"coefficient", "t"}
    bounds : tuple of float
        Interval ends (kind ``interval``) or the threshold.
    """

    name: str
    covariate: str
    subjects: tuple[str, ...]
    index: np.ndarray
    X: np.ndarray
    P: np.ndarray
    v: np.ndarray
    leverage: np.ndarray
    df: int
    kind: str
    statistic: str
    bounds: tuple[float, ...]


def claim_rule(study: Study, assoc: Association, df: int) -> tuple[str, str, tuple[float, ...]]:
    """What a published association says about the cohort estimate, from the claim and its
    declared assumptions.

    * ``relation: "~"`` with ``value`` v (percent per unit) and tolerance t (percentage
      points): the coefficient lies in ``[log(1 + (v - t)/100), log(1 + (v + t)/100)]``;
    * ``significant: true`` with a direction and level alpha (the ``alpha`` assumption,
      default 0.05): the t statistic lies in the stated direction beyond Student's t
      critical value with ``df`` degrees of freedom.  The level is two-sided unless the
      claim says ``sided: one``, so by default the bound is ``t.ppf(1 - alpha / 2, df)``
      (2.02 at df = 40), the conventional p < 0.05; ``sided: one`` gives
      ``t.ppf(1 - alpha, df)``;
    * otherwise a direction only: the coefficient has that sign.

    Returns
    -------
    kind : {"interval", "below", "above"}
    statistic : {"coefficient", "t"}
    bounds : tuple of float
        Interval ends (kind ``interval``) or the threshold.
    """
    from scipy import stats as sps

    if assoc.relation == "~":
        tol = float(study.assumption(assoc.tolerance)) if assoc.tolerance else 5.0
        lo, hi = assoc.value - tol, assoc.value + tol
        if lo <= -100:
            raise ValueError(f"associations: the tolerance of {assoc.covariate} reaches -100%")
        return "interval", "coefficient", (math.log1p(lo / 100.0), math.log1p(hi / 100.0))
    if assoc.relation is not None:
        raise ValueError(f"association on {assoc.covariate}: relation {assoc.relation!r} is not supported; use '~' or a direction")
    sign = -1.0 if assoc.direction == "lower" else 1.0
    if assoc.significant:
        alpha = float(study.assumption(assoc.alpha)) if assoc.alpha else 0.05
        # "significantly" conventionally means a two-sided test; the direction is then the
        # claim's, so the one-sided tail holds half the level
        tail = alpha if assoc.sided == "one" else alpha / 2.0
        crit = float(sps.t.ppf(1.0 - tail, df))
        return ("below" if sign < 0 else "above"), "t", (sign * crit,)
    return ("below" if sign < 0 else "above"), "coefficient", (0.0,)


def modelled_associations(study: Study) -> dict[str, Association]:
    """Associations the covariate model can use: a declared covariate and a direction or
    an approximate value (``direction: none`` claims are reported, not modelled)."""
    return {
        a: assoc
        for a, assoc in study.associations.items()
        if assoc.covariate in study.covariates and assoc.direction != "none" and not study.covariates[assoc.covariate].categorical
    }


def claim_design(study: Study, design: Design, name: str, assoc: Association) -> ClaimDesign:
    """Regression design of one association claim on the simulated cohorts."""
    c = assoc.covariate
    subjects = tuple(study.assumption(assoc.subjects)) if assoc.subjects else tuple(study.covariate_groups(c))
    missing = [g for g in subjects if g not in study.covariate_groups(c)]
    if missing:
        raise ValueError(f"associations.{name}: covariate {c!r} is not defined in group(s) {', '.join(missing)}")
    index = np.concatenate([np.arange(design.n)[design.slices[g]] for g in subjects])
    j = design.covariates.index(c)
    dummies = np.stack([(design.group_index[index] == design.groups.index(g)).astype(float) for g in subjects], axis=-1)
    X = np.concatenate([np.broadcast_to(dummies, (design.reps,) + dummies.shape), design.x[:, index, j : j + 1]], axis=-1)
    XtX = np.einsum("rmi,rmj->rij", X, X)
    if np.any(np.abs(np.linalg.det(XtX)) < 1e-10):
        raise ValueError(f"associations.{name}: covariate {c!r} does not vary within the claim's subjects")
    inv = np.linalg.inv(XtX)
    P = np.einsum("rij,rmj->rim", inv, X)
    df = len(index) - X.shape[-1]
    kind, statistic, bounds = claim_rule(study, assoc, df)
    leverage = np.einsum("rmi,rim->rm", X, P)
    return ClaimDesign(name, c, subjects, index, X, P, inv[:, -1, -1], leverage, df, kind, statistic, bounds)


#: Event kinds of a claim, in the order of :func:`stack_claims`'s ``kind`` one-hot columns.
CLAIM_KINDS = ("interval", "below", "above", "beyond")


def stack_claims(design: Design, claims) -> dict:
    """The claim designs of several association claims as batched arrays over the padded
    subject layout (:meth:`Design.padded`), so their estimates are a few vector operations.

    Regressor columns are padded at the front (the covariate stays last) and subjects
    outside a claim get zero rows, so padding changes no estimate.

    Returns
    -------
    dict
        ``X`` (A, R, S, p), ``P`` (A, R, p, S), ``v`` (A, R), ``leverage`` (A, R, S),
        ``mask`` (A, S), ``bounds`` (A, 2) (upper end; a dummy one above ``lo`` for one-sided
        kinds), ``df`` (A,), ``kind`` (A, 4) one-hot over :data:`CLAIM_KINDS`, ``t`` (A,) 1 for
        a t statistic; ``S = G * n_max``.
    """
    claims = list(claims)
    A, R, S = len(claims), design.reps, len(design.groups) * design.n_max
    p = max(cd.X.shape[-1] for cd in claims)
    pos = design.padded_position
    out = {
        "X": np.zeros((A, R, S, p)),
        "P": np.zeros((A, R, p, S)),
        "v": np.zeros((A, R)),
        "leverage": np.zeros((A, R, S)),
        "mask": np.zeros((A, S)),
        "bounds": np.zeros((A, 2)),
        "df": np.zeros(A),
        "kind": np.zeros((A, len(CLAIM_KINDS))),
        "t": np.zeros(A),
    }
    for a, cd in enumerate(claims):
        cols, where = cd.X.shape[-1], pos[cd.index]
        out["X"][a][:, where, p - cols :] = cd.X
        out["P"][a][:, p - cols :, where] = cd.P
        out["v"][a] = cd.v
        out["leverage"][a][:, where] = cd.leverage
        out["mask"][a, where] = 1.0
        lo = cd.bounds[0]
        out["bounds"][a] = (lo, cd.bounds[-1] if cd.kind == "interval" else lo + 1.0)
        out["df"][a] = cd.df
        out["kind"][a, CLAIM_KINDS.index(cd.kind)] = 1.0
        out["t"][a] = cd.statistic == "t"
    return out


def triangle(T: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the upper triangle (diagonal included) of a ``T x T``
    matrix: the layout of :func:`pack_symmetric`."""
    return np.triu_indices(T)


def pack_symmetric(a: np.ndarray) -> np.ndarray:
    """Symmetric matrices ``(..., T, T)`` packed as ``(..., T (T + 1) / 2)`` so that
    ``theta' a theta`` is one dot product with the products ``theta_i theta_j`` (i <= j) of
    :func:`triangle`: the off-diagonal entries count twice.  A quadratic form written as
    ``((a * theta).sum(-1) * theta).sum(-1)`` was the most expensive reduction of the
    covariate model's gradient (XLA, 200 cohorts x 11 x 11: 15 times the packed dot product's
    time, ``benchmarks/results/gradient-contractions-2026-12-08-s51.txt``)."""
    rows, cols = triangle(a.shape[-1])
    return a[..., rows, cols] * np.where(rows == cols, 1.0, 2.0)


def claim_linear_forms(design: Design, claims, t_reps: int | None = None) -> dict:
    """What each claim's least-squares estimate is, cohort by cohort, as a function of the
    model's effects, summarised over the cohorts so that the gradient touches no subject
    (:func:`models.hierarchical.claim_moments_over_cohorts`).

    A subject's expected log level is its group's intercept plus ``theta . M_i``, with
    ``theta`` the group-specific slopes ``(G * C)`` followed by the category effects ``(L)``
    and ``M_i`` the subject's covariates in the matching columns.  The claim's regression
    has one intercept per group of its subjects, so the intercepts drop out and in cohort
    ``r`` the coefficient's expectation is ``B_r . theta``: over the cohorts its mean is
    ``E[B] . theta`` and its variance ``theta' Cov(B) theta``, both exact for the cohorts
    given.  A t statistic's standard error is not linear in ``theta``; for those claims the
    first ``t_reps`` cohorts are kept one by one, with the residual sum of squares of the
    expected levels (lack of fit) ``theta' Q_r theta``.

    Parameters
    ----------
    design : Design
        The cohorts (more cohorts cost build time only).
    claims : sequence of ClaimDesign
        Built on ``design``.
    t_reps : int, optional
        Cohorts kept one by one for the t claims (default: all).

    Returns
    -------
    dict
        ``EB`` (A, T), ``CB`` (A, T, T); ``W`` (A, G) the within-cohort variance of the
        coefficient per unit residual variance of each group, averaged over the cohorts
        (``sum_i P_i^2``); for the ``A_t`` claims on a t statistic (in claim order) ``B``
        (A_t, R_t, T), ``K`` (A_t, R_t, G) the expected residual sum of squares per unit
        residual variance (``sum_i 1 - h_i``), ``Q`` (A_t, R_t, T, T) and ``v`` (A_t, R_t)
        the covariate's diagonal of ``(X'X)^-1``; ``T = G * C + L``.
    """
    claims = list(claims)
    G, C, L = len(design.groups), len(design.covariates), len(design.levels)
    R, T = design.reps, G * C + L
    Rt = R if t_reps is None else min(t_reps, R)
    A, t_claims = len(claims), [a for a, cd in enumerate(claims) if cd.statistic == "t"]
    At = len(t_claims)
    shapes = {"EB": (A, T), "CB": (A, T, T), "W": (A, G), "B": (At, Rt, T), "K": (At, Rt, G), "Q": (At, Rt, T * (T + 1) // 2), "v": (At, Rt)}
    out = {k: np.zeros(s) for k, s in shapes.items()}
    for a, cd in enumerate(claims):
        gi = design.group_index[cd.index]  # (m,)
        M = np.zeros((R, len(cd.index), T))
        for c in range(C):
            M[:, np.arange(len(cd.index)), gi * C + c] = design.x[:, cd.index, c]
        if L:
            M[:, :, G * C :] = design.onehot[:, cd.index, :]
        coef = cd.P[:, -1, :]  # (R, m)
        B = np.einsum("rm,rmt->rt", coef, M)
        out["EB"][a] = B.mean(axis=0)
        out["CB"][a] = np.cov(B, rowvar=False, bias=True)
        onehot_g = (gi[:, None] == np.arange(G)[None, :]).astype(float)  # (m, G)
        out["W"][a] = (coef**2 @ onehot_g).mean(axis=0)
        if a in t_claims:
            k, r = t_claims.index(a), slice(0, Rt)
            fit = M[r] - np.einsum("rmp,rpt->rmt", cd.X[r], np.einsum("rpm,rmt->rpt", cd.P[r], M[r]))  # (I - H) M
            out["Q"][k] = pack_symmetric(np.einsum("rms,rmt->rst", fit, fit))
            out["B"][k] = B[r]
            out["K"][k] = (1.0 - cd.leverage[r]) @ onehot_g
            out["v"][k] = cd.v[r]
    return out


def regression_estimate(xp, y, X, P, v, df: int):
    """Covariate coefficient and its t statistic for each cohort.

    Parameters
    ----------
    y : array (reps, m)
        Log levels of the claim's subjects.
    X, P, v, df
        From :class:`ClaimDesign`.
    """
    b = (P * y[:, None, :]).sum(axis=-1)
    resid = y - (X * b[:, None, :]).sum(axis=-1)
    s2 = (resid**2).sum(axis=-1) / df
    coef = b[:, -1]
    return coef, coef / xp.sqrt(s2 * v)

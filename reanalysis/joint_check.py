"""Is the covariate model's product likelihood good enough?  A sampler-free check of the
dependence between claims and group statistics computed on the same cohort.

The hierarchical model (:mod:`models.hierarchical`) multiplies independent terms: each
group's published statistics (``stats_<group>``) and, separately, each claim
(``claim_<name>``: the probability that the claim holds in a cohort like the study's).  The
claims were computed on the same cohort as the statistics, and on each other's subjects, so
the exact likelihood of the published record is ::

    p(statistics = published | theta) * P(all claims hold | statistics = published, theta)

and the product likelihood is off by the factor ::

    w(theta) = P(all claims hold | statistics = published, theta) / prod_k P(claim k holds | theta).

Here ``w`` is estimated draw by draw of a fitted posterior: many cohorts of the published
sizes are simulated with fresh covariates and residuals (the functions of
:mod:`models.cohort` and :mod:`models.statistics` that the predictive checks use); on each
cohort every reported statistic (log scale, as the likelihood sees it) and every claim's
estimate (coefficient or t statistic as :func:`models.cohort.claim_rule` says; the group
test's normal score ``|z|`` for a p-value claim) are computed; a joint normal is fitted to
them, and numerator and denominator of ``w`` are both taken from that one normal, so the
normal approximation itself largely cancels.  The conditional probability of all claims at
once is a Monte Carlo average over draws of the conditional normal (a rectangle, or a union
of two for a two-sided p-value, in several dimensions).  ``w`` splits into
``w_statistics = P(all | statistics) / P(all)`` (conditioning on the published statistics)
and ``w_dependence = P(all) / prod_k P(k)`` (the claims' dependence on one another).

Reweighting the posterior draws by ``w`` (Pareto-smoothed) turns the product-likelihood
posterior into the joint-likelihood one; :func:`weighted_shifts` compares the two on every
printed estimand in units of the posterior SD and of the Monte Carlo standard error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import arviz as az
import numpy as np
import pandas as pd
from scipy import special

from models.cohort import build_design, claim_design, cohort_log_levels, modelled_associations, regression_estimate, residual_deviates
from models.effects import EFFECT_VARS, posterior_arrays
from models.group import ROUNDING_FLOOR, rounding_width
from models.hierarchical import comparison_claims
from models.likelihood import rounding_variance_log
from models.statistics import group_test_pvalue, sample_statistics
from models.study import Study
from models.labels import estimand_key

#: Smallest p-value turned into a normal score: the asymptotic rank test returns 0 beyond
#: about |z| = 38, and isf(0) is infinite.
_P_FLOOR = 1e-300


@dataclass(frozen=True)
class JointLayout:
    """What is simulated per cohort, in the order of the joint vector: first every group's
    reported statistics, then every claim that is a likelihood term.

    Attributes
    ----------
    stat_names : tuple of str
        ``"<group>.<statistic>"``, groups and statistics in file order.
    observed : array (S,)
        Published statistics, ``log(value / reference_level)``.
    rounding : array (S,)
        Log-scale variance of their declared rounding (plus the likelihood's floor): the
        published values are the cohort's statistics plus rounding error.
    claim_names : tuple of str
        Association names, then ``"<comparison>.<claim>"`` of p-value claims.
    kinds : tuple of str
        ``interval``, ``below``, ``above`` or ``beyond`` (``|x| > bound``).
    bounds : tuple of tuple of float
        Interval ends or the threshold, on the scale of the simulated estimate.
    statistics : tuple of str
        What each claim's estimate is: ``coefficient``, ``t`` or ``normal_score``.
    """

    stat_names: tuple[str, ...]
    observed: np.ndarray
    rounding: np.ndarray
    claim_names: tuple[str, ...]
    kinds: tuple[str, ...]
    bounds: tuple[tuple[float, ...], ...]
    statistics: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return self.stat_names + self.claim_names

    @property
    def n_stats(self) -> int:
        return len(self.stat_names)


def joint_layout(study: Study) -> JointLayout:
    """The statistics and claims the covariate model's likelihood uses, as one joint vector.

    The claims are exactly the likelihood's ``claim_*`` terms: the modelled associations
    (:func:`models.cohort.modelled_associations`) and the p-value claims of
    :func:`models.hierarchical.comparison_claims` (ratios of reported numbers are not terms).
    """
    ref = float(study.assumption("reference_level", 1.0))
    width = rounding_width(study)
    names, observed = [], []
    for g in study.group_ids:
        for s, v in study.reported(g).items():
            names.append(f"{g}.{s}")
            observed.append(float(v))
    observed = np.array(observed)
    rounding = rounding_variance_log(observed, width) + ROUNDING_FLOOR
    # claim_design's rule needs a design only for the degrees of freedom: a 2-cohort one
    small = build_design(study, 2, 0)
    cnames, kinds, bounds, statistics = [], [], [], []
    for name, a in modelled_associations(study).items():
        cd = claim_design(study, small, name, a)
        cnames.append(name)
        kinds.append(cd.kind)
        bounds.append(tuple(cd.bounds))
        statistics.append(cd.statistic)
    for cc in comparison_claims(study):
        cnames.append(cc["name"])
        kinds.append(cc["kind"])
        bounds.append(tuple(cc["bounds"]))
        statistics.append("normal_score")
    return JointLayout(tuple(names), np.log(observed / ref), rounding, tuple(cnames), tuple(kinds), tuple(bounds), tuple(statistics))


def _fresh_cohorts(study: Study, params: dict, n_cohorts: int, seed: int, family_df: float | None):
    """Fresh covariates and residuals of ``n_cohorts`` cohorts and their log levels for every
    draw: ``(design, reference level, eta (D, R, N))``."""
    fresh = build_design(study, n_cohorts, seed)
    eps = residual_deviates(n_cohorts, fresh.n, seed, family_df)
    ref = float(study.assumption("reference_level", 1.0))
    u = params["u"][:, None, None, :] if params["u"] is not None else None
    eta = cohort_log_levels(
        np, params["alpha"][:, None, :], params["slope"][:, None, :, :], u, params["sigma"][:, None, :], fresh.x, fresh.onehot, eps, fresh.group_index
    )  # (D, R, N)
    return fresh, ref, eta


def simulate_joint(study: Study, layout: JointLayout, params: dict, n_cohorts: int, seed: int, family_df: float | None = None) -> np.ndarray:
    """Statistics and claim estimates of simulated cohorts, for a batch of parameter draws.

    Parameters
    ----------
    params : dict
        ``alpha`` (D, G), ``slope`` (D, G, C), ``sigma`` (D, G), ``u`` (D, L) or None: posterior
        draws as :func:`models.effects.posterior_arrays` returns them.
    n_cohorts : int
        Cohorts per draw.  Every draw sees the same fresh covariates and residual deviates
        (common random numbers), so ``w`` is a smooth function of the parameters and its
        Monte Carlo error does not add noise between draws.
    seed : int
        Seed of the fresh design and deviates.
    family_df : float, optional
        Student-t residual degrees of freedom (None: normal residuals).

    Returns
    -------
    array (D, n_cohorts, S + A)
        In the order of :attr:`JointLayout.names`.
    """
    fresh, ref, eta = _fresh_cohorts(study, params, n_cohorts, seed, family_df)
    levels = {g: np.sort(ref * np.exp(eta[..., fresh.slices[g]]), axis=-1) for g in fresh.groups}
    cols = []
    for g in study.group_ids:
        names = list(study.reported(g))
        if names:
            cols.append(np.log(sample_statistics(np, levels[g], study.n(g), names) / ref))
    est = []
    for name, a in modelled_associations(study).items():
        cd = claim_design(study, fresh, name, a)
        one = [regression_estimate(np, eta[d][:, cd.index], cd.X, cd.P, cd.v, cd.df) for d in range(eta.shape[0])]
        est.append(np.stack([o[0] if cd.statistic == "coefficient" else o[1] for o in one]))
    for cc in comparison_claims(study):
        ga, gb = cc["groups"]
        p = group_test_pvalue(levels[ga], levels[gb], cc["test"])
        # |z| > isf(level / 2) is the event p < level of the two-sided test
        est.append(special.ndtri(1.0 - np.maximum(p, _P_FLOOR) / 2.0))
    if est:
        cols.append(np.stack(est, axis=-1))
    return np.concatenate(cols, axis=-1)


def event_holds(kinds, bounds, x: np.ndarray) -> np.ndarray:
    """Whether each claim holds for estimates ``x`` (..., A): one boolean per claim."""
    out = np.empty(x.shape, dtype=bool)
    for k, (kind, b) in enumerate(zip(kinds, bounds)):
        v = x[..., k]
        if kind == "interval":
            out[..., k] = (v >= b[0]) & (v <= b[1])
        elif kind == "below":
            out[..., k] = v < b[0]
        elif kind == "above":
            out[..., k] = v > b[0]
        elif kind == "beyond":
            out[..., k] = np.abs(v) > b[0]
        else:
            raise ValueError(f"unknown claim kind {kind!r}")
    return out


def event_prob(kinds, bounds, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Probability of each claim's event for independent normal estimates (..., A)."""
    out = np.empty(np.broadcast(mean, sd).shape)
    for k, (kind, b) in enumerate(zip(kinds, bounds)):
        m, s = mean[..., k], sd[..., k]
        if kind == "interval":
            out[..., k] = special.ndtr((b[1] - m) / s) - special.ndtr((b[0] - m) / s)
        elif kind == "below":
            out[..., k] = special.ndtr((b[0] - m) / s)
        elif kind == "above":
            out[..., k] = special.ndtr((m - b[0]) / s)
        elif kind == "beyond":
            out[..., k] = special.ndtr((-b[0] - m) / s) + special.ndtr((m - b[0]) / s)
        else:
            raise ValueError(f"unknown claim kind {kind!r}")
    return out


def conditional_normal(mean: np.ndarray, cov: np.ndarray, n_stats: int, observed: np.ndarray, extra_var: np.ndarray | None = None):
    """Mean and covariance of the last block of a joint normal given the first ``n_stats``
    coordinates observed (plus independent noise of variance ``extra_var``, e.g. rounding).

    Returns
    -------
    mean : array (A,); cov : array (A, A); beta : array (A, S)
        ``beta`` is the regression of the claims on the statistics.
    """
    s = slice(0, n_stats)
    c = slice(n_stats, None)
    css = cov[s, s] + (np.diag(extra_var) if extra_var is not None else 0.0)
    beta = np.linalg.solve(css, cov[s, c]).T
    cmean = mean[c] + beta @ (observed - mean[s])
    ccov = cov[c, c] - beta @ cov[s, c]
    return cmean, 0.5 * (ccov + ccov.T), beta


def _normal_draws(mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``mean + L z`` for standard normal rows ``z`` (M, A), ``L`` a square root of ``cov``."""
    try:
        root = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        # a claim that is an exact function of the statistics: a PSD square root still works
        vals, vecs = np.linalg.eigh(cov)
        root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    return mean + z @ root.T


def joint_weight(mean: np.ndarray, cov: np.ndarray, layout: JointLayout, z: np.ndarray) -> dict:
    """The weight ``w`` for one parameter draw, from the joint normal of its simulated
    statistics and claim estimates.

    Parameters
    ----------
    mean, cov : array (S + A,), (S + A, S + A)
        Joint normal, in the order of :attr:`JointLayout.names`.
    z : array (M, A)
        Standard normal draws for the Monte Carlo of the joint claim probabilities (the same
        for every parameter draw).

    Returns
    -------
    dict
        ``log_w``, ``log_w_statistics``, ``log_w_dependence`` (floats);
        ``log_w_given_statistics``: ``P(all | statistics) / prod_k P(k | statistics)``, what a
        likelihood that conditions each claim on the statistics but multiplies the claims
        would still miss;
        ``log_p_marginal`` (A,) log P(claim k | theta); ``log_p_conditional`` (A,)
        log P(claim k | statistics = published, theta); ``log_p_all`` and
        ``log_p_all_conditional``: all claims at once, without and with conditioning.
    """
    S = layout.n_stats
    kinds, bounds = layout.kinds, layout.bounds
    sd = np.sqrt(np.diag(cov)[S:])
    p_marg = event_prob(kinds, bounds, mean[S:], sd)
    cmean, ccov, _ = conditional_normal(mean, cov, S, layout.observed, layout.rounding)
    p_cond = event_prob(kinds, bounds, cmean, np.sqrt(np.clip(np.diag(ccov), 1e-300, None)))
    all_cond = event_holds(kinds, bounds, _normal_draws(cmean, ccov, z)).all(axis=-1).mean()
    all_marg = event_holds(kinds, bounds, _normal_draws(mean[S:], cov[S:, S:], z)).all(axis=-1).mean()
    tiny = 1.0 / (2.0 * z.shape[0])  # none of M draws: below 1/M, not 0
    log_all_c, log_all_m = math.log(max(all_cond, tiny)), math.log(max(all_marg, tiny))
    log_prod = float(np.log(np.clip(p_marg, 1e-300, None)).sum())
    return {
        "log_w": log_all_c - log_prod,
        "log_w_statistics": log_all_c - log_all_m,
        "log_w_dependence": log_all_m - log_prod,
        "log_w_given_statistics": log_all_c - float(np.log(np.clip(p_cond, 1e-300, None)).sum()),
        "log_p_marginal": np.log(np.clip(p_marg, 1e-300, None)),
        "log_p_conditional": np.log(np.clip(p_cond, 1e-300, None)),
        "log_p_all": log_all_m,
        "log_p_all_conditional": log_all_c,
    }


def empirical_log_weight(x: np.ndarray, layout: JointLayout) -> float:
    """``log w`` without the normal shape: the claims' regression on the statistics from the
    joint normal's covariance, but the conditional spread from the simulated residuals
    (regression adjustment), and the marginal probabilities as shares of simulated cohorts.

    Parameters
    ----------
    x : array (R, S + A)
        Simulated statistics and claim estimates of one parameter draw.
    """
    S = layout.n_stats
    mean = x.mean(axis=0)
    cov = np.cov(x, rowvar=False).reshape(mean.size, mean.size)
    cmean, _, beta = conditional_normal(mean, cov, S, layout.observed, layout.rounding)
    resid = x[:, S:] - mean[S:] - (x[:, :S] - mean[:S]) @ beta.T
    tiny = 1.0 / (2.0 * x.shape[0])
    num = max(event_holds(layout.kinds, layout.bounds, cmean + resid).all(axis=-1).mean(), tiny)
    marg = np.clip(event_holds(layout.kinds, layout.bounds, x[:, S:]).mean(axis=0), tiny, None)
    return float(math.log(num) - np.log(marg).sum())


@dataclass
class JointCheck:
    """Result of :func:`check_posterior`.

    Attributes
    ----------
    layout : JointLayout
    pick : array (D,)
        Flat indices (chain-major) of the posterior draws checked.
    log_w, log_w_statistics, log_w_dependence : array (D,)
    log_w_empirical : array (D,)
        :func:`empirical_log_weight`: the same weight without the normal shape.
    log_w_given_statistics : array (D,)
        The error left by claims conditioned on the statistics but multiplied
        (:func:`joint_weight`).
    log_p_marginal, log_p_conditional : array (D, A)
    log_p_all_conditional : array (D,)
        log P(all claims hold | statistics = published), Monte Carlo over the conditional
        normal.
    empirical_marginal : array (D, A)
        Share of simulated cohorts in which each claim holds (no normal approximation).
    mean : array (D, S + A); corr : array (D, S + A, S + A)
        The joint normal of each draw, its covariance as correlations.
    n_cohorts, n_normal, seed : int
    """

    layout: JointLayout
    pick: np.ndarray
    log_w: np.ndarray
    log_w_statistics: np.ndarray
    log_w_dependence: np.ndarray
    log_w_empirical: np.ndarray
    log_w_given_statistics: np.ndarray
    log_p_marginal: np.ndarray
    log_p_conditional: np.ndarray
    empirical_marginal: np.ndarray
    mean: np.ndarray
    corr: np.ndarray
    n_cohorts: int
    n_normal: int
    seed: int
    log_p_all_conditional: np.ndarray | None = None


def model_claim_log_prob(idata: az.InferenceData, layout: JointLayout, pick: np.ndarray) -> np.ndarray | None:
    """The fitted model's own log probability of each claim, draw by draw: its pointwise
    ``claim_<name>`` log-likelihood terms (``idata.log_likelihood``), flattened chain-major
    and taken at ``pick``; None when the fit stored none of them.

    Returns
    -------
    array (D, A) or None
    """
    if "log_likelihood" not in idata.groups():
        return None
    ll = idata.log_likelihood
    names = [f"claim_{c.replace('.', '_')}" for c in layout.claim_names]
    if any(n not in ll for n in names):
        return None
    return np.stack([ll[n].values.reshape(-1)[pick] for n in names], axis=-1)


def thinned_draws(total: int, n_draws: int | None, seed: int) -> np.ndarray:
    """Sorted flat indices of ``n_draws`` posterior draws (all when None or >= total)."""
    if n_draws is None or n_draws >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=n_draws, replace=False))


def check_posterior(
    idata: az.InferenceData,
    study: Study,
    design,
    family_df: float | None = None,
    n_draws: int | None = 300,
    n_cohorts: int = 2000,
    n_normal: int = 20000,
    seed: int = 0,
    batch: int = 8,
    pick: np.ndarray | None = None,
) -> JointCheck:
    """Estimate ``w`` for thinned draws of a covariate-model posterior.

    Parameters
    ----------
    idata : az.InferenceData
        Posterior with ``alpha``, ``slope``, ``sigma``, ``effect`` (and ``u``).
    design : models.cohort.Design
        The fit's design (only its categorical levels are used, to read the posterior).
    n_draws : int or None
        Posterior draws to check (None: all).
    n_cohorts : int
        Simulated cohorts per draw.
    n_normal : int
        Monte Carlo draws of the (conditional) normal for the joint claim probabilities.
    seed : int
        Seeds the thinning, the fresh cohorts and the normal draws.
    batch : int
        Draws simulated at once (memory: batch x n_cohorts x subjects x covariates).
    pick : array, optional
        Flat draw indices to use instead of thinning (e.g. to repeat a check with another
        seed on the same draws).
    """
    layout = joint_layout(study)
    p = posterior_arrays(idata.posterior, design)
    total = p["alpha"].shape[0]
    if pick is None:
        pick = thinned_draws(total, n_draws, seed)
    z = np.random.default_rng([seed, 2]).standard_normal((n_normal, len(layout.claim_names)))
    S, K = layout.n_stats, len(layout.names)
    out = {k: [] for k in ("log_w", "log_w_statistics", "log_w_dependence", "log_w_given_statistics", "log_p_marginal", "log_p_conditional", "log_p_all_conditional")}
    emp, means, corrs, lw_emp = [], [], [], []
    for start in range(0, pick.size, batch):
        idx = pick[start : start + batch]
        sub = {k: (v[idx] if v is not None else None) for k, v in p.items()}
        sim = simulate_joint(study, layout, sub, n_cohorts, seed + 7919, family_df)
        for d in range(sim.shape[0]):
            x = sim[d]
            m = x.mean(axis=0)
            c = np.cov(x, rowvar=False).reshape(K, K)
            r = joint_weight(m, c, layout, z)
            for k in out:
                out[k].append(r[k])
            lw_emp.append(empirical_log_weight(x, layout))
            emp.append(event_holds(layout.kinds, layout.bounds, x[:, S:]).mean(axis=0))
            sd = np.sqrt(np.diag(c))
            means.append(m)
            corrs.append(c / np.outer(sd, sd))
    return JointCheck(
        layout=layout,
        pick=pick,
        log_w=np.array(out["log_w"]),
        log_w_statistics=np.array(out["log_w_statistics"]),
        log_w_dependence=np.array(out["log_w_dependence"]),
        log_w_empirical=np.array(lw_emp),
        log_w_given_statistics=np.array(out["log_w_given_statistics"]),
        log_p_marginal=np.array(out["log_p_marginal"]),
        log_p_conditional=np.array(out["log_p_conditional"]),
        empirical_marginal=np.array(emp),
        mean=np.array(means),
        corr=np.array(corrs),
        n_cohorts=n_cohorts,
        n_normal=n_normal,
        seed=seed,
        log_p_all_conditional=np.array(out["log_p_all_conditional"]),
    )


def correlation_table(check: JointCheck) -> pd.DataFrame:
    """Correlations of every statistic with every claim estimate over simulated cohorts:
    median over the checked draws and the 5%-95% range."""
    lay = check.layout
    S = lay.n_stats
    rows = []
    for i, s in enumerate(lay.stat_names):
        for j, c in enumerate(lay.claim_names):
            v = check.corr[:, i, S + j]
            rows.append({"statistic": s, "claim": c, "median": np.median(v), "q05": np.quantile(v, 0.05), "q95": np.quantile(v, 0.95)})
    for a in range(len(lay.claim_names)):
        for b in range(a + 1, len(lay.claim_names)):
            v = check.corr[:, S + a, S + b]
            rows.append({"statistic": lay.claim_names[a], "claim": lay.claim_names[b], "median": np.median(v), "q05": np.quantile(v, 0.05), "q95": np.quantile(v, 0.95)})
    return pd.DataFrame(rows)


def psis_weights(log_w: np.ndarray) -> tuple[np.ndarray, float]:
    """Pareto-smoothed normalised importance weights and the Pareto shape ``k``."""
    lw, k = az.psislw(np.asarray(log_w, dtype=float).copy())
    w = np.exp(lw - lw.max())
    return w / w.sum(), float(k)


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    """Quantile of the weighted sample (linear interpolation of the weighted CDF at the
    midpoints of each draw's weight; equal weights give NumPy's 'hazen' quantile)."""
    order = np.argsort(x)
    xs, ws = x[order], w[order] / w.sum()
    cdf = np.cumsum(ws) - 0.5 * ws
    return float(np.interp(q, cdf, xs))


def printed_draws(idata: az.InferenceData, study: Study) -> dict[str, tuple[np.ndarray, bool]]:
    """The estimands the fit prints, read from its posterior (the values it stored, which the
    weights reweight), draw by draw as (chain, draw) arrays.

    Returns
    -------
    dict
        label -> (draws, is_probability): every defined entry of the covariate model's
        estimand variables (:data:`models.effects.EFFECT_VARS`), ``P(ratio > value)`` for
        numeric fold claims and ``P(effect_percent[c] <direction> 0)`` for each modelled
        association (the indicator, whose posterior mean is the printed probability).
    """
    post = idata.posterior
    out = {}
    for var in EFFECT_VARS:
        if var not in post:
            continue
        da = post[var]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        if not extra:
            out[var] = (da.values, False)
            continue
        stacked = da.stack(entry=extra)
        for e in range(stacked.sizes["entry"]):
            v = stacked.isel(entry=e).transpose("chain", "draw").values
            if np.all(np.isnan(v)):
                continue
            key = stacked["entry"].values[e]
            key = key if isinstance(key, tuple) else (key,)
            out[estimand_key(var, *key)] = (v, False)
    for cid, comp in study.comparisons.items():
        for claim in comp.claims.values():
            if claim.statistic in ("ratio_of_means", "ratio_of_medians") and claim.relation in (">", "<") and claim.statistic in post:
                x = post[claim.statistic].sel(comparison=cid).values
                out[f"P({claim.statistic}[{cid}] {claim.relation} {claim.value:g})"] = ((x > claim.value) if claim.relation == ">" else (x < claim.value), True)
    for assoc in modelled_associations(study).values():
        if "effect_percent" in post:
            x = post["effect_percent"].sel(covariate=assoc.covariate).values
            lower = assoc.direction == "lower"
            out[f"P(effect_percent[{assoc.covariate}] {'<' if lower else '>'} 0)"] = ((x < 0) if lower else (x > 0), True)
    return out


def _mcse(v: np.ndarray, method: str) -> float:
    """Monte Carlo standard error of a (chain, draw) array; NaN when all draws are equal."""
    v = np.asarray(v, dtype=float)
    if np.ptp(v) == 0:
        return float("nan")
    return float(np.ravel(az.mcse(v, method=method))[0])


def weighted_shifts(idata: az.InferenceData, study: Study, check: JointCheck, weights: np.ndarray) -> pd.DataFrame:
    """How far each printed estimand moves when the checked draws are reweighted from the
    product likelihood to the joint one.

    Shifts are weighted minus unweighted, on the same checked draws, in units of the
    posterior SD and of the Monte Carlo standard error of the full posterior's median and
    mean (:func:`arviz.mcse`, chains kept).  For a probability row the median is not
    printed; its SD is the indicator's, ``sqrt(p (1 - p))``.
    """
    rows = []
    for label, (draws, is_prob) in printed_draws(idata, study).items():
        flat = draws.reshape(-1).astype(float)[check.pick]
        ok = ~np.isnan(flat)
        x, w = flat[ok], weights[ok]
        sd = float(np.std(draws.astype(float)))
        mean0, mean1 = float(x.mean()), float((w * x).sum() / w.sum())
        row = {"estimand": label, "probability": is_prob, "sd": sd, "mean": mean0, "mean_weighted": mean1, "mcse_mean": _mcse(draws, "mean")}
        row["mean_shift_sd"] = (mean1 - mean0) / sd if sd > 0 else float("nan")
        row["mean_shift_mcse"] = (mean1 - mean0) / row["mcse_mean"]
        if is_prob:
            row.update(median=float("nan"), median_weighted=float("nan"), mcse_median=float("nan"), median_shift_sd=float("nan"), median_shift_mcse=float("nan"))
        else:
            med0, med1 = weighted_quantile(x, np.ones_like(x), 0.5), weighted_quantile(x, w, 0.5)
            row.update(median=med0, median_weighted=med1, mcse_median=_mcse(draws, "median"))
            row["median_shift_sd"] = (med1 - med0) / sd if sd > 0 else float("nan")
            row["median_shift_mcse"] = (med1 - med0) / row["mcse_median"]
        rows.append(row)
    return pd.DataFrame(rows)


def permutation_null(idata: az.InferenceData, study: Study, check: JointCheck, weights: np.ndarray, n_perm: int = 200, seed: int = 0) -> pd.DataFrame:
    """The shifts that weights of the same spread but unrelated to the parameters would
    give: the weights shuffled across the checked draws ``n_perm`` times.

    A shift of :func:`weighted_shifts` that is no larger than these SDs is noise of the
    weighting itself, not a systematic difference between the two likelihoods.

    Returns
    -------
    DataFrame
        ``estimand``, ``null_sd_mean``, ``null_sd_median`` (same units as the estimand).
    """
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(weights.size) for _ in range(n_perm)]
    rows = []
    for label, (draws, is_prob) in printed_draws(idata, study).items():
        flat = draws.reshape(-1).astype(float)[check.pick]
        ok = ~np.isnan(flat)
        x = flat[ok]
        base_mean, base_med = x.mean(), weighted_quantile(x, np.ones_like(x), 0.5)
        dm, dq = [], []
        for perm in perms:
            w = weights[perm][ok]
            dm.append((w * x).sum() / w.sum() - base_mean)
            if not is_prob:
                dq.append(weighted_quantile(x, w, 0.5) - base_med)
        rows.append({"estimand": label, "null_sd_mean": float(np.std(dm)), "null_sd_median": float(np.std(dq)) if dq else float("nan")})
    return pd.DataFrame(rows)


def log_weight_summary(log_w: np.ndarray) -> dict:
    """Quantiles of ``log w`` centred at its mean (a constant factor does not change the
    posterior), its SD, the Pareto ``k`` and the effective sample size of the weights."""
    c = np.asarray(log_w) - np.mean(log_w)
    w, k = psis_weights(log_w)
    raw = np.exp(c - c.max())
    raw /= raw.sum()
    return {
        "mean": float(np.mean(log_w)),
        "sd": float(np.std(log_w)),
        "min": float(c.min()),
        "q05": float(np.quantile(c, 0.05)),
        "median": float(np.median(c)),
        "q95": float(np.quantile(c, 0.95)),
        "max": float(c.max()),
        "pareto_k": k,
        "ess_raw": float(1.0 / (raw**2).sum()),
        "ess_psis": float(1.0 / (w**2).sum()),
        "draws": int(c.size),
    }


def student_t_df(manifest: dict) -> float | None:
    """Residual degrees of freedom of a fit from its manifest (None: normal residuals)."""
    if manifest.get("family") != "student_t":
        return None
    prior = (manifest.get("priors") or {}).get("values", manifest.get("priors") or {})
    spec = prior.get("residual_df") if isinstance(prior, dict) else None
    if not spec:
        raise ValueError("student_t fit: no residual_df in the manifest's prior values")
    return float(spec["value"])



def simulate_claim_parts(study: Study, params: dict, n_cohorts: int, seed: int, family_df: float | None = None) -> dict:
    """The published statistics and each association claim's coefficient and estimated
    standard error in simulated cohorts: what the covariate model's joint likelihood
    approximates (:func:`models.hierarchical.association_moments`), for tests and checks.

    Parameters
    ----------
    params : dict
        ``alpha`` (D, G), ``slope`` (D, G, C), ``sigma`` (D, G), ``u`` (D, L) or None.

    Returns
    -------
    dict
        ``stats``: {group: array (D, n_cohorts, k_g)} log statistics (``log(value /
        reference_level)``); ``coef`` and ``se``: {claim: array (D, n_cohorts)}.
    """
    fresh, ref, eta = _fresh_cohorts(study, params, n_cohorts, seed, family_df)
    stats = {}
    for g in study.group_ids:
        names = list(study.reported(g))
        levels = np.sort(ref * np.exp(eta[..., fresh.slices[g]]), axis=-1)
        stats[g] = np.log(sample_statistics(np, levels, study.n(g), names) / ref)
    coef, se = {}, {}
    for name, a in modelled_associations(study).items():
        cd = claim_design(study, fresh, name, a)
        est = [regression_estimate(np, eta[d][:, cd.index], cd.X, cd.P, cd.v, cd.df) for d in range(eta.shape[0])]
        coef[name] = np.stack([b for b, _ in est])
        se[name] = np.stack([b / t for b, t in est])
    return {"stats": stats, "coef": coef, "se": se}


__all__ = [
    "JointLayout", "JointCheck", "joint_layout", "simulate_joint", "event_holds", "event_prob", "conditional_normal",
    "joint_weight", "empirical_log_weight", "check_posterior", "thinned_draws", "correlation_table", "psis_weights", "weighted_quantile",
    "printed_draws", "weighted_shifts", "permutation_null", "log_weight_summary", "student_t_df", "simulate_claim_parts",
    "model_claim_log_prob",
]

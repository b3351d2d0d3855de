"""How much each estimand is informed by the published data rather than by priors and
assumptions: posterior-to-prior contraction and power-scaling sensitivity (Kallioinen et
al. 2023), each with a Monte Carlo interval, and a plain-language label.

The rule, and the runs it was checked on, are in docs/decisions/informativeness-labels.md.
In short:

* Only the top-level priors are power-scaled (not the standard normals of a
  reparameterisation such as ``effect_z``: scaling those changes the model's structure,
  not a prior anyone chose),
  overall and one element at a time (``log_sigma[control]``, ...).
* The likelihood is power-scaled as a whole and in two blocks: the groups' published
  statistics (``stats_*``) and the published claims (``claim_*``).
* Every sensitivity gets a 90% block-bootstrap interval over the draws (blocks within
  chains, sized from the effective sample size).  A value counts as above or below a
  threshold only when its whole interval is; otherwise the label is "undetermined".  The
  interval covers the draws of this run's likelihood, not the simulation noise of a
  synthetic likelihood built from another seed's cohorts (measured in the decision record).
* A prior-data conflict needs an influential prior whose power moves the estimand's mean
  one way while the likelihood's moves it the other, both beyond Monte Carlo error; the
  prior term with the largest sensitivity is named as its driver.
* Where a prior-insensitive estimand comes from: the likelihood block with the larger share
  of the posterior precision.
"""
from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pandas as pd

from models.labels import estimand_key, variable_of
from models.wording import parameter_key_label
from reanalysis.reweighting import PARETO_K_MAX

#: Power-scaling sensitivity at or above which a component counts as influential
#: (the threshold priorsense uses).
PSENS_THRESHOLD = 0.05
#: Contraction ``1 - var(posterior) / var(prior)`` below which a prior-insensitive
#: estimand is still carried by the assumptions (the design, fixed covariate shares).
CONTRACTION_ASSUMPTION = 0.2
#: Finite-difference step of ``az.psens`` (powers 1/(1+delta) and 1+delta).
DELTA = 0.01
#: Powers of the top-level priors at which the estimand's mean is also importance-weighted,
#: for comparison with refits (benchmarks/bench_psens_refit.py); the labels do not use them.
ALPHAS = (0.5, 2.0)
#: psens of a pure location shift of a normal posterior, per posterior SD moved per unit of
#: log power (numerically: 0.0127 at 0.1 SD, 0.0636 at 0.5 SD; a pure change of scale, a
#: posterior made by a Gaussian likelihood alone, gives 0.0705).
LOCATION_PSENS_PER_SD = 0.127
#: A shift of the mean (posterior SDs per unit of log power) whose psens alone would reach
#: the threshold: about 0.39.
SHIFT_THRESHOLD = PSENS_THRESHOLD / LOCATION_PSENS_PER_SD
#: Monte Carlo interval: central probability and bootstrap replicates.
INTERVAL = 0.90
N_BOOT = 100
#: Free variables that are standard normals of a reparameterisation (non-centred group
#: deviations, the effect given the groups' mean slope): part of the model's structure, so
#: they are never power-scaled.
NON_CENTRED = ("effect_z", "effect_offset", "category_z")
#: Likelihood blocks: published group statistics and published claims.
BLOCKS = {"stats": "stats_", "claims": "claim_"}

LABEL_NUMBERS = "from the published numbers"
LABEL_CLAIM = "from a qualitative claim read through assumed covariate distributions"
LABEL_PRIOR = "mostly prior/assumption"
LABEL_CONFLICT = "prior-data conflict"
LABEL_UNDETERMINED = "undetermined"
LABEL_UNRELIABLE = "importance weighting unreliable"

#: Columns of :func:`sensitivity_table` that carry a Monte Carlo interval (``_lo``, ``_hi``).
WITH_INTERVAL = (
    "psens_prior", "psens_likelihood", "psens_stats", "psens_claims",
    "share_prior", "share_likelihood", "share_stats", "share_claims", "share_stats_minus_claims",
    "shift_prior", "shift_likelihood",
)


def prior_terms(idata) -> list[str]:
    """The ``log_prior`` variables that are power-scaled: every free variable's but the
    non-centred standard normals (:data:`NON_CENTRED`)."""
    return [v for v in idata.log_prior.data_vars if v not in NON_CENTRED]


def _summed(ds, names) -> np.ndarray:
    """Sum of the log densities ``names`` of ``ds`` per draw, shape (chain, draw)."""
    total = 0.0
    for n in names:
        da = ds[n]
        total = total + da.sum([d for d in da.dims if d not in ("chain", "draw")])
    return np.asarray(total.transpose("chain", "draw").values, dtype=float)


def components(idata) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Log densities that get power-scaled, each of shape (chain, draw).

    Returns
    -------
    main : dict
        ``prior`` (top-level priors, :func:`prior_terms`), ``likelihood`` (every observed
        variable), ``stats`` and ``claims`` (:data:`BLOCKS`; absent when the model has none).
    prior_blocks : dict
        One entry per element of a top-level prior, e.g. ``log_sigma[control]``.
    """
    lp, ll = idata.log_prior, idata.log_likelihood
    main = {"prior": _summed(lp, prior_terms(idata)), "likelihood": _summed(ll, list(ll.data_vars))}
    for block, prefix in BLOCKS.items():
        names = [v for v in ll.data_vars if v.startswith(prefix)]
        if names:
            main[block] = _summed(ll, names)
    prior_blocks = {}
    for v in prior_terms(idata):
        da = lp[v]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        if not extra:
            prior_blocks[v] = np.asarray(da.transpose("chain", "draw").values, dtype=float)
            continue
        stacked = da.stack(__element__=extra).transpose("chain", "draw", "__element__")
        for i in range(stacked.sizes["__element__"]):
            idx = stacked["__element__"].values[i]
            idx = idx if isinstance(idx, tuple) else (idx,)
            prior_blocks[estimand_key(v, *idx)] = np.asarray(stacked.values[..., i], dtype=float)
    return main, prior_blocks


def bootstrap_indices(n_chain: int, n_draw: int, block: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """Draw indices of a circular block bootstrap within chains, shape (n_boot + 1, n_chain * n_draw).

    Row 0 is the identity (the estimate itself); each other row keeps every chain's length
    and joins blocks of ``block`` consecutive draws from random starts of the same chain, so
    autocorrelation within a block survives.
    """
    rng = np.random.default_rng(seed)
    block = int(min(max(block, 1), n_draw))
    n_blocks = -(-n_draw // block)
    starts = rng.integers(0, n_draw, size=(n_boot, n_chain, n_blocks))
    within = (starts[..., None] + np.arange(block)) % n_draw  # (boot, chain, blocks, block)
    within = within.reshape(n_boot, n_chain, -1)[..., :n_draw]
    idx = within + (np.arange(n_chain) * n_draw)[None, :, None]
    return np.vstack([np.arange(n_chain * n_draw)[None, :], idx.reshape(n_boot, -1)])


def block_length(series: list[np.ndarray]) -> int:
    """Bootstrap block length: twice the largest integrated autocorrelation time
    (draws / bulk ESS) over ``series``, each of shape (chain, draw)."""
    import arviz as az

    tau = 1.0
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        for s in series:
            if np.all(np.isfinite(s)) and np.ptp(s) > 0:
                ess = float(az.ess(s[None] if s.ndim == 1 else s, method="bulk"))
                if ess > 0:
                    tau = max(tau, s.size / ess)
    return int(math.ceil(2.0 * tau))


def psis_weights(log_density: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Pareto-smoothed importance weights of power ``alpha`` on a log density.

    Parameters
    ----------
    log_density : np.ndarray
        Shape (replicate, draw).
    alpha : float
        Power of the component.

    Returns
    -------
    weights, k : np.ndarray
        Normalised weights (replicate, draw) and Pareto k (replicate,).
    """
    from reanalysis.reweighting import pareto_smoothed

    return pareto_smoothed((alpha - 1.0) * np.asarray(log_density))


def _cjs(width: np.ndarray, cdf_p: np.ndarray, cdf_q: np.ndarray) -> np.ndarray:
    """Cumulative Jensen-Shannon distance between an unweighted and a weighted ECDF of the
    same sorted draws (bin widths ``width``; ECDFs at the bins' left ends), per row, as
    ``arviz.stats.stats._cjs_dist``."""
    p_int, q_int = (cdf_p * width).sum(axis=1), (cdf_q * width).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = np.where(cdf_p > 0, np.log2(np.where(cdf_p > 0, cdf_p, 1.0)), 0.0)
        log_q = np.where(cdf_q > 0, np.log2(np.where(cdf_q > 0, cdf_q, 1.0)), 0.0)
        mid = 0.5 * (cdf_p + cdf_q)
        log_m = np.where(mid > 0, np.log2(np.where(mid > 0, mid, 1.0)), 0.0)
        pq = np.maximum(0.0, (width * cdf_p * (log_p - log_m)).sum(axis=1) + 0.5 / np.log(2) * (q_int - p_int))
        qp = np.maximum(0.0, (width * cdf_q * (log_q - log_m)).sum(axis=1) + 0.5 / np.log(2) * (p_int - q_int))
        return np.sqrt((pq + qp) / (p_int + q_int))


def _precision_share(xb: np.ndarray, w_lower: np.ndarray, w_upper: np.ndarray, delta: float = DELTA) -> np.ndarray:
    """The component's share of the posterior precision, ``-d log var / d log alpha``, per
    replicate (exact for a Gaussian posterior whose precision is a sum of the components'):
    near 1 for the only source of information, near 0 for one that adds none."""
    log_var = []
    for w in (w_lower, w_upper):
        m = (w * xb).sum(axis=1, keepdims=True)
        log_var.append(np.log((w * (xb - m) ** 2).sum(axis=1)))
    return -(log_var[1] - log_var[0]) / (2.0 * np.log(1.0 + delta))


def _interval(v: np.ndarray, floor: float | None = None) -> tuple[float, float]:
    """Monte Carlo interval of the estimate ``v[0]`` from its bootstrap replicates ``v[1:]``:
    the percentile interval moved by the replicates' bias (their median minus the estimate).
    Resampled draws repeat, which inflates a distance such as psens; the shift undoes it."""
    q = np.quantile(v[1:], [(1.0 - INTERVAL) / 2.0, 0.5, (1.0 + INTERVAL) / 2.0])
    lo, hi = q[0] - (q[1] - v[0]), q[2] - (q[1] - v[0])
    if floor is not None:
        lo, hi = max(lo, floor), max(hi, floor)
    return float(lo), float(hi)


def _psens(xs: np.ndarray, order: np.ndarray, w_lower: np.ndarray, w_upper: np.ndarray, delta: float = DELTA) -> np.ndarray:
    """``az.psens`` per replicate from sorted draws ``xs``, their ``order`` and the powers'
    weights (unsorted, normalised)."""
    n = xs.shape[1]
    width = np.diff(xs, axis=1)
    cdf_p = np.linspace(1.0 / n, 1.0 - 1.0 / n, n - 1)[None, :]
    out = 0.0
    for w in (w_lower, w_upper):
        cdf_q = np.cumsum(np.take_along_axis(w, order, axis=1), axis=1)[:, :-1]
        # the distance of -x too (the larger counts: the CJS is not symmetric); sorting -x
        # reverses the bins, which turns both ECDFs into their complements
        out = out + np.maximum(_cjs(width, cdf_p, cdf_q), _cjs(width, 1.0 - cdf_p, 1.0 - cdf_q))
    return out / (2.0 * np.log2(1.0 + delta))


def sensitivity_table(idata, draws: dict[str, np.ndarray], n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Power-scaling sensitivity of each quantity in ``draws``, with Monte Carlo intervals.

    Parameters
    ----------
    idata : az.InferenceData
        With ``log_prior`` and ``log_likelihood`` groups.
    draws : dict
        Estimand key -> posterior draws, shape (chain, draw).
    n_boot : int
        Bootstrap replicates of the interval (:func:`bootstrap_indices`).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    pd.DataFrame
        One row per key: ``psens_prior`` (top-level priors), ``psens_likelihood``,
        ``psens_stats``, ``psens_claims``; ``share_<component>`` (:func:`_precision_share`)
        and ``share_stats_minus_claims``; ``shift_prior`` and ``shift_likelihood``: the
        derivative of the mean with respect to the log power of the component, in posterior
        SDs; ``mean_prior_<alpha>``: the mean with the top-level priors raised to each of
        :data:`ALPHAS` (what refits check); each of these with ``_lo`` and ``_hi`` (the
        :data:`INTERVAL` Monte Carlo interval).  ``psens_prior:<term>`` per top-level prior
        element, ``driver`` (the element with the largest), ``pareto_k`` (the largest k of the
        weights the label uses) and ``pareto_k_prior_<alpha>``.
    """
    main, prior_blocks = components(idata)
    n_chain, n_draw = main["prior"].shape
    block = block_length([*main.values(), *draws.values()])
    idx = bootstrap_indices(n_chain, n_draw, block, n_boot, seed)
    flat = {k: v.ravel() for k, v in main.items()}
    boot = {k: v[idx] for k, v in flat.items()}
    local, ks = {}, {}
    for name, c in boot.items():
        local[name] = [psis_weights(c, a) for a in (1.0 / (1.0 + DELTA), 1.0 + DELTA)]
        ks[f"{name}@delta"] = max(float(k[0]) for _, k in local[name])
    # finite powers: only for the means that refits check, not for the labels
    wide = [psis_weights(boot["prior"], a) for a in ALPHAS]
    blocks = {b: [psis_weights(v.ravel()[None, :], a)[0] for a in (1.0 / (1.0 + DELTA), 1.0 + DELTA)] for b, v in prior_blocks.items()}
    k_max = max(ks.values())
    rows = []
    for key, x in draws.items():
        x = np.asarray(x, dtype=float).ravel()
        row: dict = {"estimand": key}
        if not (np.all(np.isfinite(x)) and np.ptp(x) > 0):
            rows.append(row)
            continue
        xb = x[idx]
        order = np.argsort(xb, axis=1)
        xs = np.take_along_axis(xb, order, axis=1)
        values = {}
        for name, ((w_lo, _), (w_up, _)) in local.items():
            values[f"psens_{name}"] = _psens(xs, order, w_lo, w_up)
            values[f"share_{name}"] = _precision_share(xb, w_lo, w_up)
        if "stats" in local and "claims" in local:
            values["share_stats_minus_claims"] = values["share_stats"] - values["share_claims"]
        sd = xb.std(axis=1)
        for name in ("prior", "likelihood"):
            (w_lo, _), (w_up, _) = local[name]
            values[f"shift_{name}"] = ((w_up * xb).sum(axis=1) - (w_lo * xb).sum(axis=1)) / (sd * 2.0 * math.log(1.0 + DELTA))
        for a, (w, _) in zip(ALPHAS, wide):
            values[f"mean_prior_{a:g}"] = (w * xb).sum(axis=1)
        for col, v in values.items():
            row[col] = float(v[0])
            row[f"{col}_lo"], row[f"{col}_hi"] = _interval(v, floor=0.0 if col.startswith("psens_") else None)
        row["posterior_mean"], row["posterior_sd"] = float(x.mean()), float(x.std())
        per_block = {}
        for b, (wl, wu) in blocks.items():
            per_block[b] = float(_psens(xs[:1], order[:1], wl, wu)[0])
            row[f"psens_prior:{b}"] = per_block[b]
        row["driver"] = max(per_block, key=per_block.get) if per_block else ""
        row["pareto_k"] = k_max
        for a, (_, k) in zip(ALPHAS, wide):
            row[f"pareto_k_prior_{a:g}"] = float(k[0])
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update({"pareto_k": ks, "block_length": block, "n_boot": n_boot, "prior_terms": prior_terms(idata)})
    return out


def _side(lo: float, hi: float, threshold: float) -> int:
    """+1 when the interval lies above ``threshold``, -1 below, 0 when it straddles it (or
    is missing)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return 0
    return 1 if lo >= threshold else -1 if hi < threshold else 0


def label(row: dict) -> tuple[str, str]:
    """Plain-language label of one estimand and the reason for it.

    ``row`` holds a :func:`sensitivity_table` row and ``contraction``.  In order:

    1. Pareto k above :data:`PARETO_K_MAX` in any weight set: importance weighting
       unreliable.
    2. Top-level prior sensitivity: its interval must lie above or below the threshold,
       else undetermined.
    3. Prior-sensitive: a prior-data conflict when raising the prior's power moves the mean
       one way and raising the likelihood's moves it the other, both intervals clear of 0
       (named: the prior term with the largest sensitivity).  A prior shift within noise of
       0 and clearly below :data:`SHIFT_THRESHOLD` means the prior sets the width: mostly
       prior/assumption.  Anything in between is undetermined.
    4. Prior-insensitive: with contraction below :data:`CONTRACTION_ASSUMPTION` (when
       known) the assumptions carry it; otherwise the likelihood block (published statistics or
       claims) with the larger share of the posterior precision, when the interval of the
       difference excludes 0.
    """
    g = lambda k: float(row.get(k, np.nan))  # noqa: E731
    if g("pareto_k") > PARETO_K_MAX:
        return LABEL_UNRELIABLE, f"Pareto k {g('pareto_k'):.2f} > {PARETO_K_MAX}"
    pp = (g("psens_prior_lo"), g("psens_prior_hi"))
    prior_side = _side(*pp, PSENS_THRESHOLD)
    if prior_side == 0:
        return LABEL_UNDETERMINED, f"prior psens {pp[0]:.3f}-{pp[1]:.3f} includes {PSENS_THRESHOLD}"
    if prior_side > 0:
        sp = (g("shift_prior_lo"), g("shift_prior_hi"))
        sl = (g("shift_likelihood_lo"), g("shift_likelihood_hi"))
        prior_dir = 1 if sp[0] > 0 else -1 if sp[1] < 0 else 0
        lik_dir = 1 if sl[0] > 0 else -1 if sl[1] < 0 else 0
        if prior_dir and lik_dir == -prior_dir:
            return LABEL_CONFLICT, f"prior and likelihood move it opposite ways; the prior of {row.get('driver', '?')} drives it"
        if prior_dir == 0 and max(abs(sp[0]), abs(sp[1])) < SHIFT_THRESHOLD:
            return LABEL_PRIOR, "prior-sensitive; the prior sets the width, not the location"
        return LABEL_UNDETERMINED, f"prior-sensitive; shift by prior {sp[0]:.2f} to {sp[1]:.2f}, by likelihood {sl[0]:.2f} to {sl[1]:.2f} SD"
    # a missing contraction (no prior draws) does not decide anything
    if g("contraction") < CONTRACTION_ASSUMPTION:
        return LABEL_PRIOR, f"prior-insensitive but contraction {g('contraction'):.2f} < {CONTRACTION_ASSUMPTION}: the assumptions carry it"
    d = (g("share_stats_minus_claims_lo"), g("share_stats_minus_claims_hi"))
    if not np.isfinite(d[0]):  # one block only (a model without claims)
        return (LABEL_NUMBERS, "the group statistics are the only likelihood") if np.isfinite(g("psens_stats")) else (LABEL_CLAIM, "the claims are the only likelihood")
    src = _side(*d, 0.0)
    if src > 0:
        return LABEL_NUMBERS, f"precision share of the statistics minus the claims' {d[0]:.2f} to {d[1]:.2f}"
    if src < 0:
        return LABEL_CLAIM, f"precision share of the statistics minus the claims' {d[0]:.2f} to {d[1]:.2f}"
    return LABEL_UNDETERMINED, f"precision share of the statistics minus the claims' {d[0]:.2f} to {d[1]:.2f} includes 0"


def psens_table(fit, study, keys=None, n_boot: int = N_BOOT, labels: bool = True) -> pd.DataFrame:
    """:func:`sensitivity_table` of the estimands of ``fit`` (an
    :class:`reanalysis.analysis.Analysis`).

    Computes the ``log_likelihood`` and ``log_prior`` groups on a copy of ``fit.idata``
    unless it has them and adds the model's estimands to it.  ``keys`` (estimand keys like
    ``"effect_percent[female]"``) default to the rows of ``fit.table`` (or of the estimand
    table computed here when the fit has none); the bootstrap seed is
    fixed, so the intervals do not depend on the run's seed beyond its draws.  With
    ``labels`` and prior draws in ``fit.idata``, also ``contraction``, ``label`` and
    ``reason`` (:func:`informativeness_table`).
    """
    import pymc as pm

    from reanalysis.analysis import model_api

    idata = copy.deepcopy(fit.idata)
    model = fit.model
    # PyMC refuses to convert a model with custom initial values (chains start at moment
    # estimates); they play no part in the log densities, so drop them here and restore them
    saved = dict(model.rvs_to_initial_values)
    try:
        model.rvs_to_initial_values = {rv: None for rv in saved}
        # a JAX-sampled fit brings both groups (reanalysis.sampling.CompiledNuts, log_densities)
        if "log_likelihood" not in idata:
            pm.compute_log_likelihood(idata, model=model, progressbar=False)
        if "log_prior" not in idata:
            pm.compute_log_prior(idata, model=model, progressbar=False)
    finally:
        model.rvs_to_initial_values = saved
    api = model_api(fit.model_name)
    if keys is None and fit.table is not None:
        keys = fit.table["estimand"]
    # fit.py's posterior already holds the estimands; keys such as "P(... > 3)" name none
    if keys is None or not any(v in idata.posterior for v in _variables(keys)):
        api.add_estimands(idata, study, fit.family, model)
    # a fit straight from the sampler (the sensitivity runner's) has no estimand table yet
    keys = list(api.estimand_table(idata, study)["estimand"] if keys is None else keys)
    post = idata.posterior
    draws = {}
    for key in keys:
        var = variable_of(key)
        if var in post:
            draws[key] = _values(post[var], key[len(var) + 1 : -1] if "[" in key else "", flat=False)
    out = sensitivity_table(idata, draws, n_boot=n_boot)
    if labels and "prior" in fit.idata.groups():
        # contraction and label too, so a table of psens alone (the sensitivity runner's) is labelled
        prior = prior_estimands(fit, study)
        labelled = informativeness_table(pd.DataFrame({"estimand": keys}), post, prior, out)
        out = out.merge(labelled[["estimand", "contraction", "label", "reason"]], on="estimand", how="left")
    elif labels and len(out):
        # without prior draws there is no contraction; the label is decided without it
        out["contraction"] = np.nan
        out["label"], out["reason"] = zip(*(label(r) for r in out.to_dict("records")))
    return out


def _variables(keys) -> set[str]:
    return {variable_of(k) for k in keys}


def prior_estimands(fit, study):
    """The model's estimands computed on the prior draws in ``fit.idata.prior`` (which must
    hold the sampled parameters and the deterministics the estimands read)."""
    import arviz as az

    from reanalysis.analysis import model_api

    prior = az.InferenceData(posterior=fit.idata.prior.copy())
    api = model_api(fit.model_name)
    api.add_estimands(prior, study, fit.family, fit.model)
    return prior.posterior


#: Columns of :func:`informativeness_table`, in order (``psens_prior`` and
#: ``psens_likelihood`` first, as the report reads them).
COLUMNS = [
    "estimand", "contraction", "psens_prior", "psens_likelihood", "label", "reason",
    *(f"{c}{end}" for c in WITH_INTERVAL for end in ("", "_lo", "_hi") if (c, end) not in {("psens_prior", ""), ("psens_likelihood", "")}),
    "driver", "pareto_k", "posterior_mean", "posterior_sd",
    *(f"{c}_{a:g}{end}" for a in ALPHAS for c in ("mean_prior", "pareto_k_prior") for end in (("", "_lo", "_hi") if c == "mean_prior" else ("",))),
]


def informativeness_table(table: pd.DataFrame, posterior, prior, psens: pd.DataFrame) -> pd.DataFrame:
    """One row per estimand of ``table`` (the estimand table): contraction, sensitivities
    with their Monte Carlo intervals, label and its reason.

    Parameters
    ----------
    table : pd.DataFrame
        Estimand table (column ``estimand`` like ``"effect_percent[female]"``).
    posterior, prior : xr.Dataset
        Posterior and prior draws of the estimands.
    psens : pd.DataFrame
        From :func:`psens_table`; its per-term columns ``psens_prior:<term>`` follow the
        columns of :data:`COLUMNS`.
    """
    ps = psens.set_index("estimand")
    terms = [c for c in psens.columns if c.startswith("psens_prior:")]
    rows = []
    for key in table["estimand"]:
        var = variable_of(key)
        if var not in posterior or var not in prior:
            continue
        index = key[len(var) + 1 : -1] if "[" in key else ""
        post_x, prior_x = (_values(ds[var], index) for ds in (posterior, prior))
        ok = np.isfinite(prior_x)
        vpost, vprior = np.nanvar(post_x), np.var(prior_x[ok]) if ok.any() else np.nan
        row = {k: v for k, v in ps.loc[key].items() if k not in ("contraction", "label", "reason")} if key in ps.index else {}
        row.update({"estimand": key, "contraction": float(1.0 - vpost / vprior) if vprior > 0 else np.nan})
        row["label"], row["reason"] = label(row)
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=COLUMNS + terms)


def _values(da, index: str, flat: bool = True) -> np.ndarray:
    extra = [d for d in da.dims if d not in ("chain", "draw")]
    if extra:
        da = da.sel(dict(zip(extra, [i.strip() for i in index.split(",")])))
    values = np.asarray(da.transpose("chain", "draw").values, dtype=float)
    return values.ravel() if flat else values


def shown_label(row, study=None) -> str:
    """An estimand's label as a reader sees it: a prior-data conflict names the prior term
    that drives it, in the study file's words (``prior-data conflict (prior of the effect of
    optic nerve lesion, with vs without)``)."""
    driver = row.get("driver")
    if row["label"] == LABEL_CONFLICT and isinstance(driver, str) and driver:
        return f"{row['label']} (prior of the {parameter_key_label(study, driver)})"
    return row["label"]


def console_table(info: pd.DataFrame, study=None) -> pd.DataFrame:
    """The columns of an :func:`informativeness_table` a reader needs, as text: each value
    with its Monte Carlo interval, the driver of a conflict (in the words of ``study``, the
    study file, when given) and the label."""

    def fmt(r, col, digits=3):
        if not np.isfinite(r.get(col, np.nan)):
            return "-"
        return f"{r[col]:.{digits}f} [{r[col + '_lo']:.{digits}f}, {r[col + '_hi']:.{digits}f}]"

    rows = []
    for _, r in info.iterrows():
        rows.append({
            "estimand": r["estimand"],
            "contraction": f"{r['contraction']:.2f}",
            "psens prior": fmt(r, "psens_prior"),
            "share stats - claims": fmt(r, "share_stats_minus_claims", 2),
            "shift prior / likelihood": f"{fmt(r, 'shift_prior', 2)} / {fmt(r, 'shift_likelihood', 2)}",
            "label": shown_label(r, study),
        })
    return pd.DataFrame(rows)

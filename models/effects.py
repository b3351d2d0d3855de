"""Estimands and posterior predictive cohorts of the hierarchical covariate model.

Effects are reported in percent (``100 * (exp(b) - 1)`` for a log-scale coefficient ``b``),
per unit of the covariate's model scale (e.g. per decade).  Group contrasts are given two
ways: *adjusted* (the ratio of the two groups' typical levels for subjects with the same sex
mix and age, each group's own disease covariates at their cohort averages) and *marginal*
(population medians, means and P(superiority) of each group's population, exact functionals
of the model's mixture over its covariate design, :mod:`models.population`).
"""
from __future__ import annotations

import arviz as az
import numpy as np
import xarray as xr

from .asymptotic import residual_nodes
from .cohort import Design, build_design, claim_design, cohort_log_levels, modelled_associations, regression_estimate, residual_deviates
from .labels import estimand_key
from .population import population_estimands
from .study import Study
from .wording import claim_probability_label


def posterior_arrays(post: xr.Dataset, design: Design) -> dict[str, np.ndarray]:
    """Posterior parameters flattened to (draws, ...): the input of
    :func:`population_contrasts` and :func:`printed_estimands`."""
    def flat(name):
        v = post[name].values
        return v.reshape((-1,) + v.shape[2:])

    out = {"alpha": flat("alpha"), "slope": flat("slope"), "sigma": flat("sigma")}
    out["u"] = flat("u") if design.levels else None
    # hyper-parameters, when the draws have them (simulated cohorts need only the above)
    for name in ("effect", "category_spread"):
        if name in post:
            out[name] = flat(name)
    return out


def reference_covariates(design: Design, a: str, b: str) -> dict[str, np.ndarray]:
    """Covariate values at which groups ``a`` and ``b`` are compared: the pooled average of a
    covariate defined in both (sex mix, age), each group's own average otherwise."""
    ia, ib = design.groups.index(a), design.groups.index(b)
    both = design.defined[ia] & design.defined[ib]
    pooled = np.concatenate([design.x[:, design.slices[a], :], design.x[:, design.slices[b], :]], axis=1).mean(axis=(0, 1))
    out = {}
    for g in (a, b):
        out[g] = np.where(both, pooled, design.x[:, design.slices[g], :].mean(axis=(0, 1)))
        out[g + ".levels"] = design.onehot[:, design.slices[g], :].mean(axis=(0, 1))
    return out


#: Contrasts of two groups' populations, one value per comparison (dims ``comparison``).
CONTRASTS = ("adjusted_ratio", "ratio_of_medians", "ratio_of_means", "difference_in_medians", "prob_superiority")


def population_contrasts(p: dict, study: Study, design: Design, residual_df: float | None = None) -> dict[str, np.ndarray]:
    """Each group's population median and mean and the comparisons' contrasts, draw by draw.

    A pure function of parameter values, so the posterior (:func:`add_effects`) and the
    calibration's true values (:mod:`reanalysis.calibration`) go through the same code.

    Parameters
    ----------
    p : dict
        ``alpha`` (D, G), ``slope`` (D, G, C), ``sigma`` (D, G) and ``u`` (D, L) or None.
    study, design
        The study (reference level, comparisons) and the model's fixed design.
    residual_df : float or None
        Student-t residual degrees of freedom (None: normal residuals).

    Returns
    -------
    dict
        ``median``, ``mean`` (D, G) in natural units; per name of :data:`CONTRASTS`
        (D, P) over the study's comparisons, in file order.
    """
    ref = float(study.assumption("reference_level", 1.0))
    pairs = [(c.groups[0], c.groups[1]) for c in study.comparisons.values()]
    pop = population_estimands(p["alpha"], p["slope"], p.get("u"), p["sigma"], design, residual_nodes(residual_df), pairs)
    med, mean = ref * np.exp(pop["median_log"]), ref * np.exp(pop["mean_log"])
    out = {"median": med, "mean": mean, **{k: [] for k in CONTRASTS}}
    for j, (a, b) in enumerate(pairs):
        ia, ib = design.groups.index(a), design.groups.index(b)
        rc = reference_covariates(design, a, b)
        adj = []
        for g, i in ((a, ia), (b, ib)):
            level = p["alpha"][:, i] + p["slope"][:, i, :] @ rc[g]
            if p.get("u") is not None:
                level = level + p["u"] @ rc[g + ".levels"]
            adj.append(level)
        out["adjusted_ratio"].append(np.exp(adj[0] - adj[1]))
        out["ratio_of_medians"].append(med[:, ia] / med[:, ib])
        out["ratio_of_means"].append(mean[:, ia] / mean[:, ib])
        out["difference_in_medians"].append(med[:, ia] - med[:, ib])
        out["prob_superiority"].append(pop["prob_superiority"][:, j])
    for k in CONTRASTS:
        out[k] = np.stack(out[k], axis=-1) if pairs else np.zeros((med.shape[0], 0))
    return out


def printed_estimands(p: dict, study: Study, design: Design, residual_df: float | None = None) -> dict[str, np.ndarray]:
    """Every estimand the covariate model prints, as ``label -> (D,)`` arrays.

    Labels are those of the estimand table (``ratio_of_medians[control_vs_ms]``,
    ``slope_percent[ms, female]``, ...), so calibration can rank what is printed and not only
    the sampled parameters.

    Parameters
    ----------
    p : dict
        ``alpha``, ``slope``, ``sigma``, ``effect`` and, when the model has them, ``u`` and
        ``category_spread``, each with a leading axis over draws.
    study, design, residual_df
        As :func:`population_contrasts`.
    """
    values = population_contrasts(p, study, design, residual_df)
    out = {}
    for k, g in enumerate(design.groups):
        out[estimand_key("median", g)] = values["median"][:, k]
        out[estimand_key("mean", g)] = values["mean"][:, k]
    for j, cid in enumerate(study.comparisons):
        for name in CONTRASTS:
            out[estimand_key(name, cid)] = values[name][:, j]
    for j, c in enumerate(design.covariates):
        out[estimand_key("effect_percent", c)] = 100.0 * np.expm1(p["effect"][:, j])
        for k, g in enumerate(design.groups):
            if design.defined[k, j]:
                out[estimand_key("slope_percent", g, c)] = 100.0 * np.expm1(p["slope"][:, k, j])
    if p.get("category_spread") is not None:
        out["category_spread_percent"] = 100.0 * np.expm1(p["category_spread"])
    return out


def add_effects(idata: az.InferenceData, study: Study, design: Design, residual_df: float | None = None) -> az.InferenceData:
    """Add the hierarchical model's estimands to ``idata.posterior`` (in place).

    Adds ``effect_percent`` (covariate), ``slope_percent`` (group, covariate; NaN where a
    covariate is undefined), ``category_spread_percent``, ``median`` and ``mean`` per group,
    and per comparison the :data:`CONTRASTS`: marginal ones are exact functionals of each
    group's population, the model's mixture over every cohort of ``design``
    (:func:`population_contrasts`).  ``residual_df`` is the Student-t residuals' degrees of
    freedom (None: normal residuals), represented by the same scale nodes as in the
    likelihood.
    """
    post = idata.posterior
    post["effect_percent"] = 100.0 * np.expm1(post["effect"])
    slope = 100.0 * np.expm1(post["slope"])
    post["slope_percent"] = slope.where(xr.DataArray(design.defined, dims=("group", "covariate"), coords={"group": post.group, "covariate": post.covariate}))
    if "category_spread" in post:
        post["category_spread_percent"] = 100.0 * np.expm1(post["category_spread"])

    shape = (post.sizes["chain"], post.sizes["draw"])
    values = population_contrasts(posterior_arrays(post, design), study, design, residual_df)
    coords = {"chain": post.chain, "draw": post.draw}
    for name in ("median", "mean"):
        post[name] = xr.DataArray(values[name].reshape(shape + (-1,)), dims=("chain", "draw", "group"), coords={**coords, "group": post.group})
    if study.comparisons:
        ccoords = {**coords, "comparison": list(study.comparisons)}
        for name in CONTRASTS:
            post[name] = xr.DataArray(values[name].reshape(shape + (-1,)), dims=("chain", "draw", "comparison"), coords=ccoords)
    return idata


def simulate_predictive(idata: az.InferenceData, study: Study, design: Design, family_df: float | None, n_draws: int = 2000, seed: int = 0):
    """Posterior predictive cohorts: one fresh cohort (new covariates and residuals) per
    thinned posterior draw, and every published association computed on it.

    Returns
    -------
    cohorts : dict
        group id -> (n_draws, n) sorted levels (natural units), as
        :func:`models.checks.simulate_predictive` returns for the group model.
    associations : dict
        ``"association.<name>"`` -> estimate in percent per unit, and
        ``"association.<name>.holds"`` -> whether the cohort shows the claimed pattern.
    """
    post = idata.posterior
    rng = np.random.default_rng(seed)
    total = post.sizes["chain"] * post.sizes["draw"]
    pick = np.sort(rng.choice(total, size=min(n_draws, total), replace=False))
    fresh = build_design(study, pick.size, seed + 7919)
    eps = residual_deviates(pick.size, fresh.n, seed + 7919, family_df)
    p = posterior_arrays(post, design)
    ref = float(study.assumption("reference_level", 1.0))
    # one cohort per draw: draw d uses cohort d of the fresh design
    u = p["u"][pick][:, None, :] if p["u"] is not None else None
    eta = cohort_log_levels(np, p["alpha"][pick], p["slope"][pick], u, p["sigma"][pick], fresh.x, fresh.onehot, eps, fresh.group_index)
    cohorts = {g: np.sort(ref * np.exp(eta[:, fresh.slices[g]]), axis=-1) for g in fresh.groups}
    assoc = {}
    for name, a in modelled_associations(study).items():
        cd = claim_design(study, fresh, name, a)
        coef, t = regression_estimate(np, eta[:, cd.index], cd.X, cd.P, cd.v, cd.df)
        stat = coef if cd.statistic == "coefficient" else t
        if cd.kind == "interval":
            holds = (stat >= cd.bounds[0]) & (stat <= cd.bounds[1])
        elif cd.kind == "below":
            holds = stat < cd.bounds[0]
        else:
            holds = stat > cd.bounds[0]
        assoc[f"association.{name}"] = 100.0 * np.expm1(coef)
        assoc[f"association.{name}.holds"] = holds
    return cohorts, assoc


def covariate_axes(study: Study, design: Design) -> tuple[str, str] | None:
    """The covariates of the level-versus-covariate figure: a continuous covariate drawn
    from an assumption in every group (x axis; age) and a breakdown fixed by published
    counts in every group (colour; sex), or None if the study has no such pair."""
    everywhere = [c for j, c in enumerate(design.covariates) if design.defined[:, j].all()]
    cont = [c for c in everywhere if study.covariates[c].counts is None and study.covariate_distribution(c).distribution != "bernoulli"]
    split = [c for c in everywhere if study.covariates[c].counts is not None]
    return (cont[0], split[0]) if cont and split else None


def covariate_view(idata: az.InferenceData, study: Study, design: Design, residual_df: float | None, n_cohorts: int = 3, seed: int = 0):
    """Data of the level-versus-covariate figure (no plotting here).

    Returns
    -------
    dict or None
        ``x``, ``split``: covariate names; ``cohorts``: list of dicts (group, x in the
        covariate's units, split indicator, level in natural units) for ``n_cohorts``
        posterior predictive cohorts; ``lines``: (group, split value) -> (grid, median,
        5%, 95%) of the typical level (exp of the linear predictor, other covariates at
        their averages) over posterior draws.
    """
    axes = covariate_axes(study, design)
    if axes is None:
        return None
    cx, cs = axes
    jx, js = design.covariates.index(cx), design.covariates.index(cs)
    per_x, per_s = study.covariates[cx].per, study.covariates[cs].per
    ref = float(study.assumption("reference_level", 1.0))
    p = posterior_arrays(idata.posterior, design)
    rng = np.random.default_rng(seed)
    total = p["alpha"].shape[0]
    pick = rng.choice(total, size=n_cohorts, replace=False)
    fresh = build_design(study, n_cohorts, seed + 104729)
    eps = residual_deviates(n_cohorts, fresh.n, seed + 104729, residual_df)
    u = p["u"][pick][:, None, :] if p["u"] is not None else None
    eta = cohort_log_levels(np, p["alpha"][pick], p["slope"][pick], u, p["sigma"][pick], fresh.x, fresh.onehot, eps, fresh.group_index)
    cohorts = []
    for r in range(n_cohorts):
        for g in fresh.groups:
            sl = fresh.slices[g]
            cohorts.append({
                "group": g,
                "x": (fresh.x[r, sl, jx] + fresh.centre[jx]) * per_x,
                "split": np.round((fresh.x[r, sl, js] + fresh.centre[js]) * per_s),
                "level": ref * np.exp(eta[r, sl]),
            })
    xs = np.concatenate([c["x"] for c in cohorts])
    grid = np.linspace(np.quantile(xs, 0.02), np.quantile(xs, 0.98), 40)
    lines = {}
    for k, g in enumerate(design.groups):
        for v in (0.0, 1.0):
            lin = (
                p["alpha"][:, k, None]
                + p["slope"][:, k, jx, None] * (grid[None, :] / per_x - design.centre[jx])
                + p["slope"][:, k, js, None] * (v / per_s - design.centre[js])
            )
            q = ref * np.exp(np.quantile(lin, [0.5, 0.05, 0.95], axis=0))
            lines[(g, v)] = (grid, *q)
    return {"x": cx, "split": cs, "cohorts": cohorts, "lines": lines}


# -- hooks of the analysis pipeline (reanalysis.analysis.model_api) ------------------------------
EFFECT_VARS = (
    "adjusted_ratio", "ratio_of_medians", "ratio_of_means", "difference_in_medians", "prob_superiority",
    "median", "mean", "effect_percent", "slope_percent", "category_spread_percent",
)


def add_estimands(idata: az.InferenceData, study: Study, family: str, model=None) -> az.InferenceData:
    """Pipeline hook: :func:`add_effects` with the design and residual family the model was
    fitted on."""
    return add_effects(idata, study, model.design, model.residual_df)


def estimand_table(idata: az.InferenceData, study: Study):
    """Pipeline hook: the estimand table, plus the posterior probability that each modelled
    association's population effect points the claimed way."""
    import pandas as pd

    from . import estimands

    table = estimands.estimand_table(idata, study, EFFECT_VARS)
    rows = []
    for a, assoc in modelled_associations(study).items():
        x = idata.posterior["effect_percent"].sel(covariate=assoc.covariate).values.ravel()
        lower = assoc.direction == "lower"
        p = float(np.mean(x < 0) if lower else np.mean(x > 0))
        rows.append({
            "estimand": f"P(effect_percent[{assoc.covariate}] {'<' if lower else '>'} 0)",
            "label": claim_probability_label(study, f"effect_percent[{assoc.covariate}]", f"{assoc.direction}, as claimed"),
            "units": "probability", "median": p, "hdi_low": np.nan, "hdi_high": np.nan, "mean": p,
            "sd": float(np.sqrt(p * (1 - p) / x.size)), "r_hat": np.nan, "ess_bulk": np.nan, "ess_tail": np.nan, "mcse_mean": np.nan,
        })
    return pd.concat([table, pd.DataFrame(rows)], ignore_index=True) if rows else table


def predictive_cohorts(idata: az.InferenceData, study: Study, family: str, n_draws: int = 2000, seed: int = 0, model=None) -> dict:
    """Pipeline hook (``simulate_predictive``): cohorts and association estimates in one dict."""
    cohorts, assoc = simulate_predictive(idata, study, model.design, model.residual_df, n_draws=n_draws, seed=seed)
    return {**cohorts, **assoc}

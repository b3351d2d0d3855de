"""Figures for review.  Functions here take results and return matplotlib figures; they
never sample and never save (the caller decides where figures go)."""
from __future__ import annotations

import math
import textwrap

import arviz as az
import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .study import STATISTIC_LABELS, Study  # noqa: E402

_PUBLISHED = dict(color="crimson", lw=2)
#: Histograms as one filled outline each, not one patch per bar: drawing the bars of the
#: predictive-check and prior-versus-posterior panels was most of those figures' time.
_FILLED = dict(histtype="stepfilled")


def ratio_figure(idata: az.InferenceData, study: Study) -> plt.Figure:
    """Posterior of each comparison's ratios of medians and of means, with the ratios of the
    published statistics and any claimed fold threshold marked."""
    post = idata.posterior
    comps = list(study.comparisons.items())
    fig, axes = plt.subplots(len(comps), 2, figsize=(10, 3.6 * len(comps)), squeeze=False)
    for row, (cid, comp) in enumerate(comps):
        a, b = comp.groups
        ra, rb = study.reported(a), study.reported(b)
        for col, (var, stat) in enumerate((("ratio_of_medians", "median"), ("ratio_of_means", "mean"))):
            ax = axes[row, col]
            x = post[var].sel(comparison=cid).values.ravel()
            ax.hist(x, bins=60, density=True, color="steelblue", alpha=0.75, label="posterior", **_FILLED)
            lo, hi = az.hdi(x, hdi_prob=0.95)
            ax.axvspan(lo, hi, color="steelblue", alpha=0.12, label=f"95% HDI {lo:.2f}-{hi:.2f}")
            if stat in ra and stat in rb:
                pub = ra[stat] / rb[stat]
                ax.axvline(pub, **_PUBLISHED, label=f"published {stat}s: {ra[stat]:g}/{rb[stat]:g} = {pub:.2f}")
            for claim in comp.claims.values():
                if claim.statistic == var and claim.value is not None:
                    ax.axvline(claim.value, color="k", ls="--", label=f"claim: {claim.relation} {claim.value:g}")
            ax.set_xlabel(f"{study.groups[a].label} / {study.groups[b].label} ({var.replace('_', ' ')}, fold)")
            ax.set_ylabel("posterior density (1/fold)")
            ax.legend(fontsize=8)
    fig.suptitle(f"{study.id}: ratio of {study.analyte.name} between groups")
    fig.tight_layout()
    return fig


def group_values_figure(idata: az.InferenceData, study: Study) -> plt.Figure:
    """Posterior median and 95% HDI of each group's population median and mean, against the
    published sample median and mean."""
    post = idata.posterior
    units = study.analyte.units
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.9 * len(study.group_ids) * 2))
    y = 0
    ticks, labels = [], []
    for g in study.group_ids:
        rep = study.reported(g)
        for var, color in (("median", "darkorange"), ("mean", "steelblue")):
            x = post[var].sel(group=g).values.ravel()
            lo, hi = az.hdi(x, hdi_prob=0.95)
            ax.plot([lo, hi], [y, y], color=color, lw=4, solid_capstyle="butt")
            ax.plot(np.median(x), y, "o", color="white", mec=color, mew=2, ms=8)
            if var in rep:
                ax.plot(rep[var], y, "D", color="crimson", ms=7)
            ticks.append(y)
            labels.append(f"{study.groups[g].label}: {var}")
            y += 1
        y += 0.5
    ax.set_yticks(ticks, labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel(f"{study.analyte.name} ({units}, log scale)")
    ax.plot([], [], color="gray", lw=4, label="population value: 95% HDI")
    ax.plot([], [], "o", color="white", mec="gray", mew=2, label="posterior median")
    ax.plot([], [], "D", color="crimson", label="published sample value")
    ax.legend(fontsize=8, loc="best")
    ax.set_title("Group medians and means: model versus paper")
    fig.tight_layout()
    return fig


def predictive_figure(stats: dict[str, np.ndarray], checks: pd.DataFrame, study: Study) -> plt.Figure:
    """Posterior predictive distribution of every published statistic, published value marked.

    Titles give the verdict and the value it was judged on, as in ``checks``: the two-sided
    predictive p-value of a number or exact claim, else the share of simulated cohorts in
    which the claim holds.
    """
    from .checks import format_p

    n = len(checks)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (_, row) in zip(axes.ravel(), checks.iterrows()):
        sim = stats[row["key"]]
        if row["kind"] == "number":
            ax.hist(sim, bins=50, color="gray", alpha=0.7, **_FILLED)
            ax.axvline(row["published"], **_PUBLISHED)
            ax.set_xlabel(f"{row['item']} ({row['units']})")
            ax.set_title(f"{row['verdict']}: p (two-sided) {format_p(row['p_two_sided'])}", fontsize=9)
        elif row["key"].startswith("association."):
            # a covariate association: the cohort's estimate in percent per unit; the claim
            # is a direction (and significance) or an approximate value
            ax.hist(sim, bins=50, color="gray", alpha=0.7, **_FILLED)
            ax.axvline(0.0, color="k", ls=":", lw=1)
            claim = row["published"].split()
            if claim[0] in ("~", "<", ">", "="):
                ax.axvline(float(claim[1]), **_PUBLISHED)
            ax.set_xlabel(f"simulated estimate, {row['key'].split('.', 1)[1]} (% per unit)")
            ax.set_title(f"{row['verdict']}: '{row['published']}' holds in {row['share_claim_holds']:.0%}", fontsize=9)
        else:
            cid, claim_id = row["key"].split(".", 1)
            claim = study.comparisons[cid].claims[claim_id]
            # log axis: p-values span orders of magnitude; 1e-300 keeps p = 0 on the axis
            floor = 1e-300
            ax.hist(np.log10(np.maximum(sim, floor)), bins=50, color="gray", alpha=0.7, **_FILLED)
            ax.set_xlabel(f"log10 simulated {claim.statistic.replace('_', ' ')} ({row['units']})")
            if claim.relation == "=":
                # the values that print as the published one; a p printed as 0.000 has no
                # lower end on a log axis, so its band starts at the axis' left edge
                low, high = claim.printed_interval
                xmin, xmax = ax.get_xlim()
                left = np.log10(low) if low > 0 else xmin
                ax.axvspan(left, np.log10(high), color=_PUBLISHED["color"], alpha=0.35, lw=0, zorder=0)
                ax.set_xlim(min(xmin, left), max(xmax, np.log10(high)))
                ax.set_title(f"{row['verdict']}: p (two-sided) {format_p(row['p_two_sided'])}", fontsize=9)
            else:
                ax.axvline(np.log10(claim.value), **_PUBLISHED)
                ax.set_title(f"{row['verdict']}: claim holds in {row['share_claim_holds']:.0%}", fontsize=9)
        ax.set_ylabel("simulated cohorts")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.suptitle("Posterior predictive check: published value (red) against simulated cohorts of the published sizes")
    fig.tight_layout()
    return fig


def rank_figure(idata: az.InferenceData, var_names) -> plt.Figure:
    """ArviZ rank plots of the sampled parameters (uniform ranks across chains = good mixing).

    Drawn as deviations from the uniform count (``kind="vlines"``): with some 20 panels the
    bars took twice as long to draw."""
    # ArviZ's own size for some 20 panels was 22 x 33 inches: 9 megapixels at our dpi, and
    # saving them took 3 s.  About 4 x 2.4 inches a panel, in ArviZ's three columns.
    n = sum(int(np.prod(idata.posterior[v].shape[2:])) for v in var_names)
    cols = min(3, n)
    axes = az.plot_rank(idata, var_names=list(var_names), kind="vlines", figsize=(4.0 * cols, 2.4 * math.ceil(n / cols)))
    fig = np.atleast_1d(axes).ravel()[0].figure
    fig.suptitle("Rank plots by chain: each chain's counts should scatter closely around the dashed line (uniform ranks)")
    # half an inch for the title: ArviZ's tall grid left it over the first row's middle title
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    return fig


def sbc_ecdf_figure(ranks: pd.DataFrame, ecdf_difference, band: float) -> plt.Figure:
    """ECDF difference of calibration ranks per parameter with a simultaneous 99% band;
    a calibrated parameter stays inside the band."""
    params = list(dict.fromkeys(ranks["parameter"]))
    cols = min(4, len(params))
    rows = math.ceil(len(params) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False, sharey=True)
    for ax, p in zip(axes.ravel(), params):
        z, d = ecdf_difference(ranks.loc[ranks["parameter"] == p, "rank"].values)
        ax.fill_between(z, -band, band, color="gray", alpha=0.25, label="99% simultaneous band")
        ax.plot(z, d, color="steelblue")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(p, fontsize=9)
        ax.set_xlabel("fractional rank of true value")
    for ax in axes[:, 0]:
        ax.set_ylabel("ECDF - uniform")
    for ax in axes.ravel()[len(params):]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Simulation-based calibration: {ranks['sim'].nunique()} simulated studies")
    # keep a strip for the title: tight_layout alone let it sit over the first row's titles
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return fig


def effects_forest_figure(idata: az.InferenceData, study: Study) -> plt.Figure:
    """Forest plot of the between-group effects (ratios, probability of superiority): median,
    50% and 95% intervals, with the no-difference value marked."""
    post = idata.posterior
    rows = []
    for cid, comp in study.comparisons.items():
        a, b = (study.groups[g].label for g in comp.groups)
        for var, label, null in (
            ("ratio_of_medians", f"ratio of medians, {a} / {b}", 1.0),
            ("ratio_of_means", f"ratio of means, {a} / {b}", 1.0),
            ("prob_superiority", f"P({a} > {b})", 0.5),
        ):
            rows.append((label, post[var].sel(comparison=cid).values.ravel(), null, var))
    fig, axes = plt.subplots(1, 2, figsize=(10, 1.2 + 0.6 * max(1, len(rows))), gridspec_kw={"width_ratios": [2, 1]})
    for ax, kinds, xlabel in (
        (axes[0], ("ratio_of_medians", "ratio_of_means"), "ratio (fold, log scale)"),
        (axes[1], ("prob_superiority",), "probability of superiority"),
    ):
        sel = [r for r in rows if r[3] in kinds]
        for y, (label, x, null, _) in enumerate(sel):
            lo, hi = az.hdi(x, hdi_prob=0.95)
            q25, q50, q75 = np.quantile(x, [0.25, 0.5, 0.75])
            ax.plot([lo, hi], [y, y], color="steelblue", lw=1.5)
            ax.plot([q25, q75], [y, y], color="steelblue", lw=5)
            ax.plot(q50, y, "o", color="white", mec="steelblue", mew=2)
        if sel:
            ax.axvline(sel[0][2], color="k", ls=":", lw=1, label="no difference")
            ax.set_yticks(range(len(sel)), [r[0] for r in sel], fontsize=8)
            ax.invert_yaxis()
            ax.legend(fontsize=8)
        if "ratio_of_means" in kinds:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(xlabel)
    fig.suptitle("Between-group effects: median, 50% and 95% intervals")
    fig.tight_layout()
    return fig


def prior_posterior_figure(idata: az.InferenceData, var_names, scales: dict[str, str] | None = None) -> plt.Figure:
    """Prior (from ``idata.prior``, drawn by the caller) against posterior for each sampled
    parameter and each coordinate (every combination, for a parameter with several dims).
    ``scales``: parameter name -> what its axis measures (a model's ``PARAMETER_SCALES``)."""
    import itertools

    scales = scales or {}
    panels = []
    for v in var_names:
        da = idata.posterior[v]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        for combo in itertools.product(*(da[d].values for d in extra)):
            sel = dict(zip(extra, combo))
            label = f"{v}[{', '.join(str(c) for c in combo)}]" if extra else v
            panels.append((label, scales.get(v), idata.prior[v].sel(sel).values.ravel(), da.sel(sel).values.ravel()))
    cols = min(4, len(panels))
    rows_n = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.6 * cols, 2.8 * rows_n), squeeze=False)
    for ax, (label, scale, prior, post) in zip(axes.ravel(), panels):
        lo, hi = np.quantile(np.concatenate([prior, post]), [0.005, 0.995])
        bins = np.linspace(lo, hi, 80)
        ax.hist(prior, bins=bins, density=True, color="gray", alpha=0.5, label="prior", **_FILLED)
        ax.hist(post, bins=bins, density=True, color="steelblue", alpha=0.8, label="posterior", **_FILLED)
        # the scale on a line of its own: long labels ran past the panel (and the figure)
        ax.set_xlabel(f"{label}\n({scale})" if scale else label, fontsize=9)
        ax.set_ylabel("density")
        ax.set_title(f"posterior SD / prior SD = {np.std(post) / np.std(prior):.2f}", fontsize=8)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Prior versus posterior of the sampled parameters")
    fig.tight_layout()
    return fig


def percent_effects_figure(idata: az.InferenceData, study: Study, info=None) -> plt.Figure:
    """Forest plot of the covariate effects in percent per unit (pooled and per group):
    median, 50% and 95% intervals, zero marked, and each row's informativeness label."""
    post = idata.posterior
    labels_by_key = dict(zip(info["estimand"], info["label"])) if info is not None and len(info) else {}
    rows = []
    for c in post["effect_percent"].covariate.values:
        name = study.covariates[str(c)].label if str(c) in study.covariates else str(c)
        key = f"effect_percent[{c}]"
        rows.append((f"{name}: pooled", post["effect_percent"].sel(covariate=c).values.ravel(), labels_by_key.get(key, "")))
        for g in post["slope_percent"].group.values:
            x = post["slope_percent"].sel(group=g, covariate=c).values.ravel()
            if np.all(np.isnan(x)) or post["slope_percent"].sel(covariate=c).notnull().all(dim=("chain", "draw")).sum() < 2:
                continue
            rows.append((f"{name}: {study.groups[str(g)].label}", x, labels_by_key.get(f"slope_percent[{g}, {c}]", "")))
    if "category_spread_percent" in post:
        rows.append(("spread of subtype effects (1 SD)", post["category_spread_percent"].values.ravel(), labels_by_key.get("category_spread_percent", "")))
    fig, ax = plt.subplots(figsize=(10, 1.4 + 0.6 * len(rows)))
    for y, (label, x, _) in enumerate(rows):
        lo, hi = az.hdi(x, hdi_prob=0.95)
        q25, q50, q75 = np.quantile(x, [0.25, 0.5, 0.75])
        ax.plot([lo, hi], [y, y], color="steelblue", lw=1.5)
        ax.plot([q25, q75], [y, y], color="steelblue", lw=5)
        ax.plot(q50, y, "o", color="white", mec="steelblue", mew=2)
    ax.axvline(0.0, color="k", ls=":", lw=1, label="no effect")
    # the source label on its own wrapped line, so a long one cannot push the axes off the figure
    ticks = [r[0] + ("\n[" + "\n ".join(textwrap.wrap(r[2], 42)) + "]" if r[2] else "") for r in rows]
    ax.set_yticks(range(len(rows)), ticks, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"change in {study.analyte.name}\n(% per unit of each covariate, as labelled)")
    ax.legend(fontsize=8)
    ax.set_title("Covariate effects: median, 50% and 95% intervals\n[where each estimate comes from]", fontsize=10)
    fig.tight_layout()
    return fig


def covariate_figure(view: dict, study: Study) -> plt.Figure:
    """Levels against a covariate (age) by group and by a published breakdown (sex):
    subjects of a few posterior predictive cohorts, the posterior typical level per
    breakdown level (median and 90% band, other covariates at their averages) and the
    group's published median.  ``view`` comes from :func:`models.effects.covariate_view`."""
    groups = list(dict.fromkeys(c["group"] for c in view["cohorts"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 4.4), sharey=True, squeeze=False)
    cx, cs = study.covariates[view["x"]], study.covariates[view["split"]]
    split_name = cs.label.split(" (")[0]
    colours = {1.0: "tab:red", 0.0: "tab:blue"}
    # the other level by its own name when the breakdown has two (female -> male)
    breakdown, _, level = (cs.counts or "").partition(".")
    others = {lv for g in groups for lv in study.groups[g].counts.get(breakdown, {})} - {level}
    names = {1.0: split_name, 0.0: others.pop() if len(others) == 1 else f"not {split_name}"}
    markers = "o^sDv"
    for ax, g in zip(axes[0], groups):
        for r, c in enumerate([c for c in view["cohorts"] if c["group"] == g]):
            for v in (0.0, 1.0):
                sel = c["split"] == v
                ax.scatter(c["x"][sel], c["level"][sel], s=14, alpha=0.55, color=colours[v], marker=markers[r % len(markers)],
                           label=f"{names[v]}, predictive cohort {r + 1}" if r < 2 else None)
        for v in (0.0, 1.0):
            grid, med, lo, hi = view["lines"][(g, v)]
            ax.plot(grid, med, color=colours[v], lw=2, label=f"{names[v]}: typical level (posterior median)")
            ax.fill_between(grid, lo, hi, color=colours[v], alpha=0.15)
        reported = study.reported(g)
        if "median" in reported:
            ax.axhline(reported["median"], color="k", ls="--", lw=1, label=f"published median {reported['median']:g} {study.analyte.units}")
        ax.set_title(study.groups[g].label)
        ax.set_xlabel(f"{cx.label.split(' (')[0]} ({cx.units})" if cx.units else cx.label)
        ax.set_yscale("log")
        ax.legend(fontsize=6.5, loc="lower left")
    axes[0][0].set_ylabel(f"{study.analyte.name} ({study.analyte.units}, log scale)")
    fig.suptitle(f"{study.analyte.name} against {cx.label.split(' (')[0]}: predictive cohorts and posterior regression (90% band)", fontsize=10)
    fig.tight_layout()
    return fig

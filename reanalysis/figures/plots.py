"""Figures for review.  Functions here take results and return matplotlib figures; they
never sample and never save (the caller decides where figures go).

The figures of a fit are drawn for a page: :data:`WIDTH` inches wide (the text width of A4
with 2.5 cm margins), with text of at least 7 pt at that size.  Words come from the study
file (:mod:`models.wording`), legends sit outside the data, and log axes are labelled
with plain numbers (200, 500, 1000), not powers of ten."""
from __future__ import annotations

import functools
import math
import textwrap

import arviz as az
import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from models import wording as words  # noqa: E402
from models.estimands import HDI_PROB  # noqa: E402
from models.study import STATISTIC_LABELS, Study  # noqa: E402

#: Width of the figures in inches: the text width of an A4 page with 2.5 cm margins, where
#: the fonts below print at their nominal size.
WIDTH = 6.3
#: Smallest font size, in points at :data:`WIDTH`, that prints readably.
MIN_FONT = 7.0
_STYLE = {
    "font.size": 8.0,
    "axes.titlesize": 8.0,
    "axes.labelsize": 8.0,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7.5,
    "legend.title_fontsize": 7.5,
    "figure.titlesize": 9.0,
}
_BLUE = "steelblue"
_PUBLISHED = dict(color="crimson", lw=2)
#: Histograms as one filled outline each, not one patch per bar: drawing the bars of the
#: predictive-check and prior-versus-posterior panels was most of those figures' time.
_FILLED = dict(histtype="stepfilled")
#: Mantissas of the labelled ticks of a log axis, coarsest first (see :func:`plain_log_ticks`).
_LOG_MANTISSAS = ((1,), (1, 2, 5), (1, 2, 3, 5), (1, 1.5, 2, 3, 4, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8))


def page_style(builder):
    """Draw ``builder``'s figure in the page style (:data:`_STYLE`): every text artist takes
    its size when it is created, so the sizes hold wherever the figure is saved."""

    @functools.wraps(builder)
    def styled(*args, **kwargs):
        with plt.rc_context(_STYLE):
            return builder(*args, **kwargs)

    return styled


def plain_log_ticks(axis, min_ticks: int = 4) -> None:
    """Label a log axis with plain numbers at 1-2-5-like steps, enough of them to read the
    axis (matplotlib labels only powers of ten, 1 alone on an axis from 1 to 5, or writes
    2x10^2).  Call after everything is drawn: the ticks are fixed for the current limits."""
    lo, hi = sorted(axis.get_view_interval())
    ticks: list[float] = []
    for mantissas in _LOG_MANTISSAS:
        decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
        ticks = sorted(m * 10.0**k for k in decades for m in mantissas if lo <= m * 10.0**k <= hi)
        if len(ticks) >= min_ticks:
            break
    if len(ticks) < min_ticks:
        # a narrow range (less than a factor of about 1.5): evenly spaced round numbers
        ticks = [t for t in matplotlib.ticker.MaxNLocator(nbins=5).tick_values(lo, hi) if lo <= t <= hi]
    axis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.12g}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _wrap(text: str, width: int) -> str:
    """``text`` in lines of at most ``width`` characters (a panel's width at 8 pt)."""
    return "\n".join(textwrap.wrap(text, width))


def _three_ticks(ax) -> None:
    """At least three labelled ticks on each linear axis of ``ax`` (matplotlib leaves two on
    a narrow panel, too few to read a scale from)."""
    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() == "linear" and isinstance(axis.get_major_locator(), matplotlib.ticker.AutoLocator):
            axis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 5, 10], min_n_ticks=3))


def _interval_row(ax, y: float, x: np.ndarray, color: str = _BLUE) -> None:
    """One forest-plot row: 95% HDI (thin bar), 50% interval (thick bar), median (circle)."""
    lo, hi = az.hdi(x, hdi_prob=HDI_PROB)
    q25, q50, q75 = np.quantile(x, [0.25, 0.5, 0.75])
    ax.plot([lo, hi], [y, y], color=color, lw=1.5)
    ax.plot([q25, q75], [y, y], color=color, lw=5)
    ax.plot(q50, y, "o", color="white", mec=color, mew=1.5, ms=5)


def _interval_key(null: str) -> list:
    """Legend entries of the forest plots' symbols."""
    return [
        Line2D([], [], marker="o", color="white", mec=_BLUE, mew=1.5, ms=5, ls="none", label="posterior median"),
        Line2D([], [], color=_BLUE, lw=5, label="50% interval"),
        Line2D([], [], color=_BLUE, lw=1.5, label="95% HDI"),
        Line2D([], [], color="k", ls=":", lw=1, label=null),
    ]


@page_style
def ratio_figure(idata: az.InferenceData, study: Study) -> plt.Figure:
    """Posterior of each comparison's ratios of medians and of means, with the ratios of the
    published statistics and any claimed fold threshold marked.

    Each panel's title gives the posterior median and 95% HDI and the published ratio; the
    symbols are explained in one legend below the panels."""
    post = idata.posterior
    comps = list(study.comparisons.items())
    fig, axes = plt.subplots(len(comps), 2, figsize=(WIDTH, 0.9 + 2.5 * len(comps)), squeeze=False, layout="constrained")
    any_claim = False
    for row, (cid, comp) in enumerate(comps):
        a, b = comp.groups
        ra, rb = study.reported(a), study.reported(b)
        for col, (var, stat) in enumerate((("ratio_of_medians", "median"), ("ratio_of_means", "mean"))):
            ax = axes[row, col]
            x = post[var].sel(comparison=cid).values.ravel()
            ax.hist(x, bins=60, density=True, color=_BLUE, alpha=0.75, **_FILLED)
            lo, hi = az.hdi(x, hdi_prob=HDI_PROB)
            ax.axvspan(lo, hi, color=_BLUE, alpha=0.12, lw=0)
            title = [f"ratio of {stat}s: {np.median(x):.2f} (95% HDI {lo:.2f}-{hi:.2f})"]
            if stat in ra and stat in rb:
                pub = ra[stat] / rb[stat]
                ax.axvline(pub, **_PUBLISHED)
                title.append(f"published {stat}s {ra[stat]:g} / {rb[stat]:g} = {pub:.2f}")
            for claim in comp.claims.values():
                if claim.statistic == var and claim.value is not None:
                    any_claim = True
                    ax.axvline(claim.value, color="k", ls="--")
                    title.append(f"claim: ratio {claim.relation} {claim.value:g}")
            ax.set_title("\n".join(title))
            ax.set_xlabel(f"{study.groups[a].label} / {study.groups[b].label}\n(ratio of {stat}s, fold)")
            ax.set_ylabel("posterior density")
            _three_ticks(ax)
    key = [
        Patch(color=_BLUE, alpha=0.75, label="posterior"),
        Patch(color=_BLUE, alpha=0.12, label="95% HDI"),
        Line2D([], [], **_PUBLISHED, label="ratio of the published values"),
    ]
    if any_claim:
        key.append(Line2D([], [], color="k", ls="--", label="claimed threshold"))
    fig.legend(handles=key, loc="outside lower center", ncol=2)
    fig.suptitle(f"Ratio of {study.analyte.name} between groups")
    return fig


@page_style
def group_values_figure(idata: az.InferenceData, study: Study) -> plt.Figure:
    """Posterior median and 95% HDI of each group's population median and mean, against the
    published sample median and mean (log axis labelled in the analyte's units)."""
    post = idata.posterior
    units = study.analyte.units
    rows = 2 * len(study.group_ids)
    fig, ax = plt.subplots(figsize=(WIDTH, 1.4 + 0.3 * rows + 0.25 * (len(study.group_ids) - 1)), layout="constrained")
    y = 0.0
    ticks, labels = [], []
    for g in study.group_ids:
        rep = study.reported(g)
        for var, color in (("median", "darkorange"), ("mean", _BLUE)):
            x = post[var].sel(group=g).values.ravel()
            lo, hi = az.hdi(x, hdi_prob=HDI_PROB)
            ax.plot([lo, hi], [y, y], color=color, lw=4, solid_capstyle="butt")
            ax.plot(np.median(x), y, "o", color="white", mec=color, mew=1.5, ms=6)
            if var in rep:
                ax.plot(rep[var], y, "D", color="crimson", ms=5)
            ticks.append(y)
            labels.append(f"{study.groups[g].label}: {STATISTIC_LABELS[var]}")
            y += 1
        y += 0.5
    ax.set_yticks(ticks, labels)
    ax.set_ylim(y - 1, -0.6)
    ax.set_xscale("log")
    ax.margins(x=0.08)
    plain_log_ticks(ax.xaxis)
    ax.set_xlabel(f"{study.analyte.name} ({units}, log scale)")
    key = [
        Line2D([], [], color="gray", lw=4, label="population value: 95% HDI"),
        Line2D([], [], marker="o", color="white", mec="gray", mew=1.5, ls="none", label="posterior median"),
        Line2D([], [], marker="D", color="crimson", ls="none", ms=5, label="published sample value"),
    ]
    fig.legend(handles=key, loc="outside lower center", ncol=3)
    ax.set_title("Group medians and means: model versus paper")
    return fig


@page_style
def predictive_figure(stats: dict[str, np.ndarray], checks: pd.DataFrame, study: Study) -> plt.Figure:
    """Posterior predictive distribution of every published statistic, published value marked.

    Titles give the verdict and the value it was judged on, as in ``checks``: the two-sided
    predictive p-value of a number or exact claim, else the share of simulated cohorts in
    which the claim holds.
    """
    from models.checks import format_p

    n = len(checks)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH * cols / 3, 0.5 + 1.75 * rows), squeeze=False)
    for ax, (_, row) in zip(axes.ravel(), checks.iterrows()):
        sim = stats[row["key"]]
        if row["kind"] == "number":
            ax.hist(sim, bins=50, color="gray", alpha=0.7, **_FILLED)
            ax.axvline(row["published"], **_PUBLISHED)
            ax.set_xlabel(_wrap(f"{row['item']} ({row['units']})", 32))
            ax.set_title(f"{row['verdict']}:\np (two-sided) {format_p(row['p_two_sided'])}")
        elif row["key"].startswith("association."):
            # a covariate association: the cohort's estimate, a percent change per unit of
            # the covariate; the claim is a direction (and significance) or an approximate value
            ax.hist(sim, bins=50, color="gray", alpha=0.7, **_FILLED)
            ax.axvline(0.0, color="k", ls=":", lw=1)
            claim = row["published"].split()
            if claim[0] in ("~", "<", ">", "="):
                ax.axvline(float(claim[1]), **_PUBLISHED)
            assoc = study.associations.get(row["key"].split(".", 1)[1])
            what = words.effect_contrast(study, assoc.covariate) if assoc is not None else words.readable(row["key"].split(".", 1)[1])
            ax.set_xlabel(_wrap(f"simulated estimate: {what} (% change)", 32))
            ax.set_title(f"{row['verdict']}:\n'{row['published']}' holds in {row['share_claim_holds']:.0%}")
        else:
            cid, claim_id = row["key"].split(".", 1)
            # a two-group comparison's claim, or the p of a test across several groups
            claim = (study.comparisons.get(cid) or study.group_tests[cid]).claims[claim_id]
            if claim.statistic == "difference_ci":
                # the interval of t values the published confidence interval stands for
                from models.two_group import difference_ci_t

                ax.hist(sim, bins=50, color="gray", alpha=0.7, **_FILLED)
                ax.axvspan(*difference_ci_t(study, cid, claim_id), color=_PUBLISHED["color"], alpha=0.35, lw=0, zorder=0)
                ax.set_xlabel("simulated t statistic (first group minus second)")
                ax.set_title(f"{row['verdict']}:\np (two-sided) {format_p(row['p_two_sided'])}")
                _three_ticks(ax)
                continue
            statistic = words.CLAIM_STATISTIC_NAMES.get(claim.statistic, words.readable(claim.statistic))
            unit = "" if row["units"] == statistic else f"{row['units']}, "
            # log axis: p-values span orders of magnitude; 1e-300 keeps p = 0 on the axis
            floor = 1e-300
            ax.hist(np.log10(np.maximum(sim, floor)), bins=50, color="gray", alpha=0.7, **_FILLED)
            ax.set_xlabel(f"simulated {statistic} ({unit}log10)")
            if claim.relation == "=":
                # the values that print as the published one; a p printed as 0.000 has no
                # lower end on a log axis, so its band starts at the axis' left edge
                low, high = claim.printed_interval
                xmin, xmax = ax.get_xlim()
                left = np.log10(low) if low > 0 else xmin
                ax.axvspan(left, np.log10(high), color=_PUBLISHED["color"], alpha=0.35, lw=0, zorder=0)
                ax.set_xlim(min(xmin, left), max(xmax, np.log10(high)))
                ax.set_title(f"{row['verdict']}:\np (two-sided) {format_p(row['p_two_sided'])}")
            else:
                ax.axvline(np.log10(claim.value), **_PUBLISHED)
                ax.set_title(f"{row['verdict']}:\nclaim holds in {row['share_claim_holds']:.0%}")
        _three_ticks(ax)
    for ax in axes[:, 0]:
        ax.set_ylabel("simulated cohorts")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.suptitle("Posterior predictive check: published value (red)\nagainst simulated cohorts of the published sizes")
    fig.tight_layout()
    return fig


def rank_figure(idata: az.InferenceData, var_names, study: Study | None = None) -> plt.Figure:
    """ArviZ rank plots of the sampled parameters (uniform ranks across chains = good mixing),
    at page width in two columns, each panel titled with the parameter in the study file's
    words (:func:`models.wording.parameter_label`).

    Drawn as deviations from the uniform count (``kind="vlines"``): with some 20 panels the
    bars took twice as long to draw."""
    from arviz.sel_utils import xarray_var_iter

    panels = list(xarray_var_iter(idata.posterior[list(var_names)], combined=True, skip_dims={"chain", "draw"}))
    cols = min(2, len(panels))
    rows = math.ceil(len(panels) / cols)
    # about 3.1 x 1.3 inches a panel: ArviZ's own size for some 20 panels was 22 x 33 inches,
    # 9 megapixels at our dpi, and saving them took 3 s
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, 0.7 + 1.3 * rows), squeeze=False)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    az.plot_rank(idata, var_names=list(var_names), kind="vlines", ax=axes.ravel()[: len(panels)],
                 vlines_kwargs={"lw": 1.0}, marker_vlines_kwargs={"marker": "o", "lw": 0, "markersize": 3.5})
    for ax, (name, selection, _, _) in zip(axes.ravel(), panels):
        ax.set_title(_wrap(words.parameter_label(study, name, selection), 48), fontsize=_STYLE["axes.titlesize"])
        ax.tick_params(labelsize=_STYLE["xtick.labelsize"])
        ax.set_xlabel("rank (all chains)" if ax in axes[-1] else "", fontsize=_STYLE["axes.labelsize"])
        ax.set_ylabel("chain", fontsize=_STYLE["axes.labelsize"])
    fig.suptitle("Rank plots by chain: each chain's counts should scatter\nclosely around the dashed line (uniform ranks)")
    fig.tight_layout()
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


@page_style
def effects_forest_figure(idata: az.InferenceData, study: Study) -> plt.Figure:
    """Forest plot of the between-group effects: the ratios of medians and of means (log
    axis) above the probability of superiority; median, 50% interval and 95% HDI, the
    no-difference value dotted, the symbols explained below the panels."""
    post = idata.posterior
    ratios, probs = [], []
    for cid, comp in study.comparisons.items():
        a, b = (study.groups[g].label for g in comp.groups)
        for var, stat in (("ratio_of_medians", "medians"), ("ratio_of_means", "means")):
            ratios.append((f"{a} / {b}:\nratio of {stat}", post[var].sel(comparison=cid).values.ravel()))
        probs.append((f"{a} vs {b}", post["prob_superiority"].sel(comparison=cid).values.ravel()))
    fig, axes = plt.subplots(
        2, 1, figsize=(WIDTH, 2.2 + 0.42 * (len(ratios) + len(probs))), layout="constrained",
        gridspec_kw={"height_ratios": [len(ratios) + 1.2, len(probs) + 1.2]},
    )
    panels = (
        (axes[0], ratios, 1.0, "ratio (fold, log scale)"),
        (axes[1], probs, 0.5, "probability of superiority (a random subject of the first group\nhas a higher level than one of the second)"),
    )
    for ax, rows, null, xlabel in panels:
        for y, (_, x) in enumerate(rows):
            _interval_row(ax, y, x)
        ax.axvline(null, color="k", ls=":", lw=1)
        ax.set_yticks(range(len(rows)), [r[0] for r in rows])
        ax.set_ylim(len(rows) - 0.4, -0.6)
        ax.set_xlabel(xlabel)
    axes[0].set_xscale("log")
    axes[0].margins(x=0.06)
    plain_log_ticks(axes[0].xaxis)
    lo, hi = axes[1].get_xlim()
    axes[1].set_xlim(max(lo, -0.02), min(hi, 1.02))
    _three_ticks(axes[1])
    fig.legend(handles=_interval_key("no difference (ratio 1, probability 0.5)"), loc="outside lower center", ncol=2)
    fig.suptitle("Between-group effects: median, 50% and 95% intervals")
    return fig


def _peak_scaled(ax, draws: np.ndarray, bins: int = 40, **style) -> float:
    """Histogram of ``draws`` between their own 0.5% and 99.5% quantiles, scaled to a peak
    of 1, as a filled outline; returns the draws' SD.  Each distribution gets its own bins
    so that a posterior fifty times narrower than its prior is more than one bar, and its
    own peak so that the prior stays visible next to it."""
    q = np.quantile(draws, [0.005, 0.995])
    if q[1] <= q[0]:
        q = (q[0] - 0.5, q[1] + 0.5)
    counts, edges = np.histogram(draws, bins=np.linspace(q[0], q[1], bins + 1))
    ax.stairs(counts / max(counts.max(), 1), edges, fill=True, **style)
    return float(np.std(draws))


@page_style
def prior_posterior_figure(idata: az.InferenceData, var_names, scales: dict[str, str] | None = None, study: Study | None = None) -> plt.Figure:
    """Prior (from ``idata.prior``, drawn by the caller) against posterior of each sampled
    parameter, one panel per coordinate; each distribution scaled to a peak of 1, so a
    prior stays visible beside a posterior many times narrower.

    Parameters
    ----------
    idata : az.InferenceData
        With ``posterior`` and ``prior`` groups holding ``var_names``.
    var_names : list of str
        The sampled parameters.
    scales : dict, optional
        Parameter name -> what its axis measures (a model's ``PARAMETER_SCALES``).  A
        parameter whose scale starts with "standardised" (the unit-free offsets of a
        hierarchical model) gets one panel with all its coordinates overlaid.
    study : Study, optional
        The study file, for group and covariate labels (identifiers made readable without).
    """
    import itertools

    scales = scales or {}
    panels = []
    for v in var_names:
        da = idata.posterior[v]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        combos = [dict(zip(extra, combo)) for combo in itertools.product(*(da[d].values for d in extra))]
        scale = scales.get(v)
        if scale and scale.startswith("standardised") and len(combos) > 1:
            label = words.parameter_label(study, v, {})
            panels.append((label, f"{scale}; {len(combos)} overlaid", [idata.prior[v].sel(c).values.ravel() for c in combos], [da.sel(c).values.ravel() for c in combos]))
        else:
            for sel in combos:
                label = words.parameter_label(study, v, sel)
                panels.append((label, scale, [idata.prior[v].sel(sel).values.ravel()], [da.sel(sel).values.ravel()]))
    cols = min(3, len(panels))
    rows_n = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(WIDTH, 0.7 + 1.8 * rows_n), squeeze=False, layout="constrained")
    for ax, (label, scale, priors, posts) in zip(axes.ravel(), panels):
        prior = np.concatenate(priors)
        prior_sd = _peak_scaled(ax, prior, color="gray", alpha=0.45, lw=0)
        ratios = []
        for post in posts:
            if len(posts) == 1:
                sd = _peak_scaled(ax, post, color=_BLUE, alpha=0.75, lw=0)
            else:
                counts, edges = np.histogram(post, bins=np.linspace(*np.quantile(post, [0.005, 0.995]), 31))
                ax.stairs(counts / max(counts.max(), 1), edges, color=_BLUE, lw=0.8, alpha=0.8)
                sd = float(np.std(post))
            ratios.append(sd / prior_sd)
        # wrapped to the panel's width (about 30 characters at 8 pt)
        ax.set_xlabel(_wrap(label, 30) + ("\n" + _wrap(f"({scale})", 32) if scale else ""))
        _three_ticks(ax)
        ax.set_yticks([0, 0.5, 1])
        ax.set_ylim(0, 1.08)
        ax.set_title(f"posterior/prior SD: {ratios[0]:.2f}" if len(ratios) == 1 else f"posterior/prior SD: {min(ratios):.2f}-{max(ratios):.2f}")
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("density (peak = 1)")
    key = [Patch(color="gray", alpha=0.45, label="prior"), Patch(color=_BLUE, alpha=0.75, label="posterior")]
    fig.legend(handles=key, loc="outside lower center", ncol=2)
    fig.suptitle("Prior versus posterior of the sampled parameters")
    return fig


@page_style
def percent_effects_figure(idata: az.InferenceData, study: Study, info=None) -> plt.Figure:
    """Forest plot of the covariate effects as a percent change in the analyte (pooled and
    per group): median, 50% interval and 95% HDI, zero dotted, each row named by what one
    unit of the covariate compares (study file labels) with its informativeness label."""
    post = idata.posterior
    labels_by_key = dict(zip(info["estimand"], info["label"])) if info is not None and len(info) else {}
    rows = []
    for c in post["effect_percent"].covariate.values:
        name = words.effect_contrast(study, c)
        key = f"effect_percent[{c}]"
        rows.append((f"{name}: pooled", post["effect_percent"].sel(covariate=c).values.ravel(), labels_by_key.get(key, "")))
        for g in post["slope_percent"].group.values:
            x = post["slope_percent"].sel(group=g, covariate=c).values.ravel()
            if np.all(np.isnan(x)) or post["slope_percent"].sel(covariate=c).notnull().all(dim=("chain", "draw")).sum() < 2:
                continue
            rows.append((f"{name}: {words.group_label(study, g)}", x, labels_by_key.get(f"slope_percent[{g}, {c}]", "")))
    if "category_spread_percent" in post:
        rows.append((f"spread of the effects of {words.category_name(study)} (1 SD)", post["category_spread_percent"].values.ravel(), labels_by_key.get("category_spread_percent", "")))
    fig, ax = plt.subplots(figsize=(WIDTH, 1.6 + 0.42 * len(rows)), layout="constrained")
    for y, (_, x, _) in enumerate(rows):
        _interval_row(ax, y, x)
    ax.axvline(0.0, color="k", ls=":", lw=1)
    _three_ticks(ax)
    # the source label on its own wrapped line, so a long one cannot push the axes off the figure
    ticks = ["\n".join(textwrap.wrap(r[0], 40)) + ("\n[" + "\n ".join(textwrap.wrap(r[2], 40)) + "]" if r[2] else "") for r in rows]
    ax.set_yticks(range(len(rows)), ticks)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel(f"change in {study.analyte.name} (%), for the contrast named on each row")
    fig.legend(handles=_interval_key("no effect"), loc="outside lower center", ncol=4)
    ax.set_title("Covariate effects: median, 50% and 95% intervals\n[in brackets: where each estimate comes from]")
    return fig


@page_style
def covariate_figure(view: dict, study: Study) -> plt.Figure:
    """Levels against a covariate (age) by group and by a published breakdown (sex):
    subjects of a few posterior predictive cohorts, the posterior typical level per
    breakdown level (median and 90% band, other covariates at their averages) and the
    group's published median.  ``view`` comes from :func:`models.effects.covariate_view`.
    One legend below the panels explains colours, marker shapes and lines."""
    groups = list(dict.fromkeys(c["group"] for c in view["cohorts"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(WIDTH, 4.2), sharey=True, squeeze=False, layout="constrained")
    cx, cs = study.covariates[view["x"]], study.covariates[view["split"]]
    split_name = words.covariate_name(study, view["split"])
    colours = {1.0: "tab:red", 0.0: "tab:blue"}
    # the other level by its own name when the breakdown has two (female -> male)
    breakdown, _, level = (cs.counts or "").partition(".")
    others = {lv for g in groups for lv in study.groups[g].counts.get(breakdown, {})} - {level}
    names = {1.0: split_name, 0.0: words.readable(others.pop()) if len(others) == 1 else f"not {split_name}"}
    markers = "o^sDv"
    n_cohorts = 0
    for ax, g in zip(axes[0], groups):
        own = [c for c in view["cohorts"] if c["group"] == g]
        n_cohorts = max(n_cohorts, len(own))
        for r, c in enumerate(own):
            for v in (0.0, 1.0):
                sel = c["split"] == v
                ax.scatter(c["x"][sel], c["level"][sel], s=9, alpha=0.55, color=colours[v], marker=markers[r % len(markers)], lw=0)
        for v in (0.0, 1.0):
            grid, med, lo, hi = view["lines"][(g, v)]
            ax.plot(grid, med, color=colours[v], lw=2)
            ax.fill_between(grid, lo, hi, color=colours[v], alpha=0.15, lw=0)
        reported = study.reported(g)
        if "median" in reported:
            ax.axhline(reported["median"], color="k", ls="--", lw=1)
        ax.set_title(f"{study.groups[g].label} (published median {reported['median']:g} {study.analyte.units})" if "median" in reported else study.groups[g].label)
        ax.set_xlabel(f"{words.covariate_name(study, view['x'])} ({cx.units})" if cx.units else cx.label)
        ax.set_yscale("log")
    plain_log_ticks(axes[0][0].yaxis)
    axes[0][0].set_ylabel(f"{study.analyte.name} ({study.analyte.units}, log scale)")
    key = [
        ((Patch(color=colours[v], alpha=0.15, lw=0), Line2D([], [], color=colours[v], lw=2)), f"{names[v]}: subjects; typical level (median, 90% band)")
        for v in (1.0, 0.0)
    ]
    key.append((Line2D([], [], color="k", ls="--", lw=1), "published median of the group"))
    for r in range(n_cohorts):
        key.append((Line2D([], [], marker=markers[r % len(markers)], color="gray", ls="none", ms=4), f"simulated subjects, cohort {r + 1}"))
    fig.legend([k[0] for k in key], [k[1] for k in key], loc="outside lower center", ncol=2)
    fig.suptitle(f"{study.analyte.name} against {words.covariate_name(study, view['x'])}: simulated cohorts and posterior regression")
    return fig

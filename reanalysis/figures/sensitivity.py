"""Figures of a sensitivity run.  Functions take the results table and return matplotlib
figures; they never sample and never save.  They are drawn for a page like the fit's
figures (:mod:`reanalysis.figures.plots`): 6.3 inches wide, text of at least 7 pt, words from the study
file."""
from __future__ import annotations

import textwrap

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from models import wording as words  # noqa: E402
from reanalysis.figures.plots import WIDTH, page_style, plain_log_ticks  # noqa: E402
from models.study import Study  # noqa: E402

_DEFAULT = dict(color="crimson")
_OTHER = dict(color="steelblue")
_FAILED = dict(color="0.6")


#: Longest scenario name shown in full; longer ones are cut (the tables have them whole).
_NAME_CHARS = 48


@page_style
def forest_figure(table: pd.DataFrame, estimand: str, default: str = "default", study: Study | None = None) -> plt.Figure:
    """One estimand across scenarios: a row per scenario (grid order, default on top and
    in red), the 95% HDI as a bar and the posterior median as a dot; the default's HDI is
    shaded across all rows and the estimand's null value (if any) dashed.  Scenarios whose
    diagnostics failed are grey and marked, scenarios that share another's posterior (an
    assumption the model does not read) say so; claim probabilities (no HDI) are dots only.

    Parameters
    ----------
    table : pd.DataFrame
        The sensitivity results table (:func:`reanalysis.sensitivity.results_table`).
    estimand : str
        Estimand key, e.g. ``ratio_of_medians[control_vs_ms]``.
    default : str, optional
        Name of the default scenario.
    study : Study, optional
        The study file: the estimand is named with its group and covariate labels
        (:func:`models.wording.estimand_label`; identifiers made readable without).
    """
    t = table[table["estimand"] == estimand].reset_index(drop=True)
    n = len(t)
    fig, ax = plt.subplots(figsize=(WIDTH, 1.6 + 0.24 * n), layout="constrained")
    d = t[t["scenario"] == default]
    if len(d) and np.isfinite(d["hdi_low"].iloc[0]):
        ax.axvspan(d["hdi_low"].iloc[0], d["hdi_high"].iloc[0], color=_DEFAULT["color"], alpha=0.08, lw=0)
    if len(d):
        ax.axvline(d["median"].iloc[0], color=_DEFAULT["color"], lw=0.8, alpha=0.6)
    null = t["null"].dropna()
    null_value = float(null.iloc[0]) if len(null) else None
    # ratios on a log axis: symmetric in "k-fold up or down"
    log_scale = null_value == 1.0 and (t[["hdi_low", "median"]].min().min() > 0)
    lo, hi = _limits(t, 0.5 if estimand.startswith("P(") else null_value, log_scale)
    labels = []
    for i, r in t.iterrows():
        y = n - 1 - i
        style = _DEFAULT if r["scenario"] == default else (_FAILED if r["status"] != "ok" else _OTHER)
        if np.isfinite(r["hdi_low"]) and np.isfinite(r["hdi_high"]):
            a, b = max(r["hdi_low"], lo), min(r["hdi_high"], hi)
            ax.plot([a, b], [y, y], lw=3, solid_capstyle="butt", **style)
            # an interval beyond the axis (a badly identified scenario) ends in an arrow
            if r["hdi_low"] < lo:
                ax.plot([lo], [y], marker="<", ms=6, **style)
            if r["hdi_high"] > hi:
                ax.plot([hi], [y], marker=">", ms=6, **style)
        if lo <= r["median"] <= hi:
            ax.plot([r["median"]], [y], "o", ms=5, mfc="white" if r["status"] != "ok" else style["color"], mec=style["color"])
        scenario = words.readable(r["scenario"])
        name = scenario if len(scenario) <= _NAME_CHARS else scenario[: _NAME_CHARS - 3] + "..."
        shared = r.get("same_posterior_as")
        note = f" (fit of {words.readable(shared)})" if isinstance(shared, str) and shared else ""
        labels.append(name + note + (" (failed)" if r["status"] != "ok" else ""))
    if log_scale:
        ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    if log_scale:
        plain_log_ticks(ax.xaxis)
    else:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 5, 10], min_n_ticks=3))
    if estimand.startswith("P(") and lo <= 0.5 <= hi:
        ax.axvline(0.5, color="black", ls="--", lw=0.8)
    if null_value is not None and lo <= null_value <= hi:
        ax.axvline(null_value, color="black", ls="--", lw=0.8)
    ax.set_yticks(range(n))
    ax.set_yticklabels(labels[::-1])
    for tick, (_, r) in zip(ax.get_yticklabels()[::-1], t.iterrows()):
        if r["scenario"] == default:
            tick.set_color(_DEFAULT["color"])
            tick.set_fontweight("bold")
    label, units = words.estimand_label(study, estimand)
    if not units and t["units"].notna().any():
        units = str(t["units"].dropna().iloc[0])  # an estimand figure_labels does not know
    interval = "posterior probability; dashed: 0.5" if estimand.startswith("P(") else "dot: posterior median, bar: 95% HDI"
    extra = "; log scale" if log_scale else ""
    if null_value is not None:
        extra += f"; dashed: no effect ({null_value:g})"
    ax.set_xlabel(f"{units}\n{interval}{extra}" if units else f"{interval}{extra}")
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_title("\n".join(textwrap.wrap(label, 80)))
    ax.grid(axis="x", alpha=0.3)
    return fig


def _limits(t: pd.DataFrame, null: float | None, log_scale: bool) -> tuple[float, float]:
    """x-limits covering the intervals of the scenarios that passed their diagnostics (all
    scenarios if none did), the null value, and a margin; failed scenarios' intervals may
    be far wider and are clipped with an arrow instead of squashing the rest."""
    ok = t[t["status"] == "ok"]
    use = ok if len(ok) else t
    vals = pd.concat([use["hdi_low"], use["hdi_high"], use["median"]]).dropna().to_numpy(dtype=float)
    if null is not None:
        vals = np.append(vals, null)
    if not len(vals):
        return 0.0, 1.0
    if log_scale:
        a, b = np.log(vals.min()), np.log(vals.max())
        pad = 0.08 * (b - a) or 0.1
        return float(np.exp(a - pad)), float(np.exp(b + pad))
    a, b = vals.min(), vals.max()
    pad = 0.08 * (b - a) or 0.05 * (abs(a) or 1.0)
    return float(a - pad), float(b + pad)

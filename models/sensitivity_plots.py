"""Figures of a sensitivity run.  Functions take the results table and return matplotlib
figures; they never sample and never save."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

_DEFAULT = dict(color="crimson")
_OTHER = dict(color="steelblue")
_FAILED = dict(color="0.6")


def forest_figure(table: pd.DataFrame, estimand: str, default: str = "default") -> plt.Figure:
    """One estimand across scenarios: a row per scenario (grid order, default on top and
    in red), the 95% HDI as a bar and the posterior median as a dot; the default's HDI is
    shaded across all rows and the estimand's null value (if any) dashed.  Scenarios whose
    diagnostics failed are grey and marked, scenarios that share another's posterior (an
    assumption the model does not read) say so; claim probabilities (no HDI) are dots only.

    Parameters
    ----------
    table : pd.DataFrame
        The sensitivity results table (:func:`models.sensitivity.results_table`).
    estimand : str
        Estimand key, e.g. ``ratio_of_medians[control_vs_ms]``.
    """
    t = table[table["estimand"] == estimand].reset_index(drop=True)
    n = len(t)
    fig, ax = plt.subplots(figsize=(8.5, 1.2 + 0.28 * n))
    d = t[t["scenario"] == default]
    if len(d) and np.isfinite(d["hdi_low"].iloc[0]):
        ax.axvspan(d["hdi_low"].iloc[0], d["hdi_high"].iloc[0], color=_DEFAULT["color"], alpha=0.08, lw=0)
    if len(d):
        ax.axvline(d["median"].iloc[0], color=_DEFAULT["color"], lw=0.8, alpha=0.6)
    labels = []
    for i, r in t.iterrows():
        y = n - 1 - i
        style = _DEFAULT if r["scenario"] == default else (_FAILED if r["status"] != "ok" else _OTHER)
        if np.isfinite(r["hdi_low"]) and np.isfinite(r["hdi_high"]):
            ax.plot([r["hdi_low"], r["hdi_high"]], [y, y], lw=3, solid_capstyle="butt", **style)
        ax.plot([r["median"]], [y], "o", ms=5, mfc="white" if r["status"] != "ok" else style["color"], mec=style["color"])
        name = r["scenario"] if len(r["scenario"]) <= 60 else r["scenario"][:57] + "..."
        shared = r.get("same_posterior_as")
        note = f" [fit of {shared}]" if isinstance(shared, str) and shared else ""
        labels.append(name + note + (" (failed)" if r["status"] != "ok" else ""))
    null = t["null"].dropna()
    if len(null):
        ax.axvline(float(null.iloc[0]), color="black", ls="--", lw=0.8, label=f"no effect ({float(null.iloc[0]):g})")
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.set_yticks(range(n))
    ax.set_yticklabels(labels[::-1], fontsize=8)
    for tick, (_, r) in zip(ax.get_yticklabels()[::-1], t.iterrows()):
        if r["scenario"] == default:
            tick.set_color(_DEFAULT["color"])
            tick.set_fontweight("bold")
    units = t["units"].dropna().iloc[0] if t["units"].notna().any() else ""
    label = t["label"].dropna().iloc[0] if t["label"].notna().any() else estimand
    interval = "posterior probability" if estimand.startswith("P(") else "posterior median and 95% HDI"
    ax.set_xlabel(f"{label} ({units})")
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_title(f"{estimand}: {interval} per scenario", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig

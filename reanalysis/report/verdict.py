"""The verdict: a few plain sentences that say what a fit found, for the top of the report
and the last lines of the console.

Generated from the result tables with the study file's labels, never written per study:

1. the main difference (the first comparison's ratio of population medians) with its
   direction, size, 95% interval and the posterior probability of that direction, stated
   with its Monte Carlo precision;
2. which covariate effects the published numbers inform and which rest on assumptions
   (the informativeness labels);
3. which published numbers and claims the model cannot reproduce (the checks);
4. when reference measurements are declared and the levels are implausible as absolute
   concentrations, that only ratios can be read;
5. a failed sampler gate, first of all, when it failed.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from models.study import Study
from models.wording import effect_contrast

#: The estimand whose direction and size the verdict states first.
MAIN_ESTIMAND = "ratio_of_medians"
#: Informativeness labels (reanalysis.informativeness) grouped into what the verdict says.
_INFORMED = ("from the published numbers",)
_ASSUMED = ("from a qualitative claim read through assumed covariate distributions",)
_PRIOR = ("mostly prior/assumption",)


def direction_probability(draws: np.ndarray) -> str:
    """``P(ratio > 1)`` from posterior draws ``(chain, draw)``, as text with its precision.

    When every draw agrees the probability is stated as a bound (the rule of three: with
    ``N`` draws, the 95% upper bound of a zero share is ``3/N``); otherwise it is rounded
    to the digits its Monte Carlo standard error supports (chain-aware, from ArviZ).
    """
    import arviz as az

    draws = np.asarray(draws, dtype=float)
    inside = (draws > 1.0).astype(float)
    n = inside.size
    p = float(inside.mean())
    if p in (0.0, 1.0):
        bound = 3.0 / n
        return f"{'above' if p == 1.0 else 'below'} {_fmt_prob(1 - bound if p == 1.0 else bound)} (all {n:,} posterior draws agree)"
    se = float(np.ravel(az.mcse(np.atleast_2d(inside), method="mean"))[0])
    # as many digits as the Monte Carlo error supports, but never a rounded 0 or 1, which
    # would read as certainty the draws do not show
    digits = max(1, -math.floor(math.log10(2.0 * se))) if se > 0 else 3
    while digits < 4 and round(p, digits) in (0.0, 1.0):
        digits += 1
    return f"{p:.{digits}f} (Monte Carlo error {se:.{max(digits, 3)}f})"


def _fmt_prob(p: float) -> str:
    return f"{math.floor(p * 1000) / 1000:.3f}" if p > 0.5 else f"{math.ceil(p * 1000) / 1000:.3f}"


def _number(x: float) -> str:
    if not np.isfinite(x):
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}".rstrip("0").rstrip(".")
    return f"{x:.2f}"


def _percent(x: float) -> str:
    return f"{x:+.0f}%"


def main_difference(study: Study, estimands: pd.DataFrame, posterior) -> str | None:
    """The first comparison's ratio of population medians as a sentence (None without one)."""
    if not study.comparisons:
        return None
    cid, comp = next(iter(study.comparisons.items()))
    key = f"{MAIN_ESTIMAND}[{cid}]"
    table = estimands.set_index("estimand")
    if key not in table.index:
        return None
    row = table.loc[key]
    a, b = (study.groups[g].label for g in comp.groups)
    draws = np.asarray(posterior[MAIN_ESTIMAND].sel(comparison=cid).values)
    med, lo, hi = float(row["median"]), float(row["hdi_low"]), float(row["hdi_high"])
    interval = f"95% interval {_number(lo)} to {_number(hi)}"
    if lo > 1.0 or hi < 1.0:
        higher, lower = (a, b) if lo > 1.0 else (b, a)
        fold = med if lo > 1.0 else 1.0 / med
        shown = f"{_number(lo)} to {_number(hi)}" if lo > 1.0 else f"{_number(1 / hi)} to {_number(1 / lo)}"
        p_text = direction_probability(draws if lo > 1.0 else 1.0 / draws)
        return (f"{higher} had higher {study.analyte.name} than {lower}: the population median was {_number(fold)} times "
                f"as high (95% interval {shown}); posterior probability that it is higher: {p_text}.")
    return (f"The data do not settle which group is higher: the population median of {a} is {_number(med)} times that of "
            f"{b} ({interval}); posterior probability that {a} is higher: {direction_probability(draws)}.")


def covariate_effects(study: Study, estimands: pd.DataFrame, informativeness: pd.DataFrame | None) -> str | None:
    """Which covariate effects the published numbers inform, with their sizes."""
    est = estimands.set_index("estimand")
    rows = [(c, f"effect_percent[{c}]") for c in study.covariates if f"effect_percent[{c}]" in est.index]
    if not rows:
        return None
    labels = {} if informativeness is None else informativeness.set_index("estimand")["label"].astype(str).to_dict()
    groups: dict[str, list[str]] = {"informed": [], "assumed": [], "prior": [], "open": []}
    for c, key in rows:
        r = est.loc[key]
        # the size first: a contrast's own comma ("age, per decade") then never reads as a list
        text = f"{_percent(r['median'])} ({_percent(r['hdi_low'])} to {_percent(r['hdi_high'])}) for {effect_contrast(study, c)}"
        label = labels.get(key, "")
        kind = "informed" if label in _INFORMED else "assumed" if label in _ASSUMED else "prior" if label in _PRIOR else "open"
        groups[kind].append(text)
    parts = []
    if groups["informed"]:
        parts.append("informed by the published numbers: " + "; ".join(groups["informed"]))
    if groups["assumed"]:
        parts.append("resting on qualitative claims and assumed covariate distributions: " + "; ".join(groups["assumed"]))
    if groups["prior"]:
        parts.append("resting mostly on the prior and assumptions: " + "; ".join(groups["prior"]))
    if groups["open"]:
        parts.append("with sources not separable at this precision (prior-sensitive or undetermined): " + "; ".join(groups["open"]))
    return "Covariate effects (change in level, 95% interval), " + "; and ".join(parts) + "."


def unreproduced(checks: pd.DataFrame) -> str:
    """Which published numbers and claims the model cannot reproduce."""
    bad = checks[checks["verdict"] != "reproduced"]
    if bad.empty:
        return f"The model reproduces all {len(checks)} published numbers and claims it was checked against."
    items = []
    for _, r in bad.iterrows():
        p = r.get("p_two_sided")
        measure = f"predictive p {float(p):.3g}" if pd.notna(p) else f"holds in {float(r['share_claim_holds']):.1%} of simulated cohorts"
        items.append(f"{r['item']} ({r['verdict']}, {measure})")
    return f"The model does not reproduce {len(bad)} of {len(checks)} published numbers and claims: " + "; ".join(items) + "."


def measurement_caveat(audit) -> str | None:
    """The absolute-scale caveat when a group's level is implausible against the reference."""
    if audit is None:
        return None
    implausible = [g for g in audit.groups if audit.verdict(g.group).startswith("implausible")]
    if not implausible:
        return None
    top = audit.top_range or audit.top_any
    folds = "; ".join(f"{g.label} {_number(audit.fold(g.group, top.id).fold_median)} times" for g in implausible)
    return (f"The absolute levels are implausible as concentrations ({folds} the highest upper end of the "
            f"{audit.reference.method} reference ranges), so read the ratios, not the levels.")


def verdict(study: Study, estimands: pd.DataFrame, checks: pd.DataFrame, posterior, informativeness=None,
            audit=None, diagnostics_ok: bool = True) -> list[str]:
    """The verdict sentences, in reading order.

    Parameters
    ----------
    study : Study
    estimands, checks, informativeness : DataFrame
        The result folder's tables (``informativeness`` may be None).
    posterior : xarray.Dataset
        The fit's posterior (for the probability of the main difference's direction).
    audit : reanalysis.report.plausibility.Audit, optional
    diagnostics_ok : bool
        The sampler gate's outcome.
    """
    out = [] if diagnostics_ok else ["The sampler diagnostics failed: every number below is provisional."]
    out += [s for s in (
        main_difference(study, estimands, posterior),
        covariate_effects(study, estimands, informativeness),
        unreproduced(checks),
        measurement_caveat(audit),
    ) if s]
    return out

"""Posterior predictive checks against every published number.

From posterior draws, cohorts of the published group sizes are simulated with fresh deviates
(the same simulator as the likelihood), each published statistic is computed on them exactly
as the authors would have, and the published value is located in that distribution.

Every row of the checks table is judged on one scale where small means failure:

* a published number, and an exact claim (``relation: "="``) read at its printed precision,
  by the two-sided posterior predictive p-value (:func:`predictive_p_two_sided`);
* a threshold or qualitative claim (``p < 0.001``, "more than three-fold", "significantly
  lower") by the share of simulated cohorts in which the claim holds.

Both go through the same cut-offs (:data:`NOT_REPRODUCED`, :data:`TENSION`).  The one-sided
share of simulated values at or above a published number is kept beside the p-value: it
says on which side of the simulations the published value lies.
"""
from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd

from .families import get_family
from .simulate import simulate_group, sorted_normals
from .statistics import group_test_pvalue, group_test_statistic, sample_statistic, several_group_pvalue
from .study import STATISTIC_LABELS, STATISTICS, Claim, Study
from .two_group import difference_ci_t
from .wording import association_item, claim_item, claim_symbol

#: Two-sided predictive p-value (or, for a threshold claim, share of cohorts in which the
#: claim holds) below which a number is "not reproduced", and below which it is "in tension".
NOT_REPRODUCED, TENSION = 0.01, 0.05
#: Order of rows: medians are the headline checks, then the rest in canonical order.
_ROW_ORDER = ("median",) + tuple(s for s in STATISTICS if s != "median")
#: Units column of a comparison claim's row, by statistic (ratios: "fold").
CLAIM_UNITS = {"p_value": "p-value", "t": "t statistic", "z": "z statistic", "F": "F statistic", "difference_ci": "t statistic"}
#: Columns of :func:`check_table`, in order.
COLUMNS = (
    "item", "key", "kind", "units", "published", "predictive_median", "predictive_low", "predictive_high",
    "p_two_sided", "share_at_or_above", "share_claim_holds", "verdict",
)


def verdict(p: float) -> str:
    """``reproduced`` (p >= 0.05), ``tension`` (0.01 <= p < 0.05) or ``not reproduced``
    (p < 0.01), for a two-sided predictive p-value or a claim's share of cohorts."""
    if p < NOT_REPRODUCED:
        return "not reproduced"
    if p < TENSION:
        return "tension"
    return "reproduced"


def format_p(p: float) -> str:
    """A predictive p-value or share as tables and figure titles print it (3 decimals)."""
    return "-" if p is None or not np.isfinite(p) else f"{float(p):.3f}"


def predictive_p_two_sided(sim: np.ndarray, low: float, high: float | None = None) -> float:
    """Two-sided posterior predictive p-value of a published value.

    Parameters
    ----------
    sim : array
        The statistic over simulated cohorts.
    low : float
        The published value; or, for a value read at its printed precision, the lower end of
        the interval of values that print as it (:attr:`models.study.Claim.printed_interval`).
    high : float, optional
        That interval's (open) upper end; None for a value read as a point.

    Returns
    -------
    float
        ``min(1, 2 * min(P(sim >= low), P(sim <= low)))`` for a point and
        ``min(1, 2 * min(P(sim >= low), P(sim < high)))`` for an interval.  Small means the
        model rarely produces the published value.

    Notes
    -----
    Each tail counts the published interval in full, so an interval's p-value is at least
    that of any point inside it: a value is never flagged for being printed coarsely, and as
    the printed digits grow the p-value becomes the point one.
    """
    sim = np.asarray(sim, dtype=float)
    upper = float(np.mean(sim >= low))
    lower = float(np.mean(sim <= low) if high is None or high <= low else np.mean(sim < high))
    return float(min(1.0, 2.0 * min(upper, lower)))


def simulate_predictive(
    idata: az.InferenceData, study: Study, family: str, n_draws: int = 2000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Simulate one cohort of each group's published size per (thinned) posterior draw.

    Returns
    -------
    dict
        group id -> array (n_draws, n) of sorted simulated values.
    """
    fam = get_family(family)
    rng = np.random.default_rng(seed)
    post = idata.posterior
    total = post.sizes["chain"] * post.sizes["draw"]
    pick = np.sort(rng.choice(total, size=min(n_draws, total), replace=False))
    out = {}
    for g in study.group_ids:
        mean = post["mean"].sel(group=g).values.ravel()[pick]
        cv = post["cv"].sel(group=g).values.ravel()[pick]
        z = sorted_normals(rng, pick.size, study.n(g))
        out[g] = simulate_group(np, fam, z, mean[:, None], cv[:, None])
    return out


def predictive_statistics(cohorts: dict[str, np.ndarray], study: Study) -> dict[str, np.ndarray]:
    """Every published statistic computed on the simulated cohorts.

    Keys are ``"<group>.<statistic>"`` for group statistics and
    ``"<comparison>.<claim>"`` for comparison claims (p-value, ratios).  Entries of
    ``cohorts`` named ``"association.*"`` (covariate models) are passed through.
    """
    q_method = int(study.setting("quantile_method"))
    out: dict[str, np.ndarray] = {k: v for k, v in cohorts.items() if k.startswith("association.")}
    for g in study.group_ids:
        x = cohorts[g]
        rep = study.reported(g)
        for s in rep:
            out[f"{g}.{s}"] = sample_statistic(np, x, x.shape[-1], s, q_method)
        if "mean" in rep and "median" in rep:
            # the direction of skew: one family cannot put the mean below the median in one
            # group and above it in another, so this is checked on its own
            out[f"{g}.mean_minus_median"] = out[f"{g}.mean"] - out[f"{g}.median"]
    for cid, comp in study.comparisons.items():
        a, b = cohorts[comp.groups[0]], cohorts[comp.groups[1]]
        for claim_id, claim in comp.claims.items():
            # the test the claim names, else the study's assumed one
            test = claim.test or study.setting("group_test")
            if claim.statistic == "p_value":
                out[f"{cid}.{claim_id}"] = group_test_pvalue(a, b, test)
            elif claim.statistic == "difference_ci":
                # the t statistic the interval stands for, signed: first group minus second
                out[f"{cid}.{claim_id}"] = group_test_statistic(a, b, test)
            elif claim.statistic in ("t", "z", "F"):
                stat = np.abs(group_test_statistic(a, b, test))
                # read without its sign (software prints it by its own group order); a
                # negative published value is compared with the negated statistic
                out[f"{cid}.{claim_id}"] = stat**2 if claim.statistic == "F" else stat * (-1.0 if (claim.value or 0.0) < 0 else 1.0)
            elif claim.statistic == "ratio_of_means":
                out[f"{cid}.{claim_id}"] = a.mean(-1) / b.mean(-1)
            elif claim.statistic == "ratio_of_medians":
                out[f"{cid}.{claim_id}"] = np.median(a, -1) / np.median(b, -1)
    for tid, gt in study.group_tests.items():
        p = several_group_pvalue([cohorts[g] for g in gt.groups], gt.test)
        for claim_id in gt.claims:
            out[f"{tid}.{claim_id}"] = p
    return out


def _claim_holds(x: np.ndarray, claim: Claim) -> np.ndarray:
    """Whether each simulated statistic satisfies the claim: a threshold for ``<``, ``<=``,
    ``>`` and ``>=``, the printed interval for ``=``, within 5% of the value for ``~``
    ("approximately")."""
    if claim.relation in claim.THRESHOLDS:
        return claim.threshold_holds(x)
    if claim.relation == "=":
        low, high = claim.printed_interval
        return (x >= low) & (x < high)
    return np.isclose(x, claim.value, rtol=0.05)


def _row(sim: np.ndarray, kind: str, item: str, key: str, units: str, published, p_two_sided: float = np.nan,
         share_at_or_above: float = np.nan, share_claim_holds: float = np.nan, judged: float | None = None) -> dict:
    """One checks-table row: the simulated statistic's predictive median and 95% interval next
    to the published item, its p-value or share, and the verdict on ``judged`` (default: the
    two-sided p-value)."""
    return {
        "item": item,
        "key": key,
        "kind": kind,
        "units": units,
        "published": published,
        "predictive_median": float(np.median(sim)),
        "predictive_low": float(np.quantile(sim, 0.025)),
        "predictive_high": float(np.quantile(sim, 0.975)),
        "p_two_sided": p_two_sided,
        "share_at_or_above": share_at_or_above,
        "share_claim_holds": share_claim_holds,
        "verdict": verdict(p_two_sided if judged is None else judged),
    }


def number_row(sim: np.ndarray, pub: float, item: str, key: str, units: str) -> dict:
    """One row of the checks table (:data:`COLUMNS`) for a published number ``pub``: its
    simulated values ``sim`` over predictive cohorts, the two-sided predictive p-value, the
    share at or above it and the verdict.  ``key`` is the ``<group>.<statistic>`` a
    published-items account matches."""
    return _row(sim, "number", item, key, units, pub, p_two_sided=predictive_p_two_sided(sim, pub),
                share_at_or_above=float(np.mean(sim >= pub)))


def _claim_row(sim: np.ndarray, holds: np.ndarray, item: str, key: str, units: str, published: str) -> dict:
    """A threshold or qualitative claim: judged by the share of cohorts in which it holds."""
    share = float(np.mean(holds))
    return _row(sim, "claim", item, key, units, published, share_claim_holds=share, judged=share)


def _exact_claim_row(sim: np.ndarray, claim: Claim, item: str, key: str, units: str) -> dict:
    """An exact value read at its printed precision: judged by the two-sided p-value of its
    printed interval; ``share_claim_holds`` is the share of cohorts whose value prints the same.

    The share alone would flag every exact value: it shrinks with each printed digit however
    well the model fits, so it is reported, not judged.
    """
    low, high = claim.printed_interval
    shown = claim.printed.strip() if claim.printed is not None else f"{claim.value:g}"
    published = f"{claim_symbol(claim.statistic)} = {shown} (read as {low:.6g} to <{high:.6g})"
    return _row(sim, "claim", item, key, units, published, p_two_sided=predictive_p_two_sided(sim, low, high),
                share_claim_holds=float(np.mean(_claim_holds(sim, claim))))


def check_table(stats: dict[str, np.ndarray], study: Study) -> pd.DataFrame:
    """One row per published item: predictive interval, where the published value falls, verdict.

    Parameters
    ----------
    stats : dict
        Simulated statistics from :func:`predictive_statistics` (and association estimates).
    study : Study

    Returns
    -------
    pd.DataFrame
        Columns :data:`COLUMNS`: item, key, kind (``number`` or ``claim``), units, published,
        the predictive median and 95% interval, and

        * ``p_two_sided``: the two-sided posterior predictive p-value
          (:func:`predictive_p_two_sided`) of a published number, or of an exact claim read
          at its printed precision; empty for other claims;
        * ``share_at_or_above``: share of simulated cohorts at or above a published number
          (near 0 or 1 says on which side it lies); empty for claims;
        * ``share_claim_holds``: share of simulated cohorts in which a claim holds (for an
          exact claim, in which the value prints as published); empty for numbers;
        * ``verdict``: from ``p_two_sided`` where it is given, else from
          ``share_claim_holds``, with the cut-offs 0.01 and 0.05 (:func:`verdict`).
    """
    units = study.analyte.units
    rows = []
    for s in _ROW_ORDER:
        for g in study.group_ids:
            rep = study.reported(g)
            if s not in rep:
                continue
            rows.append(number_row(stats[f"{g}.{s}"], rep[s], f"{study.groups[g].label}: {STATISTIC_LABELS[s]}", f"{g}.{s}", units))
    for g in study.group_ids:
        key = f"{g}.mean_minus_median"
        if key in stats:
            rep = study.reported(g)
            rows.append(number_row(stats[key], rep["mean"] - rep["median"], f"{study.groups[g].label}: mean minus median (skew)", key, units))
    for cid, comp in study.comparisons.items():
        for claim_id, claim in comp.claims.items():
            key = f"{cid}.{claim_id}"
            if key not in stats or (claim.relation is None and claim.low is None):
                continue
            sim = stats[key]
            same = sum(c.statistic == claim.statistic for c in comp.claims.values())
            item = claim_item(study, comp.groups, claim, siblings=same, claim_id=claim_id)
            claim_units = CLAIM_UNITS.get(claim.statistic, "fold")
            if claim.statistic == "difference_ci":
                low, high = difference_ci_t(study, cid, claim_id)
                published = f"difference 95% CI {claim.low:g} to {claim.high:g} (read as t {low:.4g} to {high:.4g})"
                rows.append(_row(sim, "claim", item, key, claim_units, published, p_two_sided=predictive_p_two_sided(sim, low, high),
                                 share_claim_holds=float(np.mean((sim >= low) & (sim <= high)))))
                continue
            if claim.relation == "=":
                rows.append(_exact_claim_row(sim, claim, item, key, claim_units))
                continue
            rows.append(_claim_row(sim, _claim_holds(sim, claim), item, key, claim_units, f"{claim_symbol(claim.statistic)} {claim.relation} {claim.value:g}"))
    for tid, gt in study.group_tests.items():
        for claim_id, claim in gt.claims.items():
            key = f"{tid}.{claim_id}"
            if key not in stats:
                continue
            item = claim_item(study, gt.groups, claim, test=gt.test, siblings=len(gt.claims), claim_id=claim_id)
            if claim.relation == "=":
                rows.append(_exact_claim_row(stats[key], claim, item, key, "p"))
            else:
                rows.append(_claim_row(stats[key], _claim_holds(stats[key], claim), item, key, "p", f"p {claim.relation} {claim.value:g}"))
    for a, assoc in study.associations.items():
        key = f"association.{a}"
        if key not in stats:
            continue
        rows.append(
            _claim_row(stats[key], stats[f"{key}.holds"], association_item(study, assoc), key, "% change", association_text(assoc))
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def association_text(assoc) -> str:
    """Short form of an association claim for the checks table, e.g. "~ -10 %", "lower (significant)"."""
    if assoc.relation is not None:
        return f"{assoc.relation} {assoc.value:g} %"
    return f"{assoc.direction}{' (significant)' if assoc.significant else ''}"

"""Posterior predictive checks against every published number.

From posterior draws, cohorts of the published group sizes are simulated with fresh deviates
(the same simulator as the likelihood), each published statistic is computed on them exactly
as the authors would have, and the published value is located in that distribution.
"""
from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd

from .families import get_family
from .simulate import simulate_group, sorted_normals
from .statistics import DEFAULT_GROUP_TEST, group_test_pvalue, sample_statistic
from .study import STATISTIC_LABELS, STATISTICS, Study

#: Posterior predictive p-value (two-sided) below which a number is "not reproduced", and
#: below which it is "in tension".
NOT_REPRODUCED, TENSION = 0.01, 0.05
#: Order of rows: medians are the headline checks, then the rest in canonical order.
_ROW_ORDER = ("median",) + tuple(s for s in STATISTICS if s != "median")


def _verdict_number(ppp_two_sided: float) -> str:
    if ppp_two_sided < NOT_REPRODUCED:
        return "not reproduced"
    if ppp_two_sided < TENSION:
        return "tension"
    return "reproduced"


def _verdict_claim(prob: float) -> str:
    if prob < NOT_REPRODUCED:
        return "not reproduced"
    if prob < TENSION:
        return "tension"
    return "reproduced"


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
    q_method = int(study.assumption("quantile_method", 7))
    out: dict[str, np.ndarray] = {k: v for k, v in cohorts.items() if k.startswith("association.")}
    for g in study.group_ids:
        x = cohorts[g]
        rep = study.reported(g)
        for s in rep:
            out[f"{g}.{s}"] = sample_statistic(np, x, x.shape[-1], s, q_method)
        if "mean" in rep and "median" in rep:
            # the direction of skew: one family cannot put the mean below the median in one
            # group and above it in another, so this is checked on its own (DESIGN section 2)
            out[f"{g}.mean_minus_median"] = out[f"{g}.mean"] - out[f"{g}.median"]
    test = study.assumption("group_test", DEFAULT_GROUP_TEST)
    for cid, comp in study.comparisons.items():
        a, b = cohorts[comp.groups[0]], cohorts[comp.groups[1]]
        for claim_id, claim in comp.claims.items():
            if claim.statistic == "p_value":
                out[f"{cid}.{claim_id}"] = group_test_pvalue(a, b, test)
            elif claim.statistic == "ratio_of_means":
                out[f"{cid}.{claim_id}"] = a.mean(-1) / b.mean(-1)
            elif claim.statistic == "ratio_of_medians":
                out[f"{cid}.{claim_id}"] = np.median(a, -1) / np.median(b, -1)
    return out


def _claim_holds(x: np.ndarray, relation: str, value: float) -> np.ndarray:
    if relation == "<":
        return x < value
    if relation == ">":
        return x > value
    return np.isclose(x, value, rtol=0.05)


def _row(sim: np.ndarray, kind: str, item: str, key: str, units: str, published, ppp: float, two: float, verdict: str) -> dict:
    """One checks-table row: the simulated statistic's predictive median and 95% interval
    next to the published item and its verdict."""
    return {
        "item": item,
        "key": key,
        "kind": kind,
        "units": units,
        "published": published,
        "predictive_median": float(np.median(sim)),
        "predictive_low": float(np.quantile(sim, 0.025)),
        "predictive_high": float(np.quantile(sim, 0.975)),
        "ppp": ppp,
        "ppp_two_sided": two,
        "verdict": verdict,
    }


def _number_row(sim: np.ndarray, pub: float, item: str, key: str, units: str) -> dict:
    upper = float(np.mean(sim >= pub))
    two = float(min(1.0, 2 * min(upper, 1 - upper + np.mean(sim == pub))))
    return _row(sim, "number", item, key, units, pub, upper, two, _verdict_number(two))


def _claim_row(sim: np.ndarray, holds: np.ndarray, item: str, key: str, units: str, published: str) -> dict:
    """A claim's row: ``ppp`` is the share of simulated cohorts in which the claim holds."""
    prob = float(np.mean(holds))
    return _row(sim, "claim", item, key, units, published, prob, np.nan, _verdict_claim(prob))


def check_table(stats: dict[str, np.ndarray], study: Study) -> pd.DataFrame:
    """One row per published item: predictive interval, where the published value falls, verdict.

    Columns: item, kind (``number`` or ``claim``), published, predictive median and 95%
    interval, ``ppp`` (share of simulated values at or above the published one; for claims the
    share of simulated cohorts in which the claim holds), ``ppp_two_sided`` and ``verdict``.
    """
    units = study.analyte.units
    rows = []
    for s in _ROW_ORDER:
        for g in study.group_ids:
            rep = study.reported(g)
            if s not in rep:
                continue
            rows.append(_number_row(stats[f"{g}.{s}"], rep[s], f"{study.groups[g].label}: {STATISTIC_LABELS[s]}", f"{g}.{s}", units))
    for g in study.group_ids:
        key = f"{g}.mean_minus_median"
        if key in stats:
            rep = study.reported(g)
            rows.append(_number_row(stats[key], rep["mean"] - rep["median"], f"{study.groups[g].label}: mean minus median (skew)", key, units))
    for cid, comp in study.comparisons.items():
        for claim_id, claim in comp.claims.items():
            key = f"{cid}.{claim_id}"
            if key not in stats or claim.relation is None:
                continue
            sim = stats[key]
            rows.append(
                _claim_row(
                    sim,
                    _claim_holds(sim, claim.relation, claim.value),
                    f"{comp.groups[0]} vs {comp.groups[1]}: claim '{claim_id}'",
                    key,
                    "p-value" if claim.statistic == "p_value" else "fold",
                    f"{claim.statistic} {claim.relation} {claim.value:g}",
                )
            )
    for a, assoc in study.associations.items():
        key = f"association.{a}"
        if key not in stats:
            continue
        rows.append(
            _claim_row(stats[key], stats[f"{key}.holds"], f"association '{a}': {assoc.text or assoc.covariate}", key, "% per unit", _association_text(assoc))
        )
    return pd.DataFrame(rows)


def _association_text(assoc) -> str:
    """Short form of an association claim for the checks table, e.g. "~ -10 %", "lower (significant)"."""
    if assoc.relation is not None:
        return f"{assoc.relation} {assoc.value:g} %"
    return f"{assoc.direction}{' (significant)' if assoc.significant else ''}"

"""Which population family reproduces a paper's numbers: one fit per family of a model, side
by side (``fit.py --compare-families``, ``family_comparison.csv``).

Each family is judged on what the paper published, two ways:

* the predictive checks (:mod:`models.checks`): how many published numbers and claims the
  family's posterior predictive cohorts reproduce, and which it does not;
* a predictive score of the published numbers: the continuous ranked probability score
  (CRPS; Gneiting and Raftery 2007, J Am Stat Assoc 102:359-378) of each published
  statistic under its posterior predictive distribution, summed over the statistics (a
  check derived from two of them, such as a mean minus a median, is not scored again).  The CRPS is a
  proper scoring rule computed from draws alone (no density estimate), lower is better, and
  it is taken on the scale of the published value (draws divided by it), so a median of
  866 ng/ml and a minimum of 3.4 umol/l weigh alike.  It is an in-sample score (the
  numbers scored also informed the fit), so it favours flexible families a little; the
  families compared here have two parameters per group each.

Every score carries its Monte Carlo standard error, and a difference between two families
the standard error of that difference (the fits are independent), so a ranking that Monte
Carlo error could reverse is visible as such.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

#: Columns of ``family_comparison.csv``.
COLUMNS = (
    "family", "description", "diagnostics_ok", "max_rhat", "min_ess_bulk", "divergences", "numbers_reproduced",
    "claims_reproduced", "not_reproduced", "score", "score_se", "score_difference", "difference_se", "numbers_scored", "seconds",
)
#: The checks' verdict of a reproduced item (:func:`models.checks.verdict`).
REPRODUCED = "reproduced"


def crps_relative(sim: np.ndarray, published: float) -> tuple[float, float]:
    """CRPS of ``published`` under the draws ``sim``, both divided by ``published``, and the
    Monte Carlo standard error of the estimate.

    The estimate is ``mean_i |x_i - y| - mean_ij |x_i - x_j| / 2`` (the V-statistic form),
    with the pairwise sum from the sorted draws in O(M log M).  Its standard error is that of
    the mean of its first-order projection ``|x_i - y| - mean_j |x_i - x_j|`` over draws
    that are nearly independent (thinned posterior draws).
    """
    x = np.sort(np.asarray(sim, dtype=float).ravel() / published)
    m = x.size
    a = np.abs(x - 1.0)
    # sum_j |x_i - x_j| for sorted x: x_i (2i - m) + total - 2 * (x_0 + ... + x_i), 0-based i
    prefix = np.cumsum(x)
    b = (x * (2 * np.arange(m) + 2 - m) + prefix[-1] - 2 * prefix) / m
    crps = float(a.mean() - 0.5 * b.mean())
    se = float(np.std(a - b, ddof=1) / np.sqrt(m))
    return crps, se


def family_row(analysis, study, description: str, seconds: float) -> dict:
    """One row of :data:`COLUMNS` for a fitted analysis (:class:`reanalysis.analysis.Analysis`)
    of ``study``.  The score sums over the published statistics themselves; a check derived
    from two of them (a group's mean minus its median) is counted among the numbers
    reproduced but not scored again."""
    checks, pstats, diag = analysis.checks, analysis.pstats, analysis.diagnostics
    numbers = checks[checks["kind"] == "number"]
    claims = checks[checks["kind"] != "number"]
    published_keys = {f"{g}.{s}" for g in study.group_ids for s in study.reported(g)}
    scores, variances, scored = 0.0, 0.0, 0
    for _, row in numbers.iterrows():
        published = float(row["published"])
        if row["key"] not in published_keys or published == 0 or row["key"] not in pstats:
            continue  # a published zero has no scale of its own; it stays a check
        crps, se = crps_relative(pstats[row["key"]], published)
        scores += crps
        variances += se**2
        scored += 1
    failed = [f"{r['item']} ({r['verdict']})" for _, r in checks[checks["verdict"] != REPRODUCED].iterrows()]
    return {
        "family": analysis.family,
        "description": description,
        "diagnostics_ok": bool(diag.ok),
        "max_rhat": diag.max_rhat,
        "min_ess_bulk": diag.min_ess_bulk,
        "divergences": diag.divergences,
        "numbers_reproduced": f"{int((numbers['verdict'] == REPRODUCED).sum())} of {len(numbers)}",
        "claims_reproduced": f"{int((claims['verdict'] == REPRODUCED).sum())} of {len(claims)}",
        "not_reproduced": "; ".join(failed),
        "score": scores,
        "score_se": float(np.sqrt(variances)),
        "numbers_scored": scored,
        "seconds": seconds,
    }


def comparison_table(rows: list[dict]) -> pd.DataFrame:
    """The rows ordered by score (best first), with each family's difference from the best
    and the standard error of that difference."""
    df = pd.DataFrame(rows).sort_values("score", kind="stable").reset_index(drop=True)
    best = df.iloc[0]
    df["score_difference"] = df["score"] - best["score"]
    df["difference_se"] = np.sqrt(df["score_se"] ** 2 + best["score_se"] ** 2)
    df.loc[0, "difference_se"] = 0.0
    return df[list(COLUMNS)]


def compare_families(
    study, fitted, families: list[str] | None = None, log: Callable[[str], None] | None = None, **options
) -> pd.DataFrame:
    """Fit ``study`` with every family of ``fitted``'s model and compare them (:data:`COLUMNS`).

    Parameters
    ----------
    study : models.study.Study
    fitted : reanalysis.analysis.Analysis
        A fit already made; its family is not fitted again.
    families : list of str, optional
        Families to compare, ``fitted``'s among them (default: all of the model's).
    log : callable, optional
        Receives one line per family fitted.
    **options
        Keywords of :func:`reanalysis.analysis.run_analysis` for the other families' fits
        (draws, tune, chains, ppc_draws, ...); the model, prior set, seed and cohorts are
        ``fitted``'s.

    Raises
    ------
    ValueError
        A family the model does not have, or a list without the fitted family.
    """
    import time

    from reanalysis.analysis import model_api, run_analysis

    api = model_api(fitted.model_name)
    descriptions = api.family_descriptions()
    families = list(descriptions) if families is None else list(families)
    unknown = [f for f in families if f not in descriptions]
    if unknown:
        raise ValueError(f"the {api.name} model has no family {', '.join(map(repr, unknown))}; it has {', '.join(descriptions)}")
    if fitted.family not in families:
        raise ValueError(f"the fitted family {fitted.family!r} must be one of the families compared")
    rows = []
    for family in families:
        if family == fitted.family:
            rows.append(family_row(fitted, study, descriptions[family], sum(fitted.timings.values())))
            continue
        if log:
            log(f"family comparison: fitting the {family} family")
        t = time.perf_counter()
        analysis = run_analysis(
            study, model=fitted.model_name, family=family, priors=fitted.prior_set, seed=fitted.seed, reps=fitted.reps,
            progressbar=False, log=log, **options,
        )
        rows.append(family_row(analysis, study, descriptions[family], time.perf_counter() - t))
    return comparison_table(rows)

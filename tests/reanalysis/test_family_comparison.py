"""Tests for reanalysis.family_comparison: the CRPS and its Monte Carlo error against the
closed form of a normal predictive, the table's order and differences, the rows built from
a fit's checks, and the console section."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reanalysis.family_comparison import COLUMNS, compare_families, comparison_table, crps_relative, family_row
from reanalysis.report.console import WIDTH, family_lines


def normal_crps(mu: float, sd: float, y: float) -> float:
    """Closed form for a normal forecast (Gneiting and Raftery 2007, eq. 21)."""
    z = (y - mu) / sd
    return sd * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / np.sqrt(np.pi))


@pytest.mark.parametrize("mu, sd, y", [(10.0, 1.0, 10.0), (10.0, 2.0, 13.0), (866.0, 60.0, 790.0)])
def test_crps_matches_the_closed_form_within_its_monte_carlo_error(mu, sd, y):
    sim = np.random.default_rng(1).normal(mu, sd, 40_000)
    got, se = crps_relative(sim, y)
    want = normal_crps(mu / y, sd / y, 1.0)
    assert abs(got - want) < 4 * se
    assert se < 0.02 * want + 1e-4


def test_the_stated_monte_carlo_error_is_the_spread_of_repeated_estimates():
    rng = np.random.default_rng(2)
    runs = [crps_relative(rng.lognormal(0.2, 0.4, 500), 1.3) for _ in range(400)]
    estimates, ses = np.array([r[0] for r in runs]), np.array([r[1] for r in runs])
    assert np.std(estimates, ddof=1) == pytest.approx(np.mean(ses), rel=0.15)


def test_a_predictive_centred_on_the_published_value_scores_better():
    rng = np.random.default_rng(3)
    near, _ = crps_relative(rng.normal(100, 10, 5000), 100.0)
    far, _ = crps_relative(rng.normal(130, 10, 5000), 100.0)
    assert near < far


def checks_frame(verdicts: dict) -> pd.DataFrame:
    rows = []
    for key, (kind, published, verdict) in verdicts.items():
        rows.append({"item": f"item {key}", "key": key, "kind": kind, "published": published, "verdict": verdict})
    return pd.DataFrame(rows)


STUDY = SimpleNamespace(group_ids=["a"], reported=lambda g: {"median": 100.0, "min": 0.0, "max": 200.0})


def analysis(family: str, shift: float, ok: bool = True):
    rng = np.random.default_rng(4)
    checks = checks_frame({
        "a.median": ("number", 100.0, "reproduced"),
        "a.min": ("number", 0.0, "reproduced"),
        "a.max": ("number", 200.0, "not reproduced" if shift else "reproduced"),
        "a.mean_minus_median": ("number", -10.0, "reproduced"),
        "ab.p_value": ("claim", "p < 0.05", "reproduced"),
    })
    pstats = {"a.median": rng.normal(100 + shift, 5, 2000), "a.min": rng.normal(1, 1, 2000), "a.max": rng.normal(200 + 3 * shift, 20, 2000),
              "a.mean_minus_median": rng.normal(30, 5, 2000)}
    diag = SimpleNamespace(ok=ok, max_rhat=1.002 if ok else 1.2, min_ess_bulk=900.0, divergences=0)
    return SimpleNamespace(family=family, checks=checks, pstats=pstats, diagnostics=diag, model_name="group", timings={"sample": 2.0})


def test_a_row_counts_what_the_family_reproduces_and_scores_the_published_numbers():
    row = family_row(analysis("gamma", 20.0), STUDY, "gamma: ...", 3.0)
    assert row["numbers_reproduced"] == "3 of 4"
    assert row["claims_reproduced"] == "1 of 1"
    assert row["not_reproduced"] == "item a.max (not reproduced)"
    assert row["numbers_scored"] == 2  # the published zero has no relative scale; the skew check is derived
    assert row["score"] > 0 and row["score_se"] > 0


def test_the_table_is_ordered_by_score_with_differences_from_the_best():
    rows = [family_row(analysis("gamma", 20.0), STUDY, "", 1.0), family_row(analysis("lognormal", 0.0), STUDY, "", 1.0)]
    table = comparison_table(rows)
    assert list(table.columns) == list(COLUMNS)
    assert list(table["family"]) == ["lognormal", "gamma"]
    assert table.loc[0, "score_difference"] == 0 and table.loc[0, "difference_se"] == 0
    assert table.loc[1, "score_difference"] == pytest.approx(table.loc[1, "score"] - table.loc[0, "score"])
    assert table.loc[1, "difference_se"] == pytest.approx(np.hypot(table.loc[0, "score_se"], table.loc[1, "score_se"]))


def test_unknown_families_and_a_list_without_the_fitted_one_are_refused_before_any_fit():
    fitted = analysis("lognormal", 0.0)
    with pytest.raises(ValueError, match="no family 'beta'.*it has lognormal, gamma, weibull"):
        compare_families(None, fitted, ["lognormal", "beta"])
    with pytest.raises(ValueError, match="fitted family 'lognormal' must be one of"):
        compare_families(None, fitted, ["gamma", "weibull"])


def test_the_console_section_fits_the_width_and_names_what_is_not_reproduced():
    rows = [family_row(analysis("gamma", 20.0, ok=False), STUDY, "", 1.0), family_row(analysis("lognormal", 0.0), STUDY, "", 1.0)]
    lines = family_lines(comparison_table(rows))
    assert max(map(len, lines)) <= WIDTH
    text = "\n".join(lines)
    assert "FAILED" in text and "best" in text
    assert "gamma does not reproduce: item a.max (not reproduced)" in text

"""A published 95% confidence interval of a difference in means (``statistic:
difference_ci``): read as the t statistic it stands for, fitted by the group model's
two-group term, checked against simulated cohorts, and refused at load when malformed."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import stats

from models.checks import check_table, predictive_statistics
from models.families import get_family
from models.published_roles import group_model_roles
from models.simulate import simulate_group, sorted_normals
from models.study import load_study
from models.two_group import difference_ci_t, statistic_bounds, two_group_terms
from tests.studyfiles import assert_study_error, variant

PUB = {"status": "published", "source": "abstract"}


def quartile_study(write_study, base, claim: dict):
    """The Lasemi groups with medians and quartiles only, and ``claim`` on their comparison."""
    data = copy.deepcopy(base)
    data["groups"]["control"]["statistics"] = {k: {"value": v, **PUB} for k, v in (("median", 866), ("q1", 720), ("q3", 950))}
    data["groups"]["ms"]["statistics"] = {k: {"value": v, **PUB} for k, v in (("median", 196), ("q1", 160), ("q3", 290))}
    return variant(write_study, data, {"comparisons.control_vs_ms.claims.ci": {**claim, **PUB}})


def test_the_interval_reads_as_the_t_statistic_of_its_test(write_study, base):
    rng = np.random.default_rng(4)
    a, b = rng.lognormal(6.7, 0.2, 29), rng.lognormal(5.4, 0.4, 45)
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    low, high = round(float(ci.low), 1), round(float(ci.high), 1)
    st = load_study(quartile_study(write_study, base, {"statistic": "difference_ci", "low": low, "high": high, "test": "welch_t"}))
    tlo, thi = difference_ci_t(st, "control_vs_ms", "ci")
    # Welch's df comes from the published spreads; without SDs the file's n - 2 stands in,
    # so the t read from the interval differs from scipy's a little
    assert tlo < thi and tlo == pytest.approx(res.statistic, rel=0.05)
    assert statistic_bounds(st, "control_vs_ms", "ci") == pytest.approx((tlo, thi))
    term = next(t for t in two_group_terms(st) if t.name == "control_vs_ms.ci")
    assert term.test == "welch_t" and term.bounds == pytest.approx((tlo, thi))
    role, why = group_model_roles(st, "lognormal")({"kind": "comparison", "item": "comparisons.control_vs_ms.claims.ci", "scope": "control_vs_ms",
                                                     "key": "control_vs_ms.ci", "claim": st.comparisons["control_vs_ms"].claims["ci"]}, True)
    assert role == "likelihood"


def test_the_check_compares_simulated_t_with_the_interval(write_study, base):
    st = load_study(quartile_study(write_study, base, {"statistic": "difference_ci", "low": 520.0, "high": 660.0, "test": "student_t"}))
    rng = np.random.default_rng(1)
    fam = get_family("lognormal")
    cohorts = {"control": simulate_group(np, fam, sorted_normals(rng, 400, 29), 840.0, 0.2),
               "ms": simulate_group(np, fam, sorted_normals(rng, 400, 45), 240.0, 0.45)}
    pstats = predictive_statistics(cohorts, st)
    t = pstats["control_vs_ms.ci"]
    np.testing.assert_allclose(t, stats.ttest_ind(cohorts["control"], cohorts["ms"], axis=-1).statistic)
    row = check_table(pstats, st).set_index("key").loc["control_vs_ms.ci"]
    assert row["kind"] == "claim" and row["units"] == "t statistic" and "read as t" in row["published"]
    assert 0 <= row["p_two_sided"] <= 1


@pytest.mark.parametrize("claim, field, phrase", [
    ({"statistic": "difference_ci", "low": 5.0}, "low", r"belong together"),
    ({"statistic": "difference_ci", "low": 5.0, "high": 2.0}, "low", r"5 to 2 must be increasing"),
    ({"statistic": "difference_ci", "low": 1.0, "high": 2.0, "relation": "<", "value": 3.0}, "relation", r"given by 'low' and 'high' only"),
    ({"statistic": "p_value", "relation": "<", "value": 0.01, "low": 1.0, "high": 2.0}, "low", r"belong together"),
    ({"statistic": "difference_ci", "low": 1.0, "high": 2.0, "test": "mann_whitney"}, "test", r"does not give a 'difference_ci'"),
])
def test_malformed_intervals_are_refused_at_load(write_study, base, claim, field, phrase):
    path = quartile_study(write_study, base, claim)
    assert_study_error(path, f"comparisons.control_vs_ms.claims.ci.{field}", phrase)


@pytest.mark.slow
def test_the_group_model_builds_the_interval_into_its_likelihood(write_study, base):
    from models.group import build_model
    from reanalysis.registry import get_model

    st = load_study(quartile_study(write_study, base, {"statistic": "difference_ci", "low": 520.0, "high": 660.0, "test": "student_t"}))
    model = build_model(st, get_model("group").get_priors(), reps=100, seed=2)
    assert "claim_control_vs_ms_ci" in [rv.name for rv in model.observed_RVs]
    assert np.isfinite(model.compile_logp()(model.initial_point()))

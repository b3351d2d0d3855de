"""Which published statistics each model fits, and a study the covariate model cannot fit
refused before anything is built: the formats papers print (SEM, IQR width, extremes,
confidence intervals, geometric means) are fitted where a model can and checked elsewhere."""
from __future__ import annotations

import pytest

from models.hierarchical import fitted_statistics, study_problem
from models.published_roles import covariate_model_roles, group_model_roles
from models.study import load_study
from reanalysis.analysis import AnalysisError, resolve_options
from tests.studyfiles import variant

PUB = {"status": "published", "source": "abstract"}


def with_stats(write_study, base, group, stats):
    return load_study(variant(write_study, base, {f"groups.{group}.statistics": {k: {"value": v, **PUB} for k, v in stats.items()}}))


def test_the_covariate_model_fits_what_has_a_large_sample_law_and_checks_the_rest(write_study, base):
    st = with_stats(write_study, base, "ms", {"mean": 235, "sd": 100, "min": 20, "max": 500, "gmean": 200, "gmean_ci_low": 180, "gmean_ci_high": 225})
    assert list(fitted_statistics(st, "ms")) == ["mean", "sd"]
    role = covariate_model_roles(st, "normal")
    item = {"kind": "statistic", "scope": "ms", "statistic": "gmean", "item": "groups.ms.statistics.gmean"}
    assert role(item, True)[0] == "check"
    assert "large-sample distribution only for mean, sd" in role(item, True)[1]


def test_a_group_the_covariate_model_cannot_fit_is_refused_before_building(write_study, base):
    st = with_stats(write_study, base, "ms", {"min": 20, "max": 500})
    msg = study_problem(st)
    assert msg.startswith("groups.ms.statistics: the hierarchical model fits only mean, sd, median")
    assert "reports min, max; fit it with --model group" in msg
    with pytest.raises(AnalysisError, match="fit it with --model group"):
        resolve_options(st, "hierarchical")
    assert resolve_options(st, "group")[0] == "group"


def test_the_group_model_fits_a_mean_interval_through_its_half_width(write_study, base):
    st = with_stats(write_study, base, "ms", {"median": 196, "mean_ci_low": 205, "mean_ci_high": 265})
    role = group_model_roles(st, "lognormal")
    for end in ("mean_ci_low", "mean_ci_high"):
        r, why = role({"kind": "statistic", "scope": "ms", "statistic": end, "item": f"groups.ms.statistics.{end}"}, True)
        assert r == "likelihood" and "half-width" in why


def test_the_group_models_likelihood_of_intervals_and_geometric_means_peaks_near_the_truth(write_study, base):
    """Published statistics of one simulated lognormal cohort of 45 (mean 235, CV 0.43): the
    group model's synthetic log likelihood (its interpolated table) at the truth beats a
    mean 30% off and a CV twice as large."""
    import numpy as np

    from models.families import get_family
    from models.group import build_tables, group_data
    from models.likelihood import group_logp_at
    from models.simulate import simulate_group, sorted_normals
    from models.statistics import sample_statistic

    x = simulate_group(np, get_family("lognormal"), sorted_normals(np.random.default_rng(5), 1, 45), 235.0, 0.43)[0]
    names = ("median", "mean_ci_low", "mean_ci_high", "gmean", "gmean_ci_low", "gmean_ci_high")
    pub = {"status": "published", "source": "abstract"}
    path = variant(write_study, base, {"groups.ms.statistics": {s: {"value": round(float(sample_statistic(np, x, 45, s)), 1), **pub} for s in names},
                                       "assumptions.rounding.value": 0})  # unrounded: the cheaper tables
    st = load_study(path)
    i = st.group_ids.index("ms")
    data = group_data(st)[i]
    assert data.names == ("median", "gmean", "gmean_ci_low", "gmean_ci_high", "mean", "mean_ci_half")
    table = build_tables(st, "lognormal", reps=200, seed=3)[i]

    def at(mean, cv):
        return float(group_logp_at(table, np.log(data.observed), np.array([np.log(mean)]), np.array([np.log(cv)]))[0])

    truth = at(235.0, 0.43)
    assert np.isfinite(truth)
    assert truth > at(235.0 * 1.3, 0.43) + 3
    assert truth > at(235.0, 0.86) + 3


def test_the_covariate_model_reads_a_claims_own_test_and_use(write_study, base):
    from models.hierarchical import comparison_claims

    claim = dict(base["comparisons"]["control_vs_ms"]["claims"]["p_value"])
    st = load_study(variant(write_study, base, {"comparisons.control_vs_ms.claims.p_value": {**claim, "test": "welch_t"}}))
    (cc,) = comparison_claims(st)
    assert cc["test"] == "welch_t" and st.setting("group_test") == "mann_whitney"
    role = covariate_model_roles(st, "normal")
    item = {"kind": "comparison", "key": "control_vs_ms.p_value", "claim": st.comparisons["control_vs_ms"].claims["p_value"],
            "item": "comparisons.control_vs_ms.claims.p_value"}
    assert role(item, True) == ("likelihood", "probability that the group test (welch_t) gives it")

    st = load_study(variant(write_study, base, {"comparisons.control_vs_ms.claims.p_value": {**claim, "use": "check"}}))
    assert comparison_claims(st) == []
    item["claim"] = st.comparisons["control_vs_ms"].claims["p_value"]
    assert role(item, True)[0] == "likelihood"  # the rule of the first study
    assert covariate_model_roles(st, "normal")(item, True)[0] == "check"

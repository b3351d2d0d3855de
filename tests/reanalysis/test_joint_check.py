"""Tests for reanalysis.joint_check: the weight that turns the covariate model's product
likelihood (statistics and claims as independent terms) into the joint one.

Synthetic joint normals with known correlations check the conditional probabilities against
closed forms; a small simulation on the real study checks the joint vector's layout.  No
model is compiled and no posterior is sampled: the file runs in a few seconds.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from reanalysis import joint_check as jc
from models.cohort import build_design, modelled_associations
from models.study import load_study

STUDY_PATH = Path(__file__).resolve().parents[2] / "data" / "studies" / "lasemi2018.yaml"


def _layout(observed, kinds, bounds, rounding=None):
    observed = np.atleast_1d(np.asarray(observed, dtype=float))
    return jc.JointLayout(
        stat_names=tuple(f"s{i}" for i in range(observed.size)),
        observed=observed,
        rounding=np.zeros(observed.size) if rounding is None else np.asarray(rounding, dtype=float),
        claim_names=tuple(f"c{k}" for k in range(len(kinds))),
        kinds=tuple(kinds),
        bounds=tuple(tuple(b) for b in bounds),
        statistics=("coefficient",) * len(kinds),
    )


def _z(m, a, seed=0):
    return np.random.default_rng(seed).standard_normal((m, a))


def test_conditional_probability_matches_closed_form():
    # one statistic s, one claim estimate c, correlation rho: c | s is normal with mean
    # mu_c + rho sd_c / sd_s (s - mu_s) and SD sd_c sqrt(1 - rho^2)
    mu_s, mu_c, sd_s, sd_c, rho, s_obs = 0.2, 0.5, 0.3, 1.2, 0.6, 0.8
    cov = np.array([[sd_s**2, rho * sd_s * sd_c], [rho * sd_s * sd_c, sd_c**2]])
    lay = _layout(s_obs, ["above"], [(0.3,)])
    r = jc.joint_weight(np.array([mu_s, mu_c]), cov, lay, _z(200_000, 1))
    cm = mu_c + rho * sd_c / sd_s * (s_obs - mu_s)
    csd = sd_c * math.sqrt(1 - rho**2)
    p_cond = stats.norm.sf(0.3, cm, csd)
    p_marg = stats.norm.sf(0.3, mu_c, sd_c)
    assert r["log_p_conditional"][0] == pytest.approx(math.log(p_cond), abs=1e-10)
    assert r["log_p_marginal"][0] == pytest.approx(math.log(p_marg), abs=1e-10)
    # the joint probability is Monte Carlo: within a few standard errors
    se = math.sqrt(p_cond * (1 - p_cond) / 200_000) / p_cond
    assert r["log_p_all_conditional"] == pytest.approx(math.log(p_cond), abs=4 * se)
    assert r["log_w"] == pytest.approx(math.log(p_cond / p_marg), abs=4 * se + 0.01)
    # one claim: nothing is left once it is conditioned on the statistic
    assert r["log_w_given_statistics"] == pytest.approx(0.0, abs=4 * se + 0.01)


def test_rounding_noise_weakens_the_conditioning():
    mean, cov = np.zeros(2), np.array([[1.0, 0.8], [0.8, 1.0]])
    cm0, cv0, _ = jc.conditional_normal(mean, cov, 1, np.array([1.0]))
    cm1, cv1, _ = jc.conditional_normal(mean, cov, 1, np.array([1.0]), np.array([1.0]))
    assert cm0[0] == pytest.approx(0.8)
    assert cv0[0, 0] == pytest.approx(0.36)
    # observed = s + e with Var(e) = 1: regression coefficient 0.8 / 2
    assert cm1[0] == pytest.approx(0.4)
    assert cv1[0, 0] == pytest.approx(1 - 0.64 / 2)


def test_two_claims_given_one_statistic_match_bivariate_normal_cdf():
    # both claims "below" their thresholds: a quadrant of the conditional bivariate normal
    mean = np.array([0.0, 0.1, -0.2])
    cov = np.array([[1.0, 0.5, -0.3], [0.5, 1.0, 0.4], [-0.3, 0.4, 1.0]])
    lay = _layout(0.7, ["below", "below"], [(0.5,), (0.0,)])
    r = jc.joint_weight(mean, cov, lay, _z(400_000, 2, seed=3))
    cm, cc, _ = jc.conditional_normal(mean, cov, 1, np.array([0.7]))
    exact = stats.multivariate_normal(cm, cc).cdf(np.array([0.5, 0.0]))
    assert math.exp(r["log_p_all_conditional"]) == pytest.approx(exact, abs=4e-3)


def test_no_correlation_gives_weight_one():
    # statistics and claims independent, claims independent of each other: w = 1 (up to
    # the Monte Carlo error of the joint probability), whatever the published statistics
    rng = np.random.default_rng(5)
    S, A = 3, 4
    a = rng.normal(size=(S, S))
    b = rng.normal(size=(A,))
    cov = np.zeros((S + A, S + A))
    cov[:S, :S] = a @ a.T + np.eye(S)
    cov[S:, S:] = np.diag(np.exp(b))
    mean = rng.normal(size=S + A)
    lay = _layout(mean[:S] + 2.0, ["interval", "below", "above", "beyond"], [(-1.0, 1.5), (0.5,), (-0.5,), (0.3,)])
    r = jc.joint_weight(mean, cov, lay, _z(400_000, A, seed=7))
    assert np.allclose(r["log_p_conditional"], r["log_p_marginal"], atol=1e-12)
    assert r["log_w"] == pytest.approx(0.0, abs=0.02)
    assert r["log_w_statistics"] == pytest.approx(0.0, abs=1e-12)


def test_event_prob_matches_event_holds():
    kinds = ["interval", "below", "above", "beyond"]
    bounds = [(-0.5, 1.0), (0.2,), (0.2,), (1.1,)]
    mean, sd = np.array([0.1, 0.0, 0.4, -0.3]), np.array([0.8, 1.0, 0.5, 1.3])
    x = mean + sd * np.random.default_rng(1).standard_normal((400_000, 4))
    assert np.allclose(jc.event_holds(kinds, bounds, x).mean(axis=0), jc.event_prob(kinds, bounds, mean, sd), atol=4e-3)


def test_weighted_quantile_and_psis():
    x = np.random.default_rng(2).normal(size=101)
    assert jc.weighted_quantile(x, np.ones_like(x), 0.5) == pytest.approx(np.median(x))
    # nearly all weight on one draw: the quantile is that draw
    w = np.full(101, 1e-9)
    w[7] = 1.0
    assert jc.weighted_quantile(x, w, 0.5) == pytest.approx(x[7], abs=1e-6)
    # light-tailed log weights: smoothed weights near uniform, Pareto k small
    weights, k = jc.psis_weights(np.random.default_rng(3).normal(0.0, 0.1, size=2000))
    assert weights.sum() == pytest.approx(1.0)
    assert weights.max() < 2 / 2000
    assert k < 0.5


@pytest.fixture(scope="module")
def study():
    return load_study(STUDY_PATH)


def test_layout_has_the_likelihood_terms(study):
    lay = jc.joint_layout(study)
    assert lay.stat_names == tuple(f"{g}.{s}" for g in study.group_ids for s in study.reported(g))
    assert lay.claim_names[: len(modelled_associations(study))] == tuple(modelled_associations(study))
    # the p-value claim is a likelihood term, the three-fold ratio of reported means is not
    assert "control_vs_ms.p_value" in lay.claim_names
    assert not any("fold" in c for c in lay.claim_names)
    assert np.allclose(np.exp(lay.observed) * 300.0, [study.reported(g)[s] for g in study.group_ids for s in study.reported(g)])


def test_simulated_joint_vector(study):
    lay = jc.joint_layout(study)
    design = build_design(study, 2, 1)
    G, C, L = len(design.groups), len(design.covariates), len(design.levels)
    params = {
        "alpha": np.array([[1.0, -0.3], [0.9, -0.2]]),
        "slope": np.full((2, G, C), -0.1) * design.defined,
        "sigma": np.array([[0.2, 0.4], [0.3, 0.5]]),
        "u": np.zeros((2, L)),
    }
    x = jc.simulate_joint(study, lay, params, 300, seed=11)
    assert x.shape == (2, 300, len(lay.names))
    assert np.isfinite(x).all()
    # the p-value claim's estimate is the test's two-sided normal score |z| >= 0
    k = lay.names.index("control_vs_ms.p_value")
    assert np.all(x[..., k] >= 0)
    # same parameters, same seed: the same cohorts (common random numbers)
    assert np.array_equal(x, jc.simulate_joint(study, lay, params, 300, seed=11))


def test_shifts_are_zero_for_equal_weights_and_follow_the_weights(study):
    import arviz as az

    rng = np.random.default_rng(4)
    covs = ["female", "age_decades", "attacks_per_year", "optic_lesion"]
    idata = az.from_dict(
        posterior={"ratio_of_means": 3.4 + 0.3 * rng.standard_normal((2, 200, 1)), "effect_percent": rng.normal(-10, 10, size=(2, 200, 4))},
        coords={"comparison": ["control_vs_ms"], "covariate": covs},
        dims={"ratio_of_means": ["comparison"], "effect_percent": ["covariate"]},
    )
    draws = jc.printed_draws(idata, study)
    assert "ratio_of_means[control_vs_ms]" in draws and "P(ratio_of_means[control_vs_ms] > 3)" in draws
    assert draws["P(effect_percent[optic_lesion] > 0)"][1]
    check = jc.JointCheck(
        layout=jc.joint_layout(study), pick=np.arange(400), log_w=np.zeros(400), log_w_statistics=np.zeros(400),
        log_w_dependence=np.zeros(400), log_w_empirical=np.zeros(400), log_w_given_statistics=np.zeros(400), log_p_marginal=np.zeros((400, 5)),
        log_p_conditional=np.zeros((400, 5)), empirical_marginal=np.ones((400, 5)), mean=np.zeros((400, 11)),
        corr=np.zeros((400, 11, 11)), n_cohorts=1, n_normal=1, seed=0,
    )
    flat = idata.posterior["ratio_of_means"].values.reshape(-1)
    even = jc.weighted_shifts(idata, study, check, np.full(400, 1 / 400))
    assert np.allclose(even["mean_shift_sd"], 0.0) and np.allclose(even["median_shift_sd"].dropna(), 0.0)
    # weights rising with the ratio move its mean and median up
    tilted = jc.weighted_shifts(idata, study, check, np.exp(flat) / np.exp(flat).sum())
    row = tilted.set_index("estimand").loc["ratio_of_means[control_vs_ms]"]
    assert row["mean_shift_sd"] > 0.05 and row["median_shift_sd"] > 0.05

"""Tests for models.likelihood: the interpolated tables the model uses reproduce the synthetic
likelihood computed by direct simulation, on NumPy and on the PyTensor path the model runs,
with rounding simulated (the rounded tables) or without (the scale-family tables); the
likelihood is not flat anywhere in the tables' CV range; and the building blocks (moments,
MVN density, rounding variance) are right."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from models.families import get_family
from models.group import DEFAULT_REPS
from models.likelihood import (
    CV_RANGE,
    LOG_CV_GRID,
    LOG_SCALE_GRID,
    ROUNDED_LOG_CV_GRID,
    build_rounded_table,
    build_table,
    mvn_logp,
    mvn_logp_batch,
    observed_rounded_log,
    rounded_logp_direct,
    rounded_table_moments,
    rounding_variance_log,
    scale_table_moments_at,
    synthetic_logp_direct,
    synthetic_moments,
    table_moments,
)
from models.simulate import dithered_statistics, round_reported, simulate_group_statistics, sorted_normals, uniform_rounding_errors

ALL_STATS = ("mean", "sd", "median", "q1", "q3", "min", "max")
# (mean, cv) across the prior's range, inside the table grid (CV 0.005 to 50)
POINTS = [(812.0, 0.19), (235.0, 0.43), (1.0, 0.05), (0.2, 0.0123), (50.0, 1.0), (5.0, 2.0), (3000.0, 0.7), (40.0, 0.006), (7.0, 4.0)]

# The study's groups as the model sees them: n, published (mean, sd, median), rounding 1.
GROUPS = {"control": (29, np.array([812.0, 154.0, 866.0])), "ms": (45, np.array([235.0, 100.0, 196.0]))}
MODEL_STATS = ("mean", "sd", "median")
# points around each group's published values, where the posterior and the sampler go
MODEL_POINTS = {
    "control": [(812.0, 0.19), (850.0, 0.25), (780.0, 0.15), (900.0, 0.3), (700.0, 0.1), (812.0, 0.6)],
    "ms": [(235.0, 0.43), (200.0, 0.5), (260.0, 0.35), (235.0, 0.7), (300.0, 0.25), (235.0, 1.5)],
}
# deviates per group: the model's 400 for the lognormal; fewer for the slow (NumPy-only) gamma
# transform - the table is compared with simulation on the *same* deviates, so any reps will do
REPS = {"lognormal": DEFAULT_REPS, "gamma": 100}


@pytest.fixture(scope="module", params=["lognormal", "gamma"])
def model_tables(request):
    """Per group: (deviates, table, observed log values, extra variance), built as group.py does."""
    fam = get_family(request.param)
    rng = np.random.default_rng(20180302)
    out = {}
    for g, (n, published) in GROUPS.items():
        z = sorted_normals(rng, REPS[fam.name], n)
        extra = rounding_variance_log(published, 1.0) + 1e-10  # rounding + group.py's floor
        out[g] = (z, build_table(fam, z, MODEL_STATS, 7), np.log(published), extra)
    return fam, out


@pytest.fixture(scope="module", params=["lognormal", "gamma"])
def all_stats_table(request):
    """A table of every statistic the schema allows, for a group of 15."""
    fam = get_family(request.param)
    z = sorted_normals(np.random.default_rng(7), 150, 15)
    return fam, z, build_table(fam, z, ALL_STATS, 7)


def _direct_moments(fam, z, names, mean, cv):
    sim = simulate_group_statistics(np, fam, z, mean, cv, names)
    return synthetic_moments(np.log(np.maximum(sim, np.finfo(float).tiny)))  # floored as in build_table


# --- the table against direct simulation ---------------------------------------------------
def test_model_table_logp_matches_synthetic_logp_direct(model_tables):
    fam, groups = model_tables
    for g, (z, table, obs, extra) in groups.items():
        for mean, cv in MODEL_POINTS[g]:
            direct = synthetic_logp_direct(fam, z, MODEL_STATS, obs, mean, cv, extra)
            mu, cov = table_moments(np, table, np.log(mean), np.log(cv))
            tabled = mvn_logp(np, obs, mu, cov + np.diag(extra))
            assert np.isfinite(direct)
            assert tabled == pytest.approx(direct, abs=1e-5), (fam.name, g, mean, cv)


def test_pytensor_table_logp_used_by_the_model_matches_direct_simulation(model_tables):
    """The graph the model builds (table_moments + mvn_logp on PyTensor), one compilation."""
    import pytensor
    import pytensor.tensor as pt

    fam, groups = model_tables
    inputs, outputs = [], []
    for g, (z, table, obs, extra) in groups.items():
        lm, lc = pt.dscalar(f"log_mean_{g}"), pt.dscalar(f"log_cv_{g}")
        value = pt.as_tensor(obs)
        mu, cov = table_moments(pt, table, lm, lc)
        # as in the model: the rounding variance computed in the graph from the observed value
        extra_t = rounding_variance_log(pt.exp(value), 1.0) + 1e-10
        logp = mvn_logp(pt, value, mu, cov + pt.diag(extra_t), k=table.k)
        inputs += [lm, lc]
        outputs += [logp, mu, cov]
    fn = pytensor.function(inputs, outputs)
    for (mc, cc), (mm, cm) in zip(MODEL_POINTS["control"], MODEL_POINTS["ms"]):
        values = fn(np.log(mc), np.log(cc), np.log(mm), np.log(cm))
        for i, (g, (mean, cv)) in enumerate([("control", (mc, cc)), ("ms", (mm, cm))]):
            z, table, obs, extra = groups[g]
            lp, mu_g, cov_g = values[3 * i : 3 * i + 3]
            mu_n, cov_n = table_moments(np, table, np.log(mean), np.log(cv))
            np.testing.assert_allclose(mu_g, mu_n, rtol=0, atol=1e-12)
            np.testing.assert_allclose(cov_g, cov_n, rtol=1e-10, atol=1e-15)
            direct = synthetic_logp_direct(fam, z, MODEL_STATS, obs, mean, cv, extra)
            assert float(lp) == pytest.approx(direct, abs=1e-5), (fam.name, g, mean, cv)


def test_table_moments_of_every_statistic_match_direct_simulation(all_stats_table):
    fam, z, table = all_stats_table
    for mean, cv in POINTS:
        mu_t, cov_t = table_moments(np, table, np.log(mean), np.log(cv))
        mu_d, cov_d = _direct_moments(fam, z, ALL_STATS, mean, cv)
        np.testing.assert_allclose(mu_t, mu_d, atol=1e-6, rtol=1e-7, err_msg=f"{fam.name} {mean} {cv}")
        np.testing.assert_allclose(cov_t, cov_d, atol=1e-6 * np.max(np.abs(cov_d)), rtol=0)
        np.testing.assert_array_equal(cov_t, cov_t.T)


def test_table_logp_of_every_statistic_matches_direct_simulation(all_stats_table):
    """Seven strongly correlated statistics: the interpolation error of the moments is
    amplified by the precision matrix, so compare relative to the log density."""
    fam, z, table = all_stats_table
    extra = rounding_variance_log(np.full(len(ALL_STATS), 100.0), 1.0)
    for mean, cv in POINTS:
        mu_d, cov_d = _direct_moments(fam, z, ALL_STATS, mean, cv)
        signs = np.resize([1.0, -0.6, 0.3, -1.0, 0.8, -0.2, 0.5], len(ALL_STATS))
        for scale in (0.0, 1.0, 2.5):
            obs = mu_d + scale * signs * np.sqrt(np.diag(cov_d))
            direct = synthetic_logp_direct(fam, z, ALL_STATS, obs, mean, cv, extra)
            mu_t, cov_t = table_moments(np, table, np.log(mean), np.log(cv))
            tabled = mvn_logp(np, obs, mu_t, cov_t + np.diag(extra))
            assert np.isfinite(direct)
            assert tabled == pytest.approx(direct, rel=1e-5, abs=1e-5), (fam.name, mean, cv, scale)


def test_tables_cover_the_documented_cv_range_and_nearly_all_of_the_default_prior():
    for grid in (LOG_CV_GRID, ROUNDED_LOG_CV_GRID):
        assert np.exp(grid[0]) == pytest.approx(CV_RANGE[0])
        assert np.exp(grid[-1]) == pytest.approx(CV_RANGE[1])
        assert np.all(np.diff(grid) > 0)
    from models.priors import get_priors

    prior = get_priors("group")["log_cv"]
    outside = stats.norm.cdf(np.log(CV_RANGE[0]), prior["mu"], prior["sigma"]) + stats.norm.sf(np.log(CV_RANGE[1]), prior["mu"], prior["sigma"])
    assert outside < 1e-4  # the model truncates the prior there (tests/test_group_model.py)


def test_scale_table_at_many_points_equals_table_moments(all_stats_table):
    fam, z, table = all_stats_table
    lm, lc = np.array([0.3, -2.0, 5.0]), np.log([0.2, 1.7, 30.0])
    mu, cov = scale_table_moments_at(table, lm, lc)
    for i in range(3):
        mu_i, cov_i = table_moments(np, table, lm[i], lc[i])
        np.testing.assert_allclose(mu[i], mu_i, rtol=0, atol=1e-12)
        np.testing.assert_allclose(cov[i], cov_i, rtol=1e-12, atol=1e-15)


# --- rounding simulated in the tables ---------------------------------------------------------
# (mean in rounding units, cv): values of a few units (discrete reported statistics), the
# published study's, very small and very large CVs, and beyond both ends of the scale grid
ROUNDED_POINTS = [(0.3, 0.2), (2.7, 0.05), (12.3, 1.3), (812.0, 0.19), (3.3, 7.7), (0.05, 30.0), (100.0, 2.2), (40.0, 0.0063), (1e6, 0.4), (1e-3, 0.5)]


@pytest.fixture(scope="module", params=["lognormal", "gamma"])
def rounded_table(request):
    fam = get_family(request.param)
    rng = np.random.default_rng(3)
    z = sorted_normals(rng, 150, 29)
    u = uniform_rounding_errors(rng, 150, 3)
    return fam, z, u, build_rounded_table(fam, z, u, MODEL_STATS, 7)


def test_rounded_table_matches_direct_simulation(rounded_table):
    fam, z, u, table = rounded_table
    for m, cv in ROUNDED_POINTS:
        mu_t, cov_t = rounded_table_moments(np, table, np.array([np.log(m)]), np.array([np.log(cv)]))
        s = simulate_group_statistics(np, fam, z, 1.0, cv, MODEL_STATS)
        y = np.log1p(dithered_statistics(s, min(max(m, np.exp(LOG_SCALE_GRID[0])), np.exp(LOG_SCALE_GRID[-1])), u))
        mu_d, cov_d = synthetic_moments(y)
        # beyond the scale grid the table holds its limits: mean minus softplus(log scale)
        if m > np.exp(LOG_SCALE_GRID[-1]) or m < np.exp(LOG_SCALE_GRID[0]):
            mu_d = mu_d - np.logaddexp(0, np.clip(np.log(m), LOG_SCALE_GRID[0], LOG_SCALE_GRID[-1])) + np.logaddexp(0, np.log(m))
        np.testing.assert_allclose(mu_t[0], mu_d, atol=5e-5, rtol=0, err_msg=f"{fam.name} {m} {cv}")
        np.testing.assert_allclose(cov_t[0], cov_d, atol=2e-4 * np.abs(cov_d).max(), rtol=0, err_msg=f"{fam.name} {m} {cv}")
        if np.exp(LOG_SCALE_GRID[0]) <= m <= np.exp(LOG_SCALE_GRID[-1]):
            obs = mu_d + np.sqrt(np.diag(cov_d)) * np.array([1.0, -0.6, 0.3])
            direct = rounded_logp_direct(fam, z, u, MODEL_STATS, obs, m, cv)
            assert mvn_logp_batch(obs, mu_t[0], cov_t[0]) == pytest.approx(direct, abs=1e-3), (fam.name, m, cv)


def test_rounded_table_on_pytensor_equals_numpy(rounded_table):
    """The graph the model builds: rounded moments and the observed scale on PyTensor."""
    import pytensor
    import pytensor.tensor as pt

    _, _, _, table = rounded_table
    ls, lc, value = pt.dscalar("log_scale"), pt.dscalar("log_cv"), pt.dvector("value")
    mu, cov = rounded_table_moments(pt, table, ls, lc)
    obs = observed_rounded_log(pt, value, 1.0)
    lp = mvn_logp(pt, obs, mu, cov, k=3)
    fn = pytensor.function([ls, lc, value], [mu, cov, obs, lp, pytensor.grad(lp, [ls, lc])[0]])
    for m, cv in ROUNDED_POINTS:
        reported = np.array([max(round(m), 0.5), max(round(m * cv), 0.5), max(round(m * 0.9), 0.5)])
        mu_g, cov_g, obs_g, lp_g, grad_g = fn(np.log(m), np.log(cv), np.log(reported))
        mu_n, cov_n = rounded_table_moments(np, table, np.array([np.log(m)]), np.array([np.log(cv)]))
        obs_n = observed_rounded_log(np, np.log(reported), 1.0)
        np.testing.assert_allclose(mu_g, mu_n[0], atol=1e-12, rtol=0)
        np.testing.assert_allclose(cov_g, cov_n[0], atol=1e-14, rtol=1e-10)
        np.testing.assert_allclose(obs_g, obs_n, atol=1e-14)
        assert float(lp_g) == pytest.approx(float(mvn_logp_batch(obs_n, mu_n[0], cov_n[0])), rel=1e-10, abs=1e-10)
        assert np.isfinite(grad_g)


def test_a_reported_value_that_rounded_to_zero_is_the_lattice_point_zero():
    reported = round_reported(np.array([0.2, 0.49, 0.51, 3.4, 812.2]), 1.0)
    np.testing.assert_array_equal(reported, [0.5, 0.5, 1.0, 3.0, 812.0])
    np.testing.assert_allclose(observed_rounded_log(np, np.log(reported), 1.0), np.log1p([0.0, 0.0, 1.0, 3.0, 812.0]), rtol=1e-14)
    # in other units: width 0.1, published 0.05 for "rounded to zero"
    np.testing.assert_allclose(observed_rounded_log(np, np.log([0.05, 0.1, 2.3]), 0.1), np.log1p([0.0, 1.0, 23.0]), rtol=1e-12)


def test_uniform_rounding_error_gives_the_exact_probability_of_a_rounded_value():
    """P(round(S) = r) equals the density of S + U at r (U uniform on one rounding unit):
    the identity that lets the tables simulate rounding with smooth, fixed errors."""
    rng = np.random.default_rng(11)
    s = rng.gamma(2.0, 0.8, 400_000)  # a positive statistic of a few rounding units
    u = rng.uniform(-0.5, 0.5, s.size)
    for r in (0, 1, 2, 5):
        exact = np.mean(np.round(s) == r)
        density = np.mean(np.abs(s + u - r) < 0.05) / 0.1
        assert density == pytest.approx(exact, abs=0.01), r


@pytest.mark.parametrize("family", ["lognormal", "gamma"])
def test_likelihood_is_not_flat_at_high_cv(family):
    """Statistics simulated at a high CV must be most likely near it, and clearly less at a
    quarter and at four times that CV (the earlier table stopped at CV 5 and was flat above)."""
    fam = get_family(family)
    rng = np.random.default_rng(5)
    z = sorted_normals(rng, 300, 29)
    u = uniform_rounding_errors(rng, 300, 3)
    table = build_rounded_table(fam, z, u, MODEL_STATS, 7, cv_grid=np.linspace(np.log(1.0), np.log(CV_RANGE[1]), 25))
    m = 300.0
    for cv in (6.0, 12.0):
        s = simulate_group_statistics(np, fam, z, 1.0, cv, MODEL_STATS)
        obs = np.median(np.log1p(dithered_statistics(s, m, u)), axis=0)  # a typical data set
        lc = np.log([cv / 4, cv, min(cv * 4, CV_RANGE[1])])
        mu, cov = rounded_table_moments(np, table, np.full(3, np.log(m)), lc)
        lp = mvn_logp_batch(obs, mu, cov)
        assert lp[1] > max(lp[0], lp[2]) + 1, (family, cv, lp)


def test_mvn_logp_batch_equals_scipy():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((5, 3, 3))
    cov = a @ a.transpose(0, 2, 1) + 0.1 * np.eye(3)
    mu, x = rng.standard_normal((5, 3)), rng.standard_normal(3)
    want = [stats.multivariate_normal(mean=mu[i], cov=cov[i]).logpdf(x) for i in range(5)]
    np.testing.assert_allclose(mvn_logp_batch(x, mu, cov), want, rtol=1e-10)


# --- groups reporting quantiles or extremes only -------------------------------------------
@pytest.mark.parametrize("family", ["lognormal", "gamma"])
@pytest.mark.parametrize("names", [("median", "q1", "q3"), ("median", "min", "max")], ids=["quartiles", "range"])
def test_group_with_only_order_statistics_builds_a_table_with_finite_logp(family, names):
    fam = get_family(family)
    z = sorted_normals(np.random.default_rng(5), 100, 12)
    table = build_table(fam, z, names, 7)
    assert table.k == 3
    # a plausible published triple: median 200, spread either way
    observed = np.array([200.0, 150.0, 260.0]) if names[1] == "q1" else np.array([200.0, 90.0, 410.0])
    extra = np.maximum(rounding_variance_log(observed, 1.0), 1e-10)
    for mean, cv in [(210.0, 0.3), (180.0, 0.6), (250.0, 1.5), (5.0, 0.05)]:
        mu, cov = table_moments(np, table, np.log(mean), np.log(cv))
        assert np.all(np.isfinite(mu)) and np.all(np.isfinite(cov))
        assert np.all(np.linalg.eigvalsh(cov) > 0)
        lp = mvn_logp(np, np.log(observed), mu, cov + np.diag(extra))
        assert np.isfinite(lp)
        direct = synthetic_logp_direct(fam, z, names, np.log(observed), mean, cv, extra)
        assert lp == pytest.approx(direct, abs=1e-5, rel=1e-7)
    # and the likelihood prefers parameters that fit over ones that do not
    good = mvn_logp(np, np.log(observed), *_add_diag(table_moments(np, table, np.log(210.0), np.log(0.5)), extra))
    bad = mvn_logp(np, np.log(observed), *_add_diag(table_moments(np, table, np.log(5.0), np.log(0.05)), extra))
    assert good > bad + 100


def _add_diag(moments, extra):
    mu, cov = moments
    return mu, cov + np.diag(extra)


# --- building blocks -------------------------------------------------------------------------
def test_synthetic_moments_equal_numpy_mean_and_cov():
    rng = np.random.default_rng(2)
    sim = rng.standard_normal((3, 50, 4)) @ rng.standard_normal((4, 4)) + rng.standard_normal(4)
    mu, cov = synthetic_moments(sim)
    assert mu.shape == (3, 4) and cov.shape == (3, 4, 4)
    for b in range(3):
        np.testing.assert_allclose(mu[b], np.mean(sim[b], axis=0), rtol=1e-12)
        np.testing.assert_allclose(cov[b], np.cov(sim[b], rowvar=False), rtol=1e-10, atol=1e-14)
    mu2, cov2 = synthetic_moments(sim[0])
    np.testing.assert_allclose(cov2, np.cov(sim[0], rowvar=False), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_mvn_logp_equals_scipy(k):
    rng = np.random.default_rng(k)
    a = rng.standard_normal((k, k))
    cov = a @ a.T + 0.1 * np.eye(k)
    mu = rng.standard_normal(k)
    for _ in range(3):
        x = mu + rng.standard_normal(k) * 2
        want = stats.multivariate_normal(mean=mu, cov=cov).logpdf(x)
        assert mvn_logp(np, x, mu, cov) == pytest.approx(want, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_mvn_logp_on_pytensor_equals_scipy(k):
    """The unrolled Cholesky of the tensor path, for every size a group can report."""
    import pytensor.tensor as pt

    rng = np.random.default_rng(9)
    a = rng.standard_normal((k, k))
    cov = a @ a.T + 0.1 * np.eye(k)
    mu, x = rng.standard_normal(k), rng.standard_normal(k)
    got = mvn_logp(pt, pt.as_tensor(x), pt.as_tensor(mu), pt.as_tensor(cov), k=k).eval()
    assert float(got) == pytest.approx(stats.multivariate_normal(mean=mu, cov=cov).logpdf(x), rel=1e-10)
    with pytest.raises(ValueError, match="static dimension k"):
        mvn_logp(pt, pt.as_tensor(x), pt.as_tensor(mu), pt.as_tensor(cov))


def test_rounding_variance_log_is_width_squared_over_12_over_value_squared():
    obs = np.array([812.0, 154.0, 866.0, 0.5])
    np.testing.assert_allclose(rounding_variance_log(obs, 1.0), 1.0 / 12.0 / obs**2, rtol=1e-14)
    np.testing.assert_allclose(rounding_variance_log(obs, 0.1), 0.01 / 12.0 / obs**2, rtol=1e-14)
    np.testing.assert_array_equal(rounding_variance_log(obs, 0.0), np.zeros(4))
    assert float(rounding_variance_log(10, 2)) == pytest.approx(4 / 12 / 100)
    # it is the variance of log(value + U(-w/2, w/2)) to first order
    rng = np.random.default_rng(0)
    u = rng.uniform(-0.5, 0.5, 200_000)
    assert np.var(np.log(20.0 + u)) == pytest.approx(float(rounding_variance_log(20.0, 1.0)), rel=0.02)

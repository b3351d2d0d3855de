"""Tests for models.likelihood: the interpolated tables the model uses reproduce the synthetic
likelihood computed by direct simulation, on NumPy and on the PyTensor path the model runs,
and the building blocks (moments, MVN density, rounding variance) are right."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from models.families import get_family
from models.group import DEFAULT_REPS
from models.likelihood import (
    LOG_CV_GRID,
    build_table,
    mvn_logp,
    rounding_variance_log,
    synthetic_logp_direct,
    synthetic_moments,
    table_moments,
)
from models.simulate import simulate_group_statistics, sorted_normals

ALL_STATS = ("mean", "sd", "median", "q1", "q3", "min", "max")
# (mean, cv) across the prior's range; CV 0.0123 and 2 are inside the table grid (0.01 to 5)
POINTS = [(812.0, 0.19), (235.0, 0.43), (1.0, 0.05), (0.2, 0.0123), (50.0, 1.0), (5.0, 2.0), (3000.0, 0.7)]

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
    return synthetic_moments(np.log(sim))


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
        np.testing.assert_allclose(mu_t, mu_d, atol=1e-6, rtol=0, err_msg=f"{fam.name} {mean} {cv}")
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


def test_table_covers_the_documented_cv_range():
    assert np.exp(LOG_CV_GRID[0]) == pytest.approx(0.01)
    assert np.exp(LOG_CV_GRID[-1]) == pytest.approx(5.0)
    assert np.all(np.diff(LOG_CV_GRID) > 0)


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

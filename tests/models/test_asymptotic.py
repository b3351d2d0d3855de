"""Tests for models.asymptotic: population quantiles of lognormal mixtures, large-sample
moments of log statistics against simulated samples, the finite-sample correction (the
measured trap of the sample SD), and NumPy/PyTensor agreement with correct gradients."""
from __future__ import annotations

import functools

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import optimize, special, stats

from models.asymptotic import build_correction, corrected_moments, influence_covariances, quantile_log, residual_nodes, statistic_moments
from models.statistics import sample_statistics
from tests.compile_modes import UNOPTIMISED

NAMES = ["mean", "sd", "median"]


def _mixture(sigma: float, spread: float = 0.3, M: int = 200, seed: int = 0):
    """Components of a covariate-like mixture: locations spread by ``spread`` (log units)."""
    rng = np.random.default_rng(seed)
    m = 5.0 + spread * rng.standard_normal(M)
    return m, np.full(M, sigma)


def _simulate(m, s, n: int, reps: int = 20000, seed: int = 1, names=NAMES):
    """Log statistics of samples of ``n`` iid draws from the mixture."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, len(m), size=(reps, n))
    x = np.exp(m[k] + s[k] * rng.standard_normal((reps, n)))
    return np.log(sample_statistics(np, np.sort(x, axis=-1), n, names))


@pytest.mark.parametrize("p", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("spread", [0.0, 0.3, 1.5])
def test_quantile_solves_the_mixture_cdf(p, spread):
    m, s = _mixture(0.4, spread)
    s = s * np.linspace(0.5, 1.5, len(s))  # unequal scales
    want = optimize.brentq(lambda y: special.ndtr((y - m) / s).mean() - p, -20, 30, xtol=1e-13)
    assert quantile_log(np, m, s, p) == pytest.approx(want, abs=1e-10)


def test_quantile_converges_for_a_bimodal_mixture():
    """Locations spread 8 times the component scale, a fifth of them shifted by 16 scales
    (a 1-log-unit step clip once cycled here without converging); the batched form (groups x
    quantiles, weights with zero padding) gives the same roots."""
    rng = np.random.default_rng(3)
    sig = 0.05
    m = 8 * sig * rng.standard_normal(300)
    m[rng.random(300) < 0.2] += 16 * sig
    s = np.full(300, sig)
    p = np.array([0.25, 0.5, 0.75])
    want = [optimize.brentq(lambda y: special.ndtr((y - m) / s).mean() - q, -20, 30, xtol=1e-14) for q in p]
    np.testing.assert_allclose(quantile_log(np, m, s, p), want, atol=1e-9 * sig)
    # two "groups", the second padded with zero-weight components
    mb = np.stack([m, np.concatenate([m[:200], np.zeros(100)])])
    w = np.stack([np.full(300, 1 / 300), np.concatenate([np.full(200, 1 / 200), np.zeros(100)])])
    got = quantile_log(np, mb, np.stack([s, s]), p, w=w)
    want2 = [optimize.brentq(lambda y: special.ndtr((y - m[:200]) / sig).mean() - q, -20, 30, xtol=1e-14) for q in p]
    np.testing.assert_allclose(got, [want, want2], atol=1e-9 * sig)


@pytest.mark.parametrize("apart, share", [(37, 0.3), (80, 0.2), (200, 0.4), (12, 0.45)])
def test_quantile_converges_where_subgroups_are_far_apart_in_component_scales(apart, share):
    """A subgroup (a subtype, one sex) far from the rest in units of the residual SD: the
    CDF is a staircase, flat in the gap.  The bracketed iteration reaches the root to 1e-9
    component scales; the former one (6 Newton steps clipped to half the mixture's SD)
    stopped 4 to 33 component scales short, which made the covariate model's log density
    kinked and steep where its residual SD was small (a calibration fit's chains froze)."""
    rng = np.random.default_rng(apart)
    sig = 0.05
    m = np.where(np.arange(900) < share * 900, apart * sig, 0.0) + sig * rng.standard_normal(900)
    s = sig * np.exp(0.2 * rng.standard_normal(900))
    for p in (0.25, 0.5, 0.75):
        want = optimize.brentq(lambda y: special.ndtr((y - m) / s).mean() - p, -20, 30, xtol=1e-14)
        assert abs(quantile_log(np, m, s, p) - want) < 1e-9 * s.min(), p


def test_batched_moments_equal_one_group_at_a_time():
    """Statistic moments on padded, weighted batches equal those of each group alone."""
    m1, s1 = _mixture(0.3, M=120)
    m2, s2 = _mixture(0.5, M=80, seed=2)
    pad = np.zeros(40)
    m = np.stack([m1, np.concatenate([m2, pad])])
    s = np.stack([s1, np.concatenate([s2, pad + 1.0])])
    w = np.stack([np.full(120, 1 / 120), np.concatenate([np.full(80, 1 / 80), pad])])
    names = ["mean", "sd", "q1", "median", "q3"]
    mu, cov = statistic_moments(np, m, s, np.array([29, 45]), names, w=w)
    for k, (mk, sk, n) in enumerate([(m1, s1, 29), (m2, s2, 45)]):
        mu_k, cov_k = statistic_moments(np, mk, sk, n, names)
        np.testing.assert_allclose(mu[k], mu_k, rtol=1e-12)
        np.testing.assert_allclose(cov[k], cov_k, rtol=1e-10)


@functools.cache
def _simulated(sigma, spread, n):
    m, s = _mixture(sigma, spread)
    return m, s, _simulate(m, s, n)


@pytest.mark.parametrize("sigma", [0.2, 0.45])
def test_large_sample_moments_match_simulation(sigma):
    """In the range of the real study (log-scale SD 0.2-0.45, n 29-45) the closed-form
    moments agree with 20000 simulated samples: means to 0.01 log units (their SDs are
    0.04-0.2), SDs to 15 %, correlations to 0.08."""
    n = 29
    m, s, sim = _simulated(sigma, 0.3, n)
    mu, cov = statistic_moments(np, m, s, n, NAMES)
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(mu, sim.mean(0), atol=0.01)
    np.testing.assert_allclose(sd, sim.std(0), rtol=0.15)
    corr = cov / np.outer(sd, sd)
    np.testing.assert_allclose(corr, np.corrcoef(sim.T), atol=0.08)


def test_quartiles_join_the_joint_covariance():
    """With all five statistics (quartiles included) the Gram-matrix covariance matches
    simulation as well: SDs to 15 %, correlations (quartile pairs too) to 0.08.  Means agree
    to 0.02 log units: the sample quartiles' O(1/n) bias (0.014 for q1 at n = 45, about a
    fifth of its SD) is left to the finite-sample correction."""
    names = ["mean", "sd", "q1", "median", "q3"]
    m, s = _mixture(0.35, 0.3)
    sim = _simulate(m, s, 45, names=names)
    mu, cov = statistic_moments(np, m, s, 45, names)
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(mu, sim.mean(0), atol=0.02)
    np.testing.assert_allclose(sd, sim.std(0), rtol=0.15)
    np.testing.assert_allclose(cov / np.outer(sd, sd), np.corrcoef(sim.T), atol=0.08)


def test_finite_sample_correction_removes_the_sd_trap():
    """At large log-scale SDs the large-sample moments of the sample SD are far off (the
    fourth moment explodes: the trap of the textbook asymptotic SD variance), the corrected ones are not: within 0.05
    log units at SD 1.0 and within 0.6 simulated SDs at 1.3, where the uncorrected mean is
    more than 5 SDs off."""
    n = 45
    corr = build_correction(residual_nodes(None), n, NAMES)
    m, s, sim = _simulated(1.0, 0.3, n)
    mu_c, cov_c = corrected_moments(np, corr, m, s, n, NAMES)
    np.testing.assert_allclose(mu_c, sim.mean(0), atol=0.05)
    np.testing.assert_allclose(np.sqrt(np.diag(cov_c)), sim.std(0), rtol=0.1)
    m, s, sim = _simulated(1.3, 0.3, n)
    mu, _ = statistic_moments(np, m, s, n, NAMES)
    mu_c, cov_c = corrected_moments(np, corr, m, s, n, NAMES)
    err = np.abs(np.array([mu[1], mu_c[1]]) - sim.mean(0)[1]) / sim.std(0)[1]
    assert err[0] > 5 and err[1] < 0.6, err
    # and it leaves the small-SD case essentially as it was
    m2, s2, sim2 = _simulated(0.2, 0.3, n)
    mu2, cov2 = corrected_moments(np, corr, m2, s2, n, NAMES)
    np.testing.assert_allclose(mu2, sim2.mean(0), atol=0.01)
    np.testing.assert_allclose(np.sqrt(np.diag(cov2)), sim2.std(0), rtol=0.15)
    assert np.all(np.linalg.eigvalsh(cov_c) > 0) and np.all(np.linalg.eigvalsh(cov2) > 0)


@pytest.mark.parametrize("sigma", [0.9, 1.5])
def test_corrected_mean_follows_a_broad_mixture_at_high_cv(sigma):
    """A covariate mixture much broader than its components (locations spread 1.2 log
    units; CV 2.0 and 4.6) has its own kurtosis at a given CV.  The corrected means still
    follow simulation, within a quarter of the simulated SD: the correction replaces the
    small-sample bias as a whole.  When it corrected the first-order bias formula instead,
    the mean of the log SD came out 4 and 975 log units too high here (poles of the log
    density that made the covariate model diverge)."""
    n = 50
    corr = build_correction(residual_nodes(None), n, NAMES)
    m, s = _mixture(sigma, 1.2)
    sim = _simulate(m, s, n, reps=4000)
    mu_c, _ = corrected_moments(np, corr, m, s, n, NAMES)
    assert np.all(np.abs(mu_c - sim.mean(0)) < 0.25 * sim.std(0)), (mu_c, sim.mean(0))


@pytest.mark.parametrize("levels, counts", [((0.0, 5.0), (40, 5)), ((0.0, 2.5, 5.0), (30, 10, 5))])
def test_a_few_distant_subtypes_keep_their_own_sampling_variance(levels, counts):
    """Subtypes 2.5-5 log units apart (CV 2.5-2.8) make a mixture far less kurtotic than a
    lognormal of its CV (kurtosis 11-16 against 4e3-8e3).  Read at that CV, the lognormal's
    ratio of finite to large-sample variance made the SD of the log SD 0.02-0.03 where 45
    subjects give 0.36-0.44: near-deterministic statistics, walls in the covariate model's log
    density.  Read at the mixture's kurtosis, every statistic's SD is within a factor 2.2 of
    simulation, the correlations within 0.15 and the covariance positive definite."""
    n = 45
    corr = build_correction(residual_nodes(None), n, NAMES)
    m = np.repeat(levels, counts)
    s = np.full(len(m), 0.3 if len(levels) == 2 else 0.4)
    sim = _simulate(m, s, n)
    _, cov = corrected_moments(np, corr, m, s, n, NAMES)
    sd = np.sqrt(np.diag(cov))
    ratio = sd / sim.std(0)
    assert np.all((ratio > 0.45) & (ratio < 2.2)), ratio
    np.testing.assert_allclose(cov / np.outer(sd, sd), np.corrcoef(sim.T), atol=0.15)
    assert np.all(np.linalg.eigvalsh(cov) > 0)


def test_residual_nodes():
    np.testing.assert_array_equal(residual_nodes(None), [1.0])
    v = residual_nodes(5.0, k=8)
    assert v.shape == (8,) and np.all(np.diff(v) < 0) and np.all(v > 0)
    # nodes at the midpoints of equal-probability bins of InvGamma(df/2, df/2)
    want = stats.invgamma(2.5, scale=2.5).ppf(1 - (np.arange(8) + 0.5) / 8)
    np.testing.assert_allclose(v, want, rtol=1e-10)


def test_unsupported_statistic_is_named():
    m, s = _mixture(0.3)
    with pytest.raises(ValueError, match="max have no large-sample"):
        statistic_moments(np, m, s, 29, ["mean", "max"])


def test_pytensor_agrees_with_numpy_and_gradient_is_right():
    """The graph version gives the NumPy values, and the implicit-function gradient of the
    quantile (no gradient through the Newton iterations) matches finite differences."""
    m0, s0 = _mixture(0.35, M=60)
    corr = build_correction(residual_nodes(None), 29, NAMES, reps=500)
    mv, sv = pt.dvector("m"), pt.dscalar("s")
    mu, cov = corrected_moments(pt, corr, mv, sv + pt.zeros_like(mv), 29, NAMES)
    out = mu.sum() + pt.log(cov).sum()
    # the Python linker without rewrites (tests/compile_modes.py): the values and the gradient
    # do not depend on the backend, and the C backend would compile a module per fused
    # operation when the compilation cache is cold
    f = pytensor.function([mv, sv], [mu, cov, out, *pt.grad(out, [mv, sv])], mode=UNOPTIMISED)
    got_mu, got_cov, value, gm, gs = f(m0, 0.35)
    want_mu, want_cov = corrected_moments(np, corr, m0, s0, 29, NAMES)
    np.testing.assert_allclose(got_mu, want_mu, rtol=1e-10)
    np.testing.assert_allclose(got_cov, want_cov, rtol=1e-9)
    h = 1e-6
    e = np.zeros_like(m0)
    e[3] = h
    fd_m = (f(m0 + e, 0.35)[2] - f(m0 - e, 0.35)[2]) / (2 * h)
    fd_s = (f(m0, 0.35 + h)[2] - f(m0, 0.35 - h)[2]) / (2 * h)
    assert gm[3] == pytest.approx(fd_m, rel=1e-5, abs=1e-7)
    assert gs == pytest.approx(fd_s, rel=1e-5)


def test_influence_covariances_match_simulated_residuals():
    """Stein's lemma: on one fixed cohort (a covariate with slope 0.5, residual SD 0.3), the
    covariance of a least-squares coefficient and of the residual sum of squares with the
    log statistics, summed from the per-subject closed forms, against simulated residuals."""
    rng = np.random.default_rng(1)
    n, s = 45, 0.3
    x = rng.standard_normal(n)
    x -= x.mean()
    m = 0.5 * x
    X = np.column_stack([np.ones(n), x])
    P = np.linalg.solve(X.T @ X, X.T)[1]
    lev = np.einsum("ij,ji->i", X, np.linalg.solve(X.T @ X, X.T))
    c1, c2, e = influence_covariances(np, m, np.full(n, s), NAMES)
    # the subjects are the population: their expected influences average to 0
    np.testing.assert_allclose(e.mean(axis=0), 0.0, atol=1e-10)
    model_b = (P[:, None] * c1).sum(axis=0) / n
    model_rss = ((1.0 - lev)[:, None] * c2).sum(axis=0) / n
    Z = m + s * rng.standard_normal((100_000, n))
    st = np.log(sample_statistics(np, np.sort(np.exp(Z), axis=-1), n, NAMES))
    b = Z @ P
    rss = ((Z - Z @ (X @ np.linalg.solve(X.T @ X, X.T)).T) ** 2).sum(axis=-1)
    for model, sim_x in ((model_b, b), (model_rss, rss)):
        for j in range(len(NAMES)):
            prod = (st[:, j] - st[:, j].mean()) * (sim_x - sim_x.mean())
            se = prod.std() / np.sqrt(prod.size)
            # first order in 1/n: 4 Monte Carlo SEs plus 5% of the covariance
            assert abs(model[j] - prod.mean()) < 4 * se + 0.05 * abs(prod.mean()), (NAMES[j], model[j], prod.mean(), se)


def test_a_correction_is_simulated_once_per_process_and_read_only():
    """Every build of the covariate model asks for the same tables; they are kept, read-only,
    and a different argument set is simulated anew."""
    nodes = residual_nodes(None)
    first = build_correction(nodes, 12, NAMES, reps=50, points=20)
    assert build_correction(nodes.copy(), 12, list(NAMES), reps=50, points=20) is first
    assert not first.transport_coef.flags.writeable and not first.bias_coef.flags.writeable
    other = build_correction(nodes, 12, NAMES, reps=50, points=20, seed=1)
    assert other is not first and not np.array_equal(other.bias_coef, first.bias_coef)

"""Tests for models.families: each family's quantile transform, median and CDF agree with the
SciPy distribution of the same (mean, CV), and that distribution really has that mean and CV.

The moments are also checked by quadrature of the quantile transform itself, which does not
go through :func:`models.families.scipy_distribution` at all.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special, stats

from models.families import FAMILIES, WEIBULL_MEAN_BELOW_MEDIAN_SHAPE, get_family, scipy_distribution, weibull_shape

FAMILY_NAMES = ("lognormal", "gamma", "weibull")
# (mean, cv): tight, typical of the study (0.19, 0.45), CV 1 and a heavy spread (CV 2)
MEAN_CV = [(1.0, 0.05), (812.0, 0.19), (235.0, 0.45), (3.5, 1.0), (0.02, 2.0)]
Z = np.concatenate([np.linspace(-4.0, 4.0, 33), [-6.0, -5.0, -1e-3, 1e-3, 5.0, 6.0]])
# ppf(Phi(z)) is only a faithful reference where Phi(z) keeps its digits (|z| <= 5);
# beyond, the exact tail is checked against isf(Phi(-z)) below
Z_CORE = Z[np.abs(Z) <= 5.0]

cases = pytest.mark.parametrize("mean, cv", MEAN_CV, ids=[f"mean{m:g}-cv{c:g}" for m, c in MEAN_CV])
families = pytest.mark.parametrize("name", FAMILY_NAMES)


def test_the_families_are_registered():
    assert set(FAMILY_NAMES) <= set(FAMILIES)
    for name in FAMILY_NAMES:
        assert get_family(name).name == name


@pytest.mark.parametrize("cv", [0.005, 0.1, 0.5, 1.0, 3.0, 8.0, 15.0, 25.0, 50.0])
def test_gamma_quantile_of_many_deviates_is_interpolated_within_1e_10(cv, monkeypatch):
    """A likelihood table's cohorts (thousands of sorted deviates, one CV): the quantile is
    interpolated between exact inversions, within 1e-10 relative of inverting each deviate;
    where a tiny shape underflows to 0, it does so at the same deviates.  Extremes of
    +-6.4 as the largest tables reach."""
    from models import families

    real, calls = families._gamma_std_quantile_spline, []
    monkeypatch.setattr(families, "_gamma_std_quantile_spline", lambda z, k: calls.append(k) or real(z, k))
    z = np.sort(np.random.default_rng(3).standard_normal((500, 45)), axis=1)
    z[0, 0], z[-1, -1] = -6.4, 6.4
    assert z.size >= families.SPLINE_MIN_SIZE
    shape = 1.0 / cv**2
    got = get_family("gamma").quantile(np, z, 1.0, cv) * shape
    exact = families._gamma_std_quantile_exact(z, shape)
    assert calls == [shape]  # the interpolated path was taken
    np.testing.assert_array_equal(got == 0, exact == 0)
    normal = exact > 1e-300
    assert normal.mean() > 0.2
    np.testing.assert_allclose(got[normal], exact[normal], rtol=1e-10, atol=0)
    # and the exact inversion is scipy's quantile, at a sample of the deviates
    pick = z.ravel()[::997]
    mid = np.abs(pick) < 3  # where scipy's ppf of ndtr(z) keeps its digits
    np.testing.assert_allclose(exact.ravel()[::997][mid], stats.gamma(a=shape).ppf(special.ndtr(pick[mid])), rtol=1e-9)


def test_gamma_quantile_of_few_deviates_or_many_shapes_is_inverted_exactly():
    from models import families

    z = np.random.default_rng(4).standard_normal((10, 45))
    shapes = np.random.default_rng(5).uniform(0.05, 50.0, (10, 1))
    exact = families._gamma_std_quantile_exact(z, shapes)
    np.testing.assert_array_equal(families._gamma_std_quantile(np, z, shapes), exact)
    np.testing.assert_array_equal(families._gamma_std_quantile(np, z, 2.0), families._gamma_std_quantile_exact(z, 2.0))


@families
@cases
def test_quantile_matches_scipy_ppf(name, mean, cv):
    fam = get_family(name)
    got = fam.quantile(np, Z_CORE, mean, cv)
    want = scipy_distribution(name, mean, cv).ppf(special.ndtr(Z_CORE))
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert np.all(np.isfinite(got)) and np.all(got > 0)


@cases
def test_lognormal_quantile_is_exact_in_the_upper_tail(mean, cv):
    dist = scipy_distribution("lognormal", mean, cv)
    z = np.array([3.0, 6.0, 8.5, 10.0])
    got = get_family("lognormal").quantile(np, z, mean, cv)
    np.testing.assert_allclose(got, dist.isf(special.ndtr(-z)), rtol=1e-12)


def test_gamma_quantile_is_finite_and_exact_in_the_far_upper_tail():
    z = np.array([6.0, 8.5, 10.0])
    for mean, cv in MEAN_CV:
        got = get_family("gamma").quantile(np, z, mean, cv)
        want = scipy_distribution("gamma", mean, cv).isf(special.ndtr(-z))
        np.testing.assert_allclose(got, want, rtol=1e-12)


@families
@cases
def test_quantile_is_increasing_so_sorted_deviates_give_sorted_samples(name, mean, cv):
    rng = np.random.default_rng(3)
    z = np.sort(rng.standard_normal((50, 29)), axis=-1)
    x = get_family(name).quantile(np, z, mean, cv)
    assert x.shape == z.shape
    assert np.all(np.diff(x, axis=-1) >= 0)
    assert np.all(np.diff(get_family(name).quantile(np, np.unique(Z), mean, cv)) > 0)


@families
@cases
def test_scipy_distribution_has_the_stated_mean_and_cv(name, mean, cv):
    dist = scipy_distribution(name, mean, cv)
    assert dist.mean() == pytest.approx(mean, rel=1e-12)
    assert dist.std() / dist.mean() == pytest.approx(cv, rel=1e-12)


@families
@cases
def test_quantile_transform_of_a_standard_normal_has_the_stated_mean_and_cv(name, mean, cv):
    """E[Q(Phi(Z))] and E[Q(Phi(Z))^2] by quadrature over z (independent of scipy_distribution)."""
    fam = get_family(name)

    def moment(k):
        f = lambda z: (fam.quantile(np, z, mean, cv) / mean) ** k * stats.norm.pdf(z)  # noqa: E731
        # |z| > 8 carries < 1e-7 of the first two moments for these CVs (and the gamma
        # transform is checked there separately)
        val, _ = integrate.quad(f, -8.0, 8.0, points=[0.0], limit=400, epsabs=1e-13, epsrel=1e-11)
        return val

    m1, m2 = moment(1), moment(2)
    assert m1 == pytest.approx(1.0, rel=1e-7)
    assert np.sqrt(m2 - m1**2) / m1 == pytest.approx(cv, rel=1e-6)


@families
@cases
def test_median_matches_scipy_and_the_quantile_at_zero(name, mean, cv):
    fam = get_family(name)
    med = fam.median(np, mean, cv)
    assert med == pytest.approx(scipy_distribution(name, mean, cv).median(), rel=1e-10)
    assert med == pytest.approx(float(fam.quantile(np, 0.0, mean, cv)), rel=1e-12)
    # lognormal and gamma are right-skewed at every CV; a Weibull only below its critical
    # shape (CV above ~0.32)
    if name == "weibull" and weibull_shape(cv) > WEIBULL_MEAN_BELOW_MEDIAN_SHAPE:
        assert med > mean
    else:
        assert med < mean


@pytest.mark.parametrize("cv", [0.005, 0.05, 0.19, 0.45, 1.0, 3.0, 50.0])
def test_weibull_shape_inverts_the_cv_exactly(cv):
    from scipy import special as sp

    k = weibull_shape(cv)
    got = np.sqrt(sp.gamma(1 + 2 / k) / sp.gamma(1 + 1 / k) ** 2 - 1)
    assert got == pytest.approx(cv, rel=1e-10)


def test_weibull_puts_the_mean_below_the_median_exactly_past_its_critical_shape():
    """The Lasemi controls (mean 812 < median 866, CV 0.19) need such a family."""
    k = WEIBULL_MEAN_BELOW_MEDIAN_SHAPE
    for shape, sign in ((k * 0.999, -1), (k * 1.001, 1)):
        dist = stats.weibull_min(c=shape)
        assert np.sign(dist.median() - dist.mean()) == sign
    fam = get_family("weibull")
    assert fam.median(np, 812.0, 0.19) > 812.0
    assert fam.median(np, 235.0, 0.43) < 235.0


@families
@cases
def test_cdf_matches_scipy_and_inverts_the_quantile(name, mean, cv):
    fam = get_family(name)
    dist = scipy_distribution(name, mean, cv)
    x = dist.ppf(np.linspace(0.001, 0.999, 41))
    np.testing.assert_allclose(fam.cdf(x, mean, cv), dist.cdf(x), rtol=1e-9, atol=1e-14)
    z = np.linspace(-3.5, 3.5, 15)
    np.testing.assert_allclose(fam.cdf(fam.quantile(np, z, mean, cv), mean, cv), special.ndtr(z), rtol=1e-8, atol=1e-14)


@families
def test_vectorised_parameters_broadcast_like_the_simulator_uses_them(name):
    """(reps, 1) parameters against (reps, n) deviates: row r uses parameters r."""
    fam = get_family(name)
    z = np.sort(np.random.default_rng(0).standard_normal((3, 7)), axis=-1)
    means = np.array([[1.0], [50.0], [812.0]])
    cvs = np.array([[0.05], [0.45], [2.0]])
    got = fam.quantile(np, z, means, cvs)
    for r in range(3):
        np.testing.assert_allclose(got[r], fam.quantile(np, z[r], means[r, 0], cvs[r, 0]), rtol=1e-13)


@families
def test_scale_family_quantile_is_proportional_to_the_mean(name):
    """The likelihood tables rely on X(mean) = mean * X(1) at fixed CV."""
    fam = get_family(name)
    for cv in (0.05, 0.45, 2.0):
        np.testing.assert_allclose(fam.quantile(np, Z, 812.0, cv), 812.0 * fam.quantile(np, Z, 1.0, cv), rtol=1e-12)


def test_lognormal_quantile_and_median_run_on_pytensor():
    import pytensor.tensor as pt

    fam = get_family("lognormal")
    for mean, cv in MEAN_CV:
        # np.float64: pt.constant of a Python float is float32
        mean_t, cv_t = pt.constant(np.float64(mean)), pt.constant(np.float64(cv))
        got = fam.quantile(pt, pt.constant(Z), mean_t, cv_t).eval()
        np.testing.assert_allclose(got, fam.quantile(np, Z, mean, cv), rtol=1e-12)
        med = fam.median(pt, mean_t, cv_t).eval()
        assert float(med) == pytest.approx(fam.median(np, mean, cv), rel=1e-12)


@pytest.mark.parametrize("name", ["gamma", "weibull"])
def test_table_only_families_refuse_pytensor(name):
    import pytensor.tensor as pt

    with pytest.raises(NotImplementedError):
        get_family(name).quantile(pt, pt.constant(Z), 1.0, 0.5)


def test_weibull_quantile_is_exact_in_both_far_tails():
    z = np.array([-9.0, -7.0, 6.0, 8.5, 10.0])
    for mean, cv in MEAN_CV:
        dist = scipy_distribution("weibull", mean, cv)
        got = get_family("weibull").quantile(np, z, mean, cv)
        want = np.where(z > 0, dist.isf(special.ndtr(-z)), dist.ppf(special.ndtr(z)))
        np.testing.assert_allclose(got, want, rtol=1e-9)


def test_unknown_family_raises_keyerror_listing_known_families():
    with pytest.raises(KeyError) as info:
        get_family("nope")
    msg = str(info.value)
    assert "nope" in msg
    for name in FAMILIES:
        assert name in msg


def test_scipy_distribution_unknown_family_raises_keyerror():
    with pytest.raises(KeyError):
        scipy_distribution("nope", 1.0, 0.5)


PAIRS = [((1.0, 0.05), (1.02, 0.08)), ((812.0, 0.19), (235.0, 0.45)), ((3.5, 1.0), (3.5, 2.0)), ((0.02, 2.0), (0.5, 0.3))]


@pytest.mark.parametrize("name", [n for n in FAMILY_NAMES if FAMILIES[n].superiority is not None])
@pytest.mark.parametrize("a, b", PAIRS, ids=[f"pair{i}" for i in range(len(PAIRS))])
def test_closed_form_superiority_is_the_integral_and_the_quadrature_within_its_error(name, a, b):
    from models.estimands import superiority_by_quadrature

    fam = get_family(name)
    da, db = scipy_distribution(name, *a), scipy_distribution(name, *b)
    # P(X_a > X_b) = integral of F_b(x) dF_a(x), by SciPy's adaptive quadrature of the
    # distributions SciPy defines, independently of the family's transforms
    lo, hi = da.ppf(1e-15), da.isf(1e-15)
    reference = integrate.quad(lambda x: da.pdf(x) * db.cdf(x), lo, hi, epsabs=1e-13, epsrel=1e-11, limit=500, points=[da.median()])[0]
    got = fam.superiority(np.float64(a[0]), np.float64(a[1]), np.float64(b[0]), np.float64(b[1]))
    assert got == pytest.approx(reference, abs=1e-9)
    # the other way round it is the complement (continuous distributions: no ties)
    assert fam.superiority(b[0], b[1], a[0], a[1]) == pytest.approx(1.0 - got, abs=1e-12)
    assert superiority_by_quadrature(fam, a[0], a[1], b[0], b[1]) == pytest.approx(got, abs=1.1e-4)

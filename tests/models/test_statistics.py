"""Tests for models.statistics: the published-statistic functions agree with NumPy's own
definitions on NumPy arrays *and* when the same code runs as a PyTensor graph, and the group
test p-values agree with SciPy (row by row) and with the textbook formulas."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from models.statistics import group_test_pvalue, sample_statistic, sample_statistics

NAMES = ("mean", "sd", "median", "q1", "q3", "min", "max")
# odd and even n, including sizes where (n - 1) * p is and is not a whole number for p = 1/4,
# 1/2, 3/4, and the study's group sizes (29, 45)
SIZES = (2, 3, 4, 5, 6, 7, 8, 10, 29, 45)


def _numpy_reference(x: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "mean": np.mean(x, axis=-1),
        "sd": np.std(x, axis=-1, ddof=1),
        "median": np.median(x, axis=-1),
        "q1": np.quantile(x, 0.25, axis=-1),
        "q3": np.quantile(x, 0.75, axis=-1),
        "min": np.min(x, axis=-1),
        "max": np.max(x, axis=-1),
    }


def _sorted_rows(n: int, batch=(6,), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + n)
    return np.sort(rng.lognormal(5.0, 0.8, size=(*batch, n)), axis=-1)


@pytest.mark.parametrize("n", SIZES)
def test_numpy_statistics_match_numpy_definitions(n):
    x = _sorted_rows(n)
    ref = _numpy_reference(x)
    for name in NAMES:
        got = sample_statistic(np, x, n, name)
        assert got.shape == (6,), name
        np.testing.assert_allclose(got, ref[name], rtol=1e-12, err_msg=name)


def test_quartiles_are_interpolated_not_nearest_rank():
    """n = 6: (n - 1) / 4 = 1.25, so q1 lies a quarter of the way from x[1] to x[2]."""
    x = np.array([[1.0, 2.0, 4.0, 8.0, 16.0, 32.0]])
    assert sample_statistic(np, x, 6, "q1")[0] == pytest.approx(2.0 + 0.25 * 2.0)
    assert sample_statistic(np, x, 6, "median")[0] == pytest.approx(6.0)
    assert sample_statistic(np, x, 6, "q3")[0] == pytest.approx(8.0 + 0.75 * 8.0)
    assert sample_statistic(np, x, 6, "sd")[0] == pytest.approx(np.std(x, ddof=1))


def test_batched_rows_with_several_leading_axes():
    n = 9
    x = _sorted_rows(n, batch=(3, 4, 5))
    ref = _numpy_reference(x)
    for name in NAMES:
        got = sample_statistic(np, x, n, name)
        assert got.shape == (3, 4, 5)
        np.testing.assert_allclose(got, ref[name], rtol=1e-12, err_msg=name)
    # each row on its own gives the same value as in the batch
    for name in NAMES:
        np.testing.assert_allclose(sample_statistic(np, x[1, 2], n, name), ref[name][1, 2], rtol=1e-12)


def test_sample_statistics_stacks_in_the_order_given():
    n = 8
    x = _sorted_rows(n, batch=(4, 3))
    order = ("max", "median", "mean", "q1", "sd")
    got = sample_statistics(np, x, n, order)
    assert got.shape == (4, 3, len(order))
    ref = _numpy_reference(x)
    for i, name in enumerate(order):
        np.testing.assert_allclose(got[..., i], ref[name], rtol=1e-12)


@pytest.mark.parametrize("n", (2, 5, 8, 29, 45))
def test_pytensor_graph_evaluates_to_the_numpy_values(n):
    import pytensor.tensor as pt

    x = _sorted_rows(n, batch=(4, 3))
    ref = _numpy_reference(x)
    # one graph (one compilation) for all statistics
    got = sample_statistics(pt, pt.constant(x), n, NAMES).eval()
    assert got.shape == (4, 3, len(NAMES))
    for i, name in enumerate(NAMES):
        np.testing.assert_allclose(got[..., i], ref[name], rtol=1e-12, err_msg=name)


def test_single_pytensor_statistic_evaluates():
    import pytensor.tensor as pt

    x = _sorted_rows(7)
    got = sample_statistic(pt, pt.constant(x), 7, "q3").eval()
    np.testing.assert_allclose(got, np.quantile(x, 0.75, axis=-1), rtol=1e-12)


def test_unknown_statistic_raises_valueerror_naming_it():
    x = _sorted_rows(5)
    for bad in ("cv", "Mean", "", "range"):
        with pytest.raises(ValueError, match="unknown statistic"):
            sample_statistic(np, x, 5, bad)
    with pytest.raises(ValueError, match="'cv'"):
        sample_statistics(np, x, 5, ("mean", "cv"))


def test_unknown_quantile_type_raises_valueerror():
    x = _sorted_rows(5)
    for bad in (0, 10, "7"):
        with pytest.raises(ValueError, match="not a Hyndman-Fan type"):
            sample_statistic(np, x, 5, "q1", quantile_method=bad)


#: NumPy's names of Hyndman & Fan's nine sample quantile types.
NUMPY_METHOD = {
    1: "inverted_cdf", 2: "averaged_inverted_cdf", 3: "closest_observation", 4: "interpolated_inverted_cdf",
    5: "hazen", 6: "weibull", 7: "linear", 8: "median_unbiased", 9: "normal_unbiased",
}


@pytest.mark.parametrize("method", sorted(NUMPY_METHOD))
def test_every_quantile_type_matches_numpy(method):
    """Each of the nine types, for odd and even n and for n p on and off whole numbers
    (ties of the rounding types included), gives NumPy's value of the same type."""
    rng = np.random.default_rng(method)
    for n in range(1, 50):
        x = np.sort(rng.standard_normal((4, n)), axis=-1)
        for name, p in (("q1", 0.25), ("median", 0.5), ("q3", 0.75)):
            got = sample_statistic(np, x, n, name, quantile_method=method)
            np.testing.assert_allclose(got, np.quantile(x, p, axis=-1, method=NUMPY_METHOD[method]), rtol=0, atol=1e-12)


def test_quantile_types_differ_where_papers_would_see_it():
    """SPSS's type 6 and R's type 7 give different quartiles for a small sample; the
    medians agree (both interpolate the middle order statistics)."""
    x = np.array([[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]])
    assert sample_statistic(np, x, 7, "q1", quantile_method=6)[0] == pytest.approx(2.0)
    assert sample_statistic(np, x, 7, "q1", quantile_method=7)[0] == pytest.approx(3.0)
    assert sample_statistic(np, x, 7, "median", quantile_method=6)[0] == sample_statistic(np, x, 7, "median", quantile_method=7)[0]


def test_quantile_types_run_in_a_pytensor_graph():
    """The likelihood computes quartiles inside PyTensor graphs: every type gives the NumPy
    value there too."""
    import pytensor
    import pytensor.tensor as pt

    x = _sorted_rows(10)
    xt = pt.matrix("x")
    names = ("q1", "median", "q3")
    # one graph for all types, without C compilation (the indexing is what is tested)
    f = pytensor.function([xt], [sample_statistics(pt, xt, 10, names, m) for m in NUMPY_METHOD], mode="FAST_COMPILE")
    for method, got in zip(NUMPY_METHOD, f(x)):
        np.testing.assert_allclose(got, sample_statistics(np, x, 10, names, method), rtol=1e-12)


# --- group tests ---------------------------------------------------------------------------
@pytest.fixture
def two_groups():
    rng = np.random.default_rng(11)
    a = rng.lognormal(6.6, 0.2, size=(8, 29))
    b = rng.lognormal(5.3, 0.45, size=(8, 45))
    b[:4] = rng.lognormal(6.55, 0.25, size=(4, 45))  # some rows with a small difference
    return a, b


def test_group_test_pvalues_match_scipy_row_by_row(two_groups):
    a, b = two_groups
    scipy_tests = {
        "mann_whitney": lambda u, v: stats.mannwhitneyu(u, v, alternative="two-sided", method="asymptotic").pvalue,
        "welch_t": lambda u, v: stats.ttest_ind(u, v, equal_var=False).pvalue,
        "student_t": lambda u, v: stats.ttest_ind(u, v, equal_var=True).pvalue,
    }
    for test, fn in scipy_tests.items():
        got = group_test_pvalue(a, b, test)
        assert got.shape == (8,)
        want = np.array([fn(a[i], b[i]) for i in range(8)])
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=test)
        assert np.all((got >= 0) & (got <= 1))
        # the first rows differ little, the rest a lot
        assert got[4:].max() < 1e-6 < got[:4].max(), test


def test_group_test_pvalues_match_textbook_formulas(two_groups):
    a, b = two_groups
    na, nb = a.shape[-1], b.shape[-1]
    va, vb = a.var(-1, ddof=1), b.var(-1, ddof=1)
    diff = a.mean(-1) - b.mean(-1)
    # Welch
    se2 = va / na + vb / nb
    df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    welch = 2 * stats.t.sf(np.abs(diff) / np.sqrt(se2), df)
    np.testing.assert_allclose(group_test_pvalue(a, b, "welch_t"), welch, rtol=1e-9)
    # Student (pooled variance)
    sp2 = ((na - 1) * va + (nb - 1) * vb) / (na + nb - 2)
    student = 2 * stats.t.sf(np.abs(diff) / np.sqrt(sp2 * (1 / na + 1 / nb)), na + nb - 2)
    np.testing.assert_allclose(group_test_pvalue(a, b, "student_t"), student, rtol=1e-9)
    # Mann-Whitney, normal approximation with continuity correction (no ties here)
    ranks = stats.rankdata(np.concatenate([a, b], axis=-1), axis=-1)
    u = ranks[:, :na].sum(-1) - na * (na + 1) / 2
    z = (np.abs(u - na * nb / 2) - 0.5) / np.sqrt(na * nb * (na + nb + 1) / 12)
    np.testing.assert_allclose(group_test_pvalue(a, b, "mann_whitney"), 2 * stats.norm.sf(z), rtol=1e-9)


def test_group_test_pvalues_are_symmetric_in_the_groups(two_groups):
    a, b = two_groups
    for test in ("mann_whitney", "welch_t", "student_t"):
        np.testing.assert_allclose(group_test_pvalue(a, b, test), group_test_pvalue(b, a, test), rtol=1e-12)


def test_unknown_group_test_raises_valueerror_listing_the_choices(two_groups):
    a, b = two_groups
    with pytest.raises(ValueError) as info:
        group_test_pvalue(a, b, "kolmogorov")
    msg = str(info.value)
    assert "kolmogorov" in msg
    for name in ("mann_whitney", "welch_t", "student_t"):
        assert name in msg


def _t_interval(x, side, logs=False):
    from scipy import stats

    y = np.log(x) if logs else x
    low, high = stats.t.interval(0.95, y.shape[-1] - 1, loc=y.mean(axis=-1), scale=stats.sem(y, axis=-1))
    out = {"low": low, "high": high, "centre": y.mean(axis=-1), "half": (high - low) / 2}[side]
    return np.exp(out) if logs else out


@pytest.mark.parametrize("name, reference", [
    ("mean_ci_low", lambda x: _t_interval(x, "low")),
    ("mean_ci_high", lambda x: _t_interval(x, "high")),
    ("mean_ci_half", lambda x: _t_interval(x, "half")),
    ("gmean", lambda x: __import__("scipy").stats.gmean(x, axis=-1)),
    ("gmean_ci_low", lambda x: _t_interval(x, "low", logs=True)),
    ("gmean_ci_high", lambda x: _t_interval(x, "high", logs=True)),
])
def test_confidence_intervals_and_geometric_means_match_scipy(name, reference):
    """A mean with its 95% CI, a geometric mean with its 95% CI (scipy's t interval)."""
    for n in SIZES:
        x = _sorted_rows(n)  # lognormal, positive as the geometric mean needs
        np.testing.assert_allclose(sample_statistic(np, x, n, name), reference(x), rtol=1e-10)


def test_a_mean_interval_enters_the_likelihood_as_its_half_width_and_midpoint():
    from models.statistics import modelled_statistics

    got = modelled_statistics({"median": 5.0, "mean_ci_low": 4.0, "mean_ci_high": 7.0})
    assert got == {"median": 5.0, "mean": 5.5, "mean_ci_half": 1.5}
    # a published mean is kept, not replaced by the midpoint (which rounding may move)
    assert modelled_statistics({"mean": 5.4, "mean_ci_low": 4.0, "mean_ci_high": 7.0})["mean"] == 5.4
    assert modelled_statistics({"mean": 5.0, "sd": 1.0}) == {"mean": 5.0, "sd": 1.0}


@pytest.mark.parametrize("name, reference", [
    ("sem", lambda x: x.std(axis=-1, ddof=1) / np.sqrt(x.shape[-1])),
    ("iqr", lambda x: np.quantile(x, 0.75, axis=-1) - np.quantile(x, 0.25, axis=-1)),
    ("p5", lambda x: np.quantile(x, 0.05, axis=-1)),
    ("p10", lambda x: np.quantile(x, 0.10, axis=-1)),
    ("p90", lambda x: np.quantile(x, 0.90, axis=-1)),
    ("p95", lambda x: np.quantile(x, 0.95, axis=-1)),
])
def test_formats_papers_print_match_their_definitions(name, reference):
    """Standard error of the mean, the IQR printed as one width, and outer percentiles."""
    for n in SIZES:
        x = _sorted_rows(n)
        np.testing.assert_allclose(sample_statistic(np, x, n, name), reference(x), rtol=1e-12)


def test_covariate_model_corrections_follow_the_quantile_type():
    """The covariate model's finite-sample tables are simulated with the study's quantile
    type: SPSS's type 6 puts the first quartile of 10 subjects lower than R's type 7 (order
    statistic 2.75 against 3.25), the third higher, and the median where type 7 does."""
    from models.asymptotic import build_correction, corrected_moments, residual_nodes, statistic_moments

    names = ("q1", "median", "q3")
    nodes = residual_nodes(None)
    m, s = np.zeros(1), np.full(1, np.sqrt(np.log1p(0.5**2)))  # a lognormal of CV 0.5
    population, _ = statistic_moments(np, m, s, 10, names, bias=False)
    delta = {}
    for method in (6, 7):
        c = build_correction(nodes, 10, names, reps=400, seed=1, quantile_method=method)
        delta[method] = corrected_moments(np, c, m, s, 10, names)[0] - population
    assert delta[6][0] < delta[7][0] - 0.02 and delta[6][2] > delta[7][2] + 0.02
    assert delta[6][1] == pytest.approx(delta[7][1], abs=1e-12)


def test_tests_across_several_groups_match_scipy_row_by_row():
    from scipy import stats as sps

    from models.statistics import several_group_pvalue

    rng = np.random.default_rng(8)
    groups = [rng.lognormal(m, 0.5, (4, n)) for m, n in ((1.0, 20), (1.3, 39), (0.6, 35))]
    for test, ref in (("kruskal_wallis", sps.kruskal), ("anova", sps.f_oneway)):
        got = several_group_pvalue(groups, test)
        want = [ref(*(g[i] for g in groups)).pvalue for i in range(4)]
        np.testing.assert_allclose(got, want, rtol=1e-10)
    with pytest.raises(ValueError, match="kruskal_wallis or anova"):
        several_group_pvalue(groups, "friedman")

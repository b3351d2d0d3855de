"""Tests for models.evidence (JZS Bayes factors from t statistics)."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from models.evidence import (
    bayes_factor_robustness,
    jzs_bayes_factor,
    log10_jzs_bayes_factor,
    t_from_summary,
)


def _n_eff_df(n1, n2):
    if n2 is None:
        return n1, n1 - 1
    return n1 * n2 / (n1 + n2), n1 + n2 - 2


def _bf10_noncentral_t(t, n1, n2, r):
    """Independent route: marginal likelihood of t under H1 as the noncentral-t
    density averaged over a Cauchy(0, r) prior on delta, divided by the
    central-t density under H0 (no g-prior, no log-space tricks)."""
    n_eff, df = _n_eff_df(n1, n2)
    root_n = math.sqrt(n_eff)

    def integrand(delta):
        return stats.nct.pdf(t, df, delta * root_n) * stats.cauchy.pdf(delta, scale=r)

    # Split around where the likelihood peaks so quad cannot step over it.
    centre = t / root_n
    half = 10.0 / root_n
    pieces = [(-np.inf, centre - half), (centre - half, centre + half), (centre + half, np.inf)]
    marginal = sum(
        integrate.quad(integrand, a, b, epsabs=0.0, epsrel=1e-10, limit=200)[0]
        for a, b in pieces
    )
    return marginal / stats.t.pdf(t, df)


def test_rouder_2009_published_example():
    # Rouder et al. (2009): one-sample t = 2.03, N = 80, r = 1 -> BF01 = 1.557447.
    bf01 = 1.0 / jzs_bayes_factor(2.03, 80, r=1)
    assert bf01 == pytest.approx(1.557447, rel=1e-5)


@pytest.mark.parametrize(
    "t, n1, n2, r",
    [
        (0.5, 12, None, 0.707),
        (2.0, 40, None, 1.0),
        (3.5, 15, None, 1.414),
        (0.5, 20, 25, 0.707),
        (2.0, 30, 25, 1.0),
        (3.5, 60, 15, 0.5),
        (-2.0, 10, 10, 1.414),
        (2.0, 10, 55, 0.707),
    ],
)
def test_matches_noncentral_t_marginal_likelihood(t, n1, n2, r):
    expected = _bf10_noncentral_t(t, n1, n2, r)
    assert jzs_bayes_factor(t, n1, n2, r) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("t, n1, n2, r", [(2.5, 20, None, 0.707), (1.7, 12, 18, 1.0), (20.0, 29, 45, 0.5)])
def test_symmetric_in_t(t, n1, n2, r):
    assert jzs_bayes_factor(-t, n1, n2, r) == pytest.approx(jzs_bayes_factor(t, n1, n2, r), rel=1e-10)


@pytest.mark.parametrize("n1, n2", [(20, None), (15, 30)])
def test_null_favoured_at_t0_and_more_so_for_wider_prior(n1, n2):
    bfs = [jzs_bayes_factor(0.0, n1, n2, r) for r in (0.2, 0.5, 0.707, 1.0, 1.414, 3.0)]
    assert all(bf < 1 for bf in bfs)
    # A wider prior spreads H1's mass over larger effects, so at t = 0 it
    # must lose strictly more to the point null.
    assert all(a > b for a, b in zip(bfs, bfs[1:]))


def test_log10_handles_huge_evidence():
    log10_bf = log10_jzs_bayes_factor(20, 29, 45)
    assert math.isfinite(log10_bf)
    assert log10_bf > 10
    # Far beyond float range the log version must still be finite while the
    # plain version is allowed (only then) to be inf.
    huge = log10_jzs_bayes_factor(400, 2000, 4500)
    assert math.isfinite(huge) and huge > 310
    assert jzs_bayes_factor(400, 2000, 4500) == math.inf


@pytest.mark.parametrize(
    "t, n1, n2, r",
    [(20, 29, 45, 0.707), (0.0, 10, None, 1.0), (2.03, 80, None, 1.0), (3.0, 8, 9, 1.414), (15, 30, None, 0.5)],
)
def test_log10_consistent_with_plain(t, n1, n2, r):
    bf = jzs_bayes_factor(t, n1, n2, r)
    assert math.isfinite(bf)
    assert log10_jzs_bayes_factor(t, n1, n2, r) == pytest.approx(math.log10(bf), rel=1e-10, abs=1e-12)


def test_huge_t_matches_noncentral_t_route():
    # t = 20 still has a representable central-t density, so the independent
    # route can check the log-space integration where BF10 ~ 1e27.
    expected = _bf10_noncentral_t(20.0, 29, 45, 0.707)
    assert jzs_bayes_factor(20.0, 29, 45, 0.707) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(
    "stats_args",
    [
        (812.0, 154.0, 29, 235.0, 100.0, 45),
        (5.1, 1.2, 10, 4.3, 2.5, 17),
        (-0.3, 0.9, 3, 0.4, 0.1, 40),
    ],
)
@pytest.mark.parametrize("welch", [False, True])
def test_t_from_summary_matches_scipy(stats_args, welch):
    m1, s1, n1, m2, s2, n2 = stats_args
    t, df = t_from_summary(m1, s1, n1, m2, s2, n2, welch=welch)
    ref = stats.ttest_ind_from_stats(m1, s1, n1, m2, s2, n2, equal_var=not welch)
    assert t == pytest.approx(ref.statistic, rel=1e-12)
    # scipy does not return df here; its p-value pins df down instead.
    assert 2 * stats.t.sf(abs(t), df) == pytest.approx(ref.pvalue, rel=1e-9)
    if not welch:
        assert df == n1 + n2 - 2


def test_t_from_summary_welch_df_formula():
    t, df = t_from_summary(10.0, 2.0, 8, 12.0, 5.0, 20, welch=True)
    v1, v2 = 4.0 / 8, 25.0 / 20
    assert df == pytest.approx((v1 + v2) ** 2 / (v1**2 / 7 + v2**2 / 19), rel=1e-12)
    assert t == pytest.approx(-2.0 / math.sqrt(v1 + v2), rel=1e-12)


def test_t_from_summary_rejects_bad_input():
    with pytest.raises(ValueError, match="sd1"):
        t_from_summary(1.0, -1.0, 10, 0.0, 1.0, 10)
    with pytest.raises(ValueError, match="n2"):
        t_from_summary(1.0, 1.0, 10, 0.0, 1.0, 1, welch=True)
    with pytest.raises(ValueError, match="standard error"):
        t_from_summary(1.0, 0.0, 10, 0.0, 0.0, 10)


def test_robustness_over_prior_widths():
    rows = bayes_factor_robustness(2.2, 20, 22)
    assert [row["r"] for row in rows] == [0.5, 0.707, 1.0, 1.414]
    for row in rows:
        assert set(row) == {"r", "log10_bf10", "bf10"}
        assert row["log10_bf10"] == pytest.approx(log10_jzs_bayes_factor(2.2, 20, 22, row["r"]), rel=1e-12)
        assert row["bf10"] == pytest.approx(10 ** row["log10_bf10"], rel=1e-10)
    huge = bayes_factor_robustness(400, 2000, 4500, widths=(1.0,))
    assert huge[0]["bf10"] == math.inf and math.isfinite(huge[0]["log10_bf10"])


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(t=2.0, n1=1), "n1"),
        (dict(t=2.0, n1=0.5, n2=10), "n1"),
        (dict(t=2.0, n1=10, n2=0), "n2"),
        (dict(t=2.0, n1=10, r=0), r"r \(prior scale\)"),
        (dict(t=2.0, n1=10, r=-0.7), r"r \(prior scale\)"),
        (dict(t=2.0, n1=10, r=float("nan")), r"r \(prior scale\)"),
        (dict(t=float("inf"), n1=10), "t must be finite"),
        (dict(t=float("nan"), n1=10), "t must be finite"),
    ],
)
def test_invalid_arguments_raise(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        jzs_bayes_factor(**kwargs)
    with pytest.raises(ValueError, match=pattern):
        log10_jzs_bayes_factor(**kwargs)


def test_robustness_rejects_bad_width():
    with pytest.raises(ValueError, match=r"r \(prior scale\)"):
        bayes_factor_robustness(2.0, 10, widths=(0.707, 0.0))

"""Importance weighting of one posterior's draws towards another (reanalysis/reweighting.py)
on distributions whose answers are known."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from reanalysis.reweighting import PARETO_K_MAX, reweight, systematic_indices


def _normal_draws(chains=4, draws=1000, seed=0):
    return np.random.default_rng(seed).normal(size=(chains, draws))


def test_resampled_draws_follow_a_nearby_target_and_the_weights_are_trusted():
    x = _normal_draws()
    # proposal N(0, 1), target N(0.3, 0.9): the resampled draws should look like the target
    log_ratio = stats.norm.logpdf(x, 0.3, 0.9) - stats.norm.logpdf(x)
    out = reweight(log_ratio, seed=1)
    assert out.pareto_k < PARETO_K_MAX
    assert 0.5 < out.efficiency < 1.0
    y = x[np.arange(4)[:, None], out.indices]
    assert y.shape == x.shape
    # Monte Carlo error of the mean of the reweighted draws: the target SD over the weights' ESS
    se = 0.9 / np.sqrt(out.efficiency * x.size)
    assert abs(y.mean() - 0.3) < 4 * se
    assert y.std() == pytest.approx(0.9, rel=0.1)
    # each chain is resampled from its own draws, in order
    assert all(np.all(np.diff(row) >= 0) for row in out.indices)


def test_a_target_far_from_the_draws_gives_an_unreliable_pareto_k():
    x = _normal_draws()
    out = reweight(stats.norm.logpdf(x, 3.0, 0.3) - stats.norm.logpdf(x), seed=1)
    assert out.pareto_k >= PARETO_K_MAX
    assert out.efficiency < 0.05


def test_the_same_target_keeps_every_draw_once():
    out = reweight(np.zeros((2, 50)), seed=3)
    assert out.efficiency == pytest.approx(1.0)
    assert np.array_equal(out.indices, np.tile(np.arange(50), (2, 1)))


def test_systematic_resampling_copies_each_draw_about_n_times_its_weight():
    rng = np.random.default_rng(5)
    w = rng.gamma(0.5, size=(3, 200))
    idx = systematic_indices(w, rng)
    expected = 200 * w / w.sum(axis=1, keepdims=True)
    for row, e in zip(idx, expected):
        counts = np.bincount(row, minlength=200)
        assert np.all(np.abs(counts - e) < 1.0 + 1e-9)


def test_the_gate_fails_weighted_draws_whose_pareto_k_is_too_large():
    import arviz as az
    import pandas as pd

    from reanalysis.diagnostics import check_diagnostics

    x = _normal_draws(draws=500)
    table = pd.DataFrame({"estimand": ["x"], "label": ["x"], "r_hat": [1.0], "ess_bulk": [2000.0], "ess_tail": [2000.0]})
    for k, ok in ((0.69, True), (0.7, False), (float("nan"), False)):
        idata = az.from_dict(posterior={"x": x}, sample_stats={"diverging": np.zeros(x.shape, bool)})
        idata.posterior.attrs.update({"importance_from": "default", "pareto_k": k, "importance_efficiency": 0.5})
        d = check_diagnostics(idata, table)
        assert d.ok is ok
        if not ok:
            assert d.problems == [f"importance weights from default unreliable: Pareto k {k:.2f} >= 0.7"]

"""Informativeness labels on synthetic posteriors whose answer is known (normal prior, normal
likelihood terms: exact posterior draws, log densities in closed form)."""
from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reanalysis import informativeness as inf

CHAINS, DRAWS = 4, 1000


def conjugate(prior_sd, stats_obs=None, claim_obs=None, prior_mu=0.0, seed=1, extra_z=False):
    """Exact posterior of theta with a normal prior and normal observations ``(value, sd)``
    in a ``stats_a`` and a ``claim_b`` term; ``extra_z`` adds a non-centred standard normal
    ``effect_z`` whose log prior is part of ``log_prior``."""
    rng = np.random.default_rng(seed)
    prec, num = 1.0 / prior_sd**2, prior_mu / prior_sd**2
    for obs in (stats_obs, claim_obs):
        if obs:
            prec, num = prec + 1.0 / obs[1] ** 2, num + obs[0] / obs[1] ** 2
    theta = rng.normal(num / prec, prec**-0.5, size=(CHAINS, DRAWS))
    log_lik = {}
    if stats_obs:
        log_lik["stats_a"] = stats.norm.logpdf(stats_obs[0], theta, stats_obs[1])
    if claim_obs:
        log_lik["claim_b"] = stats.norm.logpdf(claim_obs[0], theta, claim_obs[1])
    log_prior = {"theta": stats.norm.logpdf(theta, prior_mu, prior_sd)}
    posterior = {"theta": theta}
    if extra_z:
        z = rng.normal(size=(CHAINS, DRAWS))
        posterior["effect_z"] = z
        log_prior["effect_z"] = stats.norm.logpdf(z)
    idata = az.from_dict(posterior=posterior, log_likelihood=log_lik)
    idata.add_groups({"log_prior": az.from_dict(posterior=log_prior).posterior})
    prior = az.from_dict(posterior={"theta": rng.normal(prior_mu, prior_sd, size=(1, 4000))}).posterior
    return idata, prior


def labelled(idata, prior, n_boot=100):
    ps = inf.sensitivity_table(idata, {"theta": idata.posterior["theta"].values}, n_boot=n_boot)
    return inf.informativeness_table(pd.DataFrame({"estimand": ["theta"]}), idata.posterior, prior, ps).iloc[0]


def test_prior_that_dominates_is_called_so():
    """A likelihood ten times wider than the prior, centred on it: the prior makes the
    posterior, and moves its width, not its location."""
    row = labelled(*conjugate(1.0, stats_obs=(0.0, 10.0), claim_obs=(0.0, 30.0)))
    assert row["psens_prior_lo"] >= inf.PSENS_THRESHOLD
    assert row["label"] == inf.LABEL_PRIOR, row["reason"]


def test_prior_data_conflict_names_the_prior_that_drives_it():
    """Prior and published statistics equally precise and 6 SDs apart: raising the prior's
    power pulls the mean down, raising the likelihood's pulls it up."""
    row = labelled(*conjugate(0.3, stats_obs=(2.0, 0.3)))
    assert row["shift_prior_hi"] < 0 < row["shift_likelihood_lo"]
    assert row["label"] == inf.LABEL_CONFLICT and row["driver"] == "theta"


@pytest.mark.parametrize(("stats_sd", "claim_sd", "expected"), [(0.1, 3.0, inf.LABEL_NUMBERS), (3.0, 0.1, inf.LABEL_CLAIM)])
def test_source_is_the_likelihood_block_with_the_larger_precision(stats_sd, claim_sd, expected):
    row = labelled(*conjugate(10.0, stats_obs=(1.0, stats_sd), claim_obs=(1.0, claim_sd)))
    assert row["psens_prior_hi"] < inf.PSENS_THRESHOLD
    assert row["label"] == expected, row["reason"]


def test_a_model_without_claims_is_labelled_from_its_statistics():
    row = labelled(*conjugate(10.0, stats_obs=(1.0, 0.1)))
    assert np.isnan(row["psens_claims"]) and row["label"] == inf.LABEL_NUMBERS


def test_point_values_equal_az_psens_on_the_selected_terms():
    idata, _ = conjugate(0.5, stats_obs=(1.0, 0.5), claim_obs=(0.0, 1.0), extra_z=True)
    ps = inf.sensitivity_table(idata, {"theta": idata.posterior["theta"].values}, n_boot=20).iloc[0]
    ref_prior = az.psens(idata, component="prior", component_var_names=["theta"], var_names=["theta"])
    ref_stats = az.psens(idata, component="likelihood", component_var_names=["stats_a"], var_names=["theta"])
    ref_lik = az.psens(idata, component="likelihood", var_names=["theta"])
    assert ps["psens_prior"] == pytest.approx(float(ref_prior), rel=1e-6)
    assert ps["psens_stats"] == pytest.approx(float(ref_stats), rel=1e-6)
    assert ps["psens_likelihood"] == pytest.approx(float(ref_lik), rel=1e-6)


def test_non_centred_standard_normals_are_not_power_scaled():
    """``effect_z`` is in ``log_prior`` but not among the scaled terms: adding it changes
    nothing."""
    with_z, _ = conjugate(0.5, stats_obs=(1.0, 0.5), extra_z=True)
    assert inf.prior_terms(with_z) == ["theta"]
    main, blocks = inf.components(with_z)
    assert list(blocks) == ["theta"]
    np.testing.assert_array_equal(main["prior"], with_z.log_prior["theta"].values)


def test_interval_across_the_threshold_is_undetermined():
    row = {"pareto_k": 0.1, "psens_prior_lo": 0.04, "psens_prior_hi": 0.06, "contraction": 0.9}
    assert inf.label(row)[0] == inf.LABEL_UNDETERMINED
    # the same estimate with a tight interval below is decided
    row.update(psens_prior_lo=0.045, psens_prior_hi=0.049, share_stats_minus_claims_lo=0.2, share_stats_minus_claims_hi=0.5)
    assert inf.label(row)[0] == inf.LABEL_NUMBERS
    # a source whose interval includes 0 is not decided either
    row.update(share_stats_minus_claims_lo=-0.1, share_stats_minus_claims_hi=0.5)
    assert inf.label(row)[0] == inf.LABEL_UNDETERMINED


def test_prior_shift_without_a_likelihood_shift_the_other_way_is_no_conflict():
    row = {"pareto_k": 0.1, "psens_prior_lo": 0.08, "psens_prior_hi": 0.1, "shift_prior_lo": -0.6, "shift_prior_hi": -0.4,
           "shift_likelihood_lo": -0.2, "shift_likelihood_hi": 0.3, "contraction": 0.9, "driver": "log_sigma[control]"}
    assert inf.label(row)[0] == inf.LABEL_UNDETERMINED
    row.update(shift_likelihood_lo=0.3, shift_likelihood_hi=0.5)
    lab, reason = inf.label(row)
    assert lab == inf.LABEL_CONFLICT and "log_sigma[control]" in reason


def test_large_pareto_k_gives_no_label():
    row = {"pareto_k": 0.9, "psens_prior_lo": 0.0, "psens_prior_hi": 0.01, "contraction": 0.9}
    assert inf.label(row)[0] == inf.LABEL_UNRELIABLE


def test_bootstrap_keeps_draws_within_their_chain():
    idx = inf.bootstrap_indices(3, 50, block=7, n_boot=30, seed=2)
    assert idx.shape == (31, 150)
    np.testing.assert_array_equal(idx[0], np.arange(150))
    chain_of = idx.reshape(31, 3, 50) // 50
    assert (chain_of == np.arange(3)[None, :, None]).all()


def test_interval_width_matches_the_spread_between_independent_runs():
    """Over independent posteriors of the same model, the spread of the estimates is what the
    90% Monte Carlo intervals claim (width / 3.29 for a normal estimate), within the noise of
    ten runs."""
    est, width = [], []
    for s in range(10):
        d, _ = conjugate(1.0, stats_obs=(0.5, 1.0), seed=s)
        r = inf.sensitivity_table(d, {"theta": d.posterior["theta"].values}, n_boot=100).iloc[0]
        est.append([r["psens_prior"], r["shift_prior"]])
        width.append([r["psens_prior_hi"] - r["psens_prior_lo"], r["shift_prior_hi"] - r["shift_prior_lo"]])
    ratio = np.std(est, axis=0, ddof=1) / (np.mean(width, axis=0) / 3.29)
    assert ((ratio > 0.6) & (ratio < 1.6)).all(), ratio

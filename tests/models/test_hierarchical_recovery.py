"""Simulated studies of the hierarchical covariate model (fast) and recovery of known
effects from one of them (slow: a full fit)."""
from __future__ import annotations

import math
from pathlib import Path

import arviz as az
import numpy as np
import pytest

from reanalysis.calibration import simulate_covariate_studies
from models.hierarchical import build_model
from models.priors import get_priors
from models.study import load_study

STUDY_PATH = Path(__file__).resolve().parents[2] / "data" / "studies" / "lasemi2018.yaml"
COVARIATES = ["female", "age_decades", "attacks_per_year", "optic_lesion"]
#: Known effects: -10% per decade of age and women 20% lower (the issue's recovery target),
#: attacks -10% per attack/year, optic lesions +30%; levels near the published medians.
TRUE_EFFECT = {"female": math.log(0.8), "age_decades": math.log(0.9), "attacks_per_year": math.log(0.9), "optic_lesion": math.log(1.3)}

#: The study's reference level: log levels are relative to it.
REF = float(load_study(STUDY_PATH).assumption("reference_level"))

pytestmark = pytest.mark.usefixtures("single_threaded_blas")


def _truth(model, draws: int = 1):
    G, C = 2, len(COVARIATES)
    slope = np.array([[TRUE_EFFECT[c] for c in COVARIATES]] * G) * model.design.defined
    return {
        "alpha": np.tile([math.log(850.0 / REF), math.log(200.0 / REF)], (draws, 1)),
        "slope": np.tile(slope, (draws, 1, 1)),
        "sigma": np.tile([0.15, 0.35], (draws, 1)),
        "u": np.tile([0.0, 0.1, -0.1], (draws, 1)),
    }


@pytest.fixture(scope="module")
def model():
    return build_model(load_study(STUDY_PATH), get_priors("hierarchical"))


def test_simulated_studies_look_like_the_design(model):
    """Each simulated study has every observed item of the model; its statistics scatter
    around the population values and the claims hold as often as the effects imply."""
    study = load_study(STUDY_PATH)
    data = simulate_covariate_studies(study, model, _truth(model, 400), seed=3)
    observed = {v.name for v in model.observed_RVs}
    assert {k.replace("log_stats_", "stats_").replace("claim_holds_", "claim_") for k in data} == observed
    # on the model's scale, log(statistic / reference level), as the real study's data: a
    # simulation in ng/ml once put every calibration fit's intercept log(300) too high
    med = np.exp(np.median(data["log_stats_control"], axis=0)) * REF
    assert 650 < med[2] < 1000  # median of the control medians
    real = model["log_stats_control"].get_value()
    np.testing.assert_allclose(np.median(data["log_stats_control"], axis=0), real, atol=0.3)
    # the sex effect (-20%) is large against the residual SD, so "significantly lower" holds
    # in most cohorts; the age claim (-5 to -15%) holds in a fair share
    assert data["claim_holds_sex"].mean() > 0.3
    assert 0.1 < data["claim_holds_age"].mean() < 0.9
    assert data["claim_holds_control_vs_ms_p_value"].mean() > 0.95
    assert set(np.unique(data["claim_holds_optic"])) <= {0.0, 1.0}


@pytest.mark.slow
def test_recovers_age_and_sex_effects(model):
    """One simulated study with known effects: the true age and sex effects (and every
    pooled effect) lie inside the 94% HDI of a converged fit."""
    from reanalysis.analysis import model_api
    from reanalysis.sampling import CompiledNuts

    study = load_study(STUDY_PATH)
    data = simulate_covariate_studies(study, model, _truth(model), seed=11)
    # the model's own sampler (JAX), with the simulated study as data
    runner = CompiledNuts(model, list(data), draws=500, tune=500, chains=4, progressbar=False, **model_api("hierarchical").nuts_options())
    idata = runner.run(seed=5, data={name: value[0] for name, value in data.items()})
    assert int(idata.sample_stats.diverging.sum()) <= 5
    summ = az.summary(idata, var_names=["effect"], kind="diagnostics")
    assert summ["r_hat"].max() <= 1.02
    hdi = az.hdi(idata, var_names=["effect"], hdi_prob=0.94)["effect"].values
    # the figures a closing note quotes (pytest -s)
    print(f"\nrecovery: {int(idata.sample_stats.diverging.sum())} divergences, max R-hat {summ['r_hat'].max():.3f}; "
          + "; ".join(f"{c} true {100 * math.expm1(TRUE_EFFECT[c]):+.0f}%, 94% HDI {100 * math.expm1(lo):+.0f}% to {100 * math.expm1(hi):+.0f}%"
                      for c, (lo, hi) in zip(COVARIATES, hdi)))
    for j, c in enumerate(COVARIATES):
        lo, hi = hdi[j]
        assert lo <= TRUE_EFFECT[c] <= hi, (c, lo, TRUE_EFFECT[c], hi)
    # and the group levels (the intercept's scale is the reference level's)
    alpha = az.hdi(idata, var_names=["alpha"], hdi_prob=0.94)["alpha"].values
    for k, true in enumerate(_truth(model)["alpha"][0]):
        assert alpha[k][0] <= true <= alpha[k][1], (k, alpha[k], true)


def test_calibration_parameters_cover_every_element(model):
    """SBC ranks every scalar of every free variable, matrices included (a 2-D effect_z
    once stopped the hierarchical calibration with a TypeError)."""
    from reanalysis.calibration import parameter_names

    params = parameter_names(model)
    assert len(params) == sum(int(np.prod(model.initial_point()[v.name].shape)) for v in model.value_vars)
    labels = [p[0] for p in params]
    assert "effect_z[1, age_decades]" in labels and "log_sigma[control]" in labels and "intercept" in labels
    label, var, idx = params[labels.index("effect_z[1, age_decades]")]
    assert var == "effect_z" and idx == 1  # row-major over (deviation, pooled_covariate)
    # the population effects, derived, are named like any variable
    assert [p[0] for p in parameter_names(model, ["effect"])] == [f"effect[{c}]" for c in model.coords["covariate"]]


def test_calibration_ranks_the_printed_estimands(model):
    """SBC ranks the estimands the tables print, with the same labels, computed from the
    same function for the truth and for the draws (a posterior made of the true values
    gives the true printed values back)."""
    import xarray as xr

    from reanalysis.calibration import _printed

    study = load_study(STUDY_PATH)
    truth = {**_truth(model, 2), "effect": np.tile([TRUE_EFFECT[c] for c in COVARIATES], (2, 1)), "category_spread": np.full(2, 0.1)}
    printed = _printed(study, model, truth)
    for label in ("ratio_of_medians[control_vs_ms]", "ratio_of_means[control_vs_ms]", "prob_superiority[control_vs_ms]",
                  "median[control]", "effect_percent[age_decades]", "slope_percent[ms, optic_lesion]", "category_spread_percent"):
        assert label in printed and printed[label].shape == (2,), label
    assert "slope_percent[control, optic_lesion]" not in printed  # undefined in the controls
    np.testing.assert_allclose(printed["effect_percent[age_decades]"], -10.0)
    post = xr.Dataset({k: (("chain", "draw") + tuple(f"d{k}{i}" for i in range(v.ndim - 1)), v[None]) for k, v in truth.items()})
    again = _printed(study, model, post)
    for label, v in printed.items():
        np.testing.assert_allclose(again[label], v, rtol=1e-12, err_msg=label)

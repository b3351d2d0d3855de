"""Slow: a real study whose published p-value adds information (medians and ranges with
p = 0.02, J Neurol 2012) fitted with and without its p-value (``use: check``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pymc as pm
import pytest
import yaml

from models.checks import check_table, predictive_statistics, simulate_predictive
from models.group import build_model
from models.priors import get_priors
from models.study import load_study

ROOT = Path(__file__).resolve().parents[2]
HCY = ROOT / "data" / "studies" / "jneurol2012homocysteine.yaml"


def _fit(study, seed: int):
    model = build_model(study, get_priors("group"))
    with model:
        # chain processes started by spawn: a test before this one in the same process may
        # have started JAX's threads, and forking a multithreaded process can deadlock
        idata = pm.sample(draws=1000, tune=1000, chains=4, cores=2, random_seed=seed, progressbar=False, compute_convergence_checks=False,
                          mp_ctx="spawn")
    return model, idata


def _ratio_of_medians(idata):
    # a lognormal's median is its mean over sqrt(1 + CV^2)
    post = idata.posterior
    med = post["mean"] / np.sqrt(1.0 + post["cv"] ** 2)
    return (med.sel(group="ms") / med.sel(group="ndc")).values.ravel()


@pytest.mark.slow
def test_the_published_p_value_narrows_the_ratio_and_is_reproduced(tmp_path):
    with_p = load_study(HCY)
    data = yaml.safe_load(HCY.read_text(encoding="utf-8"))
    data["comparisons"]["ms_vs_ndc"]["claims"]["p_value"]["use"] = "check"
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    without = load_study(path)

    model, idata = _fit(with_p, 1)
    assert [t.name for t in model.two_group_terms] == ["ms_vs_ndc.p_value"]
    model0, idata0 = _fit(without, 1)
    assert model0.two_group_terms == []
    for i in (idata, idata0):
        assert int(i.sample_stats["diverging"].sum()) == 0

    r, r0 = _ratio_of_medians(idata), _ratio_of_medians(idata0)
    width, width0 = (np.diff(np.quantile(x, [0.025, 0.975]))[0] for x in (r, r0))
    # medians alone leave the location shift loose; p = 0.02 (|z| about 2.3) pins it
    assert width < 0.92 * width0
    assert np.median(r) > np.median(r0)

    shares = []
    for study, post in ((with_p, idata), (without, idata0)):
        stats = predictive_statistics(simulate_predictive(post, study, "lognormal", n_draws=2000, seed=5), study)
        row = check_table(stats, study).set_index("key").loc["ms_vs_ndc.p_value"]
        shares.append(row["share_claim_holds"])
        assert row["verdict"] == "reproduced"
    # cohorts simulated from the fit with the p-value print it more often
    assert shares[0] > shares[1]

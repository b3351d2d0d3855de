"""The verdict sentences: generated from result tables with the study file's labels, for
any study (three here), saying direction, size, interval and probability of the main
difference, what informs the covariate effects, what the model cannot reproduce, and the
measurement caveat."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from models.study import load_study
from reanalysis.report.verdict import direction_probability, verdict

ROOT = Path(__file__).resolve().parents[2]
STUDIES = ["lasemi2018.yaml", "iranjneurol2013.yaml", "template.yaml"]


def _fake_result(study, ratio: float, spread: float = 0.08, seed: int = 0, labels: dict | None = None):
    """Posterior draws and result tables of the kind a fit writes, for ``study``."""
    rng = np.random.default_rng(seed)
    cids = list(study.comparisons)
    draws = np.exp(np.log(ratio) + spread * rng.standard_normal((4, 500, len(cids))))
    post = xr.Dataset({"ratio_of_medians": (("chain", "draw", "comparison"), draws)}, coords={"comparison": cids})
    rows = []
    for j, c in enumerate(cids):
        x = draws[..., j].ravel()
        rows.append({"estimand": f"ratio_of_medians[{c}]", "label": "ratio", "units": "fold", "median": np.median(x),
                     "hdi_low": np.quantile(x, 0.025), "hdi_high": np.quantile(x, 0.975)})
    info = []
    for c, lab in (labels or {}).items():
        rows.append({"estimand": f"effect_percent[{c}]", "label": "effect", "units": "% per unit", "median": -12.0, "hdi_low": -30.0, "hdi_high": 4.0})
        info.append({"estimand": f"effect_percent[{c}]", "label": lab})
    checks = pd.DataFrame([
        {"item": f"{study.groups[g].label}: mean", "key": f"{g}.mean", "verdict": "reproduced", "p_two_sided": 0.6, "share_claim_holds": np.nan}
        for g in study.group_ids
    ])
    return post, pd.DataFrame(rows), checks, (pd.DataFrame(info) if info else None)


@pytest.mark.parametrize("name", STUDIES)
def test_verdict_names_the_groups_direction_size_interval_and_probability(name):
    study = load_study(ROOT / "data" / "studies" / name)
    first, second = (study.groups[g].label for g in next(iter(study.comparisons.values())).groups)
    post, est, checks, _ = _fake_result(study, ratio=2.5)
    lines = verdict(study, est, checks, post)
    assert lines[0].startswith(f"{first} had higher {study.analyte.name} than {second}: the population median was 2.")
    assert "95% interval" in lines[0] and "all 2,000 posterior draws agree" in lines[0]
    assert lines[-1] == f"The model reproduces all {len(checks)} published numbers and claims it was checked against."
    text = " ".join(lines)
    for internal in ("ratio_of_medians", "effect_percent", "[", "_vs_"):
        assert internal not in text


def test_a_lower_first_group_is_stated_the_other_way_round():
    study = load_study(ROOT / "data" / "studies" / "iranjneurol2013.yaml")
    post, est, checks, _ = _fake_result(study, ratio=0.5)
    line = verdict(study, est, checks, post)[0]
    assert line.startswith("MS patients had higher serum vitamin D than Healthy subjects: the population median was 2")


def test_an_interval_across_one_does_not_claim_a_direction():
    study = load_study(ROOT / "data" / "studies" / "iranjneurol2013.yaml")
    post, est, checks, _ = _fake_result(study, ratio=1.05, spread=0.2)
    line = verdict(study, est, checks, post)[0]
    assert line.startswith("The data do not settle which group is higher")
    assert "Monte Carlo error" in line


def test_probability_is_never_rounded_to_certainty():
    x = np.full((4, 500), 2.0)
    x[0, :3] = 0.5  # 3 of 2000 draws below 1
    text = direction_probability(x)
    assert text.startswith("0.99") and not text.startswith("1.0") and "Monte Carlo error" in text
    assert direction_probability(np.full((2, 100), 3.0)) == "above 0.985 (all 200 posterior draws agree)"


def test_covariate_effects_are_grouped_by_what_informs_them_with_study_labels():
    study = load_study(ROOT / "data" / "studies" / "lasemi2018.yaml")
    labels = {"female": "from the published numbers", "optic_lesion": "from a qualitative claim read through assumed covariate distributions",
              "age_decades": "undetermined", "attacks_per_year": "mostly prior/assumption"}
    post, est, checks, info = _fake_result(study, ratio=3.7, labels=labels)
    effects = next(s for s in verdict(study, est, checks, post, info) if s.startswith("Covariate effects"))
    assert "informed by the published numbers: -12% (-30% to +4%) for female vs male;" in effects
    assert "resting on qualitative claims and assumed covariate distributions: -12% (-30% to +4%) for optic nerve lesion, with vs without;" in effects
    assert "undetermined): -12% (-30% to +4%) for age, per decade." in effects
    # an effect the prior carries is not said to rest on the claims
    assert "resting mostly on the prior and assumptions: -12% (-30% to +4%) for attacks per year, per +1;" in effects


def test_unreproduced_numbers_and_failed_diagnostics_are_named():
    study = load_study(ROOT / "data" / "studies" / "lasemi2018.yaml")
    post, est, checks, _ = _fake_result(study, ratio=3.7)
    checks.loc[0, ["verdict", "p_two_sided"]] = ["not reproduced", 0.004]
    lines = verdict(study, est, checks, post, diagnostics_ok=False)
    assert lines[0].startswith("The sampler diagnostics failed")
    assert "does not reproduce 1 of 2 published numbers and claims: Healthy controls: mean (not reproduced, predictive p 0.004)" in " ".join(lines)


def test_measurement_caveat_only_when_implausible():
    from reanalysis.report import plausibility

    study = load_study(ROOT / "data" / "studies" / "lasemi2018.yaml")
    post, est, checks, _ = _fake_result(study, ratio=3.7)
    levels = pd.DataFrame([
        {"estimand": f"median[{g}]", "label": "median", "units": "ng/ml", "median": m, "hdi_low": 0.9 * m, "hdi_high": 1.1 * m}
        for g, m in (("control", 790.0), ("ms", 210.0))
    ])
    implausible = plausibility.audit(study, levels)
    assert "so read the ratios, not the levels" in verdict(study, est, checks, post, audit=implausible)[-1]
    plausible = plausibility.audit(study, levels.assign(median=[0.5, 0.2], hdi_low=[0.4, 0.1], hdi_high=[0.6, 0.3]))
    assert not any("implausible" in s for s in verdict(study, est, checks, post, audit=plausible))

"""The words a reader sees (models.wording): every label the result tables, the console and
the figures print for the shipped study files is in the study file's words, never an
identifier of the study file or of the model."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from models import wording
from models.checks import check_table, predictive_statistics
from models.families import get_family
from models.simulate import simulate_group, sorted_normals
from models.study import load_study

STUDIES = sorted((Path(__file__).resolve().parents[2] / "data" / "studies").glob("*.yaml"))
#: What an identifier looks like in printed text: a key with coordinates, a snake_case name,
#: the formula of the probability of superiority, or a unit that hides the contrast.
INTERNAL = [re.compile(r"\w\["), re.compile(r"[A-Za-z0-9]_[A-Za-z0-9]"), re.compile(r"P\(X_"), re.compile(r"% per unit")]


def internal(text: str) -> list[str]:
    return [p.pattern for p in INTERNAL if p.search(text)]


def estimand_keys(study) -> list[str]:
    """Every estimand key the models can tabulate for ``study``."""
    keys = [f"{v}[{g}]" for g in study.group_ids for v in ("median", "mean", "cv")]
    for cid, comp in study.comparisons.items():
        keys += [f"{v}[{cid}]" for v in ("ratio_of_medians", "ratio_of_means", "adjusted_ratio", "difference_in_medians", "prob_superiority")]
        keys += [f"P(ratio_of_means[{cid}] > 3)"]
    for c in study.covariates:
        keys += [f"effect_percent[{c}]", f"P(effect_percent[{c}] < 0)"] + [f"slope_percent[{g}, {c}]" for g in study.group_ids]
    return keys + ["category_spread_percent"]


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_estimand_labels_are_in_words(path):
    study = load_study(path)
    for key in estimand_keys(study):
        text, units = wording.estimand_label(study, key)
        assert not internal(text) and not internal(units), (key, text, units, internal(text + units))
        assert text and units, key


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_check_items_and_published_forms_are_in_words(path):
    """Every row of the checks table of a shipped study (numbers, comparison claims, tests
    across several groups, associations) names its item and its published form in words."""
    study = load_study(path)
    rng = np.random.default_rng(3)
    cohorts = {g: simulate_group(np, get_family("lognormal"), sorted_normals(rng, 100, study.n(g)), 100.0 * (1 + i), 0.5)
               for i, g in enumerate(study.group_ids)}
    stats = predictive_statistics(cohorts, study)
    for a in study.associations:  # the covariate model's estimates, stood in for
        stats[f"association.{a}"], stats[f"association.{a}.holds"] = rng.normal(-10, 5, 100), rng.random(100) < 0.5
    checks = check_table(stats, study)
    assert len(checks) and checks["item"].is_unique, checks["item"].tolist()
    for _, row in checks.iterrows():
        for text in (row["item"], str(row["published"]), row["units"]):
            assert not internal(text), (row["key"], text)


def test_the_words_of_the_default_study():
    study = load_study(STUDIES[[p.stem for p in STUDIES].index("lasemi2018")])
    assert wording.estimand_label(study, "ratio_of_medians[control_vs_ms]") == ("Healthy controls / MS patients: ratio of population medians", "fold")
    assert wording.estimand_label(study, "median[ms]") == ("MS patients: population median", "ng/ml")
    assert wording.estimand_label(study, "effect_percent[optic_lesion]") == ("effect of optic nerve lesion, with vs without, pooled over groups", "% change")
    assert wording.estimand_label(study, "P(ratio_of_means[control_vs_ms] > 3)")[0] == (
        "posterior probability that the ratio of population means (Healthy controls / MS patients) is > 3")
    assert wording.claim_probability_label(study, "effect_percent[female]", "lower, as claimed") == (
        "posterior probability that the effect of female vs male, pooled over groups, is lower, as claimed")
    assert wording.parameter_key_label(study, "effect_spread[female]") == "between-group SD of the effect of female vs male"
    assert wording.parameter_key_label(study, "log_sigma[ms]") == "MS patients: residual SD"
    assert wording.parameter_key_label(study, "effect_z[1, female]") == "female vs male: between-group contrast 1 of the slopes (standardised)"
    assert wording.parameter_key_label(study, "slope_mean[age_decades]") == "mean over the groups of the slope of age, per decade"
    # a panel of all elements (the prior-versus-posterior figure overlays them): no empty slot
    assert wording.parameter_label(study, "effect_z", {}) == "between-group contrasts of the covariate slopes"
    assert wording.parameter_label(study, "category_z", {}) == "effects of the levels of MS subtype"
    assert wording.association_item(study, study.associations["age"]) == "age, per decade: decrease of approximately 10% per decade of age"
    fold = study.comparisons["control_vs_ms"].claims["fold"]
    assert wording.claim_item(study, ("control", "ms"), fold) == "Healthy controls vs MS patients: ratio of means"
    assert wording.claim_symbol("p_value") == "p" and wording.claim_symbol("ratio_of_means") == "ratio of means"


def test_a_plug_in_models_variables_are_made_readable_without_words_of_their_own():
    assert wording.estimand_label(None, "log_scale_ratio[a_vs_b]") == ("a vs b: log scale ratio", "")
    assert wording.estimand_label(None, "ratio_of_medians[treated_vs_placebo]") == ("treated / placebo: ratio of population medians", "fold")

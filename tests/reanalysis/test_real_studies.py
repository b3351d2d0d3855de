"""Slow: every real study file in data/studies fitted as a user fits it (``reanalysis.fit``
with the defaults), and the family comparison on a study of several groups.

Each fit must pass the sampler's gate, account for every published item, check every
published number (no row without a predictive interval) and give finite estimands; the
kinds of papers covered are medians with ranges (homocysteine), medians with quartiles from
SPSS-type software (leptin), means with SDs and a test's p (vitamin D), three groups with a
Kruskal-Wallis p (YKL-40) and the covariate study the toolkit was built for (vitamin K2).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import reanalysis
from reanalysis.report.published_items import enumerate_items

ROOT = Path(__file__).resolve().parents[2]
STUDIES = sorted(p for p in (ROOT / "data" / "studies").glob("*.yaml") if p.stem != "template")

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_each_real_study_fits_with_the_defaults(path):
    fit = reanalysis.fit(path, progressbar=False)
    assert fit.diagnostics.ok, fit.diagnostics.problems
    items = fit.published_items
    assert list(items["item"]) == [it["item"] for it in enumerate_items(fit.study)]
    unused = items[items["role"] == "unused"]
    # a study without covariates is fitted whole by the group model; a covariate study
    # publishes counts no covariate reads (Lasemi's MS subtypes), each with its reason
    assert fit.study.covariates or unused.empty, unused
    assert (unused["reason"].str.len() > 10).all()
    numbers = fit.checks[fit.checks["kind"] == "number"]
    assert numbers["predictive_low"].notna().all() and numbers["p_two_sided"].notna().all()
    assert np.isfinite(fit.estimands["median"].astype(float)).all()
    if fit.study.group_tests:
        assert any(k.startswith(tuple(fit.study.group_tests)) for k in fit.checks["key"])


def test_families_compared_on_three_groups():
    fit = reanalysis.fit(ROOT / "data" / "studies" / "arqneuro2021ykl40.yaml", draws=500, progressbar=False)
    table = fit.compare_families()
    assert sorted(table["family"]) == ["gamma", "lognormal", "weibull"]
    assert table["diagnostics_ok"].all()
    assert (table["score"] > 0).all() and (table["score_se"] > 0).all()
    assert table["score_difference"].iloc[0] == 0 and (table["score_difference"] >= 0).all()

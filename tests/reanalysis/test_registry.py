"""The model registry and interface: a model is one module with a
:class:`models.interface.Model` subclass plus one registry line (tests/toy_model.py shows
it), and the pipeline fits it without any code of its own."""
from __future__ import annotations

import pytest

from models.interface import Model
from reanalysis.analysis import AnalysisError, model_api, resolve_options
from reanalysis.registry import MODELS, get_model, register, unregister


@pytest.fixture
def study(study_path):
    from models.study import load_study

    return load_study(study_path)


def test_every_registered_model_implements_the_interface():
    for name in MODELS:
        m = get_model(name)
        assert isinstance(m, Model) and m.name == name
        assert m.default_family in m.families
        assert m.min_reps <= m.default_reps


def test_an_unknown_model_is_named_with_the_choices():
    with pytest.raises(AnalysisError, match=r"unknown model 'nope'; choose one of: group, hierarchical"):
        model_api("nope")


def test_a_registered_class_must_be_a_model_of_that_name():
    register("wrong", "tests.toy_model:ToyModel")
    try:
        with pytest.raises(TypeError, match="calls itself 'toy', registered as 'wrong'"):
            get_model("wrong")
    finally:
        unregister("wrong")
    register("notamodel", "tests.toy_model:_groups")
    try:
        with pytest.raises(TypeError, match="not a subclass of models.interface.Model"):
            get_model("notamodel")
    finally:
        unregister("notamodel")


def test_defaults_come_from_the_model(study, toy):
    # the study declares covariates: the covariate model by default, with its own family and draws
    assert resolve_options(study) == ("hierarchical", "normal", 500, 2000)
    assert resolve_options(study, model="group") == ("group", "lognormal", 1000, 1000)
    assert resolve_options(study, model="toy") == ("toy", "normal", 200, 200)
    with pytest.raises(AnalysisError, match="--family gamma does not apply to the toy model; choose one of: normal"):
        resolve_options(study, model="toy", family="gamma")


def test_a_new_model_accounts_for_every_published_item_by_default(study, toy):
    from reanalysis.report.published_items import enumerate_items, published_items

    checked = [f"{g}.mean" for g in study.group_ids]
    t = published_items(study, "toy", checked_keys=checked)
    assert len(t) == len(enumerate_items(study))
    means = t["item"].isin([f"groups.{g}.statistics.mean" for g in study.group_ids])
    assert (t.loc[means, "role"] == "check").all()
    assert (t.loc[~means, "role"] == "unused").all()
    assert t.loc[~means, "reason"].str.contains("the toy model does not declare what it fits").all()


@pytest.mark.slow
def test_a_toy_model_fits_through_the_pipeline(study, toy, tmp_path):
    import reanalysis

    fit = reanalysis.fit(study, model="toy", chains=2, seed=5, ppc_draws=200)
    folder = fit.save(tmp_path)
    assert {"estimands.csv", "checks.csv", "published_items.csv", "manifest.json"} <= {p.name for p in folder.iterdir()}
    assert (fit.published_items.loc[fit.published_items["checked"], "role"] == "check").all()
    a = fit.analysis
    assert (a.model_name, a.family, a.idata.posterior.sizes["draw"]) == ("toy", "normal", 200)
    for g in study.group_ids:
        row = a.table.set_index("estimand").loc[f"population_mean[{g}]"]
        published = study.reported(g)["mean"]
        # a flat prior and one normal measurement: the posterior centres on the published mean
        assert row["hdi_low"] < published < row["hdi_high"]
        assert row["r_hat"] < 1.05
    assert set(a.checks["key"]) == {f"{g}.mean" for g in study.group_ids}
    assert a.checks["p_two_sided"].between(0.05, 1).all()
    assert "prior" in a.idata.groups()


def test_builder_options_reach_the_models_own_builder(study):
    """Calibration workers pass the group model's precomputed likelihood tables, and leave
    reps to the model (None: its default)."""
    from models.group import build_tables

    api = get_model("group")
    tables = build_tables(study, "lognormal", 20, seed=1)
    model = api.build_model(study, api.get_priors(), family="lognormal", seed=1, tables=tables)
    assert [rv.name for rv in model.free_RVs] == ["log_mean", "log_cv"]

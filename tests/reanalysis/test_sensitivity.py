"""Sensitivity runs: grid validation, overrides, the stability table, and end-to-end runs on
a local process pool (scripts/sensitivity.py as a subprocess, started in the background by
conftest.py) and a Dask cluster with short sampling (its worker a thread of this process; a
cluster of worker processes in the slow tier).  The script's bad input calls its ``main``.

Short settings (100 + 100 iterations, 2 chains, 50 cohorts) are far below the diagnostics
gate, so scenarios that sample are expected to end as ``failed`` with a ``diagnostics:``
reason; the tests check that the machinery records that, not the numbers.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from reanalysis import sensitivity as sens
from models.study import load_study
from tests.compile_modes import UNOPTIMISED
from tests.scriptruns import SENSITIVITY_SAMPLING, import_script

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "data" / "studies" / "lasemi2018.yaml"
DEFAULT_GRID = ROOT / "data" / "sensitivity" / "default.yaml"
GROUP_GRID = ROOT / "data" / "sensitivity" / "group.yaml"
SHORT = SENSITIVITY_SAMPLING
RESULT_NAME = re.compile(r"^lasemi2018-sensitivity-\d{8}T\d{6}Z-[0-9a-f]{6}$")


@pytest.fixture(scope="module")
def study():
    return load_study(STUDY)


def write_grid(tmp_path: Path, data: dict, name: str = "grid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# -- grid validation -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path, model, expected",
    [
        (DEFAULT_GRID, "hierarchical", {"priors=skeptical", "priors=enthusiastic", "family=student_t", "statistics=means_sds", "statistics=medians"}),
        (GROUP_GRID, "group", {"priors=wide", "priors=narrow", "family=gamma", "statistics=means_sds", "statistics=medians"}),
    ],
)
def test_shipped_grids_are_valid_and_start_with_the_default(study, path, model, expected):
    grid = sens.load_grid(path)
    left_out = []
    specs = sens.expand_grid(grid, study, path, left_out=left_out)
    assert specs[0].name == "default" and specs[0].kind == "default"
    if model == "hierarchical":  # the wide priors diverge on the covariate model: left out, saying why
        assert [(x["name"], "diverges" in x["reason"]) for x in left_out] == [("priors=wide", True)], left_out
    assert {s.model for s in specs} == {model}
    names = [s.name for s in specs]
    assert len(names) == len(set(names))
    assert len({s.settings for s in specs}) == len(specs), "duplicate settings survived"
    # every vary: value of every declared assumption is a one-at-a-time scenario
    for aid, a in study.assumptions.items():
        for v in a.vary or []:
            if v == a.value:
                continue  # the default itself
            assert any(s.assumptions == {aid: v} and s.kind == "one_at_a_time" for s in specs), (aid, v)
    assert expected <= set(names)


@pytest.mark.parametrize(
    "data, field, words",
    [
        ({"one_at_a_time": {"priros": "every"}}, "one_at_a_time.priros", "unknown key (remove it or fix its spelling) (did you mean 'priors'?)"),
        ({"sampling": {"draw": 10}}, "sampling.draw", "(did you mean 'draws'?)"),
        ({"bogus": 1}, "bogus", "unknown key"),
        ({"scenarios": [{"name": "x", "assumptions": {"no_such_thing": 1}}]}, "scenarios.0.assumptions.no_such_thing", "not an assumption"),
        ({"scenarios": [{"name": "x", "priors": "nonexistent"}]}, "scenarios.0.priors", "unknown prior set 'nonexistent'"),
        ({"scenarios": [{"name": "x", "family": "frechet"}]}, "scenarios.0.family", "unknown family 'frechet'"),
        ({"scenarios": [{"name": "x", "model": "nope"}]}, "scenarios.0.model", "unknown model 'nope'"),
        ({"scenarios": [{"name": "x", "statistics": "quartiles"}]}, "scenarios.0.statistics", "must be"),
        ({"factorial": {"priors": ["default", "bad"]}}, "factorial.priors", "unknown prior set 'bad'"),
        ({"one_at_a_time": {"assumptions": {"missing": [1]}}}, "one_at_a_time.assumptions.missing", "not an assumption"),
        ({"sampling": {"chains": 1}}, "sampling.chains", "greater than or equal to 2"),
        ({"scenarios": [{"name": "a", "priors": "wide"}, {"name": "a", "priors": "narrow"}]}, "scenarios", "used twice"),
    ],
)
def test_bad_grid_is_one_line_naming_file_and_field(tmp_path, study, data, field, words):
    path = write_grid(tmp_path, data)
    with pytest.raises(sens.GridError) as err:
        sens.expand_grid(sens.load_grid(path), study, path)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: {field}: "), msg
    assert words in msg, msg


def test_bad_grid_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    path = write_grid(tmp_path, {"scenarios": [{"name": "x", "priorz": "wide"}]})
    out = tmp_path / "out"
    capsys.readouterr()
    assert import_script("sensitivity").main(["--grid", str(path), "--out", str(out)]) == 2
    lines = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert lines == [f"error: {path}: scenarios.0.priorz: unknown key (remove it or fix its spelling) (did you mean 'priors'?)"]
    assert not out.exists()


def test_reps_below_a_models_minimum_is_one_line_naming_where(study):
    """The grid's sampling.reps (or --reps) is checked against each fitted model's minimum."""
    specs = sens.expand_grid(sens.load_grid(GROUP_GRID), study, GROUP_GRID)
    with pytest.raises(sens.GridError, match=r"^g\.yaml: sampling\.reps 5: the group model needs at least 10 simulated cohorts"):
        sens.check_reps(specs, 5, "g.yaml: sampling.reps")
    sens.check_reps(specs, 10, "--reps")
    sens.check_reps(specs, None, "--reps")
    hier = sens.expand_grid(sens.load_grid(DEFAULT_GRID), study, DEFAULT_GRID)
    sens.check_reps(hier, 2, "--reps")  # below the group model's minimum, fine for this model
    with pytest.raises(sens.GridError, match=r"^--reps 1: the hierarchical model needs at least 2"):
        sens.check_reps(hier, 1, "--reps")


# -- overrides ------------------------------------------------------------------------------
def test_statistics_subsets_keep_only_their_statistics(study):
    means = sens.apply_overrides(study, "means_sds")
    medians = sens.apply_overrides(study, "medians")
    for g in study.group_ids:
        assert set(study.reported(g)) == {"mean", "sd", "median"}
        assert set(means.reported(g)) == {"mean", "sd"}
        assert set(medians.reported(g)) == {"median"}
        assert means.reported(g)["mean"] == study.reported(g)["mean"]
    assert sens.apply_overrides(study, "all").reported("ms") == study.reported("ms")
    assert means.sha256 == study.sha256 and means.path == study.path  # provenance kept
    assert set(study.reported("ms")) == {"mean", "sd", "median"}  # the original is untouched


def test_assumption_override_changes_the_value_and_nothing_else(study):
    new = sens.apply_overrides(study, assumptions={"rounding": 0.5, "group_test": "welch_t"})
    assert new.assumption("rounding") == 0.5 and new.assumption("group_test") == "welch_t"
    assert study.assumption("rounding") == 1 and study.assumption("group_test") == "mann_whitney"
    assert new.assumptions["rounding"].reason == study.assumptions["rounding"].reason
    with pytest.raises(ValueError, match="assumptions.nope: not an assumption"):
        sens.apply_overrides(study, assumptions={"nope": 1})


def test_subset_that_empties_a_group_is_a_grid_error(tmp_path, study):
    data = study.model_dump()
    data["groups"]["ms"]["statistics"].pop("median")
    from models.study import Study

    s2 = Study.model_validate(data)
    path = write_grid(tmp_path, {"scenarios": [{"name": "m", "statistics": "medians"}]})
    with pytest.raises(sens.GridError, match=r"scenarios\.0: statistics: subset 'medians' leaves group 'ms' without a statistic"):
        sens.expand_grid(sens.load_grid(path), s2, path)


def test_factorial_expands_every_combination_without_duplicates(tmp_path, study):
    path = write_grid(tmp_path, {"one_at_a_time": {"priors": "every"}, "factorial": {"priors": ["default", "wide"], "family": ["lognormal", "gamma"]}})
    specs = sens.expand_grid(sens.load_grid(path), study, path)
    combos = {(s.priors, s.family) for s in specs}
    assert combos == {("default", "lognormal"), ("wide", "lognormal"), ("narrow", "lognormal"), ("default", "gamma"), ("wide", "gamma")}
    assert [s.kind for s in specs].count("factorial") == 2  # the two corners not already run


# -- conclusion stability on a constructed table ---------------------------------------------
def synthetic_table() -> pd.DataFrame:
    rows = []

    def add(scenario, kind, estimand, median, lo, hi, null, units="fold", sd=0.3, status="ok"):
        rows.append({"scenario": scenario, "kind": kind, "changes": scenario if kind != "default" else "none", "estimand": estimand,
                     "label": estimand, "units": units, "median": median, "hdi_low": lo, "hdi_high": hi, "sd": sd, "null": null,
                     "status": status, "reason": "" if status == "ok" else "diagnostics: x"})

    for sc, kind, r, p, age in [
        ("default", "default", (3.7, 3.1, 4.3), 0.95, (-10, -15, -5)),
        ("priors=wide", "one_at_a_time", (3.6, 3.0, 4.2), 0.90, (-12, -18, -6)),
        ("statistics=medians", "one_at_a_time", (2.0, 0.8, 5.0), 0.45, (-25, -40, -10)),
        ("family=gamma", "one_at_a_time", (3.5, 2.9, 4.1), 0.52, (-9, -14, -4)),
    ]:
        add(sc, kind, "ratio_of_medians[c_vs_m]", *r, 1.0)
        add(sc, kind, "P(ratio_of_means[c_vs_m] > 3)", p, np.nan, np.nan, np.nan, units="probability")
        add(sc, kind, "pct_change[age_decades]", *age, 0.0, units="% per decade", sd=3.0)
    return pd.DataFrame(rows)


def test_stability_flags_exactly_the_changed_conclusions(study):
    st = sens.stability_table(synthetic_table(), study)
    flagged = set(map(tuple, st.loc[st["changed"], ["scenario", "estimand"]].to_numpy()))
    assert flagged == {
        ("statistics=medians", "ratio_of_medians[c_vs_m]"),  # HDI now includes 1
        ("statistics=medians", "P(ratio_of_means[c_vs_m] > 3)"),  # probability below 0.5
        ("statistics=medians", "pct_change[age_decades]"),  # -25% leaves the 0-20% decline band
    }
    age = st[st["estimand"] == "pct_change[age_decades]"]
    assert "within -20 to 0 (age claim)" in " ".join(age["conclusion"])
    assert set(st["scenario"]) == {"default", "priors=wide", "statistics=medians", "family=gamma"}


def test_age_rule_is_inactive_without_an_age_estimand(study):
    t = synthetic_table()
    t = t[t["estimand"] != "pct_change[age_decades]"]
    st = sens.stability_table(t, study)
    assert not st["conclusion"].str.contains("age").any()


def test_influence_ranks_choices_by_largest_shift():
    inf = sens.influence_table(synthetic_table())
    assert inf["choice"].iloc[0] == "statistics"  # the medians-only scenario moves most
    assert set(inf["choice"]) == {"priors", "statistics", "family"}


def test_effect_nulls_are_generic_in_names_and_units():
    assert sens._effect_null("ratio_of_medians[a_vs_b]", "fold") == 1.0
    assert sens._effect_null("prob_superiority[a_vs_b]", "probability") == 0.5
    assert sens._effect_null("pct_change[age_decades, ms]", "% per decade") == 0.0
    assert sens._effect_null("median[ms]", "ng/ml") is None
    # a spread is positive by construction: no "excludes 0" conclusion for it
    assert sens._effect_null("category_spread_percent", "%") is None
    assert sens._effect_null("effect_sd[female]", "log units") is None
    assert sens._effect_null("P(ratio_of_means[a_vs_b] > 3)", "probability") is None


# -- outputs without sampling: writing, and Ctrl-C while writing ------------------------------
def fake_results(specs):
    out = {}
    for i, sp in enumerate(specs):
        shift = 0.1 * i
        rows = [
            {"estimand": "ratio_of_medians[control_vs_ms]", "label": "ratio of population medians (control_vs_ms)", "units": "fold",
             "median": 3.7 - shift, "hdi_low": 3.1 - shift, "hdi_high": 4.3 - shift, "sd": 0.3, "null": 1.0, "p_effect_below_null": 0.0,
             "r_hat": 1.0, "ess_bulk": 1000.0, "ess_tail": 900.0},
            {"estimand": "P(ratio_of_means[control_vs_ms] > 3)", "label": "p", "units": "probability", "median": 0.9 - shift,
             "hdi_low": np.nan, "hdi_high": np.nan, "sd": 0.01, "null": np.nan, "p_effect_below_null": np.nan,
             "r_hat": np.nan, "ess_bulk": np.nan, "ess_tail": np.nan},
        ]
        out[sp.name] = {"name": sp.name, "status": "ok", "reason": "", "rows": rows, "checks": [], "divergences": 0, "seconds": 1.0,
                        "cache_hit": i > 0, "shared_with": None,
                        "psens": [{"estimand": "ratio_of_medians[control_vs_ms]", "psens_prior": 0.01, "psens_likelihood": 0.1}] if i == 0 else None}
    return out


def test_main_writes_every_output(tmp_path, monkeypatch):
    script = import_script("sensitivity")
    monkeypatch.setattr(sens, "run_grid", lambda specs, *a, **k: fake_results(specs))
    grid = write_grid(tmp_path, {"one_at_a_time": {"priors": "every"}})
    out = tmp_path / "out"
    assert script.main(["--grid", str(grid), "--out", str(out)]) == 0
    (folder,) = list(out.iterdir())
    assert RESULT_NAME.match(folder.name)
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"sensitivity.csv", "sensitivity.nc", "stability.csv", "psens.csv", "influence.csv", "checks.csv", "manifest.json"} <= names
    assert "figures/ratio_of_medians-control_vs_ms.png" in names
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [s["name"] for s in manifest["scenarios"]] == ["default", "priors=wide", "priors=narrow"]
    assert set(manifest["files"]) == names
    import xarray as xr

    ds = xr.load_dataset(folder / "sensitivity.nc", engine="h5netcdf")
    assert ds.sizes == {"scenario": 3, "estimand": 2}
    st = pd.read_csv(folder / "stability.csv")
    # the third scenario's P(ratio > 3) = 0.7 stays above 0.5: nothing flagged
    assert not st["changed"].any()


def test_interrupt_while_writing_leaves_no_folder(tmp_path, monkeypatch):
    script = import_script("sensitivity")
    monkeypatch.setattr(sens, "run_grid", lambda specs, *a, **k: fake_results(specs))

    def boom(stage, *a, **k):
        (stage / "sensitivity.csv").write_text("partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(sens, "write_outputs", boom)
    grid = write_grid(tmp_path, {})
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        script.main(["--grid", str(grid), "--out", str(out)])
    assert list(out.iterdir()) == []


# -- end to end with sampling ----------------------------------------------------------------
def test_local_pool_end_to_end_records_a_failing_scenario(sensitivity_smoke):
    """scripts/sensitivity.py as a user runs it (its subprocess smoke test; conftest.py
    starts it in the background), on a worker process, with the grid
    ``SENSITIVITY_SMOKE_GRID`` of tests/scriptruns.py: one task samples the default
    posterior, which a scenario that changes only the checks shares; the other cannot build
    its model (a tolerance the study file accepts but whose claim interval reaches -100%,
    which the covariate model's claim rule rejects): it is recorded as failed, the others
    complete.  (A refit with another prior set is tested in this process, with the
    compiled-model cache.)"""
    proc = sensitivity_smoke.result()
    out = sensitivity_smoke.folder / "out"
    assert proc.returncode == 3, proc.stderr[-3000:]
    (folder,) = list(out.iterdir())
    table = pd.read_csv(folder / "sensitivity.csv")
    per = table.drop_duplicates("scenario").set_index("scenario")
    assert list(per.index) == ["default", "fold ratio", "broken"]
    assert per.loc["broken", "status"] == "failed"
    assert per.loc["broken", "reason"].startswith("ValueError: ") and "reaches -100%" in per.loc["broken", "reason"]
    for sc in ("default", "fold ratio"):
        rows = table[table["scenario"] == sc]
        assert "ratio_of_medians[control_vs_ms]" in set(rows["estimand"])
        # short chains: either good diagnostics, or failed with the diagnostics as the reason
        assert rows["status"].iloc[0] == "ok" or rows["reason"].iloc[0].startswith("diagnostics: ")
        r = rows.set_index("estimand").loc["ratio_of_medians[control_vs_ms]"]
        assert 2 < r["median"] < 6 and r["hdi_low"] < r["median"] < r["hdi_high"] and r["p_effect_below_null"] == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {s["name"]: s["same_posterior_as"] for s in manifest["scenarios"]}["fold ratio"] == "default", manifest["scenarios"]
    assert re.search(r"scenarios 3/3, elapsed \d+:\d\d, ~remaining 0:00", proc.stderr)
    psens = pd.read_csv(folder / "psens.csv")
    assert (psens["psens_prior"] >= 0).all() and "ratio_of_medians[control_vs_ms]" in set(psens["estimand"])
    assert "broken" in proc.stderr and "FAILED" in proc.stderr


def _dask_grid(study, processes: bool, grid: dict | None = None) -> dict:
    distributed = pytest.importorskip("distributed")
    grid = grid or {"scenarios": [{"name": "fold ratio", "assumptions": {"fold_statistic": "ratio_of_medians"}}]}
    specs = sens.expand_grid(sens.Grid.model_validate(grid), study)
    sampling = sens.Sampling(**SHORT)
    # a cluster of processes listens on TCP; one of threads talks in-process
    where = {"host": "127.0.0.1"} if processes else {}
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=processes, dashboard_address=None, **where) as cluster:
        with distributed.Client(cluster) as client:
            return sens.run_grid(specs, sampling, client=client)


def _check_dask_results(results: dict) -> None:
    assert set(results) == {"default", "fold ratio"}
    d, w = results["default"], results["fold ratio"]
    # which ratio "three-fold" means is read only by the checks: one posterior, summarised twice
    assert w["shared_with"] == "default"
    dr = {r["estimand"]: r["median"] for r in d["rows"]}
    wr = {r["estimand"]: r["median"] for r in w["rows"]}
    # the same posterior; only the probability of the claimed ratio follows the reading
    assert set(dr) ^ set(wr) == {"P(ratio_of_means[control_vs_ms] > 3)", "P(ratio_of_medians[control_vs_ms] > 3)"}
    assert {k: dr[k] for k in dr if k in wr} == {k: wr[k] for k in dr if k in wr}
    pd_ = {c["key"]: c["share_claim_holds"] for c in d["checks"]}
    assert "control_vs_ms.p_value" in pd_
    assert d["psens"] and not w["psens"]


def test_dask_cluster_runs_the_grid(study, toy):
    """The Dask path (tasks submitted to a client, results gathered as they complete) on a
    cluster whose worker is a thread of this process (no worker start-up and imports), with
    the toy model (the path knows nothing of the model).  The tasks' trip through pickling
    to another process is tested by the local pool (the same task dicts), and the group
    model's grid on a cluster of worker processes in the slow tier."""
    results = _dask_grid(study, processes=False, grid={"base": {"model": "toy"}, "scenarios": [{"name": "narrow", "priors": "narrow"}]})
    assert set(results) == {"default", "narrow"}
    d, n = results["default"], results["narrow"]
    assert not n["shared_with"] and d["psens"] and not n["psens"]
    medians = [{r["estimand"]: r["median"] for r in x["rows"]} for x in (d, n)]
    assert set(medians[0]) == set(medians[1]) and any(k.startswith("population_mean") for k in medians[0])
    assert medians[0] != medians[1]  # each scenario sampled its own posterior
    assert [c["key"] for c in d["checks"]] == [c["key"] for c in n["checks"]] != []


@pytest.mark.slow
def test_dask_local_cluster_runs_the_grid(study):
    _check_dask_results(_dask_grid(study, processes=True))


def _check_compiled_model_cache(study, model: str, other_priors: str, variable: str, **sampling) -> None:
    from reanalysis.analysis import CompiledCache, fit_posterior

    kw = dict(model=model, draws=50, tune=50, chains=2, progressbar=False, prior_draws=0, **sampling)
    cache = CompiledCache()
    first = fit_posterior(study, priors="default", cache=cache, **kw).idata.posterior[variable].values
    other = fit_posterior(study, priors=other_priors, cache=cache, **kw)
    again = fit_posterior(study, priors="default", cache=cache, **kw)
    assert other.cache_hit and again.cache_hit and (cache.hits, cache.misses) == (2, 1)
    np.testing.assert_array_equal(first, again.idata.posterior[variable].values)
    assert not np.array_equal(first, other.idata.posterior[variable].values)  # the new prior acts
    fresh = fit_posterior(study, priors=other_priors, cache=CompiledCache(), **kw)
    np.testing.assert_array_equal(other.idata.posterior[variable].values, fresh.idata.posterior[variable].values)


def test_compiled_model_cache_reuses_and_does_not_change_the_draws(study, toy):
    """A scenario that changes only prior values reuses the compiled model, and its draws do
    not depend on whether the compiled model was new or reused.  The cache knows nothing of
    the model, so the toy model shows it in seconds; the group model's builder takes prior
    values as tensors (test_tensor_priors_give_the_log_density_of_numeric_ones), and the
    same check on the group model itself is in the slow tier."""
    _check_compiled_model_cache(study, "toy", "narrow", "mu")


@pytest.mark.slow
def test_compiled_model_cache_reuses_the_group_model(study):
    _check_compiled_model_cache(study, "group", "wide", "log_mean", family="lognormal", reps=20)


def test_tensor_priors_give_the_log_density_of_numeric_ones(study):
    """Prior values as shared tensors (what lets a sensitivity worker reuse one compiled
    model across prior sets) give the log density the same values give as numbers, and the
    values are the set's own, not the default's (the covariate model's prior sets: slow
    tier, test_hierarchical_model.py)."""
    from reanalysis.analysis import build_keyed, model_api
    from models.priors import get_priors

    api = model_api("group")
    keyed, _, shared = build_keyed(api, study, get_priors("group", "wide"), "lognormal", 20, 1)
    assert any(name.startswith("prior.") for name in shared)
    numeric = api.build_model(study, get_priors("group", "wide"), family="lognormal", reps=20, seed=1)
    default = api.build_model(study, get_priors("group"), family="lognormal", reps=20, seed=1)
    point = {k: v + 0.1 for k, v in numeric.initial_point().items()}
    got, want, other = (m.compile_logp(mode=UNOPTIMISED)(point) for m in (keyed, numeric, default))
    assert np.isfinite(want) and got == pytest.approx(want, rel=1e-8)  # shared and constant prior values may sum in another order
    assert other != pytest.approx(want, rel=1e-6)


def test_a_builder_that_rejects_tensor_priors_falls_back_with_a_warning(study):
    """Prior values that cannot be tensors become part of the structure (no reuse across
    prior sets); that is said, not silent.  The shipped builders take tensors."""
    import warnings

    from pytensor.compile.sharedvalue import SharedVariable

    from reanalysis.analysis import build_keyed, model_api
    from models.priors import get_priors

    api = model_api("group")

    class NumbersOnly(type(api)):
        def build_model(self, study, priors, **settings):
            if any(isinstance(v, SharedVariable) for spec in priors.values() for v in spec.values()):
                raise TypeError("needs a number for the starting value")
            return super().build_model(study, priors, **settings)

    with pytest.warns(RuntimeWarning, match=r"group model: prior values built in as constants .*TypeError: needs a number"):
        _, key, shared = build_keyed(NumbersOnly(), study, get_priors("group"), "lognormal", 20, 1)
    assert not any(name.startswith("prior.") for name in shared)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        _, tensor_key, shared = build_keyed(api, study, get_priors("group"), "lognormal", 20, 1)
    assert any(name.startswith("prior.") for name in shared) and tensor_key != key


def test_medians_alone_take_tensor_priors_without_a_warning(study):
    """With the medians alone a group's starting CV is the prior's centre: as a shared
    variable its value serves, so the group grid's medians scenarios under prior sets of one
    centre share a compiled model, without the fallback's warning."""
    import warnings

    from reanalysis.analysis import CompiledCache, model_api
    from reanalysis.sensitivity import apply_overrides

    api = model_api("group")
    medians = apply_overrides(study, statistics="medians")
    cache = CompiledCache()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for name in ("default", "wide"):
            model, _, hit = cache.get(api, medians, api.get_priors(name), "lognormal", 20, 1)
    assert hit and (cache.hits, cache.misses) == (1, 1)
    fresh = api.build_model(medians, api.get_priors("wide"), family="lognormal", reps=20, seed=1)
    for name, value in fresh.initial_point().items():
        np.testing.assert_array_equal(model.initial_point()[name], value)


def test_a_failed_power_scaling_diagnostic_is_reported_not_left_empty():
    table = pd.DataFrame({"scenario": ["default"], "estimand": ["ratio"], "median": [1.0], "sd": [0.1]})
    out = sens.psens_comparison([{"error": "ValueError: bad dims"}], table)
    assert len(out) == 1
    assert out["psens_diagnosis"].iloc[0] == "az.psens failed: ValueError: bad dims"


def test_long_commands_take_no_progress():
    """sensitivity.py and sbc.py accept --no-progress (fit.py has it too) and say what it leaves out."""
    from reanalysis.cli import sbc, sensitivity

    for module in (sensitivity, sbc):
        assert module.parse_args(["--no-progress"]).no_progress is True
        assert module.parse_args([]).no_progress is False


def test_families_that_differ_only_in_their_tables_share_a_structure_and_go_first_once(study):
    # the group model's likelihood tables are shared inputs of its compiled sampler: the
    # gamma and Weibull families (no published test statistic of their own) are one
    # structure with two posteriors; the lognormal (with its p-value term) is another
    grid = {"base": {"model": "group"}, "scenarios": [
        {"name": "gamma", "family": "gamma"}, {"name": "weibull", "family": "weibull"},
        {"name": "medians", "statistics": "medians"}, {"name": "fold ratio", "assumptions": {"fold_statistic": "ratio_of_medians"}},
    ]}
    specs = sens.expand_grid(sens.Grid.model_validate(grid), study)
    assert [sp.name for sp in specs] == ["default", "gamma", "weibull", "medians", "fold ratio"]
    found = sens.posterior_keys({"key_members": list(enumerate(map(sens._member, specs))), "seed": 1})
    keys, structures = found["keys"], found["structures"]
    assert len(set(keys.values())) == 4 and keys[0] == keys[4]  # the fold reading is read by the checks only
    assert structures[1] == structures[2] and len({structures[0], structures[1], structures[3]}) == 3
    groups = sens.group_by_posterior(specs, sens.Sampling(**SHORT), keys, structures)
    # the default's group first, then the first of each other structure, then the rest
    assert [[sp.name for sp in g] for g in groups] == [["default", "fold ratio"], ["gamma"], ["medians"], ["weibull"]]
    assert sens.spread_structures(list("abcdef"), ["s", "s", "t", "t", "u", "s"]) == list("acebdf")


def test_structure_key_hashes_slice_constants_by_value():
    """Sensitivity runs reuse a compiled sampler only when the key repeats: a slice constant
    (``x[:, columns]``, as in the covariate model's padded layout) counts by its value, not
    by its address, which is new in every build; other columns are another structure."""
    import pymc as pm
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import ancestors

    from reanalysis.analysis import structure_key

    def build(columns):
        with pm.Model() as model:
            x = pm.Normal("x", 0.0, 1.0, shape=(2, 3))
            pm.Normal("y", x[:, np.array(columns)].sum(), 1.0, observed=0.5)
        return model

    model = build([0, 2])
    assert any(isinstance(v, Constant) and isinstance(v.data, slice) for v in ancestors([model.logp()]))
    assert structure_key(build([0, 2])) == structure_key(model)
    assert structure_key(build([0, 1])) != structure_key(model)

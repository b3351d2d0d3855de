"""Sensitivity scenarios started from the default scenario's adaptation (warm starts), the
ESS rule on every scenario, and compile counts per scenario, on the toy model sampled by
the JAX sampler (seconds: the machinery knows nothing of the model)."""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from models.study import load_study
from reanalysis import sensitivity as sens

STUDY = Path(__file__).resolve().parents[2] / "data" / "studies" / "lasemi2018.yaml"


@pytest.fixture(scope="module")
def toy_jax():
    from reanalysis.registry import get_model, register, unregister

    register("toy_jax", "tests.toy_model:ToyJaxModel")
    yield get_model("toy_jax")
    unregister("toy_jax")


def _grid(study, warm_start: bool, reweight: bool = False, scenarios=(("narrow", "narrow"), ("tight", "tight"))):
    # 1000 draws per chain: at 300, R-hat's gate of 1.01 failed 2 to 6 of these 20 warm
    # starts by chance (seeds 1-10, 50 or 100 warm-up iterations), so whether a test passed
    # hung on its seed; at 1000 none of 20 failed
    grid = sens.Grid.model_validate({
        "base": {"model": "toy_jax"},
        "sampling": {"draws": 1000, "tune": 300, "chains": 4, "ppc_draws": 50, "warm_tune": 50, "warm_start": warm_start, "max_draws": 1000,
                     "reweight": reweight},
        "scenarios": [{"name": name, "priors": priors} for name, priors in scenarios],
    })
    return sens.expand_grid(grid, study), grid.sampling


def test_scenarios_start_from_the_defaults_adaptation_and_compile_once(toy_jax):
    study = load_study(STUDY)
    specs, sampling = _grid(study, warm_start=True)
    assert sens.warm_starts(specs[0], sampling)
    warm = sens.run_grid(specs, sampling, workers=1)
    assert [warm[n]["start"] for n in ("default", "narrow", "tight")] == ["cold", "warm", "warm"]
    assert all(warm[n]["status"] == "ok" for n in warm), {n: warm[n]["reason"] for n in warm}
    # one program for the default's warm-up, which the warm starts' shorter one reuses
    # (counted in the process that ran it: this one)
    programs = [warm[n]["compiled"]["sampler_programs"] for n in ("default", "narrow", "tight")]
    assert programs[1:] == [0, 0] and programs[0] <= 1  # 0 when an earlier test built it
    assert sens.compile_summary(warm)["sampler_programs"] == sum(programs)
    # the same posteriors as cold starts, within Monte Carlo error
    specs, sampling = _grid(study, warm_start=False)
    assert not sens.warm_starts(specs[0], sampling)
    cold = sens.run_grid(specs, sampling, workers=1)
    assert [cold[n]["start"] for n in ("narrow", "tight")] == ["cold", "cold"]
    for name in ("narrow", "tight"):
        w = {r["estimand"]: r for r in warm[name]["rows"]}
        c = {r["estimand"]: r for r in cold[name]["rows"]}
        for key in w:
            se = np.hypot(w[key]["sd"] / np.sqrt(w[key]["ess_bulk"]), c[key]["sd"] / np.sqrt(c[key]["ess_bulk"]))
            assert abs(w[key]["median"] - c[key]["median"]) < 5 * se, (name, key)
    # the tight prior pulls the posterior towards 0: the scenarios did not reuse the default's draws
    d = {r["estimand"]: r["median"] for r in warm["default"]["rows"]}
    t = {r["estimand"]: r["median"] for r in warm["tight"]["rows"]}
    assert all(abs(t[k]) < abs(d[k]) for k in d)


def test_a_scenario_the_defaults_adaptation_cannot_start_runs_beside_the_default(toy_jax):
    # the keys stage learns each scenario's parameters; one with other parameters would be
    # refused the default's warm start, so it runs in the default's stage instead of after it
    study = load_study(STUDY)
    grid = sens.Grid.model_validate({
        "base": {"model": "toy_jax"},
        "sampling": {"draws": 300, "tune": 300, "chains": 4, "ppc_draws": 50, "warm_tune": 50, "max_draws": 300, "reweight": False},
        "scenarios": [{"name": "narrow", "priors": "narrow"}, {"name": "pooled", "family": "pooled"}],
    })
    specs = sens.expand_grid(grid, study)
    found = sens.posterior_keys({"key_members": list(enumerate(map(sens._member, specs))), "seed": 1})
    assert found["layouts"][0] == found["layouts"][1] == {"mu": (2,)} and found["layouts"][2] == {"mu_common": ()}
    tasks = [{"members": [sens._member(sp)]} for sp in specs[1:]]
    cold, warm = sens.split_cold(tasks, {sp.name: found["layouts"][i] for i, sp in enumerate(specs)}, "default")
    assert [t["members"][0]["name"] for t in cold] == ["pooled"] and cold[0]["cold_reason"] == sens.PARAMETERS_DIFFER
    assert [t["members"][0]["name"] for t in warm] == ["narrow"]
    # without the keys stage nothing is known: every scenario waits for the default
    assert sens.split_cold(tasks, {}, "default") == ([], tasks)
    lines = []
    results = sens.run_grid(specs, grid.sampling, workers=1, progress=lines.append)
    assert all(r["status"] == "ok" for r in results.values()), {n: r["reason"] for n, r in results.items()}
    assert results["pooled"]["start"] == f"cold ({sens.PARAMETERS_DIFFER})" and results["narrow"]["start"] == "warm"
    # in one process the stages run in order: the default's (with the pooled scenario), then the warm one
    assert [re.search(r"\((\w+) ok", line).group(1) for line in lines] == ["default", "pooled", "narrow"]


def test_a_warm_start_that_fails_its_diagnostics_is_refitted_cold(monkeypatch):
    import reanalysis.analysis as analysis

    calls = []

    def fake_fit(*args, adaptation=None, warm_tune=None, **kwargs):
        calls.append(adaptation)
        ok = adaptation is None
        return SimpleNamespace(diagnostics=SimpleNamespace(ok=ok, problems=[] if ok else ["3 divergent transitions (allowed: 0)"]))

    monkeypatch.setattr(analysis, "fit_posterior", fake_fit)
    monkeypatch.setattr(analysis, "extend_draws", lambda fit, study, max_draws: fit)
    monkeypatch.setattr(analysis, "draws_plan", lambda api, draws, max_draws: (draws, draws))
    monkeypatch.setattr(analysis, "model_api", lambda name: None)
    member = {"study": None, "model": "m", "family": "f", "priors": "p"}
    s = {"draws": 10, "tune": 10, "chains": 2, "seed": 1, "reps": None, "warm_tune": 5}
    fit, start = sens._fit_with_fallback({"adaptation": "A"}, member, s, None)
    assert calls == ["A", None] and fit.diagnostics.ok
    assert start == "cold after a failed warm start (3 divergent transitions (allowed: 0))"
    calls.clear()
    assert sens._fit_with_fallback({}, member, s, None)[1] == "cold" and calls == [None]


def test_a_target_acceptance_of_its_own_is_an_argument_of_the_cached_runner(toy_jax, monkeypatch):
    # a retry at a stricter target (divergence-retry.md) samples with the same runner and
    # its compiled program: the target is an argument of the program, like the data
    import reanalysis.sampling as sampling
    from reanalysis.analysis import CompiledCache, fit_posterior
    from reanalysis.nuts_chains import programs_traced

    logp_calls = []
    terms_of = sampling.log_density_terms
    monkeypatch.setattr(sampling, "log_density_terms", lambda model: logp_calls.append(model) or terms_of(model))
    study = load_study(STUDY)
    cache = CompiledCache()
    kw = dict(draws=100, tune=100, chains=2, seed=3, progressbar=False, prior_draws=0, cache=cache)
    first = fit_posterior(study, "toy_jax", None, "default", **kw)
    # the new runner converted the log density its key was taken from: one model.logp call
    assert logp_calls == [first.runner.model]
    own_steps = first.runner.adaptation().step_size
    traced = programs_traced()
    strict = fit_posterior(study, "toy_jax", None, "default", target_accept=0.99, **kw)
    assert strict.runner is first.runner and strict.cache_hit and programs_traced() == traced
    assert first.idata.posterior.attrs["target_accept"] == toy_jax.target_accept != 0.99
    assert strict.idata.posterior.attrs["target_accept"] == 0.99
    # smaller steps at the stricter target, and the model's own target again after it
    assert np.median(strict.runner.adaptation().step_size) < np.median(own_steps)
    again = fit_posterior(study, "toy_jax", None, "default", **kw)
    np.testing.assert_array_equal(again.runner.adaptation().step_size, own_steps)
    with pytest.raises(ValueError, match="target acceptance of its own needs the compiled JAX chains"):
        fit_posterior(study, "toy_jax", None, "default", target_accept=0.99, sampler="pymc", **{**kw, "cache": None})


def _fake_ladder(monkeypatch, outcomes: dict, sampler: str = "jax"):
    """``_fit_with_fallback`` with a fake sampler: ``outcomes[(warm?, target)]`` is the
    number of divergences of that fit (0: it passes); returns the list of calls made."""
    import reanalysis.analysis as analysis

    calls = []

    def fake_fit(*args, adaptation=None, warm_tune=None, target_accept=None, **kwargs):
        key = (adaptation is not None, target_accept)
        calls.append(key)
        n = outcomes[key]
        if n == "ess":  # fails the gate without a divergence
            return SimpleNamespace(diagnostics=SimpleNamespace(ok=False, problems=["tail ESS 100 < 400"], divergences=0))
        problems = [f"{n} divergent transitions (allowed: 0)"] if n else []
        return SimpleNamespace(diagnostics=SimpleNamespace(ok=not n, problems=problems, divergences=n))

    monkeypatch.setattr(analysis, "fit_posterior", fake_fit)
    monkeypatch.setattr(analysis, "extend_draws", lambda fit, study, max_draws: fit)
    monkeypatch.setattr(analysis, "draws_plan", lambda api, draws, max_draws: (draws, draws))
    monkeypatch.setattr(analysis, "model_api", lambda name: SimpleNamespace(sampler=sampler, target_accept=0.99))
    return calls


_MEMBER = {"study": None, "model": "m", "family": "f", "priors": "p"}
_SAMPLING = {"draws": 10, "tune": 10, "chains": 2, "seed": 1, "reps": None, "warm_tune": 5, "retry_target_accept": 0.999}


def test_a_diverged_warm_start_is_sampled_again_at_the_stricter_target(monkeypatch):
    calls = _fake_ladder(monkeypatch, {(True, None): 2, (True, 0.999): 0})
    fit, start = sens._fit_with_fallback({"adaptation": "A"}, _MEMBER, _SAMPLING, None)
    assert fit.diagnostics.ok and calls == [(True, None), (True, 0.999)]
    assert start == "warm at target acceptance 0.999 after a warm start diverged (2 divergent transitions (allowed: 0))"
    # both warm starts diverge: cold at the stricter target, saying why
    calls = _fake_ladder(monkeypatch, {(True, None): 2, (True, 0.999): 1, (False, 0.999): 0})
    fit, start = sens._fit_with_fallback({"adaptation": "A"}, _MEMBER, _SAMPLING, None)
    assert fit.diagnostics.ok and calls == [(True, None), (True, 0.999), (False, 0.999)]
    assert start == ("cold at target acceptance 0.999 after warm starts failed (2 divergent transitions (allowed: 0); "
                     "then 1 divergent transitions (allowed: 0))")
    # a warm start short of its ESS is refitted cold at the model's target, and that cold
    # fit, if it diverges, at the stricter one
    calls = _fake_ladder(monkeypatch, {(True, None): "ess", (False, None): 2, (False, 0.999): 0})
    fit, start = sens._fit_with_fallback({"adaptation": "A"}, _MEMBER, _SAMPLING, None)
    assert fit.diagnostics.ok and calls == [(True, None), (False, None), (False, 0.999)]
    assert start == ("cold after a failed warm start (tail ESS 100 < 400), then at target acceptance 0.999 after it diverged "
                     "(2 divergent transitions (allowed: 0))")


def test_a_diverged_cold_fit_is_sampled_again_and_the_retry_has_its_limits(monkeypatch):
    calls = _fake_ladder(monkeypatch, {(False, None): 3, (False, 0.999): 0})
    fit, start = sens._fit_with_fallback({}, _MEMBER, _SAMPLING, None)
    assert fit.diagnostics.ok and calls == [(False, None), (False, 0.999)]
    assert start == "cold, then at target acceptance 0.999 after it diverged (3 divergent transitions (allowed: 0))"
    # no second attempt: without the setting, with PyMC's sampler (no target of its own),
    # or with a target no stricter than the model's
    for sampling, sampler in (({**_SAMPLING, "retry_target_accept": None}, "jax"), (_SAMPLING, "pymc"),
                              ({**_SAMPLING, "retry_target_accept": 0.98}, "jax")):
        calls = _fake_ladder(monkeypatch, {(False, None): 3}, sampler=sampler)
        fit, start = sens._fit_with_fallback({}, _MEMBER, sampling, None)
        assert not fit.diagnostics.ok and start == "cold" and calls == [(False, None)]


def _conjugate(study, sigma: float) -> dict:
    """The toy model's exact posterior median and SD of each group's mean under a N(0, sigma)
    prior: a normal prior and a normal measurement of known SE."""
    out = {}
    for g in ("control", "ms"):
        r = study.reported(g)
        se2 = r["sd"] ** 2 / study.n(g)
        precision = 1 / sigma**2 + 1 / se2
        out[f"population_mean[{g}]"] = (r["mean"] / se2 / precision, precision**-0.5)
    return out


def test_a_scenario_close_to_the_default_is_importance_weighted_and_a_far_one_sampled(toy_jax):
    study = load_study(STUDY)
    specs, sampling = _grid(study, warm_start=True, reweight=True, scenarios=(("wide", "wide"), ("tight", "tight")))
    out = sens.run_grid(specs, sampling, workers=1)
    assert all(out[n]["status"] == "ok" for n in out), {n: out[n]["reason"] for n in out}
    # a prior three times as wide barely moves this posterior: the default's draws serve
    assert re.fullmatch(r"importance-weighted from default \(Pareto k -?0\.\d\d, efficiency (0\.9\d|1\.00)\)", out["wide"]["start"]), out["wide"]["start"]
    assert out["wide"]["compiled"]["sampler_programs"] == 0
    # N(0, 10) moves it hundreds of SDs: the weights say so and the scenario is sampled
    assert out["tight"]["start"].startswith("warm after importance-weighted from default"), out["tight"]["start"]
    assert re.search(r"failed \(unreliable: Pareto k \d+\.\d\d >= 0\.7\)$", out["tight"]["start"]), out["tight"]["start"]
    # both agree with the exact posterior within Monte Carlo error
    for name, sigma in (("wide", 3000.0), ("tight", 10.0)):
        exact = _conjugate(study, sigma)
        for row in out[name]["rows"]:
            median, sd = exact[row["estimand"]]
            assert abs(row["median"] - median) < 5 * sd / np.sqrt(row["ess_bulk"]), (name, row["estimand"], row["median"], median)
            assert row["sd"] == pytest.approx(sd, rel=0.2), (name, row["estimand"])


def test_a_grid_samples_a_pymc_model_with_the_jax_chains_when_asked(toy):
    """``sampling.sampler: jax`` gives a model whose own sampler is PyMC's (the toy model,
    like the group model) the compiled chains, and with them warm starts and weighting."""
    study = load_study(STUDY)
    grid = sens.Grid.model_validate({
        "base": {"model": "toy"},
        "sampling": {"draws": 300, "tune": 300, "chains": 4, "ppc_draws": 50, "warm_tune": 50, "sampler": "jax"},
        "scenarios": [{"name": "narrow", "priors": "narrow"}],
    })
    specs = sens.expand_grid(grid, study)
    assert sens.warm_starts(specs[0], grid.sampling)
    assert not sens.warm_starts(specs[0], grid.sampling.model_copy(update={"sampler": "model"}))
    out = sens.run_grid(specs, grid.sampling, workers=1)
    assert all(out[n]["status"] == "ok" for n in out), {n: out[n]["reason"] for n in out}
    assert out["default"]["start"] == "cold" and out["default"]["compiled"]["sampler_programs"] <= 1  # 0: built by an earlier test
    assert re.match(r"(warm|importance-weighted from default)", out["narrow"]["start"]), out["narrow"]["start"]


def test_draws_of_a_default_that_failed_the_gate_are_not_weighted(toy_jax):
    """A default short of the ESS gate (40 draws per chain) lends its adaptation, but not its
    draws: no scenario stands on draws that failed."""
    study = load_study(STUDY)
    grid = sens.Grid.model_validate({
        "base": {"model": "toy_jax"},
        "sampling": {"draws": 40, "tune": 100, "chains": 4, "ppc_draws": 20, "warm_tune": 50, "max_draws": 40},
        "scenarios": [{"name": "wide", "priors": "wide"}],
    })
    out = sens.run_grid(sens.expand_grid(grid, study), grid.sampling, workers=1)
    assert out["default"]["status"] == "failed" and "ESS" in out["default"]["reason"]
    assert out["wide"]["start"].startswith("cold after a failed warm start"), out["wide"]["start"]
    assert "importance" not in out["wide"]["start"]

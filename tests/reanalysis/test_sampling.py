"""The JAX NUTS runner: chain methods give the same posterior, and fall back safely."""
import numpy as np
import pymc as pm
import pytest

from reanalysis.sampling import SAMPLER_NAMES, CompiledNuts


def _normal_model(y):
    with pm.Model() as model:
        obs = pm.Data("obs", y)
        mu = pm.Normal("mu", 0.0, 10.0)
        pm.Normal("y", mu, 1.0, observed=obs)
    return model


@pytest.mark.parametrize("method", ["vectorized", "parallel"])
def test_chain_methods_recover_a_conjugate_posterior(method):
    y = np.random.default_rng(3).normal(2.0, 1.0, size=25)
    runner = CompiledNuts(_normal_model(y), draws=300, tune=200, chains=4, progressbar=False, chain_method=method)
    assert runner.chain_method == method  # four XLA host devices are configured at import
    idata = runner.run(seed=5)
    draws = idata.posterior["mu"].values
    assert draws.shape == (4, 300)
    # conjugate posterior: N(sum y / (n + 1/100), 1 / (n + 1/100)); 4 chains x 300 draws
    prec = len(y) + 1e-2
    mean, sd = y.sum() / prec, prec**-0.5
    assert abs(draws.mean() - mean) < 4 * sd / np.sqrt(300)
    assert 0.8 < draws.std() / sd < 1.2
    # the chains are independent streams, not copies of one another
    assert not np.allclose(draws[0], draws[1])
    assert idata.posterior.attrs["sampler"] == SAMPLER_NAMES[method]


def test_parallel_falls_back_to_vectorised_when_there_are_more_chains_than_devices():
    import jax

    runner = CompiledNuts(_normal_model(np.zeros(3)), draws=5, tune=5, chains=jax.local_device_count() + 1, progressbar=False, chain_method="parallel")
    assert runner.chain_method == "vectorized"


def test_unknown_chain_method_is_an_error():
    with pytest.raises(ValueError, match="chain_method='pmap'"):
        CompiledNuts(_normal_model(np.zeros(3)), chain_method="pmap")


def test_replaced_shared_inputs_reach_the_density_and_the_deterministics():
    # a prior parameter as a shared variable (as in sensitivity runs) and a data container
    # read only by a deterministic: both are inputs of the compiled runner
    import pytensor

    centre = pytensor.shared(0.0, name="prior.mu.mu")
    with pm.Model() as model:
        scale = pm.Data("scale", 1.0)
        mu = pm.Normal("mu", centre, 0.1)
        pm.Deterministic("scaled", mu * scale)
    runner = CompiledNuts(model, ["prior.mu.mu", "scale"], draws=200, tune=200, chains=2, progressbar=False, chain_method="parallel")
    post = runner.run(seed=1, data={"prior.mu.mu": 5.0, "scale": 3.0}).posterior
    assert abs(float(post["mu"].mean()) - 5.0) < 0.05
    np.testing.assert_allclose(post["scaled"].values, 3.0 * post["mu"].values)
    # and the model's own values again, without recompiling the graph conversion
    assert abs(float(runner.run(seed=1).posterior["mu"].mean())) < 0.05
    with pytest.raises(KeyError, match="no shared input of the model is called nope"):
        CompiledNuts(model, ["nope"])


def test_warmup_tree_depth_caps_warm_up_only():
    # coordinates with posterior SDs 0.01 and 10: the kept draws need long trees, so a cap
    # that leaked into sampling would show as n_steps <= 2**2 - 1
    with pm.Model() as model:
        pm.Normal("narrow", 0.0, 0.01)
        pm.Normal("wide", 0.0, 10.0)
    runner = CompiledNuts(model, draws=300, tune=300, chains=2, progressbar=False, warmup_tree_depth=2)
    idata = runner.run(seed=2)
    assert idata.sample_stats["n_steps"].values.max() > 3
    assert idata.posterior.attrs["warmup_tree_depth"] == 2
    # still the right posterior (2 x 300 draws of independent normals)
    assert 0.7 < float(idata.posterior["narrow"].std()) / 0.01 < 1.3
    assert 0.7 < float(idata.posterior["wide"].std()) / 10.0 < 1.3


def test_potential_from_density_terms_is_the_model_logp():
    # the potential sums the log-density terms and the transforms' log Jacobians of one graph
    # (reanalysis.sampling._log_density_terms): equal to model.logp() with a transform whose
    # parameter is another variable, a simplex transform (Jacobian with fewer dims than the
    # log prior), a potential and a shared prior parameter replaced by data
    import pytensor

    from reanalysis.sampling import _jax_functions

    centre = pytensor.shared(0.5, name="prior.mu.mu")
    with pm.Model() as model:
        mu = pm.Normal("mu", centre, 1.0)
        tau = pm.HalfNormal("tau", 1.0)
        lower = pm.Uniform("lower", -1.0, 0.0)
        x = pm.Uniform("x", lower, 1.0 + tau, shape=3)
        w = pm.Dirichlet("w", np.ones(4))
        pm.Potential("penalty", -(mu**2) * w[0])
        pm.Normal("y", mu + x.sum(), tau, observed=np.array([0.3, 1.1]))
    potential, _, densities, names, _ = _jax_functions(model, {"prior.mu.mu": centre}, log_densities=True)
    logp = model.compile_logp(mode="FAST_COMPILE")
    rng = np.random.default_rng(2)
    for _ in range(5):
        point = {k: v + 0.5 * rng.standard_normal(np.shape(v)) for k, v in model.initial_point().items()}
        got = float(potential({n: point[n] for n in names}, {"prior.mu.mu": np.asarray(0.5)}))
        np.testing.assert_allclose(got, -logp(point), rtol=1e-12)
    # the densities are the observed variable's log likelihood, then the free variables' log priors
    draws = {n: np.asarray(point[n])[None, None] for n in names}
    values = densities(draws, {"prior.mu.mu": np.asarray(0.5)})
    assert len(values) == len(model.observed_RVs) + len(model.free_RVs)
    no_jacobian = model.compile_fn(model.logp(vars=[*model.observed_RVs, *model.free_RVs], jacobian=False, sum=False), mode="FAST_COMPILE")
    for got, want in zip(values, no_jacobian(point)):
        np.testing.assert_allclose(np.asarray(got)[0, 0], want, rtol=1e-12)


def test_extend_continues_the_chains_without_a_new_warm_up():
    # the chain method of a single fit (fit.py), whose runner is the one that extends
    y = np.random.default_rng(4).normal(-1.0, 1.0, size=20)
    runner = CompiledNuts(_normal_model(y), draws=150, tune=150, chains=2, progressbar=False, chain_method="parallel", log_densities=True)
    first = runner.run(seed=3)
    more = runner.extend()
    mu = more.posterior["mu"].values
    assert mu.shape == (2, 300) and more.sample_stats["diverging"].shape == (2, 300)
    assert more.log_likelihood["y"].shape == (2, 300, 20)
    # the earlier draws as they were, then new ones (not a replay of the first block)
    np.testing.assert_array_equal(mu[:, :150], first.posterior["mu"].values)
    assert not np.allclose(mu[:, 150:], mu[:, :150])
    # no new warm-up: the adapted step size carries over unchanged
    step = more.sample_stats["step_size"].values
    np.testing.assert_array_equal(step[:, 150:], step[:, :1].repeat(150, axis=1))
    assert more.posterior.attrs["draws"] == 300 and more.posterior.attrs["extensions"] == 1
    prec = len(y) + 1e-2
    assert abs(mu.mean() - y.sum() / prec) < 4 * prec**-0.5 / np.sqrt(300)
    # a new run starts over: one block, the same draws as the first run of this seed
    again = runner.run(seed=3)
    np.testing.assert_array_equal(again.posterior["mu"].values, first.posterior["mu"].values)
    assert again.posterior.attrs["extensions"] == 0


def test_extend_before_run_is_an_error():
    runner = CompiledNuts(_normal_model(np.zeros(3)), draws=5, tune=5, chains=2, progressbar=False)
    with pytest.raises(RuntimeError, match=r"call run\(\) first"):
        runner.extend()


def _two_scale_model():
    """Independent normal parameters whose posterior SDs differ by a factor of 1000."""
    with pm.Model() as model:
        pm.Normal("small", 0.0, 0.01)
        pm.Normal("large", 3.0, 10.0)
    return model


# the two-phase warm-up is a rejected variant kept runnable for benchmarks/bench_warmup.py,
# not part of the toolkit's sampler: its sampling test belongs to the slow tier
@pytest.mark.slow
@pytest.mark.parametrize("method", ["vectorized", "parallel"])
def test_two_phase_warm_up_pools_the_mass_matrix_and_shares_one_step_size(method):
    # the kernel's init sees all chains at once (vectorised) or one chain (parallel)
    from benchmarks.two_phase_warmup import TwoPhaseNuts

    runner = TwoPhaseNuts(
        _two_scale_model(), draws=400, tune=300, chains=4, progressbar=False, chain_method=method,
        target_accept=0.95, adaptation_target_accept=0.8, step_size_tune=100,
    )
    idata = runner.run(seed=3)
    post, attrs = idata.posterior, idata.posterior.attrs
    # the posterior is the prior: right scale for both, however different
    assert 0.8 < float(post["small"].std()) / 0.01 < 1.2
    assert 0.8 < float(post["large"].std()) / 10.0 < 1.2
    assert abs(float(post["large"].mean()) - 3.0) < 4 * 10.0 / np.sqrt(400)
    # one pooled inverse mass matrix for every chain, close to the posterior variances
    state = runner._mcmc.post_warmup_state
    (block,) = state.adapt_state.inverse_mass_matrix
    inv_mass = np.asarray(state.adapt_state.inverse_mass_matrix[block])
    assert block == ("large", "small")
    np.testing.assert_allclose(inv_mass, np.broadcast_to(inv_mass[0], inv_mass.shape))
    # NumPyro shrinks each window's variances towards 1e-3 (by 5 / (n + 5)), which lifts 1e-4
    assert 0.5 < inv_mass[0, 0] / 100.0 < 2.0 and 0.5 < inv_mass[0, 1] / 1e-4 < 2.5
    # the draws use the smallest of the chains' adapted step sizes
    step = idata.sample_stats["step_size"].values
    assert np.allclose(step, min(attrs["adapted_step_sizes"]))
    assert len(attrs["adapted_step_sizes"]) == len(attrs["warmup_gradients"]) == 4
    assert attrs["step_size_tune"] == 100 and attrs["adaptation_target_accept"] == 0.8
    # the same seed gives the same draws; the extension continues without another warm-up
    again = runner.run(seed=3)
    np.testing.assert_array_equal(again.posterior["small"].values, post["small"].values)
    longer = runner.extend()
    assert longer.posterior.sizes["draw"] == 800
    np.testing.assert_array_equal(longer.posterior["small"].values[:, :400], post["small"].values)


def test_two_phase_step_size_phase_takes_at_most_half_the_warm_up():
    from benchmarks.two_phase_warmup import TwoPhaseNuts

    runner = TwoPhaseNuts(_two_scale_model(), draws=5, tune=40, chains=2, progressbar=False, adaptation_target_accept=0.8, step_size_tune=100)
    assert runner.step_size_tune == 20
    assert runner._adapt_mcmc.num_warmup == 20
    one = TwoPhaseNuts(_two_scale_model(), draws=5, tune=1, chains=2, progressbar=False, adaptation_target_accept=0.8, step_size_tune=100)
    assert one.adaptation_target_accept is None and one._adapt_mcmc is None and one.step_size_tune == 0


def test_graph_cache_skips_the_log_density_on_a_hit_and_gives_the_same_draws(tmp_path, monkeypatch):
    import reanalysis.sampling as sampling

    monkeypatch.setattr(sampling, "GRAPH_CACHE_DIR", str(tmp_path))
    y = np.random.default_rng(3).normal(2.0, 1.0, size=25)
    first = CompiledNuts(_normal_model(y), draws=50, tune=50, chains=2, progressbar=False, graph_key="k1").run(seed=4)
    (entry,) = tmp_path.glob("*.pkl")

    def no_logp(model):
        raise AssertionError("a cache hit computed the log density again")

    monkeypatch.setattr(sampling, "_log_density_terms", no_logp)
    again = CompiledNuts(_normal_model(y), draws=50, tune=50, chains=2, progressbar=False, graph_key="k1").run(seed=4)
    np.testing.assert_array_equal(again.posterior["mu"].values, first.posterior["mu"].values)
    # another key is another entry (and needs the log density)
    with pytest.raises(AssertionError, match="computed the log density"):
        CompiledNuts(_normal_model(y), draws=50, tune=50, chains=2, progressbar=False, graph_key="k2")
    # an unreadable entry is rebuilt and replaced
    monkeypatch.undo()
    monkeypatch.setattr(sampling, "GRAPH_CACHE_DIR", str(tmp_path))
    entry.write_bytes(b"truncated")
    rebuilt = CompiledNuts(_normal_model(y), draws=50, tune=50, chains=2, progressbar=False, graph_key="k1").run(seed=4)
    np.testing.assert_array_equal(rebuilt.posterior["mu"].values, first.posterior["mu"].values)
    assert entry.read_bytes() != b"truncated"
    # the cache keeps its newest GRAPH_CACHE_ENTRIES entries
    monkeypatch.setattr(sampling, "GRAPH_CACHE_ENTRIES", 1)
    CompiledNuts(_normal_model(y), draws=5, tune=5, chains=2, progressbar=False, graph_key="k3")
    assert len(list(tmp_path.glob("*.pkl"))) == 1 and not entry.exists()

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
    # (reanalysis.sampling.log_density_terms): equal to model.logp() with a transform whose
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


@pytest.mark.parametrize("method", ["vectorized", "parallel"])
def test_new_data_warm_starts_and_continuations_reuse_the_compiled_chains(method):
    # the data, the start (cold or warm) and the number of transitions are arguments of one
    # compiled program: a second data set, a second seed, a warm start of at most the
    # runner's warm-up and a continuation trace nothing new; a cold start with another
    # warm-up length (another adaptation schedule) is another program
    from reanalysis.nuts_chains import programs_traced

    rng = np.random.default_rng(7)
    runner = CompiledNuts(_normal_model(rng.normal(0.0, 1.0, 20)), ["obs"], draws=100, tune=100, chains=2, progressbar=False, chain_method=method)
    before = programs_traced()
    runner.run(seed=1)
    assert programs_traced() == before + 1
    shifted = runner.run(seed=2, data={"obs": rng.normal(5.0, 1.0, 20)})
    assert programs_traced() == before + 1
    assert abs(float(shifted.posterior["mu"].mean()) - 5.0) < 0.6
    runner.extend()
    warm = runner.run(seed=3, data={"obs": rng.normal(5.0, 1.0, 20)}, adaptation=runner.adaptation(), tune=30)
    runner.extend()
    assert programs_traced() == before + 1
    assert warm.posterior.attrs["warm_start"] == 1 and abs(float(warm.posterior["mu"].mean()) - 5.0) < 0.6
    runner.run(seed=2, tune=60)
    assert programs_traced() == before + 2


def test_a_run_is_the_same_whatever_its_division_into_calls(monkeypatch):
    # the chains advance in calls of the one program, as long as the measured speed allows:
    # the draws of a warm-up and draws cut into calls of one transition (after a first call
    # of ten) are those of a single call, bit for bit, and so are a warm start's and a
    # continuation's
    import reanalysis.nuts_chains as nuts_chains

    y = np.random.default_rng(8).normal(1.0, 1.0, 15)

    def draws(call_seconds):
        monkeypatch.setattr(nuts_chains, "CALL_SECONDS", call_seconds)
        runner = CompiledNuts(_normal_model(y), draws=40, tune=60, chains=2, progressbar=False, chain_method="parallel")
        cold = runner.run(seed=4).posterior["mu"].values
        more = runner.extend().posterior["mu"].values
        warm = runner.run(seed=5, adaptation=runner.adaptation(), tune=20).posterior["mu"].values
        return cold, more, warm

    one_call = draws(1e9)
    for got, want in zip(draws(1e-9), one_call):
        np.testing.assert_array_equal(got, want)


#: The primer tests' potential (JAX) and its data: a normal with a quartic term.
_QUARTIC_DATA = {"mu": np.array([0.1, 0.2, 0.3]), "s": np.array([1.0, 2.0, 0.5])}


def _quartic(params, data):
    import jax.numpy as jnp

    x = params["x"]
    return 0.5 * jnp.sum(((x - data["mu"]) / data["s"]) ** 2) + 0.01 * jnp.sum(x**4)


@pytest.mark.parametrize("method", ["vectorized", "parallel"])
def test_a_fresh_start_takes_its_potential_and_gradient_from_one_primer_step(method):
    # the start leaves the potential and its gradient to a primer transition of the kernel
    # (one copy of the gradient in the program): after it the state is at the start, with
    # the potential and gradient there, one gradient evaluated, and the iteration count,
    # step size and mass matrix untouched
    import jax
    import jax.numpy as jnp

    import reanalysis.nuts_chains as nuts_chains

    data, potential = _QUARTIC_DATA, _quartic
    position = {"x": np.array([[0.3, -1.2, 2.0], [1.0, 0.5, -0.7]])}
    programs = nuts_chains.ChainPrograms(potential, 2, method, 0.8, (10, 10))
    programs.run(seed=1, position=position, data=data, num_warmup=50, num_samples=0)
    state, trace = programs._advance(None, 0)  # the start and its primer, no transition
    assert trace == {}
    for c in range(2):
        pe, grad = jax.value_and_grad(potential)({"x": jnp.asarray(position["x"][c])}, data)
        np.testing.assert_allclose(np.asarray(state.potential_energy)[c], float(pe), rtol=1e-14)
        np.testing.assert_allclose(np.asarray(state.z_grad["x"])[c], np.asarray(grad["x"]), rtol=1e-14)
        np.testing.assert_array_equal(np.asarray(state.z["x"])[c], position["x"][c])
    assert (np.asarray(state.i) == 0).all() and (np.asarray(state.adapt_state.step_size) == 1.0).all()
    (imm,) = state.adapt_state.inverse_mass_matrix.values()
    np.testing.assert_array_equal(np.asarray(imm), 1.0)


def test_the_primer_is_a_one_step_tree_that_does_not_diverge():
    # the kernel's own count of the primer transition's leapfrog steps
    import jax
    import jax.numpy as jnp
    import numpyro.infer.hmc as hmc

    import reanalysis.nuts_chains as nuts_chains

    data, potential = _QUARTIC_DATA, _quartic
    position = {"x": np.array([[0.3, -1.2, 2.0]])}
    init_kernel, sample_kernel = hmc.hmc(potential_fn_gen=lambda d: (lambda p: potential(p, d)), algo="NUTS")
    begin = (jax.random.PRNGKey(0), {"x": jnp.asarray(position["x"][0])}, 1.0, {("x",): jnp.ones(3)}, 0, 0, 0.8)
    start = nuts_chains._starter(init_kernel, 50, (10, 10))

    @jax.jit  # one trace: NumPyro's kernels share state set by the start
    def prime(begin):
        state = start(begin, data)
        return state.potential_energy, sample_kernel(nuts_chains._frozen(state), model_args=(data,))

    unknown, primer = prime(begin)
    assert np.isinf(unknown)
    assert int(primer.num_steps) == 1 and not bool(primer.diverging)
    assert float(primer.potential_energy) == pytest.approx(float(potential({"x": jnp.asarray(position["x"][0])}, data)), rel=1e-14)


def test_warm_start_keeps_the_mass_matrix_and_adapts_the_step_size_only():
    # posterior SDs 0.01 and 10: from the identity, NUTS needs a long warm-up to learn them;
    # from an earlier run's adaptation, 40 iterations of step-size adaptation suffice
    runner = CompiledNuts(_two_scale_model(), draws=300, tune=400, chains=2, progressbar=False, chain_method="parallel")
    runner.run(seed=1)
    start = runner.adaptation()
    (block,) = start.inverse_mass_matrix
    assert block == ("large", "small") and start.inverse_mass_matrix[block].shape == (2, 2)
    assert start.step_size.shape == (2,) and start.position["small"].shape == (2,)
    idata = runner.run(seed=2, adaptation=start, tune=40)
    assert idata.posterior.attrs["warm_start"] == 1 and idata.posterior.attrs["tune"] == 40
    after = runner.adaptation()
    np.testing.assert_array_equal(after.inverse_mass_matrix[block], start.inverse_mass_matrix[block])
    assert not np.allclose(after.step_size, start.step_size)  # adapted again
    post = idata.posterior
    assert 0.75 < float(post["small"].std()) / 0.01 < 1.25
    assert 0.75 < float(post["large"].std()) / 10.0 < 1.25
    assert int(idata.sample_stats["diverging"].sum()) == 0
    # the continuation of a warm run does not adapt either
    more = runner.extend()
    step = more.sample_stats["step_size"].values
    np.testing.assert_array_equal(step[:, 300:], step[:, :1].repeat(300, axis=1))
    # a warm start needs the layout it came from
    other = CompiledNuts(_normal_model(np.zeros(3)), draws=5, tune=5, chains=2, progressbar=False)
    with pytest.raises(ValueError, match="a warm start needs the positions of 2 chains"):
        other.run(seed=1, adaptation=start, tune=5)


def test_progress_bar_counts_every_chain_iteration(monkeypatch):
    counted = []

    class Bar:
        def __init__(self, total, **kwargs):
            counted.append([total, 0])

        def update(self, n):
            counted[-1][1] += n

        def close(self):
            pass

    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    runner = CompiledNuts(_normal_model(np.zeros(5)), draws=60, tune=40, chains=2, progressbar=True, chain_method="parallel")
    runner.run(seed=1)
    runner.extend()
    assert counted == [[200, 200], [120, 120]]


def test_graph_cache_skips_the_log_density_on_a_hit_and_gives_the_same_draws(tmp_path, monkeypatch):
    import reanalysis.sampling as sampling

    monkeypatch.setattr(sampling, "GRAPH_CACHE_DIR", str(tmp_path))
    y = np.random.default_rng(3).normal(2.0, 1.0, size=25)
    first = CompiledNuts(_normal_model(y), draws=50, tune=50, chains=2, progressbar=False, graph_key="k1").run(seed=4)
    (entry,) = tmp_path.glob("*.pkl")

    def no_logp(model):
        raise AssertionError("a cache hit computed the log density again")

    monkeypatch.setattr(sampling, "log_density_terms", no_logp)
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

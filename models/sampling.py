"""NUTS sampling of a PyMC model: the one place where the sampler backend is chosen.

Backend: the model's log density is compiled to JAX and sampled with NumPyro's NUTS, all
chains vectorised in one XLA program.  Measured in ``benchmarks/`` against PyMC's default
(C backend) sampler on the same model; see README, "Speed".  PyMC's own
``nuts_sampler="numpyro"`` path is not used because its post-processing costs more than the
sampling for models this small.
"""
from __future__ import annotations

import os
import time

# JAX reads this once, at import; double precision matters for the Cholesky factors of the
# synthetic likelihood.
os.environ.setdefault("JAX_ENABLE_X64", "1")

import arviz as az  # noqa: E402
import numpy as np  # noqa: E402
import pymc as pm  # noqa: E402

SAMPLER_NAME = "numpyro-nuts (vectorised chains, JAX)"


def _jax_functions(model: pm.Model):
    import jax
    from pymc.sampling.jax import get_jaxified_graph

    neg_logp = get_jaxified_graph(inputs=model.value_vars, outputs=[-model.logp()])
    names = [v.name for v in model.value_vars]

    def potential(params):
        return neg_logp(*[params[n] for n in names])[0]

    outputs = model.unobserved_value_vars
    to_outputs = get_jaxified_graph(inputs=model.value_vars, outputs=outputs)
    out_names = [v.name for v in outputs]

    def postprocess(params):
        return to_outputs(*[params[n] for n in names])

    return potential, jax.jit(jax.vmap(jax.vmap(postprocess))), names, out_names


def _initial_points(model: pm.Model, chains: int, seed: int) -> dict[str, np.ndarray]:
    # PyMC's default: the model's initial point jittered by U(-1, 1) on the unconstrained scale
    fn = pm.initial_point.make_initial_point_fn(
        model=model, jitter_rvs=set(model.free_RVs), return_transformed=True
    )
    seeds = np.random.default_rng(seed).integers(2**31, size=chains)
    points = [fn(int(s)) for s in seeds]
    return {k: np.stack([p[k] for p in points]) for k in points[0]}


def sample_nuts(
    model: pm.Model,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 1,
    target_accept: float = 0.8,
    progressbar: bool = True,
) -> az.InferenceData:
    """Sample ``model`` with NUTS and return InferenceData.

    Parameters
    ----------
    model : pm.Model
        A model with continuous free variables.
    draws, tune, chains : int
        Kept draws per chain, warm-up iterations per chain, number of chains.
    seed : int
        Seeds initial points and the sampler; the same seed gives the same draws.
    target_accept : float
        NUTS target acceptance rate (step-size adaptation).
    progressbar : bool
        Show a progress bar on stderr.

    Returns
    -------
    az.InferenceData
        Groups ``posterior`` (all unobserved variables, constrained, with the model's dims),
        ``sample_stats`` (diverging, energy, tree_depth, n_steps, acceptance_rate, step_size,
        lp) and ``observed_data``; ``posterior.attrs`` records the sampler and its timings.
    """
    import jax
    from numpyro.infer import MCMC, NUTS

    t0 = time.perf_counter()
    potential, postprocess, names, out_names = _jax_functions(model)
    init = _initial_points(model, chains, seed)
    kernel = NUTS(potential_fn=potential, target_accept_prob=target_accept)
    mcmc = MCMC(
        kernel,
        num_warmup=tune,
        num_samples=draws,
        num_chains=chains,
        chain_method="vectorized",
        progress_bar=progressbar,
    )
    t1 = time.perf_counter()
    mcmc.run(
        jax.random.PRNGKey(seed),
        # NumPyro adds the chain axis itself only when there is more than one chain
        init_params={k: (init[k] if chains > 1 else init[k][0]) for k in names},
        extra_fields=("diverging", "energy", "num_steps", "accept_prob", "adapt_state.step_size", "potential_energy"),
    )
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    t2 = time.perf_counter()
    values = postprocess(samples)
    posterior = {n: np.asarray(v) for n, v in zip(out_names, values)}
    extra = mcmc.get_extra_fields(group_by_chain=True)
    n_steps = np.asarray(extra["num_steps"])
    sample_stats = {
        "diverging": np.asarray(extra["diverging"]),
        "energy": np.asarray(extra["energy"]),
        "n_steps": n_steps,
        "tree_depth": np.floor(np.log2(np.maximum(n_steps, 1))).astype(int) + 1,
        "acceptance_rate": np.asarray(extra["accept_prob"]),
        "step_size": np.asarray(extra["adapt_state.step_size"]),
        "lp": -np.asarray(extra["potential_energy"]),
    }
    dims = {k: list(v) for k, v in model.named_vars_to_dims.items()}
    coords = {k: list(v) for k, v in model.coords.items()}
    observed = {
        v.name: np.asarray(model.rvs_to_values[v].data) for v in model.observed_RVs
    }
    idata = az.from_dict(
        posterior=posterior,
        sample_stats=sample_stats,
        observed_data=observed,
        coords=coords,
        dims=dims,
    )
    t3 = time.perf_counter()
    idata.posterior.attrs.update(
        {
            "sampler": SAMPLER_NAME,
            "draws": draws,
            "tune": tune,
            "chains": chains,
            "seed": seed,
            "target_accept": target_accept,
            "compile_seconds": round(t1 - t0, 3),
            "sampling_seconds": round(t2 - t1, 3),
            "postprocess_seconds": round(t3 - t2, 3),
        }
    )
    return idata

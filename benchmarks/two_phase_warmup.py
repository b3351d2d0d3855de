"""The two-phase warm-up, a rejected alternative to NumPyro's windowed adaptation, kept
runnable for benchmarks/bench_warmup.py (``--two-phase``): :class:`TwoPhaseNuts` is
:class:`reanalysis.sampling.CompiledNuts` with a different warm-up.

The first ``tune - step_size_tune`` iterations adapt each chain's diagonal mass matrix with
NumPyro's windowed scheme at ``adaptation_target_accept`` (lower than ``target_accept``, so
with larger steps and shorter trees); the chains' inverse mass matrices are then averaged
into one, and the last ``step_size_tune`` iterations adapt only the step size, at
``target_accept``, in one dual-averaging window; the draws use the smallest of the chains'
adapted step sizes.  Why it is not the default: benchmarks/README.md (warm-up) and the
warm-up decision record.
"""
from __future__ import annotations

import functools

import numpy as np

from reanalysis.sampling import EXTRA_FIELDS, CompiledNuts


def _host(tree):
    """A NumPyro state as host arrays (random keys kept), so that it can seed another run whose
    chains are laid out on the devices afresh."""
    import jax

    return jax.tree.map(lambda a: a if jax.dtypes.issubdtype(getattr(a, "dtype", None), jax.dtypes.prng_key) else np.array(a), tree)



@functools.cache
def _fixed_mass_nuts():
    """A NumPyro NUTS kernel whose ``init_params`` are ``(positions, inverse mass matrix,
    step size)``: it starts from that diagonal mass matrix and step size instead of the
    identity, and its warm-up adapts the step size in a single dual-averaging window (no
    restarts).  Passing them with the positions, not to the kernel's constructor, keeps them
    traced inputs of the compiled sampler, so new values do not recompile it."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import NUTS
    from numpyro.infer.hmc_util import build_adaptation_schedule, dual_averaging

    ss_init, _ = dual_averaging()

    class FixedMassNUTS(NUTS):
        def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
            positions, inverse_mass, step_size = init_params
            state = super().init(rng_key, num_warmup, positions, model_args, model_kwargs)
            adapt = state.adapt_state
            (block,) = adapt.inverse_mass_matrix  # one diagonal block over all sites
            sqrt_inv = jnp.sqrt(inverse_mass)
            # starting in the schedule's last window: its dual averaging runs over the whole
            # warm-up, without the restarts at the mass-matrix window ends
            last_window = len(build_adaptation_schedule(num_warmup)) - 1
            ss_state = (jax.vmap(ss_init) if jnp.ndim(step_size) else ss_init)(jnp.log(10.0 * step_size))
            adapt = adapt._replace(
                step_size=step_size,
                inverse_mass_matrix={block: inverse_mass},
                mass_matrix_sqrt={block: 1.0 / sqrt_inv},
                mass_matrix_sqrt_inv={block: sqrt_inv},
                ss_state=ss_state,
                window_idx=jnp.full_like(adapt.window_idx, last_window),
            )
            return state._replace(adapt_state=adapt)

    return FixedMassNUTS


class TwoPhaseNuts(CompiledNuts):
    """:class:`reanalysis.sampling.CompiledNuts` with the two-phase warm-up (module docstring).

    Parameters
    ----------
    adaptation_target_accept : float
        Target acceptance of the first phase (mass matrix).
    step_size_tune : int
        Length of the second phase (step size only), at most half of ``tune``; under 1 the
        warm-up is NumPyro's usual one.
    **kwargs
        As :class:`reanalysis.sampling.CompiledNuts`.
    """

    def __init__(self, model, data_names=(), *, adaptation_target_accept: float, step_size_tune: int, **kwargs):
        tune = kwargs.get("tune", 1000)
        # a short warm-up keeps at least half of it for the mass matrix; under 2 iterations
        # there is nothing to split
        self.step_size_tune = min(int(step_size_tune), tune // 2)
        self.adaptation_target_accept = adaptation_target_accept if self.step_size_tune >= 1 else None
        if self.adaptation_target_accept is None:
            self.step_size_tune = 0
        self._adapt_mcmc = None
        self._warmup: dict = {}
        super().__init__(model, data_names, **kwargs)

    def _build_samplers(self, numpyro_model, potential, depth, options) -> None:
        if self.adaptation_target_accept is None:
            return super()._build_samplers(numpyro_model, potential, depth, options)
        from numpyro.infer import MCMC, NUTS

        # the two phases' kernels are built on the model
        self._kernel_on_model = True
        first = NUTS(numpyro_model, target_accept_prob=self.adaptation_target_accept, max_tree_depth=depth)
        self._adapt_mcmc = MCMC(first, num_warmup=self.tune - self.step_size_tune, num_samples=1, **options)
        kernel = _fixed_mass_nuts()(numpyro_model, target_accept_prob=self.target_accept, max_tree_depth=depth, adapt_mass_matrix=False)
        self._mcmc = MCMC(kernel, num_warmup=self.step_size_tune, num_samples=self.draws, **options)

    def _warm_up_and_sample(self, seed, data, init) -> None:
        if self._adapt_mcmc is None:
            return super()._warm_up_and_sample(seed, data, init)
        import jax

        keys = jax.random.split(jax.random.PRNGKey(seed), 3)
        self._two_phase_warmup(keys[:2], data, init)
        self._mcmc.run(keys[2], *self._run_args(data), extra_fields=EXTRA_FIELDS)

    def _adaptation_record(self) -> dict:
        if self._adapt_mcmc is None:
            return {}
        return {"adaptation": "two-phase, pooled mass matrix", "adaptation_target_accept": self.adaptation_target_accept,
                "step_size_tune": self.step_size_tune, **self._warmup}

    def _two_phase_warmup(self, keys, data: dict, init: dict) -> None:
        """The warm-up of ``adaptation_target_accept`` (see the class), one random key per
        phase: leaves the sampler of the draws at its post-warm-up state, and the phases'
        records in ``self._warmup``."""
        first = self._adapt_mcmc
        first.post_warmup_state = None
        first.warmup(keys[0], data, init_params=init, extra_fields=("num_steps",), collect_warmup=True)
        state = first.post_warmup_state
        steps_first = np.asarray(first.get_extra_fields(group_by_chain=True)["num_steps"]).sum(axis=1)
        (block,) = state.adapt_state.inverse_mass_matrix
        per_chain = np.asarray(state.adapt_state.inverse_mass_matrix[block])
        # the chains' inverse mass matrices (posterior variances) averaged: each chain's own
        # estimate comes from one window of a few hundred correlated draws
        pooled = np.broadcast_to(per_chain.mean(axis=0), per_chain.shape).copy() if self.chains > 1 else per_chain
        positions = {k: np.asarray(v) for k, v in state.z.items()}
        second = self._mcmc
        second.warmup(
            keys[1], data, init_params=(positions, pooled, np.asarray(state.adapt_state.step_size)),
            extra_fields=("num_steps",), collect_warmup=True,
        )
        steps_second = np.asarray(second.get_extra_fields(group_by_chain=True)["num_steps"]).sum(axis=1)
        state = second.post_warmup_state
        adapted = np.atleast_1d(np.asarray(state.adapt_state.step_size))
        # one step size for all chains, the smallest: they share the mass matrix, and a
        # chain's divergences come from steps too large for the stiffest region it visits
        common = np.full_like(np.asarray(state.adapt_state.step_size), adapted.min())
        second.post_warmup_state = _host(state._replace(adapt_state=state.adapt_state._replace(step_size=common)))
        self._warmup = {
            "adapted_step_sizes": [round(float(x), 5) for x in adapted],
            "warmup_gradients": [int(a + b) for a, b in zip(steps_first, steps_second)],
        }

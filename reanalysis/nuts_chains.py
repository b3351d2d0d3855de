"""NUTS chains as compiled XLA programs whose data are arguments.

NumPyro's ``MCMC.run`` binds the model's data into the function it maps over the chains,
so with one XLA device per chain (``pmap``) every new set of data, a sensitivity scenario's
prior values or a simulated study, is traced and compiled again.  Here the chains are one
program per *shape of the work* (warm-up length, draws, cold or warm start, chain method),
built from NumPyro's functional NUTS kernel (:func:`numpyro.infer.hmc.hmc`) with the data,
the initial positions and, for a warm start, the step sizes and mass matrices as traced
arguments: a program is compiled once per model structure and reused for any values of the
same shapes.  :data:`reanalysis.jax_setup.COUNTS` counts the programs built in this process.

A *warm start* (:class:`Adaptation`) begins from another run's adapted step size, diagonal
mass matrix and last positions (per chain), and its warm-up adapts the step size only.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from reanalysis.jax_setup import COUNTS

#: Chain iterations between two progress updates.
PROGRESS_EVERY = 25


@dataclass
class Adaptation:
    """What a warm-up learnt, per chain (leading axis: chains).

    Attributes
    ----------
    step_size : np.ndarray
        Adapted step size of each chain, shape (chains,).
    inverse_mass_matrix : dict
        NumPyro's block structure: a tuple of site names -> (chains, size) diagonal.
    position : dict
        Site name -> (chains, ...) last position on the unconstrained scale.
    """

    step_size: np.ndarray
    inverse_mass_matrix: dict
    position: dict


def _collect(state) -> dict:
    return {
        "z": state.z, "diverging": state.diverging, "energy": state.energy, "num_steps": state.num_steps,
        "accept_prob": state.accept_prob, "step_size": state.adapt_state.step_size, "potential_energy": state.potential_energy,
    }


class ChainPrograms:
    """The compiled NUTS programs of one log density.

    Parameters
    ----------
    potential : callable
        ``(params, data) -> -log density`` in JAX, ``params`` a dict of unconstrained values.
    chains : int
        Number of chains.
    chain_method : {"parallel", "vectorized"}
        One XLA device per chain (``pmap``: the chains use every core and none waits for
        another's trajectories), or all chains in one program on one core (``vmap``).
    target_accept : float
        Target acceptance rate of the step-size adaptation.
    max_tree_depth : tuple of int
        (during warm-up, afterwards).
    progress : callable, optional
        ``progress(iterations)`` receives the chain iterations completed since its last
        call, every :data:`PROGRESS_EVERY` iterations of each chain.  A program that
        reports progress calls back into Python, and XLA's persistent cache cannot keep it.
    """

    def __init__(self, potential: Callable, chains: int, chain_method: str, target_accept: float, max_tree_depth: tuple, progress: Callable | None = None):
        self.potential = potential
        self.chains = chains
        self.chain_method = chain_method
        self.target_accept = target_accept
        self.max_tree_depth = tuple(max_tree_depth)
        self._progress = progress
        self._programs: dict = {}
        self._lock = threading.Lock()
        # one callback object for every program, so that programs stay equal across runs
        self._tick = self._report if progress else None

    def _report(self, count) -> None:
        with self._lock:
            self._progress(int(np.sum(count)))

    def _map(self, fn: Callable, in_axes: tuple) -> Callable:
        """``fn`` over the chains; ``in_axes`` as for ``vmap`` (None: shared by the chains)."""
        import jax

        if self.chain_method == "vectorized":
            return jax.jit(jax.vmap(fn, in_axes=in_axes))
        # pmap misplaced leaves of dictionaries when some arguments had in_axes None (JAX
        # 0.10: a chain's position came out with the chain axis still on), so the shared
        # arguments are given to every device instead
        mapped = jax.pmap(fn)

        def call(*args):
            args = [a if axis == 0 else jax.tree.map(lambda x: np.broadcast_to(x, (self.chains, *np.shape(x))), a) for a, axis in zip(args, in_axes)]
            return mapped(*args)

        return call

    def _kernels(self, num_warmup: int, warm: bool):
        """NumPyro's init and sample kernels for one shape of work.  Each pair keeps its own
        warm-up length (the kernels hold it between calls), so a continuation never adapts."""
        import jax
        import jax.numpy as jnp
        import numpyro.infer.hmc as hmc
        from jax import lax
        from numpyro.infer.hmc_util import build_adaptation_schedule

        init_kernel, sample_kernel = hmc.hmc(potential_fn_gen=lambda data: functools.partial(self.potential, data=data), algo="NUTS")
        tick = self._tick

        def scan(state, data, length: int, skip: int = 0):
            """``length`` NUTS transitions from ``state``; the fields of all but the first
            ``skip``.  A warm-up and its draws are one scan: XLA compiles the transition, by
            far the largest part of a program, once per program instead of once per loop."""
            def body(state, i):
                state = sample_kernel(state, model_args=(data,))
                if tick is not None:
                    lax.cond((i + 1) % PROGRESS_EVERY == 0, lambda: jax.debug.callback(tick, PROGRESS_EVERY), lambda: None)
                return state, _collect(state)

            state, trace = lax.scan(body, state, np.arange(length))
            if tick is not None and length % PROGRESS_EVERY:
                jax.debug.callback(tick, length % PROGRESS_EVERY)
            return state, jax.tree.map(lambda x: x[skip:], trace)

        def start(key, position, data, step_size, inverse_mass_matrix):
            COUNTS["sampler_programs"] += 1  # runs when JAX traces the program, not when it runs
            state = init_kernel(
                position, num_warmup, step_size=step_size, inverse_mass_matrix=inverse_mass_matrix, adapt_step_size=True,
                adapt_mass_matrix=not warm, dense_mass=[], target_accept_prob=self.target_accept, max_tree_depth=self.max_tree_depth,
                model_args=(data,), rng_key=key,
            )
            if warm:
                # the last window of the schedule: one dual averaging over the whole warm-up,
                # without the restarts at the ends of mass-matrix windows it does not adapt
                last = len(build_adaptation_schedule(num_warmup)) - 1
                state = state._replace(adapt_state=state.adapt_state._replace(window_idx=jnp.asarray(last, dtype=state.adapt_state.window_idx.dtype)))
            return state

        return start, scan

    def _program(self, num_warmup: int, num_samples: int, warm: bool):
        key = ("run", num_warmup, num_samples, warm)
        if key not in self._programs:
            start, scan = self._kernels(num_warmup, warm)

            def run(rng_key, position, data, step_size, inverse_mass_matrix):
                state = start(rng_key, position, data, step_size, inverse_mass_matrix)
                return scan(state, data, num_warmup + num_samples, skip=num_warmup)

            def more(state, data, length):
                COUNTS["sampler_programs"] += 1
                return scan(state, data, length)

            axes = (0, 0, None, 0, 0)
            self._programs[key] = (self._map(run, axes), more)
        return self._programs[key]

    def run(self, seed: int, position: dict, data: dict, num_warmup: int, num_samples: int, adaptation: Adaptation | None = None):
        """Warm up and draw ``num_samples`` per chain.

        Parameters
        ----------
        seed : int
            Seeds the chains' random streams.
        position : dict
            Initial unconstrained values, (chains, ...) each; ignored with ``adaptation``,
            whose positions are the start.
        data : dict
            Values of the density's replaceable inputs.
        num_warmup, num_samples : int
            Warm-up iterations and kept draws per chain.
        adaptation : Adaptation, optional
            A warm start: step sizes, mass matrices and positions of an earlier run; the
            warm-up then adapts the step size only.

        Returns
        -------
        (state, trace)
            The chains' last NUTS state and the kept draws' fields (chains first).
        """
        import jax

        keys = jax.random.split(jax.random.PRNGKey(seed), self.chains)
        warm = adaptation is not None
        program, _ = self._program(num_warmup, num_samples, warm)
        if warm:
            return program(keys, adaptation.position, data, np.asarray(adaptation.step_size, dtype=float), adaptation.inverse_mass_matrix)
        return program(keys, position, data, np.ones(self.chains), None)

    def extend(self, state, data: dict, num_warmup: int, num_samples: int, warm: bool):
        """Continue the chains of a :meth:`run` with these settings from ``state`` by
        ``num_samples`` draws each, with their adapted step sizes and mass matrices."""
        _, more = self._program(num_warmup, num_samples, warm)
        key = ("more", num_warmup, num_samples, warm)
        if key not in self._programs:
            self._programs[key] = self._map(functools.partial(more, length=num_samples), (0, None))
        return self._programs[key](state, data)


def adaptation_of(state) -> Adaptation:
    """The :class:`Adaptation` at the end of a run (its last NUTS state, chains first)."""
    a = state.adapt_state
    return Adaptation(
        step_size=np.asarray(a.step_size),
        inverse_mass_matrix={k: np.asarray(v) for k, v in a.inverse_mass_matrix.items()},
        position={k: np.asarray(v) for k, v in state.z.items()},
    )


def programs_traced() -> int:
    """Sampler programs traced so far in this process."""
    return COUNTS["sampler_programs"]


__all__: Any = ["Adaptation", "ChainPrograms", "adaptation_of", "programs_traced"]

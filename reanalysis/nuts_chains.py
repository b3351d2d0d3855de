"""NUTS chains as compiled XLA programs whose data are arguments.

NumPyro's ``MCMC.run`` binds the model's data into the function it maps over the chains,
so with one XLA device per chain (``pmap``) every new set of data, a sensitivity scenario's
prior values or a simulated study, is traced and compiled again.  Here the chains are built
from NumPyro's functional NUTS kernel (:func:`numpyro.infer.hmc.hmc`) as one program per
model structure and warm-up schedule, with the data, the initial positions, the step sizes
and mass matrices to start from, the target acceptance rate and the number of transitions as
traced arguments.  One call of the program either starts the chains (cold or warm) and
advances them, or advances a state it is given, by up to :data:`BLOCK` transitions, warm-up
and kept draws alike.  A run, a warm start and a continuation are sequences of calls of
the same program, so it is compiled once per model structure and reused for any values of
the same shapes; the progress of a run is reported between calls, so the program never
calls back into Python and XLA's persistent cache can keep it.
:data:`reanalysis.jax_setup.COUNTS` counts the programs built in this process.

A *warm start* (:class:`Adaptation`) begins from another run's adapted step size, diagonal
mass matrix and last positions (per chain), and its warm-up adapts the step size only: it
enters the cold schedule's last window (one dual averaging, no mass-matrix windows) that
many iterations before the schedule's end.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from reanalysis.jax_setup import COUNTS

#: Most transitions per call of the program (the rows of its output buffers).
BLOCK = 1000

#: Wall seconds a call of the program aims at: progress is reported, and an interrupt is
#: seen, between calls, and each call costs a few milliseconds of its own.
CALL_SECONDS = 0.5

#: Name of the chains' axis of the parallel programs and of the arrays placed for them.
CHAIN_AXIS = "chain"


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
        Default target acceptance rate of the step-size adaptation (a run may give
        another: it is an argument of the program).
    max_tree_depth : tuple of int
        (during warm-up, afterwards).
    progress : callable, optional
        ``progress(iterations)`` receives the chain iterations completed since its last
        call, after every call of the program.
    num_warmup : int, optional
        The cold warm-up length the programs are built for first; a warm start of at most
        this many iterations shares its programs (see :meth:`run`).
    """

    def __init__(
        self, potential: Callable, chains: int, chain_method: str, target_accept: float, max_tree_depth: tuple, progress: Callable | None = None,
        num_warmup: int | None = None,
    ):
        self.potential = potential
        self.chains = chains
        self.chain_method = chain_method
        self.target_accept = target_accept
        self.max_tree_depth = tuple(max_tree_depth)
        self.num_warmup = num_warmup
        self._progress = progress
        self._programs: dict = {}
        self._lock = threading.Lock()
        # the last run's schedule, start arguments and placed data; per schedule, the state a
        # first call replaces
        self._current = self._begin = self._data = None
        self._templates: dict = {}

    def _map(self, fn: Callable, in_axes: tuple) -> Callable:
        """``fn`` over the chains; ``in_axes`` as for ``vmap`` (None: shared by the chains)."""
        import jax

        if self.chain_method == "vectorized":
            return jax.jit(jax.vmap(fn, in_axes=in_axes))
        # pmap misplaced leaves of dictionaries when some arguments had in_axes None (JAX
        # 0.10: a chain's position came out with the chain axis still on), so the shared
        # arguments are given to every device instead (once per run: :meth:`_placed`)
        return jax.pmap(fn, axis_name=CHAIN_AXIS)

    def _placed(self, values, per_chain: bool):
        """``values`` where every call of a run reads them without another copy, placed as
        the programs place their outputs (a different placement would trace them again);
        ``per_chain``: they already have the chains' axis, else each chain gets them all."""
        import jax

        if self.chain_method == "vectorized":
            return jax.device_put(values)
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        devices = Mesh(np.array(jax.local_devices()[: self.chains]), (CHAIN_AXIS,))
        on_devices = NamedSharding(devices, PartitionSpec(CHAIN_AXIS))
        if per_chain:
            return jax.device_put(values, on_devices)
        return jax.tree.map(lambda x: jax.device_put(np.broadcast_to(x, (self.chains, *np.shape(x))), on_devices), values)

    def _schedule(self, num_warmup: int, warm: bool) -> int:
        """The warm-up schedule length whose programs serve this run: a warm start enters
        the last window of a longer schedule, so it shares the cold start's programs."""
        if warm and self.num_warmup is not None and num_warmup <= self.num_warmup:
            return self.num_warmup
        return num_warmup

    def _program(self, schedule: int):
        """The program of one warm-up schedule (NumPyro's kernels hold its length between
        calls, so a continuation past it never adapts)."""
        if schedule in self._programs:
            return self._programs[schedule]
        import jax
        import jax.numpy as jnp
        import numpyro.infer.hmc as hmc
        from jax import lax

        init_kernel, sample_kernel = hmc.hmc(potential_fn_gen=lambda data: (lambda params: self.potential(params, data=data)), algo="NUTS")
        start = _starter(init_kernel, schedule, self.max_tree_depth)

        def program(state, begin, data, length, fresh):
            """With ``fresh``, a new state from ``begin`` in place of ``state`` (its
            potential and gradient from a primer transition, :func:`_frozen`); then
            ``length`` (at most :data:`BLOCK`) NUTS transitions, and the fields of each (the
            rest of the block's rows are zeros)."""
            COUNTS["sampler_programs"] += 1  # runs when JAX traces the program, not when it runs
            state = lax.cond(fresh, lambda: start(begin, data), lambda: state)

            def body(k, carry):
                state, fields = carry
                prime = fresh & (k == 0)
                moved = sample_kernel(lax.cond(prime, _frozen, lambda s: s, state), model_args=(data,))
                state = lax.cond(prime, lambda: _primed(state, moved), lambda: moved)
                # the primer's row is out of bounds, so it is dropped
                row = jnp.where(prime, BLOCK, k - fresh)
                return state, jax.tree.map(lambda f, x: f.at[row].set(x, mode="drop"), fields, _collect(state))

            fields = jax.tree.map(lambda x: jnp.zeros((BLOCK, *jnp.shape(x)), x.dtype), _collect(state))
            return lax.fori_loop(0, length + fresh, body, (state, fields))

        # the length and the switch are shared by the chains: under ``vmap`` a per-chain
        # condition would turn into a select that runs both branches
        self._programs[schedule] = self._map(program, (0, 0, None, None, None))
        return self._programs[schedule]

    def _advance(self, state, length: int, keep_from: int = 0):
        """``length`` transitions in calls from ``state`` (None: a fresh state from the
        last :meth:`run`'s start), the fields of all but the first ``keep_from``.  The first
        call is short; the others are as long as :data:`CALL_SECONDS` allows at the speed
        measured so far."""
        import jax

        program = self._program(self._current)
        fresh = state is None
        if fresh:
            state = self._templates[self._current]
        kept = []
        done, n = 0, min(10, BLOCK)
        while done < length or fresh:
            n, began = min(n, length - done), time.perf_counter()
            state, trace = program(state, self._begin, self._data, self._shared_scalar(n), self._shared_scalar(fresh))
            fresh = False
            lo, hi = max(keep_from - done, 0), n
            if hi > lo:
                kept.append({k: _host(v, lo, hi) for k, v in trace.items()})
            else:
                state = jax.block_until_ready(state)
            done += n
            if self._progress is not None and n:
                with self._lock:
                    self._progress(n * self.chains)
            per_transition = (time.perf_counter() - began) / max(n, 1)
            n = int(min(BLOCK, max(1, CALL_SECONDS / max(per_transition, 1e-9))))
        trace = {k: _join([t[k] for t in kept]) for k in kept[0]} if kept else {}
        return state, trace

    def _shared_scalar(self, value):
        """A scalar argument shared by the chains, as each chain method takes it."""
        dtype = np.bool_ if isinstance(value, bool) else np.int64
        return dtype(value) if self.chain_method == "vectorized" else np.full(self.chains, value, dtype=dtype)

    def run(
        self, seed: int, position: dict, data: dict, num_warmup: int, num_samples: int, adaptation: Adaptation | None = None,
        target_accept: float | None = None,
    ):
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
        target_accept : float, optional
            Target acceptance rate of this run's step-size adaptation (default: the
            programs' own); an argument of the program like the data.

        Returns
        -------
        (state, trace)
            The chains' last NUTS state and the kept draws' fields (chains first, on the
            host).
        """
        import jax
        from numpyro.infer.hmc_util import build_adaptation_schedule

        keys = jax.random.split(jax.random.PRNGKey(seed), self.chains)
        warm = adaptation is not None
        schedule = self._schedule(num_warmup, warm)
        self._program(schedule)
        self._current = schedule
        chains = self.chains
        if warm:
            position = adaptation.position
            step_size = np.asarray(adaptation.step_size, dtype=float)
            inverse_mass_matrix = adaptation.inverse_mass_matrix
            first, window = schedule - num_warmup, len(build_adaptation_schedule(schedule)) - 1
        else:
            step_size = np.ones(chains)
            # the identity NumPyro starts from, in the layout of an adapted diagonal
            size = sum(int(np.prod(np.shape(v)[1:])) for v in position.values())
            inverse_mass_matrix = {tuple(sorted(position)): np.ones((chains, size))}
            first, window = 0, 0
        target = self.target_accept if target_accept is None else float(target_accept)
        begin = (
            keys, position, step_size, inverse_mass_matrix, np.full(chains, first, dtype=np.int64), np.full(chains, window, dtype=np.int64),
            np.full(chains, target),
        )
        self._begin = self._placed(begin, per_chain=True)
        self._data = self._placed(data, per_chain=False)
        # the first call replaces this template (zeros of the state's shapes) by the start;
        # the shapes come from NumPyro's start with a quadratic potential, whose state has
        # the same shapes and types as the model's (tracing the model's costs 0.5 s or more)
        if schedule not in self._templates:
            import numpyro.infer.hmc as hmc

            def per_chain(x):
                return jax.ShapeDtypeStruct(np.shape(x)[1:], x.dtype)

            whole = per_chain if self.chain_method == "parallel" else (lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype))
            quadratic, _ = hmc.hmc(potential_fn_gen=lambda data: _quadratic, algo="NUTS")
            start = _starter(quadratic, schedule, self.max_tree_depth)
            shapes = jax.eval_shape(start, jax.tree.map(per_chain, self._begin), jax.tree.map(whole, self._data))
            self._templates[schedule] = self._placed(jax.tree.map(lambda x: np.zeros((chains, *x.shape), x.dtype), shapes), per_chain=True)
        return self._advance(None, num_warmup + num_samples, keep_from=num_warmup)

    def extend(self, state, num_samples: int):
        """Continue the chains of the last :meth:`run` from ``state`` by ``num_samples``
        draws each, with their adapted step sizes and mass matrices."""
        return self._advance(state, num_samples)


def _starter(init_kernel: Callable, schedule: int, max_tree_depth: tuple) -> Callable:
    """``start(begin, data)``: the NUTS state of NumPyro's ``init_kernel`` at the start a
    run's ``begin`` arguments describe (key, position, step sizes, inverse mass matrices,
    first iteration, adaptation window, target acceptance; one chain's)."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer.util import ParamInfo

    def start(begin, data):
        key, position, step_size, inverse_mass_matrix, first, window, target_accept = begin
        # the potential and its gradient at the start are left to the program's primer
        # transition (:func:`_frozen`): evaluated here they would be a second copy of the
        # gradient in the program, which XLA compiles again (about 4 of the group model's 13 s)
        unknown = ParamInfo(position, jnp.full((), jnp.inf, dtype=jnp.result_type(float)), jax.tree.map(jnp.zeros_like, position))
        state = init_kernel(
            unknown, schedule, step_size=step_size, inverse_mass_matrix=inverse_mass_matrix, adapt_step_size=True,
            adapt_mass_matrix=True, dense_mass=[], target_accept_prob=target_accept, max_tree_depth=max_tree_depth,
            model_args=(data,), rng_key=key,
        )
        # a warm start begins at iteration ``first`` of the schedule, in its last window: one
        # dual averaging to the schedule's end, and no mass-matrix window to adapt
        adapt = state.adapt_state._replace(window_idx=jnp.asarray(window, dtype=state.adapt_state.window_idx.dtype))
        return state._replace(i=jnp.asarray(first, dtype=state.i.dtype), adapt_state=adapt)

    return start


def _frozen(state):
    """``state`` for the primer transition: a zero inverse mass matrix, so every velocity is
    zero and the trajectory stays at the position.  Its one leapfrog step evaluates the
    potential and its gradient there, with the kernel's own call of them; the start's
    potential of +inf makes that new point the transition's certain choice, and zero
    velocities end the tree at once (a U-turn criterion of 0 <= 0)."""
    import jax
    import jax.numpy as jnp

    adapt = state.adapt_state
    return state._replace(adapt_state=adapt._replace(inverse_mass_matrix=jax.tree.map(jnp.zeros_like, adapt.inverse_mass_matrix)))


def _primed(start, primer):
    """The start ``start`` with the potential, gradient and energy the primer transition
    found at its position (and the primer's advanced random key); its iteration count,
    adaptation and statistics are the start's, as though the primer never ran."""
    return start._replace(
        z_grad=primer.z_grad, potential_energy=primer.potential_energy, energy=primer.energy, rng_key=primer.rng_key,
    )


def _quadratic(params: dict):
    """A potential of the parameters' own dtype: the shapes of a NUTS state without
    tracing a model."""
    return sum(0.5 * (v * v).sum() for v in params.values())


def _host(x, lo: int, hi: int) -> np.ndarray:
    """Draws ``lo:hi`` of a block's field (chains, draws, ...), as a NumPy array."""
    import jax

    return jax.tree.map(lambda a: np.asarray(a)[:, lo:hi], x)


def _join(parts: list):
    import jax

    return jax.tree.map(lambda *a: np.concatenate(a, axis=1), *parts)


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

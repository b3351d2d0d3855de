"""NUTS sampling of a PyMC model: the one place where the sampler backend is chosen.

The choice follows the measurements in ``docs/decisions/sampler-backend.md``:

* one fit of a model that declares ``sampler = "jax"`` (both shipped models):
  :class:`CompiledNuts` with one XLA device per chain (``chain_method="parallel"``).  The
  covariate model's log density has about a thousand small operations: about 4 ms per
  gradient on PyMC's C backend against 0.3-0.4 ms per chain inside XLA's compiled sampler;
  the group model's fit of the real study took 44 s cold and 15 s warm against 158 s and
  41 s on the C backend.  Vectorised chains run on one core and every tree waits for the
  chain with the longest trajectory: on the real study, 300 + 300 iterations of 4 chains
  took 185 s vectorised and 49 s in parallel (2 cores, 2026-11-28).
* one fit of a model registered with ``sampler = "pymc"`` (:func:`sample_nuts`): PyMC's
  own NUTS on the C backend, whose compiled modules are cached on disk.
* many fits of one model structure (:class:`CompiledNuts`, used by calibration and
  sensitivity runs): the log density converted to JAX once, and the chains compiled once
  per model structure and warm-up schedule (:mod:`reanalysis.nuts_chains`, NumPyro's NUTS
  kernel) with the data, prior values, starting state and number of transitions as
  arguments, so new data, warm starts and continuations do not recompile, with either
  chain method.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time

import arviz as az
import numpy as np
import pymc as pm

from reanalysis import disk_cache
from reanalysis.jax_setup import configure_jax
from reanalysis.supervisor import phase

SAMPLER_NAMES = {
    "vectorized": "numpyro-nuts (vectorised chains, JAX)",
    "parallel": "numpyro-nuts (one XLA device per chain, JAX)",
}
#: Draws whose potential :meth:`CompiledNuts.log_density_ratio` evaluates at once.
POTENTIAL_BATCH = 32
#: NUTS's usual cap on the tree depth (as in PyMC and Stan): at most 1023 leapfrog steps.
MAX_TREE_DEPTH = 10
#: On-disk cache of the log density's graphs after PyTensor's rewrites for JAX
#: (:class:`CompiledNuts` with ``graph_key``): a warm run of the same model skips
#: ``model.logp`` and the rewrites (4-6 s for the covariate model).  Set
#: K2_GRAPH_CACHE to another folder, or to an empty string to disable it.
GRAPH_CACHE_DIR = os.environ.get("K2_GRAPH_CACHE", os.path.join(disk_cache.CACHE_ROOT, "graphs"))
#: Entries the graph cache keeps (the most recently written; each is a few MB, 4.6 for the
#: covariate model).
GRAPH_CACHE_ENTRIES = 32


def named_shared_inputs(model: pm.Model, terms: tuple | None = None) -> dict:
    """Name -> shared variable, for every named shared input of the model's log density and
    deterministics: ``pm.Data`` containers, dimension lengths and, for a model built with
    prior parameters as shared variables (:func:`reanalysis.analysis.build_keyed`), those.
    ``terms``: the model's :func:`log_density_terms`, when the caller has them already
    (each computation takes seconds for a large model)."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.traversal import graph_inputs

    logp_terms, _ = terms or log_density_terms(model)
    return {v.name: v for v in graph_inputs([*logp_terms, *model.deterministics]) if isinstance(v, SharedVariable) and v.name}


def data_inputs(model: pm.Model, terms: tuple | None = None, shared: dict | None = None) -> dict:
    """The named shared inputs a compiled sampler takes as arguments: every one of
    :func:`named_shared_inputs` (with ``terms``; or ``shared``, when the caller has them
    already) but the dimension lengths, which size the graph and so belong to its structure."""
    shared = named_shared_inputs(model, terms) if shared is None else shared
    return {n: sv for n, sv in shared.items() if n not in model.dim_lengths}


def shared_by_name(model: pm.Model, names, terms: tuple | None = None) -> dict:
    """The shared inputs called ``names`` (:func:`named_shared_inputs`, with ``terms``), in
    that order.

    Raises
    ------
    KeyError
        A name that no shared input of the model carries.
    """
    found = named_shared_inputs(model, terms) if names else {}
    missing = [n for n in names if n not in found]
    if missing:
        raise KeyError(f"no shared input of the model is called {', '.join(missing)}")
    return {n: found[n] for n in names}


def log_density_terms(model: pm.Model) -> tuple[list, int]:
    """The model's log density as separate terms, from a single ``model.logp`` call.

    Returns ``(terms, k)``: ``terms[:k]`` are what ``pm.compute_log_likelihood`` and
    ``pm.compute_log_prior`` evaluate (the observed variables' log likelihoods, then the free
    variables' log priors at their constrained values, no Jacobian), the rest the log
    Jacobians of the free variables' transforms and the model's potentials: the sum of all
    of them is ``model.logp()``.  Each ``model.logp`` call rebuilds the intermediate graph
    of the whole model (about 1.8 s for the covariate model, 2026-11-28), so the potential
    and the densities share one call instead of taking three.
    """
    terms = model.logp(vars=[*model.observed_RVs, *model.free_RVs], jacobian=False, sum=False)
    jacobians = []
    for rv in model.free_RVs:
        transform = model.rvs_to_transforms.get(rv)
        if transform is not None:
            # what PyMC adds to the log prior with jacobian=True (pymc.logprob.transform_value)
            jacobians.append(transform.log_jac_det(model.rvs_to_values[rv], *rv.owner.inputs))
    extra = model.replace_rvs_by_values([*jacobians, *model.potentials])
    return [*terms, *extra], len(terms)


def rewrite_for_jax(inputs: list, outputs: list):
    """A FunctionGraph of ``outputs`` rewritten as PyTensor does before converting a graph
    to JAX (what ``pymc.sampling.jax.get_jaxified_graph`` does), ready for ``jax_funcify``."""
    from pytensor.compile.mode import JAX
    from pytensor.graph import FunctionGraph

    fgraph = FunctionGraph(inputs=inputs, outputs=outputs, clone=True)
    JAX.optimizer.rewrite(fgraph)
    return fgraph


def _rewritten_graphs(model: pm.Model, shared: dict, terms: tuple | None, graph_key: str | None) -> tuple:
    """The log density's terms (:func:`log_density_terms`) and all unobserved variables
    (deterministics may read data) as two FunctionGraphs rewritten for JAX, with the model's
    value variables and then the shared variables in ``shared`` as inputs (the other shared
    variables as constants), and the number of density terms.

    With ``graph_key`` the graphs are read from :data:`GRAPH_CACHE_DIR` when an earlier run
    stored them under that key, else built and stored there.  The key must change with
    anything the graph depends on (the caller's model inputs, the project's code and the
    package versions: :func:`reanalysis.analysis.graph_cache_key`); the names and shapes of
    ``shared`` are added here.  An unreadable entry is rebuilt.
    """
    from pymc.sampling.jax import _replace_shared_variables
    from pytensor.graph.replace import graph_replace

    digest = None
    if graph_key and GRAPH_CACHE_DIR:
        layout = [(n, str(sv.type), np.shape(sv.get_value(borrow=True))) for n, sv in shared.items()]
        digest = hashlib.sha256(f"{graph_key}:{layout}".encode()).hexdigest()
        cached = disk_cache.load(GRAPH_CACHE_DIR, digest)
        if cached is not None:
            return cached
    # static shapes: a container's shape may size the graph (reshapes of the design), and
    # JAX needs concrete shapes; a structure's shapes are fixed (reanalysis.analysis.structure_key)
    symbolic = [sv.type.clone(shape=np.shape(sv.get_value(borrow=True)))() for sv in shared.values()]
    swap = dict(zip(shared.values(), symbolic))
    terms, n_densities = terms or log_density_terms(model)

    def rewritten(outputs):
        return rewrite_for_jax(model.value_vars + symbolic, _replace_shared_variables(graph_replace(outputs, swap, strict=False)))

    graphs = (rewritten(terms), rewritten(model.unobserved_value_vars), n_densities)
    if digest:
        disk_cache.store(GRAPH_CACHE_DIR, digest, graphs, GRAPH_CACHE_ENTRIES)
    return graphs


def _jax_functions(model: pm.Model, shared: dict, log_densities: bool = False, terms: tuple | None = None, graph_key: str | None = None):
    """JAX potential ``(params, data) -> -logp`` and a vectorised map ``(draws, data) ->``
    all unobserved variables.  The shared variables in ``shared`` (name -> variable) become
    inputs, so one compiled sampler serves any values of the same shapes.

    With ``log_densities`` also a vectorised map ``(draws, data) ->`` the pointwise log
    likelihood of every observed variable and the log prior of every free variable (its
    constrained value, no Jacobian: what ``pm.compute_log_likelihood`` and
    ``pm.compute_log_prior`` return), else None.  PyMC's own functions compile them on the
    C backend, draw by draw: about 10 s for the covariate model.

    The potential is the sum, taken in JAX, of the terms of one converted graph
    (:func:`log_density_terms`), and the densities are its first outputs: one graph
    conversion instead of two (about 3 s) and one ``model.logp`` call instead of three
    (about 4 s).  XLA compiles the potential's gradient to the same program as from
    ``model.logp()`` (same operation and memory counts, 2026-11-28); a potential taken as
    the sum in PyTensor beside the terms as outputs had 23 more fused kernels.  ``terms``:
    the model's :func:`log_density_terms`, when the caller has them already.  ``graph_key``:
    a key of everything the model's graph depends on (:func:`_rewritten_graphs`).
    """
    configure_jax()
    import jax
    import jax.numpy as jnp
    from pytensor.link.jax.dispatch import jax_funcify

    data_names = list(shared)
    fg_terms, fg_outputs, n_densities = _rewritten_graphs(model, shared, terms, graph_key)
    terms_fn, to_outputs = jax_funcify(fg_terms), jax_funcify(fg_outputs)
    names = [v.name for v in model.value_vars]

    def inputs(params, data):
        return [params[n] for n in names] + [data[n] for n in data_names]

    # jitted, so that JAX traces the converted graph (about a thousand operations) once and
    # reuses its jaxpr wherever NumPyro evaluates the potential inside the sampler, instead
    # of tracing it each time: the sampler's tracing took 2.1-2.5 s instead of 4.0 s.
    # XLA inlines the call; the default fit's draws were unchanged.
    @jax.jit
    def potential(params, data):
        return -sum(jnp.sum(t) for t in terms_fn(*inputs(params, data)))

    out_names = [v.name for v in model.unobserved_value_vars]

    def postprocess(params, data):
        return to_outputs(*inputs(params, data))

    def per_draw(fn):
        return jax.jit(jax.vmap(jax.vmap(fn, in_axes=(0, None)), in_axes=(0, None)))

    densities = None
    if log_densities:
        densities = per_draw(lambda params, data: terms_fn(*inputs(params, data))[:n_densities])
    return potential, per_draw(postprocess), densities, names, out_names


def parameter_layout(model: pm.Model) -> dict[str, tuple]:
    """The sampler's parameters of ``model``: name -> shape on the unconstrained scale, in
    the order of ``model.value_vars``.  A warm start serves only a model of the same layout
    (:meth:`CompiledNuts.run`)."""
    point = model.initial_point()
    return {v.name: tuple(np.shape(point[v.name])) for v in model.value_vars}


def _density_groups(model: pm.Model, values: list, coords: dict, dims: dict) -> dict:
    """``log_likelihood`` and ``log_prior`` datasets from the outputs of the densities map of
    :func:`_jax_functions` (observed variables first, then free variables), named and
    dimensioned as PyMC names them (``dims``: the model's, variable name -> dim names)."""
    groups = {}
    for group, rvs in (("log_likelihood", model.observed_RVs), ("log_prior", model.free_RVs)):
        arrays, own_dims = {}, {}
        for rv in rvs:
            arr = np.asarray(values.pop(0))
            arrays[rv.name] = arr
            # a multivariate observation's log density has no event axis: no dims then
            if rv.name in dims and len(dims[rv.name]) == arr.ndim - 2:
                own_dims[rv.name] = dims[rv.name]
        groups[group] = az.from_dict(posterior=arrays, coords=coords, dims=own_dims).posterior
    return groups


def _constant_value(var) -> np.ndarray:
    """The value of a shared variable or constant; anything else is evaluated (compiling a
    function on the C backend, whose module cache takes seconds to load)."""
    if hasattr(var, "get_value"):
        return np.asarray(var.get_value())
    if hasattr(var, "data"):
        return np.asarray(var.data)
    return np.asarray(var.eval())



def _initial_points(model: pm.Model, chains: int, seed: int) -> dict[str, np.ndarray]:
    # PyMC's default: the model's initial point jittered by U(-1, 1) on the unconstrained scale
    fn = pm.initial_point.make_initial_point_fn(
        model=model, jitter_rvs=set(model.free_RVs), return_transformed=True
    )
    seeds = np.random.default_rng(seed).integers(2**31, size=chains)
    points = [fn(int(s)) for s in seeds]
    return {k: np.stack([p[k] for p in points]) for k in points[0]}


class CompiledNuts:
    """NUTS for one model structure, compiled once and run on any data of the same shapes.

    Parameters
    ----------
    model : pm.Model
        A model with continuous free variables.
    data_names : sequence of str
        Shared inputs that :meth:`run` may replace (:func:`shared_by_name`: ``pm.Data``
        containers such as the observed statistics in calibration, or prior parameters in
        sensitivity runs); the others stay fixed.
    draws, tune, chains : int
        Kept draws per chain, warm-up iterations per chain, number of chains.
    target_accept : float
        NUTS target acceptance rate (step-size adaptation).
    progressbar : bool
        Show a progress bar on stderr.
    chain_method : {"parallel", "vectorized"}
        ``"parallel"`` (default): one XLA device (thread) per chain, so the chains use every
        core and none waits for the longest trajectory of the others.  ``"vectorized"``: all
        chains in one XLA program on one core, advancing in lockstep.  Either way
        :meth:`run` on new data reuses the compiled program.  Falls back to
        ``"vectorized"`` when there are fewer XLA devices than chains.
    log_densities : bool
        Also return the ``log_likelihood`` and ``log_prior`` groups (power-scaling
        sensitivity needs them), computed in JAX from the potential's own graph: only the
        evaluation over the draws (1-3 s) costs more, against about 10 s for PyMC's
        functions.
    warmup_tree_depth : int, optional
        Cap on the tree depth during warm-up only (at most ``2**d - 1`` leapfrog steps per
        iteration); the kept draws use NUTS's usual cap of :data:`MAX_TREE_DEPTH`.  Warm-up
        starts with a unit mass matrix, so a model whose coordinates have very different
        posterior scales has a tiny step size there and builds trees of hundreds of steps
        until the first mass-matrix window ends.  Default: no extra cap.
    graph_key : str, optional
        A key that changes with everything the model's graph depends on
        (:func:`reanalysis.analysis.graph_cache_key`): the log density's graphs after PyTensor's
        rewrites are then kept in :data:`GRAPH_CACHE_DIR` and read from there by the next
        runner with the same key.  Default: always built.
    terms : tuple, optional
        The model's :func:`log_density_terms`, when the caller has them already (each
        ``model.logp`` call takes about a second for the group model).
    """

    def __init__(
        self, model, data_names=(), draws=1000, tune=1000, chains=4, target_accept=0.8, progressbar=True, chain_method="parallel", log_densities=False,
        warmup_tree_depth=None, graph_key=None, terms=None,
    ):
        import jax

        t0 = time.perf_counter()
        configure_jax()
        self.model = model
        self.data_names = tuple(data_names)
        # one model.logp call serves the shared inputs and the JAX functions; without
        # replaceable inputs none is needed when the graphs come from the cache
        if terms is None and self.data_names:
            terms = log_density_terms(model)
        self._shared = shared_by_name(model, self.data_names, terms)
        self.draws, self.tune, self.chains, self.target_accept = draws, tune, chains, target_accept
        self._run_target = target_accept  # the last run's (:meth:`run` may give another)
        self.warmup_tree_depth = warmup_tree_depth or MAX_TREE_DEPTH
        if chain_method not in ("vectorized", "parallel"):
            raise ValueError(f"chain_method={chain_method!r}: use 'vectorized' or 'parallel'")
        if chain_method == "parallel" and (chains < 2 or jax.local_device_count() < chains):
            chain_method = "vectorized"
        self.chain_method = chain_method
        potential, self._postprocess, self._densities, self._names, self._out_names = _jax_functions(
            model, self._shared, log_densities, terms, graph_key
        )
        from reanalysis.nuts_chains import ChainPrograms

        self.progressbar = progressbar
        self._bar = None
        self._potential = potential
        self._per_draw_potential = None
        #: key of the model structure (set by the compiled-model cache), for
        #: :meth:`base_draws`
        self.structure = None
        self._reweighting = None
        self._programs = ChainPrograms(
            potential, chains, chain_method, target_accept, (self.warmup_tree_depth, MAX_TREE_DEPTH),
            progress=self._advance_bar if progressbar else None, num_warmup=tune,
        )
        self._blocks = []  # per run: (posterior, log densities, sampler statistics) of each block of draws
        self._state = None
        self.setup_seconds = time.perf_counter() - t0

    def _advance_bar(self, iterations: int) -> None:
        if self._bar is not None:
            self._bar.update(iterations)

    def _open_bar(self, what: str, per_chain: int) -> None:
        if self.progressbar:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=per_chain * self.chains, desc=f"{what} ({self.chains} chains)", unit="it", leave=False, file=sys.stderr)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def current_data(self) -> dict[str, np.ndarray]:
        """The values the model's replaceable shared inputs hold now."""
        return {n: np.asarray(v.get_value()) for n, v in self._shared.items()}

    def run(self, seed: int = 1, data: dict | None = None, adaptation=None, tune: int | None = None, target_accept: float | None = None) -> az.InferenceData:
        """Warm up, sample and return InferenceData.

        Parameters
        ----------
        seed : int
            Seeds initial points and the sampler; the same seed gives the same draws.
        data : dict, optional
            New values for the containers in ``data_names``; default: the model's own.
        adaptation : reanalysis.nuts_chains.Adaptation, optional
            A warm start from another run of the same structure (:meth:`adaptation`): its
            step sizes, mass matrices and last positions, with a warm-up that adapts the
            step size only.
        tune : int, optional
            Warm-up iterations of this run (default: the runner's ``tune``); a warm start
            needs fewer.
        target_accept : float, optional
            Target acceptance rate of this run (default: the runner's); like the data, it
            is an argument of the compiled program.

        Returns
        -------
        az.InferenceData
            Groups ``posterior`` (all unobserved variables, constrained, with the model's
            dims), ``sample_stats`` (diverging, energy, tree_depth, n_steps,
            acceptance_rate, step_size, lp), ``observed_data`` and, with ``log_densities``,
            ``log_likelihood`` and ``log_prior``; ``posterior.attrs`` records the sampler
            and its timings.
        """
        t1 = time.perf_counter()
        data = {**self.current_data(), **(data or {})}
        tune = self.tune if tune is None else tune
        init = None
        if adaptation is None:
            init = _initial_points(self.model, self.chains, seed)
            init = {k: init[k] for k in self._names}
        else:
            self._check_layout(adaptation)
        phase("compile")  # tracing and XLA compilation (a new structure or schedule only), then sampling
        self._open_bar("warm-up and draws", tune + self.draws)
        try:
            self._state, trace = self._programs.run(seed, init, data, tune, self.draws, adaptation, target_accept)
            self._run_tune, self._warm, self._reweighting = tune, adaptation is not None, None
            self._run_target = self.target_accept if target_accept is None else float(target_accept)
            self._seed, self._data, self._blocks = seed, data, []
            self._sampling_seconds = self._postprocess_seconds = 0.0
            self._add_block(trace, t1)
        finally:
            self._close_bar()
        return self._inference_data()

    def _check_layout(self, adaptation) -> None:
        want = {n: (self.chains, *shape) for n, shape in parameter_layout(self.model).items()}
        got = {n: np.shape(v) for n, v in adaptation.position.items()}
        if got != want:
            raise ValueError(f"a warm start needs the positions of {self.chains} chains of this model's parameters {want}; got {got}")

    def adaptation(self):
        """The step sizes, mass matrices and last positions of the last :meth:`run` (or
        :meth:`extend`), per chain: a warm start for another run of this structure.

        Raises
        ------
        RuntimeError
            Before any :meth:`run`.
        """
        from reanalysis.nuts_chains import adaptation_of

        if self._state is None:
            raise RuntimeError("adaptation() reads the chains of run(); call run() first")
        return adaptation_of(self._state)

    def extend(self) -> az.InferenceData:
        """Continue the chains of the last :meth:`run` by another ``draws`` draws each, with
        the adapted step size and mass matrix (no new warm-up), and return InferenceData
        with all draws so far (the earlier ones unchanged, the new ones after them).

        Raises
        ------
        RuntimeError
            Before any :meth:`run`.
        """
        if not self._blocks:
            raise RuntimeError("extend() continues the chains of run(); call run() first")
        if self._reweighting is not None:
            raise RuntimeError("extend() continues chains: draws importance-weighted from another fit have none")
        t1 = time.perf_counter()
        self._open_bar("more draws", self.draws)
        try:
            self._state, trace = self._programs.extend(self._state, self.draws)
            self._add_block(trace, t1)
        finally:
            self._close_bar()
        return self._inference_data()

    def _add_block(self, trace: dict, started: float) -> None:
        """Post-process the draws (on the host) of the run begun at ``started``
        (``time.perf_counter()``) once (all unobserved variables and, with
        ``log_densities``, the log densities) and keep them with their sampler statistics
        as (chain, draw, ...) arrays: a continuation only processes its own draws, with the
        functions already compiled for a block's shape."""
        t = time.perf_counter()
        self._sampling_seconds += t - started
        draws = {k: trace["z"][k] for k in self._names}
        values = [np.asarray(v) for v in self._postprocess(draws, self._data)]
        densities = None if self._densities is None else [np.asarray(v) for v in self._densities(draws, self._data)]
        extra = {k: np.asarray(trace[k]) for k in trace if k != "z"}
        self._blocks.append((values, densities, extra, {k: np.asarray(v) for k, v in draws.items()}))
        self._postprocess_seconds += time.perf_counter() - t

    def _inference_data(self) -> az.InferenceData:
        """InferenceData of all blocks sampled since the last :meth:`run`."""
        t2 = time.perf_counter()
        data = self._data
        blocks = self._blocks

        def joined(i):
            return [np.concatenate(arrays, axis=1) for arrays in zip(*(b[i] for b in blocks))]

        posterior = dict(zip(self._out_names, joined(0)))
        extra = {k: np.concatenate([b[2][k] for b in blocks], axis=1) for k in blocks[0][2]}
        n_steps = extra["num_steps"]
        sample_stats = {
            "diverging": extra["diverging"],
            "energy": extra["energy"],
            "n_steps": n_steps,
            "tree_depth": np.floor(np.log2(np.maximum(n_steps, 1))).astype(int) + 1,
            "acceptance_rate": extra["accept_prob"],
            "step_size": extra["step_size"],
            "lp": -extra["potential_energy"],
        }
        model = self.model
        dims = {k: list(v) for k, v in model.named_vars_to_dims.items()}
        coords = {k: list(v) for k, v in model.coords.items()}
        observed = {}
        for v in model.observed_RVs:
            obs = model.rvs_to_values[v]
            name = getattr(obs, "name", None)
            observed[v.name] = np.asarray(data[name]) if name in data else _constant_value(obs)
        idata = az.from_dict(posterior=posterior, sample_stats=sample_stats, observed_data=observed, coords=coords, dims=dims)
        if self._densities is not None:
            idata.add_groups(_density_groups(model, joined(1), coords, dims))
        self._postprocess_seconds += time.perf_counter() - t2
        idata.posterior.attrs.update(
            {
                "sampler": SAMPLER_NAMES[self.chain_method],
                "draws": int(n_steps.shape[1]),
                "extensions": len(blocks) - 1,
                "tune": self._run_tune,
                "warm_start": int(self._warm),
                "chains": self.chains,
                "seed": self._seed,
                "target_accept": self._run_target,
                "warmup_tree_depth": self.warmup_tree_depth,
                "setup_seconds": round(self.setup_seconds, 3),
                "sampling_seconds": round(self._sampling_seconds, 3),
                "postprocess_seconds": round(self._postprocess_seconds, 3),
            }
        )
        if self._reweighting is not None:
            idata.posterior.attrs.update(self._reweighting)
        return idata

    def base_draws(self, name: str):
        """The unconstrained draws, values and sampler statistics of the last :meth:`run`
        and its continuations: what :meth:`reweighted` needs to weight them towards
        another posterior of this structure (:class:`reanalysis.reweighting.BaseDraws`;
        ``name``: the scenario they belong to)."""
        from reanalysis.reweighting import BaseDraws

        if not self._blocks or self._reweighting is not None:
            raise RuntimeError("base_draws() reads the chains of run(); call run() first")
        position = {k: np.concatenate([b[3][k] for b in self._blocks], axis=1) for k in self._names}
        stats = {k: np.concatenate([b[2][k] for b in self._blocks], axis=1) for k in self._blocks[0][2]}
        return BaseDraws(name=name, structure=self.structure, position=position, data=dict(self._data), stats=stats)

    def log_density_ratio(self, base, data: dict) -> np.ndarray:
        """log p_new(z) - log p_base(z) at each of ``base``'s draws (chains, draws): the
        joint densities of the model under ``data`` and under ``base.data``, up to a
        constant."""
        import jax

        if self._per_draw_potential is None:
            potential = self._potential

            @jax.jit
            def per_draw(position, data):
                # in batches: the potential of a model with simulated cohorts holds large
                # intermediates, and all draws at once took gigabytes
                flat = jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), position)
                out = jax.lax.map(lambda z: potential(z, data), flat, batch_size=POTENTIAL_BATCH)
                return out.reshape(jax.tree.leaves(position)[0].shape[:2])

            self._per_draw_potential = per_draw
        new = {**self.current_data(), **data}
        return np.asarray(self._per_draw_potential(base.position, base.data)) - np.asarray(self._per_draw_potential(base.position, new))

    def reweighted(self, base, data: dict | None = None, seed: int = 1):
        """The draws of ``base`` (:meth:`base_draws` of a runner of the same structure)
        importance-weighted towards this model's posterior under ``data``, resampled within
        each chain (:func:`reanalysis.reweighting.reweight`), as InferenceData like
        :meth:`run`'s; ``posterior.attrs`` adds ``importance_from``, ``pareto_k`` and
        ``importance_efficiency``.  The draws cannot be continued (:meth:`extend`).
        """
        from reanalysis.reweighting import reweight

        if base.structure is None or base.structure != self.structure:
            raise ValueError(f"importance weighting needs draws of this model structure; {base.name}'s were of another")
        t1 = time.perf_counter()
        data = {**self.current_data(), **(data or {})}
        outcome = reweight(self.log_density_ratio(base, data), seed)
        rows = np.arange(outcome.indices.shape[0])[:, None]
        trace = {k: v[rows, outcome.indices] for k, v in base.stats.items()}
        trace["z"] = {k: v[rows, outcome.indices] for k, v in base.position.items()}
        self._state, self._blocks, self._data, self._seed = None, [], data, seed
        self._run_tune, self._warm, self._run_target = 0, False, self.target_accept
        self._sampling_seconds = self._postprocess_seconds = 0.0
        self._add_block(trace, t1)
        self._reweighting = {"importance_from": base.name, "pareto_k": outcome.pareto_k, "importance_efficiency": outcome.efficiency}
        return self._inference_data()


def sample_nuts(
    model: pm.Model,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 1,
    target_accept: float = 0.8,
    progressbar: bool = True,
    cores: int | None = None,
    step_factory=None,
) -> az.InferenceData:
    """Sample ``model`` once with PyMC's own NUTS (C backend), chains in parallel processes.

    For a single fit this beats the JAX path, whose XLA compilation and tracing (about 15 s)
    is paid on every run, while PyMC's compiled C modules are cached on disk after the first
    run (benchmarks/README.md).  Returns InferenceData with ``posterior`` (including
    deterministics), ``sample_stats`` and ``observed_data``; ``posterior.attrs`` records the
    sampler and its timings.  Ctrl-C raises ``KeyboardInterrupt`` after the samplers stop,
    even though PyMC itself would return the partial trace.

    ``cores`` (default: one process per chain, up to the CPU count) lets a pool worker run
    its chains one after another.  ``step_factory(chains, seed, target_accept) -> (initial points, step)``
    supplies a NUTS step on an already compiled log density (:class:`reanalysis.analysis.CompiledCache`);
    its chains always run in this process.
    """
    import signal
    import threading

    interrupted = []

    def on_sigint(signum, frame):
        interrupted.append(True)
        raise KeyboardInterrupt

    # signal handlers can only be installed from the main thread (a Dask worker runs tasks
    # in threads; there the worker process handles signals itself)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main_thread else None
    cores = min(chains, os.cpu_count() or 1) if cores is None else cores
    extra = {"target_accept": target_accept}
    if step_factory is not None:
        # the step carries target_accept; pm.sample rejects step options it does not use
        initvals, step = step_factory(chains, seed, target_accept)
        extra, cores = {"step": step, "initvals": initvals}, 1
    phase("sample")
    t0 = time.perf_counter()
    try:
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=seed,
            progressbar=progressbar,
            compute_convergence_checks=False,
            # forking a process that has started JAX is unsafe (calibration and sampling in
            # one session); otherwise fork is the fastest start
            mp_ctx="forkserver" if "jax" in sys.modules else None,
            model=model,
            **extra,
        )
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt
    idata.posterior.attrs.update(
        {
            "sampler": "pymc-nuts (C backend, one process per core)",
            "draws": draws,
            "tune": tune,
            "chains": chains,
            "seed": seed,
            "target_accept": target_accept,
            "sampling_seconds": round(time.perf_counter() - t0, 3),
        }
    )
    return idata

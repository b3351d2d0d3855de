#!/usr/bin/env python
"""Where the covariate model's gradient spends its time: the potential's value and gradient,
and each observed term's alone, evaluated inside one compiled loop (as the sampler's tree
building evaluates them, with no Python call between evaluations).

    python benchmarks/bench_gradient_terms.py [--study FILE] [--evaluations 1000]

A term alone includes every computation it depends on, so terms that share a computation
(the claims share their cohort moments and their conditioning on the statistics) each pay
for it, and their times do not add up to the whole.  Prints milliseconds per evaluation,
the best of 3 loops.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench_gradient_terms.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--study", type=Path, default=ROOT / "data" / "studies" / "lasemi2018.yaml")
    p.add_argument("--evaluations", type=int, default=1000, help="evaluations per timed loop (default: %(default)s)")
    args = p.parse_args(argv)

    from reanalysis.jax_setup import configure_jax

    configure_jax()
    import jax
    import jax.numpy as jnp

    from models.study import load_study
    from reanalysis.analysis import model_api
    from reanalysis.sampling import _jax_functions, data_inputs

    api = model_api("hierarchical")
    model = api.build_model(load_study(args.study), api.get_priors())
    shared = data_inputs(model)
    potential, _, densities, _, _ = _jax_functions(model, shared, log_densities=True)
    data = {n: jnp.asarray(sv.get_value()) for n, sv in shared.items()}
    point = {k: jnp.asarray(v) for k, v in model.initial_point().items()}
    n = args.evaluations

    def per_evaluation(fn) -> float:
        def loop(start, values):
            def body(i, total):
                # a new point each time, so that nothing is hoisted out of the loop
                q = jax.tree.map(lambda x: x + 1e-9 * i, start)
                v, g = jax.value_and_grad(fn)(q, values)
                return total + v + sum(jnp.sum(x) for x in jax.tree.leaves(g))

            return jax.lax.fori_loop(0, n, body, 0.0)

        compiled = jax.jit(loop)
        jax.block_until_ready(compiled(point, data))
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            jax.block_until_ready(compiled(point, data))
            best = min(best, (time.perf_counter() - t) / n * 1e3)
        return best

    print(f"{args.study.name}: value and gradient, ms per evaluation (best of 3 loops of {n})", flush=True)
    print(f"potential (every term and the Jacobians) {per_evaluation(potential):.3f}", flush=True)
    for i, rv in enumerate(model.observed_RVs):
        term = lambda q, values, i=i: jnp.sum(densities({k: v[None, None] for k, v in q.items()}, values)[i])  # noqa: E731
        print(f"{rv.name} alone {per_evaluation(term):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

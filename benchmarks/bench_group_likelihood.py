#!/usr/bin/env python
"""Cost of the group model's likelihood: table build time per family and the time of one
log density + gradient evaluation of the compiled model (PyTensor C backend and the JAX
function the sampler uses), on the real study.

Prints one line per family; ``--shape`` selects the likelihood's shape where the code has a
choice.  Run the same file against two checkouts side by side to compare them.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _best(fn, repeat: int = 5, number: int = 200) -> float:
    """Smallest mean time per call over ``repeat`` runs of ``number`` calls (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t) / number)
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", type=Path, default=ROOT / "data" / "studies" / "lasemi2018.yaml")
    p.add_argument("--families", default="lognormal,gamma")
    p.add_argument("--shape", default=None, help="likelihood shape (default: the model's)")
    a = p.parse_args(argv)

    import numpy as np
    import pymc as pm

    from models import group
    from models.priors import get_priors
    from models.study import load_study

    study = load_study(a.study)
    priors = get_priors("group")
    for family in a.families.split(","):
        kw = {"shape": a.shape} if a.shape else {}
        t = time.perf_counter()
        tables = group.build_tables(study, family, **kw)
        build = time.perf_counter() - t
        model = group.build_model(study, priors, family=family, tables=tables)
        ip = model.initial_point()
        logp, dlogp = model.compile_logp(), model.compile_dlogp()
        c_time = _best(lambda: (logp(ip), dlogp(ip)))
        from pymc.sampling.jax import get_jaxified_graph

        import jax

        rv = model.value_vars
        graph = get_jaxified_graph(inputs=rv, outputs=[model.logp()])
        f = jax.jit(jax.value_and_grad(lambda *x: graph(*x)[0], argnums=tuple(range(len(rv)))))
        x = [np.asarray(ip[v.name]) for v in rv]
        jax.block_until_ready(f(*x))
        j_time = _best(lambda: jax.block_until_ready(f(*x)))
        print(
            f"{family}: tables built in {build:.1f} s; logp + gradient {1e6 * c_time:.0f} us (C backend), "
            f"{1e6 * j_time:.0f} us (JAX value_and_grad); logp at the initial point {float(logp(ip)):.3f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())

#!/usr/bin/env python
"""Time one gradient of the covariate model's log density as the sampler evaluates it (JAX,
jitted, one chain, at the model's initial point) in one or more checkouts, alternating
between them, so that code before and after a change is compared on the same machine state.

    python benchmarks/bench_gradient.py CHECKOUT [CHECKOUT ...] [--rounds 3]

Each round runs every checkout once in a fresh interpreter (its own ``models`` package):
5 blocks of 500 evaluations, the best and median block's time per gradient.  Prints one line
per run and the median over rounds of each checkout's best time.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

WORKER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from reanalysis.sampling import _jax_functions, configure_jax, named_shared_inputs
configure_jax()
import jax, jax.numpy as jnp
from models.hierarchical import build_model
from models.priors import get_priors
from models.study import load_study
m = build_model(load_study(sys.argv[1] + "/data/studies/lasemi2018.yaml"), get_priors("hierarchical"))
shared = {n: sv for n, sv in named_shared_inputs(m).items() if n not in m.dim_lengths}
potential = _jax_functions(m, shared)[0]
data = {n: jnp.asarray(sv.get_value()) for n, sv in shared.items()}
point = {k: jnp.asarray(v) for k, v in m.initial_point().items()}
vg = jax.jit(jax.value_and_grad(potential))
v, g = vg(point, data)
jax.block_until_ready(g)
assert all(bool(jnp.all(jnp.isfinite(x))) for x in g.values()), "non-finite gradient"
blocks = []
for _ in range(5):
    t = time.perf_counter()
    for _ in range(500):
        v, g = vg(point, data)
    jax.block_until_ready(g)
    blocks.append((time.perf_counter() - t) / 500 * 1e3)
print(f"{min(blocks):.4f} {float(np.median(blocks)):.4f}")
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench_gradient.py", description=__doc__.split("\n\n")[0])
    p.add_argument("checkouts", nargs="+", type=Path)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    best = {c: [] for c in args.checkouts}
    for r in range(args.rounds):
        for c in args.checkouts:
            out = subprocess.run([sys.executable, "-c", WORKER, str(c.resolve())], capture_output=True, text=True)
            if out.returncode:
                print(out.stderr.strip().splitlines()[-1], file=sys.stderr)
                return 1
            lo, med = map(float, out.stdout.split()[-2:])
            load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
            best[c].append(lo)
            print(f"round {r + 1} {c}: best {lo:.3f} ms, median {med:.3f} ms per gradient (load {load})", flush=True)
    for c, v in best.items():
        print(f"{c}: median of the best times {sorted(v)[len(v) // 2]:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

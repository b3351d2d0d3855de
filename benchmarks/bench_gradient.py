#!/usr/bin/env python
"""Time one gradient of the covariate model's log density as the sampler evaluates it (JAX,
jitted, one chain, at the model's initial point) in one or more checkouts, alternating
between them, so that code before and after a change is compared on the same machine state.

    python benchmarks/bench_gradient.py CHECKOUT [CHECKOUT ...] [--rounds 3] [--chains 4]

Each round runs every checkout once in a fresh interpreter (its own ``models`` package):
5 blocks of 500 evaluations, the best and median block's time per gradient.  Prints one line
per run and the median over rounds of each checkout's best time.

With ``--chains N`` (N > 1) the evaluations run as a fit's chains run them: N chains, one
XLA device each, inside one compiled loop (no Python call between evaluations), from N
nearby points.  On fewer cores than chains the chains share the cores, so the measure is
the process's CPU time per evaluation of all N, which the sampler's wall time follows; the
single-chain wall time can hide work that runs beside the critical path on an idle core.
It also prints, per checkout after the first, the median over rounds of its ratio to the
first checkout in the same round.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

#: Both workers' set-up: the Lasemi study's covariate model in the checkout ``argv[1]``, its
#: potential, data and initial point (``argv[2]``, when given: the chains, one device each).
SETUP = r"""
import os, sys, time
if len(sys.argv) > 2:
    os.environ["JAX_NUM_CPU_DEVICES"] = str(max(int(sys.argv[2]), 4))
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
"""

#: One gradient per call, 5 blocks of 500 calls.
WORKER = SETUP + r"""
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

#: The ``--chains`` worker: the gradient in a compiled loop on one device per chain.
CHAINS_WORKER = SETUP + r"""
chains, evaluations = int(sys.argv[2]), int(sys.argv[3])
vg = jax.value_and_grad(potential)

def loop(start, values):
    def body(i, total):
        # a new point each time, so that nothing is hoisted out of the loop
        v, g = vg(jax.tree.map(lambda x: x + 1e-9 * i, start), values)
        return total + v + sum(jnp.sum(x) for x in jax.tree.leaves(g))
    return jax.lax.fori_loop(0, evaluations, body, 0.0)

run = jax.pmap(loop, in_axes=(0, None))
start = jax.tree.map(lambda x: jnp.stack([x + 0.01 * k for k in range(chains)]), point)
assert bool(jnp.all(jnp.isfinite(jax.block_until_ready(run(start, data))))), "non-finite gradient"
cpu, wall = [], []
for _ in range(5):
    t, c = time.perf_counter(), time.process_time()
    jax.block_until_ready(run(start, data))
    wall.append((time.perf_counter() - t) / evaluations * 1e3)
    cpu.append((time.process_time() - c) / evaluations * 1e3)
print(f"{min(cpu):.4f} {min(wall):.4f}")
"""

def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench_gradient.py", description=__doc__.split("\n\n")[0])
    p.add_argument("checkouts", nargs="+", type=Path)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--chains", type=int, default=1, help="chains evaluated at once, one device each (default: %(default)s, timed per call)")
    p.add_argument("--evaluations", type=int, default=1000, help="evaluations per timed loop with --chains (default: %(default)s)")
    args = p.parse_args(argv)
    best = {c: [] for c in args.checkouts}
    for r in range(args.rounds):
        for c in args.checkouts:
            cmd = [sys.executable, "-c", WORKER, str(c.resolve())]
            if args.chains > 1:
                cmd = [sys.executable, "-c", CHAINS_WORKER, str(c.resolve()), str(args.chains), str(args.evaluations)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                print(out.stderr.strip().splitlines()[-1], file=sys.stderr)
                return 1
            lo, other = map(float, out.stdout.split()[-2:])
            load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
            best[c].append(lo)
            if args.chains > 1:
                print(f"round {r + 1} {c}: CPU {lo:.3f} ms, wall {other:.3f} ms per evaluation of {args.chains} chains (best of 5 loops; load {load})", flush=True)
            else:
                print(f"round {r + 1} {c}: best {lo:.3f} ms, median {other:.3f} ms per gradient (load {load})", flush=True)
    median = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    first = args.checkouts[0]
    for c, v in best.items():
        line = f"{c}: median of the best times {median(v):.3f} ms"
        if c != first:
            line += f"; its ratio to {first} in the same round, median {median([a / b for a, b in zip(v, best[first])]):.2f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

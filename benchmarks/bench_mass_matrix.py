#!/usr/bin/env python
"""Sample the covariate model of a study with a diagonal and with a dense mass matrix, at
the shipped sampler settings, and print time, leapfrog steps, divergences, R-hat and ESS
per seed, so that the two adaptations are compared on the same machine state.

    python benchmarks/bench_mass_matrix.py [--study FILE] [--seeds 1 2 3] [--draws 500] [--tune 1000]

NumPyro's own ``MCMC`` runs 4 parallel chains on the model's JAX potential (the data
closed over), with the model's target acceptance and warm-up tree depth
(:meth:`models.interface.ModelAPI.nuts_options`). Each kind runs every seed in one
process, so the first seed's time includes tracing and compilation; the later seeds'
times compare. The toolkit itself adapts a diagonal mass matrix
(``reanalysis.nuts_chains``); this measures what a dense one would change.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench_mass_matrix.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--study", type=Path, default=ROOT / "data" / "studies" / "lasemi2018.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--draws", type=int, default=500)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    args = p.parse_args(argv)

    from reanalysis.jax_setup import configure_jax

    configure_jax()
    import arviz as az
    import jax
    import jax.numpy as jnp
    import numpy as np
    from numpyro.infer import MCMC, NUTS

    from models.study import load_study
    from reanalysis.analysis import model_api
    from reanalysis.sampling import _jax_functions, data_inputs

    api = model_api("hierarchical")
    model = api.build_model(load_study(args.study), api.get_priors())
    shared = data_inputs(model)
    potential = _jax_functions(model, shared)[0]
    data = {n: jnp.asarray(sv.get_value()) for n, sv in shared.items()}
    start = {k: jnp.broadcast_to(jnp.asarray(v), (args.chains, *np.shape(v))) + 0.0 for k, v in model.initial_point().items()}
    options = api.nuts_options()
    print(f"{args.study.name}: {args.chains} chains x ({args.tune} + {args.draws}), target acceptance {options['target_accept']}, "
          f"tree depth {options['warmup_tree_depth']} in warm-up and 10 after", flush=True)
    print("kind seed seconds steps_per_iteration divergences max_rhat min_ess_bulk min_ess_tail", flush=True)
    for dense in (False, True):
        kernel = NUTS(potential_fn=lambda q: potential(q, data), target_accept_prob=options["target_accept"], dense_mass=dense,
                      max_tree_depth=(options["warmup_tree_depth"], 10))
        mcmc = MCMC(kernel, num_warmup=args.tune, num_samples=args.draws, num_chains=args.chains, chain_method="parallel", progress_bar=False)
        for seed in args.seeds:
            t = time.perf_counter()
            mcmc.run(jax.random.PRNGKey(seed), init_params=start, extra_fields=("num_steps", "diverging"))
            draws = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))  # the run is asynchronous until here
            seconds = time.perf_counter() - t
            extra = mcmc.get_extra_fields(group_by_chain=True)
            summary = az.summary(az.from_dict(posterior={k: np.asarray(v) for k, v in draws.items()}), kind="diagnostics")
            print(f"{'dense' if dense else 'diagonal'} {seed} {seconds:.1f} {float(np.mean(extra['num_steps'])):.1f} "
                  f"{int(np.sum(extra['diverging']))} {summary['r_hat'].max():.4f} {summary['ess_bulk'].min():.0f} "
                  f"{summary['ess_tail'].min():.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

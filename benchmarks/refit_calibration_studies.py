#!/usr/bin/env python
"""Fit the same simulated studies of a covariate-model calibration with the code of other
checkouts, so that two versions of the model (two parameterisations, two likelihoods) are
compared on the same posteriors instead of on two runs' different simulated studies.
(To refit some studies with the code that simulated them, ``scripts/sbc.py ... --only``.)

    python benchmarks/refit_calibration_studies.py CHECKOUT [CHECKOUT ...] [--sims 3,7,16 | --sims all]
        [--simulate-with CHECKOUT] [--total 50] [--seed 1] [--as-published]

The studies are those ``scripts/sbc.py --model hierarchical --sims TOTAL --seed SEED
[--as-published]`` fits, simulated by the code of ``--simulate-with`` (default: the first
checkout; a run's studies depend on the coordinates its prior is drawn in).  Every
checkout then fits each chosen study in a fresh interpreter, with calibration's own fit
(its seed for the study, its gate and continuations, 4 x (500 + 250)), one study at a
time on all cores, with the gate over the parameters its own calibration ranks (its
coordinates' sampled parameters and the population effects).  Prints one line per fit and a count of passing fits per checkout; the
gate's outcome does not depend on the machine's load, the seconds do.
"""
from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

SIMULATE = r"""
import pickle, sys
sys.path.insert(0, sys.argv[1])
from reanalysis.jax_setup import configure_jax
configure_jax()
from models.priors import get_priors
from models.study import load_study
from reanalysis import calibration
study = load_study(sys.argv[1] + "/data/studies/lasemi2018.yaml")
tasks, _ = calibration._hierarchical_tasks(study, get_priors("hierarchical"), "normal", int(sys.argv[3]), int(sys.argv[4]),
                                           as_published=sys.argv[5] == "1")
keep = None if sys.argv[6] == "all" else {int(s) for s in sys.argv[6].split(",")}
pickle.dump([t for t in tasks if keep is None or t["sim"] in keep], open(sys.argv[2], "wb"))
"""

FIT = r"""
import pickle, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import pymc as pm
from reanalysis.jax_setup import configure_jax
configure_jax()
from models.priors import get_priors
from models.study import load_study
from reanalysis import calibration
from reanalysis.analysis import model_api, precomputed
study = load_study(sys.argv[1] + "/data/studies/lasemi2018.yaml")
seed = int(sys.argv[3])
setup = dict(study_path=str(study.path), priors=get_priors("hierarchical"), family="normal", seed=seed, draws=250, tune=500, chains=4,
             model="hierarchical", max_rhat=1.01, min_ess=400, max_extensions=3,
             precomputed=precomputed(model_api("hierarchical"), study, "normal", None, seed))
tasks = pickle.load(open(sys.argv[2], "rb"))
# the gate reads the parameters calibration ranks, in this checkout's own coordinates (as
# its own calibration run would); their true values are the simulating code's, so the
# ranks are not the point and every name gets a placeholder value of its shape
model = calibration._worker_sampler(setup, list(tasks[0]["data"]))[1]
names = list(dict.fromkeys([rv.name for rv in model.free_RVs] + (["effect"] if "effect" in model.named_vars else [])))
placeholder = dict(zip(names, (np.asarray(v) for v in pm.draw([model[n] for n in names], random_seed=0))))
for task in tasks:
    f = calibration._fit_studies(setup, [{**task, "truth": placeholder}], {})[1][0]
    print(f["sim"], f"{f['seconds']:.1f}", f["draws_per_chain"], f["divergences"], f"{f['max_rhat']:.3f}", f"{f['min_ess_bulk']:.0f}",
          f"{f['min_ess_tail']:.0f}", f"{f['mean_steps']:.1f}", f"{f['smallest_step_size']:.4f}", f["gate_ok"], flush=True)
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="refit_calibration_studies.py", description=__doc__.split("\n\n")[0])
    p.add_argument("checkouts", nargs="+", type=Path)
    p.add_argument("--sims", default="all", help="comma-separated simulated studies to fit, or all (default: all)")
    p.add_argument("--simulate-with", type=Path, default=None, help="checkout whose code simulates the studies (default: the first)")
    p.add_argument("--total", type=int, default=50, help="simulated studies of the calibration run (its --sims; default: 50)")
    p.add_argument("--seed", type=int, default=1, help="the calibration run's --seed (default: 1)")
    p.add_argument("--as-published", action="store_true", help="the calibration run's --as-published")
    args = p.parse_args(argv)
    source = (args.simulate_with or args.checkouts[0]).resolve()
    with tempfile.TemporaryDirectory(prefix="refit-") as tmp:
        studies = Path(tmp) / "studies.pkl"
        subprocess.run([sys.executable, "-c", SIMULATE, str(source), str(studies), str(args.total), str(args.seed),
                        "1" if args.as_published else "0", args.sims], check=True)
        print(f"{len(pickle.load(open(studies, 'rb')))} studies simulated by {source}", flush=True)
        print("checkout sim seconds draws_per_chain divergences max_rhat min_ess_bulk min_ess_tail mean_steps smallest_step gate_ok", flush=True)
        passing = {}
        for c in args.checkouts:
            proc = subprocess.Popen([sys.executable, "-c", FIT, str(c.resolve()), str(studies), str(args.seed)], stdout=subprocess.PIPE, text=True)
            rows = []
            for line in proc.stdout:
                print(c.name or str(c), line.rstrip(), flush=True)
                rows.append(line.split())
            if proc.wait():
                return 1
            passing[c] = (sum(r[-1] == "True" for r in rows), sum(int(r[3]) > 0 for r in rows), len(rows))
        for c, (ok, divergent, n) in passing.items():
            print(f"{c}: {ok} of {n} fits pass the gate, {divergent} with divergences")
    return 0


if __name__ == "__main__":
    sys.exit(main())

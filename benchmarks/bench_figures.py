#!/usr/bin/env python
"""Redraw the figures of a covariate-model result folder and time each one.

Every figure ``scripts/fit.py`` draws, built from the folder's ``idata.nc`` and
``informativeness.csv`` with the builders of ``reanalysis.figures.plots`` (the predictive checks and the
level-versus-covariate view recomputed from the posterior with the run's seed), saved at the
figure workers' resolution into ``--out``.  Prints one line per figure: file, size in inches
and seconds to draw and save.

Run it in two checkouts of the repository (e.g. ``git archive <commit> | tar -x -C <dir>``),
alternately, to compare two versions of the figures side by side; compare ratios within one
session, not absolute times (the machine is shared).

Usage::

    python benchmarks/bench_figures.py results/<covariate-model result folder> --out /tmp/figures

Exit status 0, or 2 when the folder holds a result of another model (one line on stderr).
"""
from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("result", type=Path, help="a result folder of the covariate model (idata.nc, informativeness.csv, manifest.json)")
    p.add_argument("--out", type=Path, required=True, help="folder for the redrawn figures")
    args = p.parse_args(argv)
    manifest = json.loads((args.result / "manifest.json").read_text())
    if manifest.get("model") != "hierarchical":
        print(f"error: {args.result}/manifest.json: model is {manifest.get('model')!r}; this benchmark redraws covariate-model (hierarchical) results", file=sys.stderr)
        return 2

    import arviz as az
    import pandas as pd

    from models import effects
    from reanalysis.figures import plots
    from reanalysis.analysis import model_api
    from models.cohort import build_design
    from reanalysis.figures.workers import DPI
    from models.study import load_study

    study = load_study(manifest["study"]["path"])
    idata = az.from_netcdf(args.result / "idata.nc")
    info = pd.read_csv(args.result / "informativeness.csv")
    api = model_api("hierarchical")
    free = [v for v in api.parameter_scales if v in idata.prior]
    seed = int(manifest["seed"])
    design = build_design(study, int(manifest["likelihood"]["reps"]), seed)
    cohorts, assoc = effects.simulate_predictive(idata, study, design, None, n_draws=2000, seed=seed)
    pstats = api.predictive_statistics({**cohorts, **assoc}, study)
    view = effects.covariate_view(idata, study, design, None, seed=seed)
    # the study argument of the prior figure, where the checked-out version has it
    labels = (study,) if "study" in inspect.signature(plots.prior_posterior_figure).parameters else ()
    jobs = [
        ("prior_posterior.png", "prior_posterior_figure", (idata, free, api.parameter_scales, *labels)),
        ("rank_plots.png", "rank_figure", (idata, free, study)),
        ("predictive_checks.png", "predictive_figure", (pstats, api.check_table(pstats, study), study)),
        ("group_values.png", "group_values_figure", (idata, study)),
        ("level_vs_covariate.png", "covariate_figure", (view, study)),
        ("percent_effects.png", "percent_effects_figure", (idata, study, info)),
        ("ratio_posterior.png", "ratio_figure", (idata, study)),
        ("effects_forest.png", "effects_forest_figure", (idata, study)),
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, builder, fargs in jobs:
        t = time.perf_counter()
        fig = getattr(plots, builder)(*fargs)
        fig.savefig(args.out / name, dpi=DPI)
        width, height = fig.get_size_inches()
        plots.plt.close(fig)
        print(f"{name:24s} {width:5.2f} x {height:5.2f} in  {time.perf_counter() - t:5.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

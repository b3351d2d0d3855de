"""A toy model for the registry's test (tests/reanalysis/test_registry.py): each group's
published mean is a normal measurement of its population mean, with the published SD over
the square root of n as its standard error.  All a new model needs: this module and one
registry line."""
from __future__ import annotations

import numpy as np

from models.interface import Model


def _groups(study):
    return [g for g in study.group_ids if {"mean", "sd"} <= set(study.reported(g))]


class ToyModel(Model):
    """Normal measurement of each group's population mean."""

    name = "toy"
    families = {"normal": "normal values"}
    default_family = "normal"
    default_reps = 1
    min_reps = 1
    default_draws = 200
    default_tune = 200
    prior_sets = {
        "default": {"mu": {"dist": "normal", "mu": 0.0, "sigma": 1000.0}},
        "narrow": {"mu": {"dist": "normal", "mu": 0.0, "sigma": 100.0}},
    }
    parameter_scales = {"mu": "population mean, study units"}

    def build_model(self, study, priors, family=None, reps=None, seed=None, **options):
        import pymc as pm

        groups = _groups(study)
        reported = [study.reported(g) for g in groups]
        se = np.array([r["sd"] / np.sqrt(study.n(g)) for g, r in zip(groups, reported)])
        with pm.Model(coords={"group": groups}) as model:
            mu = self._group_means(family, priors, len(groups))
            pm.Normal("mean_observed", mu, se, observed=np.array([r["mean"] for r in reported]), dims="group")
        return model

    def _group_means(self, family, priors, groups: int):
        """The groups' population means, in the model being built (one per family this
        class lists)."""
        import pymc as pm

        return pm.Normal("mu", priors["mu"]["mu"], priors["mu"]["sigma"], dims="group")

    def add_estimands(self, idata, study, family, model):
        idata.posterior["population_mean"] = idata.posterior["mu"]

    def estimand_table(self, idata, study):
        import arviz as az
        import pandas as pd

        s = az.summary(idata, var_names=["population_mean"], hdi_prob=0.95, round_to="none")
        return pd.DataFrame({
            "estimand": s.index, "label": "population mean", "units": study.analyte.units,
            "median": [float(idata.posterior["population_mean"].sel(group=k[len("population_mean["):-1]).median()) for k in s.index],
            "hdi_low": s["hdi_2.5%"].values, "hdi_high": s["hdi_97.5%"].values, "mean": s["mean"].values, "sd": s["sd"].values,
            "r_hat": s["r_hat"].values, "ess_bulk": s["ess_bulk"].values, "ess_tail": s["ess_tail"].values, "mcse_mean": s["mcse_mean"].values,
        })

    def predictive_cohorts(self, idata, study, family, n_draws, seed, model):
        rng = np.random.default_rng(seed)
        mu = idata.posterior["mu"].stack(sample=("chain", "draw")).transpose("sample", "group")
        pick = rng.choice(mu.sizes["sample"], size=min(n_draws, mu.sizes["sample"]), replace=False)
        return {g: np.sort(rng.normal(mu.sel(group=g).values[pick, None], study.reported(g)["sd"], (pick.size, study.n(g))), axis=1)
                for g in _groups(study)}

    def predictive_statistics(self, cohorts, study):
        return {f"{g}.mean": x.mean(axis=1) for g, x in cohorts.items()}

    def check_table(self, pstats, study):
        import pandas as pd

        from models.checks import COLUMNS, number_row

        rows = [number_row(sim, study.reported(key.split(".")[0])["mean"], f"{key.split('.')[0]} mean", key, study.analyte.units)
                for key, sim in pstats.items()]
        return pd.DataFrame(rows, columns=list(COLUMNS))


class ToyJaxModel(ToyModel):
    """The toy model sampled by the JAX sampler (warm starts, the ESS rule), with a third
    prior set."""

    name = "toy_jax"
    sampler = "jax"
    families = {**ToyModel.families, "pooled": "normal values, one population mean for every group"}
    max_draws = 800
    prior_sets = {
        **ToyModel.prior_sets,
        "tight": {"mu": {"dist": "normal", "mu": 0.0, "sigma": 10.0}},
        "wide": {"mu": {"dist": "normal", "mu": 0.0, "sigma": 3000.0}},
    }

    def _group_means(self, family, priors, groups: int):
        import pymc as pm

        if family != "pooled":
            return super()._group_means(family, priors, groups)
        # another layout of parameters: one mean, no warm start from the default's
        common = pm.Normal("mu_common", priors["mu"]["mu"], priors["mu"]["sigma"])
        return pm.Deterministic("mu", common * np.ones(groups), dims="group")

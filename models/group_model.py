"""The group model as the toolkit runs it: the synthetic likelihood of each group's published
statistics (:mod:`models.group`), its estimands (:mod:`models.estimands`) and predictive
checks (:mod:`models.checks`)."""
from __future__ import annotations

from . import checks, estimands, group
from .families import FAMILIES
from .group import DEFAULT_REPS, MIN_REPS, PARAMETER_SCALES
from .interface import Model


class GroupModel(Model):
    """Each group's values follow a population family with its own mean and CV."""

    name = "group"
    families = FAMILIES
    default_family = "lognormal"
    default_reps = DEFAULT_REPS
    min_reps = MIN_REPS
    parameter_scales = PARAMETER_SCALES
    #: NumPyro's NUTS on the JAX-compiled log density (docs/decisions/sampler-backend.md:
    #: a fit of the real study 44 s cold and 15 s warm, against 158 s and 41 s on PyMC's C backend)
    sampler = "jax"

    def build_model(self, study, priors, family=None, reps=None, seed=None, **options):
        return group.build_model(study, priors, **self.given(family=family, reps=reps, seed=seed), **options)

    def set_starting_values(self, model, study, priors, data):
        group.set_starting_values(model, study, priors, data)

    def precomputed(self, study, family=None, reps=None, seed=None, store=None):
        return {"tables": group.build_tables(study, **self.given(family=family, reps=reps, seed=seed), store=store)}

    def add_estimands(self, idata, study, family, model):
        estimands.add_estimands(idata, study, family)

    def estimand_table(self, idata, study):
        return estimands.estimand_table(idata, study)

    def predictive_cohorts(self, idata, study, family, n_draws, seed, model):
        return checks.simulate_predictive(idata, study, family, n_draws=n_draws, seed=seed)

    def predictive_statistics(self, cohorts, study):
        return checks.predictive_statistics(cohorts, study)

    def item_roles(self, study, family):
        from .published_roles import group_model_roles

        return group_model_roles(study, family)

    def check_table(self, pstats, study):
        return checks.check_table(pstats, study)

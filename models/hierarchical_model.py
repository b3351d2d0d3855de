"""The hierarchical covariate model as the toolkit runs it: subject-level log levels with
covariate effects (:mod:`models.hierarchical`), population estimands and predictive cohorts
with their associations (:mod:`models.effects`), and the group model's predictive checks
(:mod:`models.checks`)."""
from __future__ import annotations

from . import checks, effects, hierarchical
from .hierarchical import (
    DEFAULT_DRAWS,
    DEFAULT_FAMILY,
    DEFAULT_REPS,
    DEFAULT_TUNE,
    FAMILIES,
    MAX_DRAWS,
    MIN_REPS,
    PARAMETER_SCALES,
    SAMPLER,
    TARGET_ACCEPT,
    WARMUP_TREE_DEPTH,
)
from .interface import Model


class HierarchicalModel(Model):
    """Log levels regress on the study's covariates; the claims about associations enter the
    likelihood beside each group's statistics."""

    name = "hierarchical"
    families = FAMILIES
    default_family = DEFAULT_FAMILY
    default_reps = DEFAULT_REPS
    min_reps = MIN_REPS
    default_draws = DEFAULT_DRAWS
    max_draws = MAX_DRAWS
    default_tune = DEFAULT_TUNE
    target_accept = TARGET_ACCEPT
    sampler = SAMPLER
    warmup_tree_depth = WARMUP_TREE_DEPTH
    parameter_scales = PARAMETER_SCALES

    def build_model(self, study, priors, family=None, reps=None, seed=None, **options):
        return hierarchical.build_model(study, priors, **self.given(family=family, reps=reps, seed=seed), **options)

    def study_problem(self, study):
        return hierarchical.study_problem(study)

    def set_starting_values(self, model, study, priors, data):
        hierarchical.set_starting_values(model, study, data)

    def add_estimands(self, idata, study, family, model):
        effects.add_estimands(idata, study, family, model=model)

    def estimand_table(self, idata, study):
        return effects.estimand_table(idata, study)

    def predictive_cohorts(self, idata, study, family, n_draws, seed, model):
        return effects.predictive_cohorts(idata, study, family, n_draws=n_draws, seed=seed, model=model)

    def predictive_statistics(self, cohorts, study):
        return checks.predictive_statistics(cohorts, study)

    def item_roles(self, study, family):
        from .published_roles import covariate_model_roles

        return covariate_model_roles(study, family)

    def check_table(self, pstats, study):
        return checks.check_table(pstats, study)

    def covariate_view(self, idata, study, model, seed):
        return effects.covariate_view(idata, study, model.design, model.residual_df, seed=seed)

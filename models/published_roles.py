"""What each model does with a published item of the study file: the role rules behind
``published_items.csv`` (:mod:`reanalysis.report.published_items` lists the items).

A rule takes one item (a dict with ``kind`` in ``n``, ``count``, ``statistic``, ``group_test``,
``comparison``, ``association``, its ``scope`` and, by kind, ``statistic``, ``breakdown``,
``level`` or ``claim``) and whether the run's checks table has a row for it, and returns
``(role, reason)`` with role ``likelihood``, ``check`` or ``unused``.  The rules call the
models' own selection functions, so the account cannot drift from what the models fit.
"""
from __future__ import annotations

from .study import CLAIM_STATISTICS, Study


#: Why a test across several groups is not fitted: its law given the groups' statistics
#: is written for two groups only (models.two_group).
SEVERAL_GROUPS_WHY = "a test across several groups has no likelihood term (written for two-group tests only)"


def not_fitted(it: dict, checked: bool, why: str) -> tuple[str, str]:
    """Role of an item a model does not fit: ``check`` when the checks table has it, else
    ``unused``; ``why`` says why it is not fitted."""
    if checked:
        return "check", f"{why}; checked against simulated cohorts"
    if it["kind"] == "comparison" and it["claim"].statistic not in CLAIM_STATISTICS:
        return "unused", f"{why}; no simulator for statistic {it['claim'].statistic!r} (known: {', '.join(CLAIM_STATISTICS)})"
    return "unused", why


def group_model_roles(study: Study, family: str):
    """The group model's rule: its likelihood's statistics and two-group test terms."""
    from .group import group_data
    from .two_group import claim_use

    fitted = {(d.group, s) for d in group_data(study) for s in d.names}

    def role(it: dict, checked: bool) -> tuple[str, str]:
        kind = it["kind"]
        if kind == "group_test":
            return not_fitted(it, checked, SEVERAL_GROUPS_WHY)
        if kind == "n":
            return "likelihood", "size of the simulated cohorts behind the group's statistics"
        if kind == "statistic":
            if (it["scope"], it["statistic"]) in fitted:
                return "likelihood", "fitted jointly with the group's other statistics (synthetic likelihood of the sample statistics)"
            if it["statistic"] in ("mean_ci_low", "mean_ci_high") and (it["scope"], "mean_ci_half") in fitted:
                return "likelihood", ("fitted with the group's other statistics as the interval's half-width (t quantile times the "
                                      "standard error of the mean), and its midpoint as the mean when no mean is published")
            return not_fitted(it, checked, "not among the statistics the group model fits")
        if kind == "count":
            return "unused", "the group model has no covariates (the covariate model uses counts a covariate names)"
        if kind == "association":
            return not_fitted(it, checked, "the group model has no covariates (fit the covariate model to use association claims)")
        # comparison claims: a two-group test term where the model has one
        cid, _, key = it["item"].removeprefix("comparisons.").partition(".claims.")
        role_, why = claim_use(study, cid, key, family)
        if role_ == "likelihood":
            return role_, why
        return not_fitted(it, checked, why)

    return role


def covariate_model_roles(study: Study, family: str):
    """The covariate model's rule: statistics with a large-sample distribution, counts that
    fix a covariate, modelled associations and comparison claims."""
    from .asymptotic import SUPPORTED
    from .cohort import modelled_associations
    from .hierarchical import comparison_claims

    in_likelihood = {cc["name"]: cc["test"] for cc in comparison_claims(study)}
    associations = set(modelled_associations(study))
    # which breakdown levels fix a covariate, and in which groups
    fixes: dict[tuple[str, str, str], str] = {}
    for c, cov in study.covariates.items():
        if cov.counts is None:
            continue
        breakdown, _, level = cov.counts.partition(".")
        for g in study.covariate_groups(c):
            for lv in study.groups[g].counts.get(breakdown, {}):
                if not level or lv == level:
                    fixes[(g, breakdown, lv)] = f"fixes covariate {c!r} ({cov.label}) in the simulated cohorts"
                else:
                    fixes.setdefault((g, breakdown, lv), f"the complement of {cov.counts} (covariate {c!r}) in the simulated cohorts")

    def role(it: dict, checked: bool) -> tuple[str, str]:
        kind = it["kind"]
        if kind == "group_test":
            return not_fitted(it, checked, SEVERAL_GROUPS_WHY)
        if kind == "n":
            return "likelihood", "size of the simulated cohorts"
        if kind == "statistic":
            if it["statistic"] in SUPPORTED:
                return "likelihood", "large-sample distribution of the group's statistics over the covariate mixture"
            return not_fitted(it, checked, f"the covariate model has a large-sample distribution only for {', '.join(SUPPORTED)}")
        if kind == "count":
            why = fixes.get((it["scope"], it["breakdown"], it["level"]))
            if why:
                return "likelihood", why
            return "unused", f"no covariate reads breakdown {it['breakdown']!r} in group {it['scope']!r}"
        if kind == "association":
            if it["scope"] in associations:
                return "likelihood", "probability that the regression estimate on simulated cohorts satisfies the claim"
            assoc = study.associations[it["scope"]]
            if assoc.direction == "none":
                why = "a claim of no relationship is not modelled"
            elif assoc.covariate not in study.covariates:
                why = f"covariate {assoc.covariate!r} is not declared under covariates"
            else:
                why = "a categorical breakdown has no single coefficient to claim about"
            return not_fitted(it, checked, why)
        # comparison claims
        if it["key"] in in_likelihood:
            return "likelihood", f"probability that the group test ({in_likelihood[it['key']]}) gives it"
        cl = it["claim"]
        if cl.use == "check":
            return not_fitted(it, checked, "the study file says 'use: check'")
        if cl.statistic in ("ratio_of_means", "ratio_of_medians"):
            return not_fitted(it, checked, "a function of the reported statistics, which are fitted")
        if cl.statistic == "p_value":
            return not_fitted(it, checked, f"only p-value thresholds ('<', '<=') are fitted, not relation {cl.relation!r}")
        return not_fitted(it, checked, "not a statistic the covariate model fits")

    return role

"""An account of every published item of a study file: what each model does with it.

Every number and claim the study file holds gets one row: its place in the file, the group
or comparison it belongs to, its value, and its **role** in the analysis with the reason:

* ``likelihood``: the model is fitted to it (a group's statistics, its size, a count that
  fixes a covariate of the simulated cohorts, a claim the model turns into a probability);
* ``check``: the model is not fitted to it, but it is compared with cohorts simulated from
  the posterior (the checks table);
* ``unused``: neither, with the reason (the model has no covariates, no simulator for the
  statistic, ...).  Nothing is dropped without a row saying so.

The roles come from the models' own selection functions (the statistics the group model's
likelihood reads, the covariate model's supported statistics, modelled associations and
comparison claims), and ``checked`` from the checks table of the run, so the account
cannot drift from what the code does.
"""
from __future__ import annotations

from typing import Iterable

import pandas as pd

from models.checks import association_text
from models.study import CLAIM_STATISTICS, Study

#: Roles of a published item, with their meaning (report legends).
ROLES = {
    "likelihood": "the model is fitted to it",
    "check": "compared with cohorts simulated from the posterior, not fitted",
    "unused": "neither fitted nor checked (see the reason)",
}
#: Columns of :func:`published_items`, in order.
COLUMNS = ("item", "scope", "status", "value", "role", "checked", "reason")


def enumerate_items(study: Study) -> list[dict]:
    """Every number and claim of the study file, in file order, without roles.

    Returns
    -------
    list of dict
        ``item`` (dotted place in the file), ``scope`` (group, comparison or association),
        ``status`` (published or assumption), ``value`` (as text), ``kind`` and ``key``
        (the checks table's key for the item, or None).
    """
    out = []
    for g, grp in study.groups.items():
        out.append(_row(f"groups.{g}.n", g, grp.n.status, f"{grp.n.value:g}", "n", None))
        for b, levels in grp.counts.items():
            for lv, c in levels.items():
                out.append(_row(f"groups.{g}.counts.{b}.{lv}", g, c.status, f"{c.value:g}", "count", None, breakdown=b, level=lv))
        for s in study.reported(g):
            num = grp.statistics[s]
            out.append(_row(f"groups.{g}.statistics.{s}", g, num.status, f"{num.value:g}", "statistic", f"{g}.{s}", statistic=s))
    for cid, comp in study.comparisons.items():
        for k, cl in comp.claims.items():
            text = f"{cl.statistic} {cl.relation} {cl.printed or f'{cl.value:g}'}" if cl.relation else f"{cl.statistic}: {cl.direction}"
            out.append(_row(f"comparisons.{cid}.claims.{k}", cid, cl.status, text, "comparison", f"{cid}.{k}", claim=cl))
    for a, assoc in study.associations.items():
        out.append(_row(f"associations.{a}", a, assoc.status, f"{assoc.covariate}: {association_text(assoc)}", "association", f"association.{a}", claim=assoc))
    return out


def _row(item, scope, status, value, kind, key, **extra) -> dict:
    return {"item": item, "scope": scope, "status": status, "value": value, "kind": kind, "key": key, **extra}


def published_items(study: Study, model: str, checked_keys: Iterable[str], family: str | None = None) -> pd.DataFrame:
    """One row per number and claim of the study file with its role in ``model``.

    Parameters
    ----------
    study : Study
    model : {"group", "hierarchical"}
        The model that was fitted.
    checked_keys : iterable of str
        The ``key`` column of the run's checks table.
    family : str, optional
        The fitted family (the group model's two-group test terms exist for some families
        only); default: the lognormal.

    Returns
    -------
    pd.DataFrame
        Columns :data:`COLUMNS`; ``checked`` is True when the checks table has a row for the
        item.
    """
    if model not in _ROLE_RULES:
        raise ValueError(f"unknown model {model!r}; use one of {', '.join(_ROLE_RULES)}")
    checked = set(checked_keys)
    roles = _ROLE_RULES[model](study, family or "lognormal")
    rows = []
    for it in enumerate_items(study):
        is_checked = it["key"] in checked
        role, reason = roles(it, is_checked)
        rows.append({**{k: it[k] for k in ("item", "scope", "status", "value")}, "role": role, "checked": is_checked, "reason": reason})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _not_fitted(it: dict, checked: bool, why: str) -> tuple[str, str]:
    """Role of an item a model does not fit: a check when the checks table has it."""
    if checked:
        return "check", f"{why}; checked against simulated cohorts"
    if it["kind"] == "comparison" and it["claim"].statistic not in CLAIM_STATISTICS:
        return "unused", f"{why}; no simulator for statistic {it['claim'].statistic!r} (known: {', '.join(CLAIM_STATISTICS)})"
    return "unused", why


def _group_model_roles(study: Study, family: str):
    from models.group import group_data
    from models.two_group import claim_use

    fitted = {(d.group, s) for d in group_data(study) for s in d.names}

    def role(it: dict, checked: bool) -> tuple[str, str]:
        kind = it["kind"]
        if kind == "n":
            return "likelihood", "size of the simulated cohorts behind the group's statistics"
        if kind == "statistic":
            if (it["scope"], it["statistic"]) in fitted:
                return "likelihood", "fitted jointly with the group's other statistics (synthetic likelihood of the sample statistics)"
            return _not_fitted(it, checked, "not among the statistics the group model fits")
        if kind == "count":
            return "unused", "the group model has no covariates (the covariate model uses counts a covariate names)"
        if kind == "association":
            return _not_fitted(it, checked, "the group model has no covariates (fit the covariate model to use association claims)")
        # comparison claims: a two-group test term where the model has one
        cid, _, key = it["item"].removeprefix("comparisons.").partition(".claims.")
        role_, why = claim_use(study, cid, key, family)
        if role_ == "likelihood":
            return role_, why
        return _not_fitted(it, checked, why)

    return role


def _covariate_model_roles(study: Study, family: str):
    from models.asymptotic import SUPPORTED
    from models.cohort import modelled_associations
    from models.hierarchical import comparison_claims

    in_likelihood = {cc["name"] for cc in comparison_claims(study)}
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
        if kind == "n":
            return "likelihood", "size of the simulated cohorts"
        if kind == "statistic":
            if it["statistic"] in SUPPORTED:
                return "likelihood", "large-sample distribution of the group's statistics over the covariate mixture"
            return _not_fitted(it, checked, "the covariate model has no large-sample distribution for sample extremes")
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
            return _not_fitted(it, checked, why)
        # comparison claims
        if it["key"] in in_likelihood:
            return "likelihood", f"probability that the declared group test ({study.setting('group_test')}) gives it"
        cl = it["claim"]
        if cl.statistic in ("ratio_of_means", "ratio_of_medians"):
            return _not_fitted(it, checked, "a function of the reported statistics, which are fitted")
        if cl.statistic == "p_value":
            return _not_fitted(it, checked, f"only p-value thresholds ('<', '<=') are fitted, not relation {cl.relation!r}")
        return _not_fitted(it, checked, "not a statistic the covariate model fits")

    return role


_ROLE_RULES = {"group": _group_model_roles, "hierarchical": _covariate_model_roles}

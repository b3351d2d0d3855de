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
from models.study import Study

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
            if cl.low is not None:
                text = f"{cl.statistic}: {cl.low:g} to {cl.high:g}"
            elif cl.relation:
                text = f"{cl.statistic} {cl.relation} {cl.printed or f'{cl.value:g}'}"
            else:
                text = f"{cl.statistic}: {cl.direction}"
            out.append(_row(f"comparisons.{cid}.claims.{k}", cid, cl.status, text, "comparison", f"{cid}.{k}", claim=cl))
    for tid, gt in study.group_tests.items():
        for k, cl in gt.claims.items():
            text = f"{gt.test} over {', '.join(gt.groups)}: p_value {cl.relation} {cl.printed or f'{cl.value:g}'}"
            out.append(_row(f"group_tests.{tid}.claims.{k}", tid, cl.status, text, "group_test", f"{tid}.{k}", claim=cl))
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
    model : str
        The registered model that was fitted; its :meth:`models.interface.Model.item_roles`
        gives the roles (an unknown name raises ``reanalysis.registry.UnknownModel``).
    checked_keys : iterable of str
        The ``key`` column of the run's checks table.
    family : str, optional
        The fitted family (the group model's two-group test terms exist for some families
        only); default: the model's.

    Returns
    -------
    pd.DataFrame
        Columns :data:`COLUMNS`; ``checked`` is True when the checks table has a row for the
        item.
    """
    from reanalysis.registry import get_model

    api = get_model(model)
    checked = set(checked_keys)
    roles = api.item_roles(study, family or api.default_family)
    rows = []
    for it in enumerate_items(study):
        is_checked = it["key"] in checked
        role, reason = roles(it, is_checked)
        rows.append({**{k: it[k] for k in ("item", "scope", "status", "value")}, "role": role, "checked": is_checked, "reason": reason})
    return pd.DataFrame(rows, columns=list(COLUMNS))



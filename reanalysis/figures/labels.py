"""Words a figure shows a reader, taken from the study file: group labels, covariate names
with the contrast an effect measures ("age, per decade", "female vs male", "optic nerve
lesion, with vs without") and descriptions of the sampled parameters.

Figures use these instead of the identifiers of the study file and the model (``ms``,
``age_decades``, ``effect_z``), which mean nothing to a reader of the figure.
"""
from __future__ import annotations

import re

from models.study import Study

#: What each sampled parameter of the models is, for a figure's axis.  ``{first}``, ``{group}``,
#: ``{covariate}``, ``{level}`` and ``{category}`` are filled with readable names of the first
#: group, the parameter's coordinates and the study's categorical covariate.
PARAMETER_TEXT = {
    # covariate model (models.hierarchical): alpha = intercept + group_difference, the first
    # group being the reference; slopes = effect + effect_spread x effect_z
    "intercept": "{first}: typical level",
    "group_difference": "{group} relative to {first}",
    "effect": "effect of {covariate}",
    "effect_spread": "between-group SD of the effect of {covariate}",
    "effect_z": "group deviations of the covariate effects",
    "category_spread": "SD of the effects of {category}",
    "category_z": "effects of the levels of {category}",
    "log_sigma": "{group}: residual SD",
    # group model (models.group)
    "log_mean": "{group}: population mean",
    "log_cv": "{group}: coefficient of variation",
}
#: Coordinate dimensions of the posterior and what their values name.
_GROUP_DIMS = ("group", "contrast")
_COVARIATE_DIMS = ("covariate", "pooled_covariate")
#: Readable names of the claim statistics of a comparison.
CLAIM_STATISTIC_NAMES = {"p_value": "p-value", "ratio_of_means": "ratio of means", "ratio_of_medians": "ratio of medians"}


def readable(identifier: object) -> str:
    """An identifier with its underscores as spaces (``relapsing_remitting`` ->
    ``relapsing remitting``): the last resort when the study file gives no label."""
    return str(identifier).replace("_", " ")


def group_label(study: Study | None, group: object) -> str:
    """The study file's ``label`` of a group (its identifier, made readable, without a study)."""
    if study is not None and str(group) in study.groups:
        return study.groups[str(group)].label
    return readable(group)


def covariate_name(study: Study | None, name: object) -> str:
    """A covariate's label without its parenthesis: ``age (per decade)`` -> ``age``."""
    if study is None or str(name) not in study.covariates:
        return readable(name)
    return study.covariates[str(name)].label.split(" (")[0].strip()


def effect_contrast(study: Study | None, name: object) -> str:
    """What one unit of a covariate's effect compares, in the study file's words.

    An indicator of a breakdown's level is that level against the other one (``female vs
    male``); a yes/no covariate is ``<name>, with vs without``; a number is ``<name>, per
    <step>``, the step from the label's "(per ...)" or from ``per`` and ``units``
    (``age, per decade``, ``age, per 10 years``, ``attacks per year, per +1``).

    Parameters
    ----------
    study : Study or None
        The study file; without it the identifier is returned, made readable.
    name : str
        Key of ``study.covariates``.

    Returns
    -------
    str
    """
    if study is None or str(name) not in study.covariates:
        return readable(name)
    cov = study.covariates[str(name)]
    base = covariate_name(study, name)
    if cov.counts is not None:
        breakdown, _, level = cov.counts.partition(".")
        if not level:
            return base
        others = sorted({lv for g in study.groups.values() for lv in g.counts.get(breakdown, {})} - {level})
        other = readable(others[0]) if len(others) == 1 else f"not {readable(level)}"
        return f"{readable(level)} vs {other}"
    if study.covariate_distribution(str(name)).distribution == "bernoulli":
        return f"{base}, with vs without"
    step = re.search(r"\((per [^)]+)\)", cov.label)
    if step:
        return f"{base}, {step.group(1)}"
    if cov.units:
        return f"{base}, per {cov.per:g} {cov.units}"
    return f"{base}, per +{cov.per:g}"


def category_name(study: Study | None) -> str:
    """The label of the study's categorical covariate (``MS subtype``), or ``category``
    when it has none or several."""
    cats = [c for c, cov in (study.covariates.items() if study is not None else []) if cov.categorical]
    return covariate_name(study, cats[0]) if len(cats) == 1 else "category"


def coordinate_label(study: Study | None, dim: str, value: object) -> str:
    """A posterior coordinate in readable words: a group's label, a covariate's contrast,
    otherwise the value made readable (``relapsing_remitting`` -> ``relapsing remitting``)."""
    if dim in _GROUP_DIMS:
        return group_label(study, value)
    if dim in _COVARIATE_DIMS:
        return effect_contrast(study, value)
    return readable(value)


def parameter_label(study: Study | None, name: str, coords: dict[str, object]) -> str:
    """A sampled parameter at one coordinate, in words: ``group_difference`` at ``ms`` ->
    ``MS patients relative to Healthy controls``.

    Parameters
    ----------
    study : Study or None
        The study file (labels); without it identifiers are made readable.
    name : str
        Parameter name (a key of :data:`PARAMETER_TEXT`; others are made readable).
    coords : dict
        Dimension -> coordinate value of the panel.

    Returns
    -------
    str
    """
    fields = {
        "first": group_label(study, study.group_ids[0]) if study is not None else "first group",
        "category": category_name(study),
        "group": "", "covariate": "", "level": "",
    }
    for dim, value in coords.items():
        key = "group" if dim in _GROUP_DIMS else "covariate" if dim in _COVARIATE_DIMS else "level"
        fields[key] = coordinate_label(study, dim, value)
    if name in PARAMETER_TEXT:
        return PARAMETER_TEXT[name].format(**fields)
    extra = ", ".join(coordinate_label(study, d, v) for d, v in coords.items())
    return f"{readable(name)}: {extra}" if extra else readable(name)


#: Estimands of the result tables (``models.estimands``, ``models.effects``): what each is of
#: its coordinates, and its units ("{units}": the analyte's).  ``{a}``/``{b}`` are the
#: compared groups, ``{group}`` a group, ``{covariate}`` a covariate's contrast.
ESTIMAND_TEXT = {
    "median": ("{group}: population median", "{units}"),
    "mean": ("{group}: population mean", "{units}"),
    "cv": ("{group}: coefficient of variation", "ratio"),
    "ratio_of_medians": ("{a} / {b}: ratio of population medians", "fold"),
    "ratio_of_means": ("{a} / {b}: ratio of population means", "fold"),
    "adjusted_ratio": ("{a} / {b}: ratio of typical levels, shared covariates equal", "fold"),
    "difference_in_medians": ("{a} minus {b}: difference in population medians", "{units}"),
    "prob_superiority": ("{a} vs {b}: probability of superiority", "probability"),
    "effect_percent": ("effect of {covariate}, pooled over groups", "% change in {analyte}"),
    "slope_percent": ("{group}: effect of {covariate}", "% change in {analyte}"),
    "category_spread_percent": ("spread of the effects of {category} (1 SD)", "%"),
}


def estimand_label(study: Study | None, key: str) -> tuple[str, str]:
    """An estimand key of the result tables in words, with its units.

    ``ratio_of_medians[control_vs_ms]`` -> ``("Healthy controls / MS patients: ratio of
    population medians", "fold")``; ``P(effect_percent[female] < 0)`` -> ``("effect of female
    vs male, pooled over groups, < 0: posterior probability", "probability")``.

    Parameters
    ----------
    study : Study or None
        The study file (labels); without it identifiers are made readable.
    key : str
        The ``estimand`` column of a result table.

    Returns
    -------
    tuple of str
        Text and units.
    """
    claim = re.fullmatch(r"P\((.+) ([<>=~]+) (\S+)\)", key)
    if claim:
        inner, _ = estimand_label(study, claim.group(1))
        return f"{inner}, {claim.group(2)} {claim.group(3)}: posterior probability", "probability"
    m = re.fullmatch(r"(\w+)(?:\[([^\]]*)\])?", key)
    if m is None:
        return readable(key), ""
    name, args = m.group(1), [a.strip() for a in (m.group(2) or "").split(",") if a.strip()]
    if name not in ESTIMAND_TEXT:
        extra = ", ".join(readable(a) for a in args)
        return (f"{readable(name)}: {extra}" if extra else readable(name)), ""
    fields = {"category": category_name(study), "a": "", "b": "", "group": "", "covariate": ""}
    for a in args:
        if study is not None and a in study.comparisons:
            fields["a"], fields["b"] = (group_label(study, g) for g in study.comparisons[a].groups)
        elif study is not None and a in study.groups:
            fields["group"] = group_label(study, a)
        elif study is not None and a in study.covariates:
            fields["covariate"] = effect_contrast(study, a)
        elif "_vs_" in a:  # a comparison id, without the study file
            fields["a"], fields["b"] = (readable(g) for g in a.split("_vs_", 1))
        else:
            fields["group" if not fields["group"] else "covariate"] = readable(a)
    if name in ("effect_percent", "slope_percent") and fields["covariate"] == "" and fields["group"]:
        fields["covariate"], fields["group"] = fields["group"], ""
    text, units = ESTIMAND_TEXT[name]
    analyte = study.analyte.name if study is not None else "level"
    return text.format(**fields), units.format(units=study.analyte.units if study is not None else "", analyte=analyte)

"""The words a reader sees for the study file's identifiers and the result tables' keys.

Group labels, covariate names with the contrast an effect measures ("age, per decade",
"female vs male", "optic nerve lesion, with vs without"), sampled parameters ("MS
patients relative to Healthy controls"), estimands ("Healthy controls / MS
patients: ratio of population medians") and published items ("Healthy controls vs MS
patients: p-value").  Tables, the console, the report and the figures all use these, never
the identifiers of the study file or the model (``ms``, ``age_decades``, ``effect_percent``).
"""
from __future__ import annotations

import re

from .study import Study

#: Readable names of the statistics a comparison's claim is about.
CLAIM_STATISTIC_NAMES = {
    "p_value": "p-value", "ratio_of_means": "ratio of means", "ratio_of_medians": "ratio of medians",
    "t": "t statistic", "z": "z statistic", "F": "F statistic", "difference_ci": "95% CI of the difference in means",
}

#: How a claim's statistic is written next to its published value (``p < 0.001``,
#: ``ratio of means > 3``).
CLAIM_SYMBOLS = {"p_value": "p", "t": "t", "z": "z", "F": "F"}

#: Readable names of the tests a claim names.
TEST_NAMES = {
    "mann_whitney": "Mann-Whitney", "student_t": "Student's t test", "welch_t": "Welch's t test",
    "kruskal_wallis": "Kruskal-Wallis", "anova": "one-way ANOVA",
}


#: What each sampled parameter of the models is, for a figure's axis.  ``{first}``, ``{group}``,
#: ``{covariate}``, ``{level}`` and ``{category}`` are filled with readable names of the first
#: group, the parameter's coordinates and the study's categorical covariate.
PARAMETER_TEXT = {
    # covariate model (models.hierarchical): alpha = intercept + group_difference, the first
    # group being the reference; a pooled covariate's slopes are its groups' mean slope plus
    # effect_spread x the deviations effect_z, and its effect is drawn given the mean slope
    # (effect_offset)
    "intercept": "{first}: typical level",
    "group_difference": "{group} relative to {first}",
    "effect": "effect of {covariate}",
    "effect_single": "effect of {covariate}",
    "effect_spread": "between-group SD of the effect of {covariate}",
    "slope_mean": "mean over the groups of the slope of {covariate}",
    "effect_offset": "effect of {covariate} given the groups' mean slope (standardised)",
    "effect_z": "{covariate}: between-group contrast {level} of the slopes (standardised)",
    "category_spread": "SD of the effects of {category}",
    "category_z": "{category} {level}: effect (standardised)",
    "log_sigma": "{group}: residual SD",
    # group model (models.group)
    "log_mean": "{group}: population mean",
    "log_cv": "{group}: coefficient of variation",
}
#: A parameter with coordinates as a whole (one panel overlays all its elements; the
#: panel's scale says "standardised").
PARAMETER_TEXT_ALL = {
    "effect_z": "between-group contrasts of the covariate slopes",
    "effect_offset": "covariate effects given the groups' mean slopes",
    "category_z": "effects of the levels of {category}",
}
#: Coordinate dimensions of the posterior and what their values name.
_GROUP_DIMS = ("group", "contrast")
_COVARIATE_DIMS = ("covariate", "pooled_covariate")


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
    if not coords and name in PARAMETER_TEXT_ALL:
        return PARAMETER_TEXT_ALL[name].format(**fields)
    if name in PARAMETER_TEXT:
        return PARAMETER_TEXT[name].format(**fields)
    extra = ", ".join(coordinate_label(study, d, v) for d, v in coords.items())
    return f"{readable(name)}: {extra}" if extra else readable(name)


def parameter_key_label(study: Study | None, key: str) -> str:
    """A sampled parameter's key (``effect[optic_lesion]``, ``log_sigma[ms]``) in words, each
    coordinate read as a group or a covariate of the study file by its value."""
    from .labels import coords_of, variable_of

    coords = {}
    for value in coords_of(key):
        dim = "group" if study is not None and value in study.groups else "covariate" if study is not None and value in study.covariates else f"level{len(coords)}"
        coords[dim] = value
    return parameter_label(study, variable_of(key), coords)


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


#: Estimands of the result tables (``models.estimands``, ``models.effects``): what each is,
#: whose it is, and its units ("{units}": the analyte's).  ``{a}``/``{b}`` are the compared
#: groups, ``{group}`` a group, ``{covariate}`` a covariate's contrast, ``{category}`` the
#: categorical covariate.  A label reads ``<whose>: <what>``.
ESTIMAND_TEXT = {
    "median": ("population median", "{group}", "{units}"),
    "mean": ("population mean", "{group}", "{units}"),
    "cv": ("coefficient of variation", "{group}", "ratio"),
    "ratio_of_medians": ("ratio of population medians", "{a} / {b}", "fold"),
    "ratio_of_means": ("ratio of population means", "{a} / {b}", "fold"),
    "adjusted_ratio": ("ratio of typical levels, shared covariates equal", "{a} / {b}", "fold"),
    "difference_in_medians": ("difference in population medians", "{a} minus {b}", "{units}"),
    "prob_superiority": ("probability of superiority", "{a} vs {b}", "probability"),
    "effect_percent": ("effect of {covariate}, pooled over groups", "", "% change"),
    "slope_percent": ("effect of {covariate}", "{group}", "% change"),
    "category_spread_percent": ("spread of the effects of {category} (1 SD)", "", "%"),
}


def estimand_parts(study: Study | None, key: str) -> tuple[str, str, str]:
    """An estimand key of the result tables as (what, whose, units) in words.

    ``ratio_of_medians[control_vs_ms]`` -> ``("ratio of population medians", "Healthy
    controls / MS patients", "fold")``; a variable without words of its own is its name made
    readable, with its coordinates as the "whose" (and no units).

    Parameters
    ----------
    study : Study or None
        The study file (labels); without it identifiers are made readable.
    key : str
        The ``estimand`` column of a result table, without a claim's ``P(...)``.

    Returns
    -------
    tuple of str
    """
    m = re.fullmatch(r"(\w+)(?:\[([^\]]*)\])?", key)
    if m is None:
        return readable(key), "", ""
    name, args = m.group(1), [a.strip() for a in (m.group(2) or "").split(",") if a.strip()]
    if name not in ESTIMAND_TEXT:
        return readable(name), ", ".join(readable(a) for a in args), ""
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
    what, whose, units = ESTIMAND_TEXT[name]
    return what.format(**fields), whose.format(**fields), units.format(units=study.analyte.units if study is not None else "")


def estimand_label(study: Study | None, key: str) -> tuple[str, str]:
    """An estimand key of the result tables in words, with its units.

    ``ratio_of_medians[control_vs_ms]`` -> ``("Healthy controls / MS patients: ratio of
    population medians", "fold")``; a claim's probability ``P(ratio_of_means[control_vs_ms] >
    3)`` -> ``("posterior probability that the ratio of population means (Healthy controls /
    MS patients) is > 3", "probability")``.

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
        return claim_probability_label(study, claim.group(1), f"{claim.group(2)} {claim.group(3)}"), "probability"
    what, whose, units = estimand_parts(study, key)
    return (f"{whose}: {what}" if whose else what), units


def claim_probability_label(study: Study | None, key: str, holds: str) -> str:
    """``posterior probability that the <estimand> is <holds>``, the estimand in words with
    whose it is in brackets (``... the effect of female vs male, pooled over groups, is lower,
    as claimed``)."""
    what, whose, _ = estimand_parts(study, key)
    subject = f"{what} ({whose})" if whose else (f"{what}," if "," in what else what)
    return f"posterior probability that the {subject} is {holds}"


def claim_symbol(statistic: str) -> str:
    """A claim's statistic as written before its published value: ``p``, ``ratio of means``."""
    return CLAIM_SYMBOLS.get(statistic) or CLAIM_STATISTIC_NAMES.get(statistic, readable(statistic))


def comparison_label(study: Study | None, groups) -> str:
    """Groups compared, in the study file's words: ``Healthy controls vs MS patients``."""
    return " vs ".join(group_label(study, g) for g in groups)


def claim_item(study: Study | None, groups, claim, test: str | None = None, siblings: int = 1, claim_id: str = "") -> str:
    """A published claim of a comparison or a test across groups, as a check row names it:
    ``Healthy controls vs MS patients: p-value (Mann-Whitney)``.

    Parameters
    ----------
    study : Study or None
    groups : sequence of str
        Group ids compared.
    claim : models.study.Claim
    test : str, optional
        The test that gave the statistic when the claim does not name it (a test across
        several groups names it once for its claims).
    siblings : int
        Claims of the same comparison about the same statistic: above 1 the claim's id is
        added, made readable, so that the rows stay distinct.
    claim_id : str
        The claim's key in the study file.
    """
    text = CLAIM_STATISTIC_NAMES.get(claim.statistic, readable(claim.statistic))
    test = getattr(claim, "test", None) or test
    if test:
        text += f" ({TEST_NAMES.get(test, readable(test))})"
    if siblings > 1 and claim_id:
        text += f", {readable(claim_id)}"
    return f"{comparison_label(study, groups)}: {text}"


def association_item(study: Study | None, assoc) -> str:
    """A published association as a check row names it: the covariate's contrast with the
    paper's words (``female vs male: female patients significantly lower than male
    patients``)."""
    contrast = effect_contrast(study, assoc.covariate)
    return f"{contrast}: {assoc.text}" if assoc.text else f"effect of {contrast}"

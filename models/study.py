"""Study files: schema, validation and loading.

A study file (YAML) declares everything the toolkit knows about one published study: the
groups with their sizes and reported summary statistics, the comparisons and qualitative
claims the paper made, and the assumptions the reanalysis has to make where the paper is
silent.  Every number says whether it is *published* (then it names its source) or an
*assumption* (then it gives a reason).  The file is validated once, here; the rest of the
toolkit trusts the returned :class:`Study`.

The schema is written with pydantic because it gives typed, nested validation with precise
error locations for free; :func:`load_study` turns the first error into one line naming the
file, the field and the fix.
"""
from __future__ import annotations

import decimal
import hashlib
import math
import re
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator
from pydantic_core import PydanticCustomError

from .statistics import DEFAULT_GROUP_TEST, GROUP_TESTS, QUANTILE_TYPES

#: Summary statistics a group may report, in the order they are used everywhere.
STATISTICS = (
    "mean", "sd", "sem", "median", "q1", "q3", "iqr", "p5", "p10", "p90", "p95", "min", "max",
    "mean_ci_low", "mean_ci_high", "gmean", "gmean_ci_low", "gmean_ci_high",
)
StatisticName = Literal[
    "mean", "sd", "sem", "median", "q1", "q3", "iqr", "p5", "p10", "p90", "p95", "min", "max",
    "mean_ci_low", "mean_ci_high", "gmean", "gmean_ci_low", "gmean_ci_high",
]
assert get_args(StatisticName) == STATISTICS
#: Human-readable names for reports and error messages.
STATISTIC_LABELS = {
    "mean": "mean",
    "sd": "SD",
    "sem": "standard error of the mean",
    "median": "median",
    "q1": "first quartile",
    "q3": "third quartile",
    "iqr": "interquartile range (width)",
    "p5": "5th percentile",
    "p10": "10th percentile",
    "p90": "90th percentile",
    "p95": "95th percentile",
    "min": "minimum",
    "max": "maximum",
    "mean_ci_low": "lower end of the mean's 95% CI",
    "mean_ci_high": "upper end of the mean's 95% CI",
    "gmean": "geometric mean",
    "gmean_ci_low": "lower end of the geometric mean's 95% CI",
    "gmean_ci_high": "upper end of the geometric mean's 95% CI",
}
#: Interval ends that come in pairs, with the centre each must enclose when it is given.
_INTERVALS = {("mean_ci_low", "mean_ci_high"): "mean", ("gmean_ci_low", "gmean_ci_high"): "gmean"}


#: Statistics of spread (positive widths, not levels).
_SPREADS = ("sd", "sem", "iqr")
#: Order statistics and quantiles from lowest to highest.
_ORDERED = ("min", "p5", "p10", "q1", "median", "q3", "p90", "p95", "max")


class StudyError(Exception):
    """A study file is unreadable or invalid.  ``str()`` is the one-line message for users."""


#: pydantic error type of :func:`rule_error`; ``ctx`` holds the relative field and the text.
_RULE_ERROR = "study_rule"


def rule_error(field: str, text: str) -> PydanticCustomError:
    """An error of a model-level rule about ``field``, a dotted path relative to the model.

    The message reads ``"<field>: <text>"``; :func:`load_study` prefixes the model's location.
    """
    return PydanticCustomError(_RULE_ERROR, "{field}: {text}", {"field": field, "text": text})


class StrictModel(BaseModel):
    """Base of every schema model: unknown keys are an error, never silently ignored."""

    # field docstrings become the fields' descriptions (the study-file reference is made from them)
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Source(StrictModel):
    """A citable source of published numbers."""

    citation: str = Field(min_length=1)
    """Full reference of the source."""
    url: str | None = None
    """Where it can be read."""
    note: str | None = None
    """What was taken from it, or how it was read."""


class Number(StrictModel):
    """One number with its provenance.

    ``status: published`` numbers must name a ``source`` (a key of the file's ``sources``)
    and may say ``where`` in it; ``status: assumption`` numbers must give a ``reason``.
    """

    value: float = Field(strict=True)
    """The number as published (strictly a number: a quoted "45" is an error)."""
    status: Literal["published", "assumption"]
    """`published` (then `source` is required) or `assumption` (then `reason` is required)."""
    source: str | None = None
    """Key of `sources` the number comes from."""
    where: str | None = None
    """Where in the source, e.g. a table or paragraph."""
    reason: str | None = None
    """Why the number is assumed (required for an assumption)."""

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        return v

    @model_validator(mode="after")
    def _provenance(self) -> "Number":
        if self.status == "published" and not self.source:
            raise ValueError("a published number needs a 'source' (a key of 'sources')")
        if self.status == "assumption" and not self.reason:
            raise ValueError("an assumption needs a one-line 'reason'")
        return self


class Count(Number):
    """A number of subjects in one level of a breakdown: a whole number, possibly 0.

    A published count of zero (e.g. no primary progressive patients) is a valid count.
    """

    #: smallest allowed value
    minimum: ClassVar[int] = 0

    @field_validator("value")
    @classmethod
    def _whole(cls, v: float) -> float:
        # runs after Number._finite, so v is finite here
        if v != int(v) or v < cls.minimum:
            raise ValueError(f"must be a whole number >= {cls.minimum} (got {v:g})")
        return v


class Size(Count):
    """The number of subjects in a group: a whole number, at least 1."""

    minimum: ClassVar[int] = 1


class Group(StrictModel):
    """One group of subjects and what was reported about it."""

    label: str = Field(min_length=1)
    """Name of the group in tables and figures."""
    n: Size
    """Number of subjects (a whole number, at least 1)."""
    counts: dict[str, dict[str, Count]] = Field(default_factory=dict)
    """Breakdowns of the group, e.g. `sex: {female: ..., male: ...}`; each breakdown's counts add up to `n`."""
    statistics: dict[StatisticName, Number] = Field(default_factory=dict)
    """Reported summary statistics (at least one): `mean`, `sd`, `sem` (standard error of the mean), `median`, `q1`, `q3`, `iqr` (the IQR printed as one width), percentiles `p5`, `p10`, `p90`, `p95`, `min`, `max`; a mean's 95% confidence interval `mean_ci_low` and `mean_ci_high` (Student t, both ends), a geometric mean `gmean` and its 95% interval `gmean_ci_low`, `gmean_ci_high` (a t interval of the log values, transformed back)."""

    @model_validator(mode="after")
    def _consistent(self) -> "Group":
        n = int(self.n.value)
        for name, levels in self.counts.items():
            total = int(sum(c.value for c in levels.values()))
            if total != n:
                raise rule_error(f"counts.{name}", f"the counts add up to {total}, but n is {n}")
        s = {k: v.value for k, v in self.statistics.items()}
        for k in _SPREADS:
            if k in s and s[k] <= 0:
                raise rule_error(f"statistics.{k}", f"must be > 0 (got {s[k]:g})")
        for k, v in s.items():
            # a mean's interval may reach below zero (a t interval of skewed values)
            if k not in _SPREADS and k != "mean_ci_low" and v <= 0:
                raise rule_error(f"statistics.{k}", f"must be > 0 for a positive measurement (got {v:g})")
        order = [k for k in _ORDERED if k in s]
        for lo, hi in zip(order, order[1:]):
            if s[lo] > s[hi]:
                raise rule_error("statistics", f"{lo} ({s[lo]:g}) must not exceed {hi} ({s[hi]:g})")
        if "mean" in s and "min" in s and "max" in s and not s["min"] <= s["mean"] <= s["max"]:
            raise rule_error("statistics.mean", f"{s['mean']:g} lies outside min-max")
        if not s:
            raise rule_error("statistics", "a group must report at least one statistic")
        for k in ("sd", "sem"):
            if n < 2 and k in s:
                raise rule_error(f"statistics.{k}", f"an {STATISTIC_LABELS[k]} needs n >= 2")
        for (lo, hi), centre in _INTERVALS.items():
            if (lo in s) != (hi in s):
                given, missing = (lo, hi) if lo in s else (hi, lo)
                raise rule_error(f"statistics.{given}", f"an interval needs both ends: add '{missing}'")
            ends = [s[k] for k in (lo, centre, hi) if k in s]
            if lo in s and not all(a < b for a, b in zip(ends, ends[1:])):
                inside = f" around {centre} ({s[centre]:g})" if centre in s else ""
                raise rule_error(f"statistics.{lo}", f"the interval {s[lo]:g} to {s[hi]:g} must be increasing{inside}")
            if lo in s and n < 2:
                raise rule_error(f"statistics.{lo}", "a confidence interval needs n >= 2")
        if "iqr" in s and "q1" in s and "q3" in s:
            raise rule_error("statistics.iqr", "give the quartiles or the IQR's width, not both (the width is q3 - q1)")
        return self


class Claim(StrictModel):
    """A reported comparison or association, numeric or qualitative.

    Examples: ``p_value < 0.001`` for a group difference; ``ratio_of_means > 3`` for
    "more than three-fold"; ``direction: lower`` with ``significant: true`` for "women had
    significantly lower levels"; ``p_value = 0.02`` for an exact p.

    An exact value (``relation: "="``) stands for every value its printed digits round to
    (:attr:`printed_interval`).  YAML drops trailing zeros (``0.020`` loads as 0.02), so
    ``printed`` records the value as the source prints it, e.g. ``printed: "0.020"`` or
    ``printed: "0.000"``; without it the digits of ``value`` are used.
    """

    statistic: str = Field(min_length=1)
    """What the claim is about: `p_value`, a test statistic `t`, `z` or `F` (read without its sign), `difference_ci` (a t test's 95% confidence interval of the difference in means, with `low` and `high`), `ratio_of_means`, `ratio_of_medians` (others are recorded and reported as unused)."""
    # the sensitivity runs then vary the reading with the assumption's ``vary`` values
    statistic_from: str | None = None
    """Name of an assumption whose value is `statistic`, when the paper does not say which statistic it is (instead of `statistic`)."""
    relation: Literal["<", "<=", ">", ">=", "=", "~"] | None = None
    """`<`, `<=`, `>`, `>=`, `=` (an exact value, read at its printed precision) or `~` (approximately); with `value`."""
    value: float | None = Field(default=None, strict=True)
    """The claimed value (strictly a number)."""
    printed: str | None = None
    """An exact value as printed, with its trailing zeros (e.g. "0.020"; "0.000" for p shown as 0.000)."""
    direction: Literal["lower", "higher", "none"] | None = None
    """`lower`, `higher` or `none` for a qualitative claim."""
    significant: bool | None = Field(default=None, strict=True)
    """`true` for "significantly" (a test at level `alpha`)."""
    status: Literal["published", "assumption"] = "published"
    """`published` (default; then `source` is required) or `assumption`."""
    source: str | None = None
    """Key of `sources` the claim comes from."""
    where: str | None = None
    """Where in the source."""
    reason: str | None = None
    """Why the claim is assumed (for `status: assumption`)."""
    text: str | None = None
    """The claim in words (shown in reports)."""
    test: str | None = None
    """The two-group test the paper names for a `p_value`, `t`, `z` or `F` claim: `student_t`, `welch_t` or `mann_whitney` (default: the assumption `group_test`)."""
    use: Literal["likelihood", "check"] | None = None
    """`likelihood` (the default where the group model can fit the claim: a p-value or test statistic not already determined by the published statistics) or `check` (only compared with simulated cohorts)."""
    low: float | None = Field(default=None, strict=True)
    """Lower end of a published 95% confidence interval (statistic `difference_ci`: of the difference in means, first group minus second), as printed."""
    high: float | None = Field(default=None, strict=True)
    """Upper end of that interval, as printed."""

    @model_serializer(mode="wrap")
    def _derived_statistic_not_dumped(self, handler):
        # a statistic read from an assumption is not part of the file: dumping it would make
        # a re-validated copy with another assumption value keep the old statistic
        out = handler(self)
        if self.statistic_from is not None:
            out.pop("statistic", None)
        return out

    @model_validator(mode="after")
    def _complete(self) -> "Claim":
        if self.status == "published" and not self.source:
            raise ValueError("a published claim needs a 'source' (a key of 'sources')")
        interval = self.statistic in INTERVAL_CLAIM_STATISTICS
        ends = [v is not None for v in (self.low, self.high)]
        if (interval and not all(ends)) or (not interval and any(ends)):
            raise rule_error("low", f"'low' and 'high' belong together to a claim about {', '.join(INTERVAL_CLAIM_STATISTICS)} (and it needs both)")
        if interval:
            if self.relation is not None or self.direction is not None:
                raise rule_error("relation", "an interval claim is given by 'low' and 'high' only (remove 'relation', 'value' and 'direction')")
            if not self.low < self.high:
                raise rule_error("low", f"the interval {self.low:g} to {self.high:g} must be increasing")
        elif (self.relation is None) != (self.value is None):
            raise ValueError("give 'relation' and 'value' together")
        if self.relation is None and self.direction is None and not interval:
            raise ValueError("a claim needs a 'relation' and 'value', or a 'direction'")
        if self.printed is not None:
            if self.relation != "=":
                raise ValueError("'printed' belongs to an exact value (relation '=')")
            if not _PRINTED.fullmatch(self.printed):
                raise ValueError(f"printed: {self.printed!r} is not a plain decimal as printed (e.g. \"0.020\")")
            if not math.isclose(float(self.printed), self.value, rel_tol=1e-9, abs_tol=1e-12):
                raise ValueError(f"printed: {self.printed!r} does not read as the value {self.value:g}")
        elif self.relation == "=" and self.value == 0:
            # a bare 0 carries no digits to read: "p = 0" was printed as 0.000 or similar
            raise ValueError("an exact value of 0 needs 'printed' with its digits as printed (e.g. \"0.000\")")
        if self.test is not None:
            if self.test not in GROUP_TESTS:
                raise rule_error("test", f"unknown group test {self.test!r}; use one of {', '.join(GROUP_TESTS)}{_suggestion(self.test, GROUP_TESTS)}")
            if self.statistic not in TEST_CLAIM_STATISTICS:
                raise rule_error("test", f"a test belongs to a claim about {', '.join(TEST_CLAIM_STATISTICS)}, not {self.statistic!r} (remove 'test')")
            if self.test not in TEST_CLAIM_STATISTICS[self.statistic]:
                raise rule_error(
                    "test", f"a {self.test} test does not give a {self.statistic!r} statistic "
                    f"(a {self.statistic!r} comes from {' or '.join(TEST_CLAIM_STATISTICS[self.statistic])}); fix 'test' or 'statistic'"
                )
        return self

    #: The threshold relations and their comparison.
    THRESHOLDS: ClassVar[dict] = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}

    def threshold_holds(self, x):
        """Whether values ``x`` satisfy a threshold claim (``<``, ``<=``, ``>``, ``>=``)."""
        return self.THRESHOLDS[self.relation](x, self.value)

    @property
    def printed_decimals(self) -> int | None:
        """Decimal places of an exact value as printed (from ``printed``, else from the
        digits of ``value``); None unless ``relation`` is ``"="``."""
        if self.relation != "=":
            return None
        if self.printed is not None:
            exponent = decimal.Decimal(self.printed.strip()).as_tuple().exponent
        else:
            exponent = decimal.Decimal(repr(float(self.value))).normalize().as_tuple().exponent
        return max(0, -int(exponent))

    def printed_ends(self) -> list[tuple[float, float]]:
        """Each end of an interval claim as the interval of values that print like it
        (half a unit of its last printed digit either side)."""
        out = []
        for v in (self.low, self.high):
            d = max(0, -int(decimal.Decimal(repr(float(v))).normalize().as_tuple().exponent))
            out.append((v - 0.5 * 10.0**-d, v + 0.5 * 10.0**-d))
        return out

    @property
    def printed_interval(self) -> tuple[float, float] | None:
        """The half-open interval ``[low, high)`` of values that print as this exact value.

        A value printed with d decimals is ``value +- 0.5 * 10**-d``: p = 0.02 is
        [0.015, 0.025), p = 0.020 (``printed: "0.020"``) is [0.0195, 0.0205), and a p printed
        as 0.000 is [0, 0.0005) (p-values are not negative).  None unless ``relation`` is
        ``"="``.
        """
        d = self.printed_decimals
        if d is None:
            return None
        half = 0.5 * 10.0**-d
        low = self.value - half
        if self.statistic == "p_value":
            low = max(low, 0.0)
        return low, self.value + half


#: A value as printed: digits with an optional decimal point, no exponent.
_PRINTED = re.compile(r"\s*[-+]?(\d+(\.\d*)?|\.\d+)\s*")


class Comparison(StrictModel):
    """A comparison of two groups: ``groups[0]`` over ``groups[1]`` in every ratio."""

    groups: tuple[str, str]
    """The two groups compared; ratios are the first over the second."""
    claims: dict[str, Claim] = Field(default_factory=dict)
    """Claims about the two groups, by name."""


#: Tests across several groups a study may report, with what each computes.
SEVERAL_GROUP_TESTS = {
    "kruskal_wallis": "Kruskal-Wallis H test on ranks (chi-square p-value, tie-corrected)",
    "anova": "one-way analysis of variance (F test of equal means)",
}


class GroupTest(StrictModel):
    """A test across several groups, e.g. a Kruskal-Wallis p over three groups.  Its claims
    are checked against simulated cohorts of every group (no model fits them)."""

    groups: list[str] = Field(min_length=2)
    """The groups the test compares (at least two)."""
    test: Literal["kruskal_wallis", "anova"]
    """`kruskal_wallis` or `anova` (one-way, F test)."""
    claims: dict[str, Claim] = Field(min_length=1)
    """Claims about the test's result: a `p_value` with a relation (e.g. `p_value < 0.001`)."""

    @model_validator(mode="after")
    def _p_values_only(self) -> "GroupTest":
        for k, cl in self.claims.items():
            if cl.statistic != "p_value" or cl.relation is None:
                raise rule_error(f"claims.{k}.statistic", "a test across several groups is checked by its p-value: give 'statistic: p_value' with a relation and value")
            if cl.test is not None or cl.use == "likelihood":
                raise rule_error(f"claims.{k}", "the test is the group test's 'test' field, and its p-value is only checked (remove 'test' and 'use')")
        if len(set(self.groups)) != len(self.groups):
            raise rule_error("groups", "name each group once")
        return self


class Association(Claim):
    """A covariate association claim (sex, age, attacks, ...), used by covariate models.

    What the paper leaves unsaid about a claim is named here and declared under
    ``assumptions``: ``subjects`` (an assumption whose value lists the groups the claim was
    computed on; default: the groups where the covariate is defined), ``tolerance`` (for
    ``relation: "~"``, the half-width in percentage points of what "approximately" allows)
    and ``alpha`` (for ``significant: true``, the significance level; default 0.05).
    ``sided`` says how that level is read: ``two`` (the default, the conventional reading of
    "significantly": a two-sided test at alpha whose estimate lies in the stated direction,
    i.e. one-sided alpha / 2) or ``one`` (a one-sided test at alpha in the stated direction).
    """

    covariate: str = Field(min_length=1)
    """The covariate (a key of `covariates`) the claim is about."""
    statistic: str = "association"
    """Fixed: `association` (the covariate's coefficient or its t statistic)."""
    subjects: str | None = None
    """Name of an assumption listing the groups the association was computed on (default: where the covariate is defined)."""
    tolerance: str | None = None
    """Name of an assumption with the half-width, in percentage points, that "approximately" allows (`relation: "~"`; default 5)."""
    alpha: str | None = None
    """Name of an assumption with the significance level of `significant: true` (default 0.05)."""
    sided: Literal["one", "two"] | None = None
    """`two` (default: a two-sided test at `alpha`) or `one` (one-sided at `alpha`); needs `significant: true`."""

    @model_validator(mode="after")
    def _sided_needs_significance(self) -> "Association":
        for key in ("test", "use"):
            if getattr(self, key) is not None:
                raise rule_error(key, "belongs to comparison claims; an association is used by the covariate model as declared (remove it)")
        if self.statistic_from is not None:
            raise ValueError("'statistic_from' belongs to comparison claims; an association's statistic is its coefficient")
        if self.sided is not None and not self.significant:
            raise ValueError("'sided' reads the level of a significance claim; it needs 'significant: true'")
        return self


class CovariateDistribution(StrictModel):
    """How an unreported covariate is distributed in a group (the value of an assumption):
    ``normal`` and ``gamma`` take ``mean`` and ``sd``; ``bernoulli`` takes ``share``."""

    distribution: Literal["normal", "gamma", "bernoulli"]
    """`normal` or `gamma` (with `mean` and `sd`), or `bernoulli` (with `share`)."""
    mean: float | None = Field(default=None, strict=False)
    """Mean of a normal or gamma covariate, in the covariate's own units."""
    sd: float | None = Field(default=None, gt=0, strict=False)
    """SD of a normal or gamma covariate (> 0)."""
    share: float | None = Field(default=None, ge=0, le=1, strict=False)
    """Share of subjects with the attribute (0-1) for `bernoulli`."""

    @model_validator(mode="after")
    def _parameters(self) -> "CovariateDistribution":
        need = ("share",) if self.distribution == "bernoulli" else ("mean", "sd")
        extra = [k for k in ("mean", "sd", "share") if k not in need and getattr(self, k) is not None]
        missing = [k for k in need if getattr(self, k) is None]
        if missing or extra:
            raise ValueError(f"a {self.distribution} distribution takes {' and '.join(need)}")
        if self.distribution == "gamma" and self.mean <= 0:
            raise ValueError("a gamma distribution needs mean > 0")
        return self


class Covariate(StrictModel):
    """A subject-level covariate of the cohort model.

    Either fixed by published ``counts`` (``"sex.female"``: an indicator of one level of a
    breakdown; ``"subtype"``: a categorical breakdown, modelled as a random effect), or drawn
    from the distribution an ``assumption`` declares.  Covariates enter the model in units of
    ``per`` (e.g. decades of age), so effects are per ``per`` units; ``units`` names the
    covariate's own units (e.g. years) for figures.
    """

    label: str = Field(min_length=1)
    """Name of the covariate in tables and figures, e.g. "age (per decade)"."""
    units: str | None = None
    """Units of the covariate's raw values (e.g. years)."""
    counts: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?$")
    """A published breakdown: `sex.female` (an indicator of one level) or `subtype` (a categorical breakdown, a random effect)."""
    assumption: str | None = None
    """Name of an assumption whose value is the covariate's distribution (instead of `counts`)."""
    groups: list[str] | None = None
    """Groups in which the covariate exists (default: groups with the breakdown, else all)."""
    per: float = Field(default=1.0, gt=0, strict=False)
    """Units of the covariate per unit of effect, e.g. 10 for effects per decade of years (default 1)."""

    @model_validator(mode="after")
    def _one_source(self) -> "Covariate":
        if (self.counts is None) == (self.assumption is None):
            raise ValueError("give exactly one of 'counts' (published breakdown) or 'assumption' (declared distribution)")
        return self

    @property
    def categorical(self) -> bool:
        """A whole breakdown (random effect) rather than an indicator or a number."""
        return self.counts is not None and "." not in self.counts


class Assumption(StrictModel):
    """Something the paper does not say that the reanalysis must assume."""

    status: Literal["assumption"] = "assumption"
    """Always `assumption`."""
    value: Any = None
    """The assumed value (a number, a list of groups, a covariate distribution, a name, ...)."""
    reason: str = Field(min_length=1)
    """Why this value (one line)."""
    vary: list[Any] | None = None
    """Other values the sensitivity runs try."""


def _positive_number(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v):
        return f"must be a number > 0, not {v!r}"
    return None


def _rounding_width(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or not math.isfinite(v):
        return f"must be a number >= 0 (0: no rounding), not {v!r}"
    return None


def _quantile_type(v: Any) -> str | None:
    if isinstance(v, bool) or v not in QUANTILE_TYPES or not isinstance(v, int):
        return f"must be a Hyndman-Fan sample quantile type 1-9, not {v!r} (SPSS, Minitab: 6; R, NumPy: 7; SAS, Stata summarize: 2)"
    return None


def _group_test(v: Any) -> str | None:
    if v not in GROUP_TESTS:
        return f"unknown group test {v!r}; use one of {', '.join(GROUP_TESTS)}{_suggestion(v, GROUP_TESTS)}"
    return None


#: Assumptions the toolkit reads by name: meaning, default (used when the file does not
#: declare it) and the check of a declared value (and of each ``vary`` value) at load.
TOOLKIT_ASSUMPTIONS: dict[str, tuple[str, Any, Any]] = {
    "reference_level": (
        "level the log scale is relative to (the analyte's units); priors on group levels are stated relative to it",
        1.0,
        _positive_number,
    ),
    "rounding": ("width to which the published statistics were rounded (0: not rounded)", 0.0, _rounding_width),
    "quantile_method": (
        "Hyndman-Fan type of the published medians and quartiles: " + "; ".join(f"{k}: {v}" for k, v in QUANTILE_TYPES.items()),
        7,
        _quantile_type,
    ),
    "group_test": (
        "test behind a published two-group p-value: " + "; ".join(f"{k}: {v}" for k, v in GROUP_TESTS.items()),
        DEFAULT_GROUP_TEST,
        _group_test,
    ),
}
#: Claim statistics of a two-group test, with the tests that give each.
TEST_CLAIM_STATISTICS = {
    "p_value": tuple(GROUP_TESTS),
    "t": ("student_t", "welch_t"),
    "z": ("mann_whitney",),
    "F": ("student_t", "welch_t"),
    "difference_ci": ("student_t", "welch_t"),
}
#: Claim statistics given as an interval (``low``, ``high``) rather than a relation and value.
INTERVAL_CLAIM_STATISTICS = ("difference_ci",)
#: Claim statistics an assumption named by ``statistic_from`` may select.
CLAIM_STATISTICS = {
    "p_value": "two-sided p-value of the group test (the claim's 'test', else assumption group_test)",
    "t": "t statistic of a t test (student_t or welch_t), read without its sign",
    "z": "normal score of a Mann-Whitney test (with continuity correction), read without its sign",
    "F": "F statistic of a two-group one-way analysis of variance (the square of the t statistic)",
    "difference_ci": "95% confidence interval of the difference in means (first group minus second) of a t test, given by 'low' and 'high'",
    "ratio_of_means": "ratio of the two groups' sample means",
    "ratio_of_medians": "ratio of the two groups' sample medians",
}


class Analyte(StrictModel):
    name: str = Field(min_length=1)
    """Name of the measured quantity."""
    units: str = Field(min_length=1)
    """Units of every reported value."""
    assay: str | None = None
    """Measurement method, e.g. an ELISA."""
    source: str | None = None
    """Key of `sources` for the assay."""


class Study(StrictModel):
    """A validated study file."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    """Identifier of the study (letters, digits, `_.-`); names result folders."""
    title: str = Field(min_length=1)
    """Title of the paper."""
    citation: str = Field(min_length=1)
    """Full citation of the paper."""
    doi: str | None = None
    """DOI of the paper."""
    design: str | None = None
    """Design of the study in one or two sentences."""
    sources: dict[str, Source]
    """Citable sources of the numbers, by key; every `source` field names one."""
    analyte: Analyte
    """The measured quantity and its units."""
    groups: dict[str, Group]
    """The groups, by identifier (used in comparisons, covariates and results)."""
    comparisons: dict[str, Comparison] = Field(default_factory=dict)
    """Two-group comparisons and their claims, by name."""
    group_tests: dict[str, GroupTest] = Field(default_factory=dict)
    """Tests across several groups (Kruskal-Wallis, one-way ANOVA) and their p-values, by name; checked against simulated cohorts."""
    associations: dict[str, Association] = Field(default_factory=dict)
    """Covariate association claims (sex, age, ...), used by the covariate model."""
    covariates: dict[str, Covariate] = Field(default_factory=dict)
    """Subject-level covariates of the covariate model, by name."""
    assumptions: dict[str, Assumption] = Field(default_factory=dict)
    """What the reanalysis assumes where the paper is silent, by name (see the toolkit's own assumptions below)."""
    # read by reanalysis/report/plausibility.py, not here, so a copied study file still loads when the
    # reference file is not beside it
    reference: str | None = Field(default=None, min_length=1)
    """Path, relative to the study file, of external reference measurements of the analyte (the plausibility audit)."""

    # filled in by load_study, not part of the file
    path: Path | None = Field(default=None, exclude=True)
    sha256: str | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _statistics_from_assumptions(cls, data: Any) -> Any:
        """Fill in ``statistic`` of each comparison claim that reads it from an assumption."""
        if not isinstance(data, dict) or not isinstance(data.get("comparisons"), dict):
            return data
        assumptions = data.get("assumptions") if isinstance(data.get("assumptions"), dict) else {}
        data = dict(data)
        comparisons = {}
        for cid, comp in data["comparisons"].items():
            if isinstance(comp, dict) and isinstance(comp.get("claims"), dict):
                comp = {**comp, "claims": dict(comp["claims"])}
                for k, claim in comp["claims"].items():
                    if isinstance(claim, dict) and claim.get("statistic_from") is not None:
                        comp["claims"][k] = _claim_statistic(f"comparisons.{cid}.claims.{k}", claim, assumptions)
            comparisons[cid] = comp
        data["comparisons"] = comparisons
        return data

    @field_validator("reference")
    @classmethod
    def _relative_path(cls, v: str | None) -> str | None:
        if v is not None and (Path(v).is_absolute() or v.startswith("~")):
            raise ValueError("must be a path relative to the study file (e.g. ../reference/values.yaml)")
        return v

    @model_validator(mode="after")
    def _cross_references(self) -> "Study":
        if len(self.groups) < 1:
            raise rule_error("groups", "a study needs at least one group")
        known = set(self.sources)

        def check_source(where: str, src: str | None) -> None:
            if src is not None and src not in known:
                raise rule_error(
                    f"{where}.source", f"{src!r} is not a key of 'sources' (known: {', '.join(sorted(known))})"
                )

        check_source("analyte", self.analyte.source)
        for g, grp in self.groups.items():
            check_source(f"groups.{g}.n", grp.n.source)
            for cname, levels in grp.counts.items():
                for lvl, c in levels.items():
                    check_source(f"groups.{g}.counts.{cname}.{lvl}", c.source)
            for s, num in grp.statistics.items():
                check_source(f"groups.{g}.statistics.{s}", num.source)
        for c, comp in self.comparisons.items():
            for g in comp.groups:
                if g not in self.groups:
                    raise rule_error(f"comparisons.{c}.groups", f"{g!r} is not a group of this study")
            if comp.groups[0] == comp.groups[1]:
                raise rule_error(f"comparisons.{c}.groups", "compare two different groups")
            for k, cl in comp.claims.items():
                check_source(f"comparisons.{c}.claims.{k}", cl.source)
        for t, gt in self.group_tests.items():
            for g in gt.groups:
                if g not in self.groups:
                    raise rule_error(f"group_tests.{t}.groups", f"{g!r} is not a group of this study{_suggestion(g, self.groups)}")
            for k, cl in gt.claims.items():
                check_source(f"group_tests.{t}.claims.{k}", cl.source)
        for a, assoc in self.associations.items():
            check_source(f"associations.{a}", assoc.source)
        self._check_covariates()
        self._check_association_assumptions()
        self._check_toolkit_assumptions()
        self._check_assumptions_used()
        self._check_claim_use()
        return self

    def _check_claim_use(self) -> None:
        """``use: likelihood`` only on a claim the group model can fit, and a claim's test
        statistic consistent with the study's default test when the claim names none."""
        from .two_group import unusable_reason

        for cid, comp in self.comparisons.items():
            for k, cl in comp.claims.items():
                where = f"comparisons.{cid}.claims.{k}"
                if cl.statistic in TEST_CLAIM_STATISTICS and cl.test is None:
                    test = self.setting("group_test")
                    if test not in TEST_CLAIM_STATISTICS[cl.statistic]:
                        raise rule_error(
                            f"{where}.test", f"a {cl.statistic!r} statistic does not come from the default test {test!r}; "
                            f"name the paper's test ('test: {TEST_CLAIM_STATISTICS[cl.statistic][0]}')"
                        )
                if cl.use == "likelihood":
                    why = unusable_reason(self, cid, k)
                    if why is not None:
                        raise rule_error(f"{where}.use", f"the group model cannot fit this claim ({why}); write 'use: check' or remove 'use'")

    def _check_toolkit_assumptions(self) -> None:
        for name, (_, _, check) in TOOLKIT_ASSUMPTIONS.items():
            if name not in self.assumptions:
                continue
            a = self.assumptions[name]
            for i, value in enumerate([a.value] + list(a.vary or [])):
                problem = check(value)
                if problem:
                    raise rule_error(f"assumptions.{name}." + ("value" if i == 0 else f"vary.{i - 1}"), problem)

    def _check_assumptions_used(self) -> None:
        """Every declared assumption is read: by the toolkit (:data:`TOOLKIT_ASSUMPTIONS`) or
        through a field naming it.  One that nothing reads would look like part of the
        analysis, and its ``vary`` values like sensitivity scenarios, while changing nothing."""
        used = set(TOOLKIT_ASSUMPTIONS)
        used.update(c.assumption for c in self.covariates.values() if c.assumption)
        for assoc in self.associations.values():
            used.update(x for x in (assoc.subjects, assoc.tolerance, assoc.alpha) if x)
        for comp in self.comparisons.values():
            used.update(cl.statistic_from for cl in comp.claims.values() if cl.statistic_from)
        for name in self.assumptions:
            if name not in used:
                raise rule_error(
                    f"assumptions.{name}",
                    "no field of the study file reads it (name it from a covariate's 'assumption', an association's "
                    "'subjects'/'tolerance'/'alpha' or a claim's 'statistic_from', or remove it; toolkit assumptions: "
                    f"{', '.join(TOOLKIT_ASSUMPTIONS)}){_suggestion(name, TOOLKIT_ASSUMPTIONS)}",
                )

    def _assumption_ref(self, field: str, name: str):
        if name not in self.assumptions:
            known = ", ".join(sorted(self.assumptions)) or "none declared"
            raise rule_error(field, f"{name!r} is not a key of 'assumptions' (known: {known})")
        a = self.assumptions[name]
        return [a.value] + list(a.vary or [])

    def _check_covariates(self) -> None:
        for c, cov in self.covariates.items():
            for g in cov.groups or []:
                if g not in self.groups:
                    raise rule_error(f"covariates.{c}.groups", f"{g!r} is not a group of this study")
            if cov.counts is not None:
                breakdown, _, level = cov.counts.partition(".")
                having = [g for g, grp in self.groups.items() if breakdown in grp.counts]
                if not having:
                    raise rule_error(f"covariates.{c}.counts", f"no group has counts of {breakdown!r}")
                for g in cov.groups or having:
                    levels = self.groups[g].counts.get(breakdown)
                    if levels is None:
                        raise rule_error(f"covariates.{c}.counts", f"group {g!r} has no counts of {breakdown!r}")
                    if level and level not in levels:
                        raise rule_error(
                            f"covariates.{c}.counts", f"group {g!r} has no level {level!r} of {breakdown!r} (levels: {', '.join(levels)})"
                        )
            else:
                for i, value in enumerate(self._assumption_ref(f"covariates.{c}.assumption", cov.assumption)):
                    where = f"assumptions.{cov.assumption}." + ("value" if i == 0 else f"vary.{i - 1}")
                    try:
                        CovariateDistribution.model_validate(value)
                    except ValidationError as exc:
                        raise rule_error(where, f"not a covariate distribution ({first_error(exc)})") from None

    def _check_association_assumptions(self) -> None:
        for a, assoc in self.associations.items():
            where = f"associations.{a}"
            if assoc.subjects is not None:
                for i, value in enumerate(self._assumption_ref(f"{where}.subjects", assoc.subjects)):
                    bad = not isinstance(value, list) or not value or any(g not in self.groups for g in value)
                    if bad:
                        field = f"assumptions.{assoc.subjects}." + ("value" if i == 0 else f"vary.{i - 1}")
                        raise rule_error(field, f"must be a list of group ids ({', '.join(self.groups)})")
            for key, lo, hi in (("tolerance", 0.0, math.inf), ("alpha", 0.0, 0.5)):
                name = getattr(assoc, key)
                if name is None:
                    continue
                for i, value in enumerate(self._assumption_ref(f"{where}.{key}", name)):
                    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo < value < hi:
                        field = f"assumptions.{name}." + ("value" if i == 0 else f"vary.{i - 1}")
                        raise rule_error(field, f"must be a number in ({lo:g}, {hi:g})")

    # -- convenience views used by the models ----------------------------------------------
    @property
    def group_ids(self) -> list[str]:
        """Group identifiers in file order."""
        return list(self.groups)

    def n(self, group: str) -> int:
        """Number of subjects in ``group``."""
        return int(self.groups[group].n.value)

    def reported(self, group: str) -> dict[str, float]:
        """Reported statistics of ``group`` in canonical order, name -> value."""
        stats = self.groups[group].statistics
        return {k: stats[k].value for k in STATISTICS if k in stats}

    @property
    def reference_path(self) -> Path | None:
        """The ``reference`` file resolved against the study file's folder, or None."""
        if self.reference is None:
            return None
        base = self.path.parent if self.path is not None else Path(".")
        return base / self.reference

    def covariate_groups(self, name: str) -> list[str]:
        """Groups in which covariate ``name`` is defined (declared, else every group with
        its breakdown, else all groups)."""
        cov = self.covariates[name]
        if cov.groups:
            return list(cov.groups)
        if cov.counts is not None:
            breakdown = cov.counts.split(".")[0]
            return [g for g, grp in self.groups.items() if breakdown in grp.counts]
        return self.group_ids

    def covariate_distribution(self, name: str) -> CovariateDistribution:
        """The declared distribution of an assumption-based covariate."""
        return CovariateDistribution.model_validate(self.assumption(self.covariates[name].assumption))

    def setting(self, name: str) -> Any:
        """Value of an assumption the toolkit reads (:data:`TOOLKIT_ASSUMPTIONS`): the
        declared value, else the registry's default (one definition of each default)."""
        return self.assumption(name, TOOLKIT_ASSUMPTIONS[name][1])

    def assumption(self, name: str, default: Any = None) -> Any:
        """Value of a declared assumption, or ``default`` when the file does not declare it."""
        a = self.assumptions.get(name)
        return default if a is None or a.value is None else a.value


def _claim_statistic(where: str, claim: dict, assumptions: dict) -> dict:
    """A raw claim with ``statistic`` filled in from the assumption ``statistic_from`` names."""
    name = claim["statistic_from"]
    if "statistic" in claim:
        raise rule_error(f"{where}.statistic", "give 'statistic' or 'statistic_from' (an assumption naming it), not both")
    a = assumptions.get(name) if isinstance(name, str) else None
    if not isinstance(a, dict):
        known = ", ".join(sorted(assumptions)) or "none declared"
        raise rule_error(f"{where}.statistic_from", f"{name!r} is not a key of 'assumptions' (known: {known})")
    for i, value in enumerate([a.get("value")] + list(a.get("vary") or [])):
        if value not in CLAIM_STATISTICS:
            field = f"assumptions.{name}." + ("value" if i == 0 else f"vary.{i - 1}")
            raise rule_error(field, f"must be a claim statistic ({', '.join(CLAIM_STATISTICS)}), not {value!r}{_suggestion(value, CLAIM_STATISTICS)}")
    return {**claim, "statistic": a.get("value")}


def _suggestion(word: Any, choices) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` to a mistyped ``word``, else ''."""
    import difflib

    if not isinstance(word, str):
        return ""
    lower = {str(c).lower(): str(c) for c in choices}
    close = difflib.get_close_matches(word.lower(), list(lower), n=1, cutoff=0.6)
    return f" (did you mean {lower[close[0]]!r}?)" if close else ""


def _keys_at(loc: tuple, root: type[BaseModel] | None = None) -> list[str]:
    """Field names the schema allows at an error location (the mapping that holds the
    offending key), found by walking the annotations of ``root`` (default :class:`Study`)
    along ``loc``."""
    import types
    import typing

    def models_of(tp):
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            return [m for arg in typing.get_args(tp) for m in models_of(arg)]
        return [tp]

    node: Any = Study if root is None else root
    for part in loc[:-1]:
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(part))
            if field is None:
                return []
            node = field.annotation
        elif typing.get_origin(node) is dict:
            node = typing.get_args(node)[1]
        elif typing.get_origin(node) in (list, tuple):  # the part is the item's index
            node = typing.get_args(node)[0]
        else:
            return []
        candidates = [m for m in models_of(node) if m is not type(None)]
        node = candidates[0] if len(candidates) == 1 else node
    if isinstance(node, type) and issubclass(node, BaseModel):
        return [k for k, f in node.model_fields.items() if not f.exclude]
    return []


# -- error messages -------------------------------------------------------------------------
def _kind(value: Any) -> str:
    """Plain name of a YAML value's type, with its article: 'a string', 'a list', 'null'."""
    if value is None:
        return "null (an empty value)"
    if isinstance(value, bool):
        return "a boolean (true/false)"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    name = type(value).__name__  # e.g. date, set, bytes from YAML's own types
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


def _is_number_text(value: Any) -> bool:
    """Is ``value`` a string that reads as a number, e.g. ``"45"`` (a quoted number)?"""
    return isinstance(value, str) and re.fullmatch(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*", value) is not None


def first_error(exc: ValidationError, root: type[BaseModel] | None = None) -> str:
    """The first validation error as ``"<dotted field path>: <what is wrong>"``; an unknown
    key suggests the nearest key the schema ``root`` (the validated model, default
    :class:`Study`) allows there."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    if err["type"] == "missing":
        # a required field missing beside an unknown key is most often that key misspelled:
        # name the key (with the suggestion) rather than the field
        err = next((e for e in errors if e["type"] == "extra_forbidden" and e["loc"][:-1] == err["loc"][:-1]), err)
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    # '[key]' marks an error in a mapping's key (the key itself is the part before it)
    parts = [str(p) for p in err["loc"] if p != "[key]" and not str(p).startswith("function-")]
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]

    if kind == _RULE_ERROR:
        # a model-level rule names a field relative to the model that failed
        parts.append(ctx["field"])
        msg = ctx["text"]
    elif "[key]" in err["loc"]:
        parent = parts[-2] if len(parts) >= 2 else ""
        if kind == "literal_error":
            allowed = ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
            what = "not a statistic; " if parent == "statistics" else ""
            msg = f"unknown key ({what}use one of {allowed}){_suggestion(parts[-1] if parts else '', allowed.split(', '))}"
        else:
            msg = f"a key must be a string, not {_kind(value)} (put it in quotes)"
    elif kind == "extra_forbidden":
        msg = f"unknown key (remove it or fix its spelling){_suggestion(parts[-1] if parts else '', _keys_at(tuple(err['loc']), root))}"
    elif kind == "missing":
        msg = "required field is missing"
    elif kind in ("float_type", "float_parsing"):
        hint = " (write it without quotes)" if _is_number_text(value) else ""
        msg = f"must be a valid number, not {_kind(value)}{hint}"
    elif kind == "bool_type":
        msg = f"must be true or false, not {_kind(value)}"
    elif kind == "string_type":
        hint = " (put it in quotes)" if isinstance(value, (int, float)) else ""
        msg = f"must be a string, not {_kind(value)}{hint}"
    elif kind in ("model_type", "model_attributes_type"):
        msg = f"must be a mapping of fields, not {_kind(value)}"
    elif kind == "dict_type":
        msg = f"must be a mapping, not {_kind(value)}"
    elif kind in ("list_type", "tuple_type"):
        msg = f"must be a list, not {_kind(value)}"
    elif kind == "string_too_short":
        msg = "must not be empty"
    msg = msg.replace("Input should be", "must be")
    loc = ".".join(p for p in parts if p)
    return f"{loc}: {msg}" if loc else msg


# -- YAML ----------------------------------------------------------------------------------
def _tag_name(tag: str | None) -> str:
    """A tag as written in YAML: 'tag:yaml.org,2002:python/...' -> '!!python/...'."""
    tag = str(tag)
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix):] if tag.startswith(prefix) else tag


class _DuplicateKeyError(yaml.constructor.ConstructorError):
    def __init__(self, key: Any, node: yaml.Node, first: yaml.Node):
        super().__init__(None, None, f"duplicate key {key!r}", node.start_mark)
        self.key, self.line, self.first_line = key, node.start_mark.line + 1, first.start_mark.line + 1


class _UnsupportedTagError(yaml.constructor.ConstructorError):
    def __init__(self, node: yaml.Node):
        super().__init__(None, None, f"unsupported YAML tag {node.tag!r}", node.start_mark)
        self.tag, self.line = _tag_name(node.tag), node.start_mark.line + 1


#: libyaml's parser where PyYAML was built with it (the wheels are): it parses a study
#: file about ten times faster than the pure-Python one, with the same safe constructor.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class StudyLoader(_SAFE_LOADER):
    """``yaml.SafeLoader`` (on libyaml's parser when available) that also rejects repeated
    mapping keys.

    Like SafeLoader it builds plain data only (dicts, lists, strings, numbers, booleans,
    null, and YAML's own dates/sets/binary); any other tag, e.g. ``!!python/object``, is an
    error, never a constructed Python object.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # '<<: *anchor' merges; explicit keys may override merged ones
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:
                    continue  # unhashable key: SafeLoader reports it
                if first is not key_node:
                    raise _DuplicateKeyError(key, key_node, first)
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, AttributeError):
            # an explicit tag on a value that does not fit it, e.g. '!!int abc'
            raise yaml.constructor.ConstructorError(
                None, None, f"{getattr(node, 'value', '')!r} is not a valid {_tag_name(node.tag)}", node.start_mark
            ) from None

    def _construct_undefined(self, node: yaml.Node) -> Any:
        raise _UnsupportedTagError(node)


# SafeLoader registers the function SafeConstructor.construct_undefined; replace it here only
StudyLoader.add_constructor(None, StudyLoader._construct_undefined)


def one_line(text: str) -> str:
    return re.sub(r"[\r\n]+", " ", text)


def load_study(path: str | Path) -> Study:
    """Read and validate a study file.

    Parameters
    ----------
    path : str or Path
        YAML study file.

    Returns
    -------
    Study
        The validated study, with ``path`` and ``sha256`` (of the file bytes) set.

    Raises
    ------
    StudyError
        One line, ``"<file>: <field>: <what is wrong>"``, for any unreadable or invalid file.
    """
    path = Path(path)

    def fail(text: str) -> StudyError:
        return StudyError(one_line(f"{path}: {text}"))

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read the study file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise fail("not a UTF-8 text file") from None
    try:
        # a SafeLoader: YAML tags never construct Python objects from a user file
        data = yaml.load(text, Loader=StudyLoader)  # noqa: S506 - StudyLoader is a SafeLoader
    except _DuplicateKeyError as exc:
        raise fail(
            f"duplicate key {exc.key!r} at line {exc.line} (first given at line {exc.first_line}; keep only one)"
        ) from None
    except _UnsupportedTagError as exc:
        raise fail(f"unsupported YAML tag {exc.tag!r} at line {exc.line} (study files hold plain data only)") from None
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}" if mark else ""
        raise fail(f"unsupported YAML{where}: {exc.problem} (study files hold plain data only)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise fail(f"YAML syntax error{where}: {problem}") from None
    if data is None:
        raise fail("the file is empty; a study file is a YAML mapping (see data/studies/)")
    if not isinstance(data, dict):
        raise fail(f"the top level must be a mapping of fields (id, title, groups, ...), not {_kind(data)}")
    for reserved in ("path", "sha256"):
        if reserved in data:
            raise fail(f"{reserved}: unknown key (remove it or fix its spelling)")
    try:
        study = Study.model_validate(data)
    except ValidationError as exc:
        raise fail(first_error(exc)) from None
    return study.model_copy(update={"path": path, "sha256": hashlib.sha256(raw).hexdigest()})

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

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

#: Summary statistics a group may report, in the order they are used everywhere.
STATISTICS = ("mean", "sd", "median", "q1", "q3", "min", "max")
#: Human-readable names for reports and error messages.
STATISTIC_LABELS = {
    "mean": "mean",
    "sd": "SD",
    "median": "median",
    "q1": "first quartile",
    "q3": "third quartile",
    "min": "minimum",
    "max": "maximum",
}


class StudyError(Exception):
    """A study file is unreadable or invalid.  ``str()`` is the one-line message for users."""


class _Strict(BaseModel):
    # unknown keys are an error, never silently ignored
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """A citable source of published numbers."""

    citation: str = Field(min_length=1)
    url: str | None = None
    note: str | None = None


class Number(_Strict):
    """One number with its provenance.

    ``status: published`` numbers must name a ``source`` (a key of the file's ``sources``)
    and may say ``where`` in it; ``status: assumption`` numbers must give a ``reason``.
    """

    value: float
    status: Literal["published", "assumption"]
    source: str | None = None
    where: str | None = None
    reason: str | None = None

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
    """A number of subjects: a whole number, at least 1."""

    @field_validator("value")
    @classmethod
    def _whole(cls, v: float) -> float:
        if v != int(v) or v < 1:
            raise ValueError(f"must be a whole number >= 1 (got {v:g})")
        return v


class Group(_Strict):
    """One group of subjects and what was reported about it."""

    label: str = Field(min_length=1)
    n: Count
    #: Breakdowns of the group by a categorical variable, e.g. sex or disease subtype;
    #: each breakdown's counts must add up to n.
    counts: dict[str, dict[str, Count]] = Field(default_factory=dict)
    statistics: dict[Literal["mean", "sd", "median", "q1", "q3", "min", "max"], Number] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _consistent(self) -> "Group":
        n = int(self.n.value)
        for name, levels in self.counts.items():
            total = int(sum(c.value for c in levels.values()))
            if total != n:
                raise ValueError(f"counts.{name}: the counts add up to {total}, but n is {n}")
        s = {k: v.value for k, v in self.statistics.items()}
        if "sd" in s and s["sd"] <= 0:
            raise ValueError(f"statistics.sd: must be > 0 (got {s['sd']:g})")
        for k, v in s.items():
            if k != "sd" and v <= 0:
                raise ValueError(f"statistics.{k}: must be > 0 for a positive measurement (got {v:g})")
        order = [k for k in ("min", "q1", "median", "q3", "max") if k in s]
        for lo, hi in zip(order, order[1:]):
            if s[lo] > s[hi]:
                raise ValueError(
                    f"statistics: {lo} ({s[lo]:g}) must not exceed {hi} ({s[hi]:g})"
                )
        if "mean" in s and "min" in s and "max" in s and not s["min"] <= s["mean"] <= s["max"]:
            raise ValueError(f"statistics.mean: {s['mean']:g} lies outside min-max")
        if not s:
            raise ValueError("statistics: a group must report at least one statistic")
        if n < 2 and "sd" in s:
            raise ValueError("statistics.sd: an SD needs n >= 2")
        return self


class Claim(_Strict):
    """A reported comparison or association, numeric or qualitative.

    Examples: ``p_value < 0.001`` for a group difference; ``ratio_of_means > 3`` for
    "more than three-fold"; ``direction: lower`` with ``significant: true`` for "women had
    significantly lower levels".
    """

    statistic: str = Field(min_length=1)
    relation: Literal["<", ">", "=", "~"] | None = None
    value: float | None = None
    direction: Literal["lower", "higher", "none"] | None = None
    significant: bool | None = None
    status: Literal["published", "assumption"] = "published"
    source: str | None = None
    where: str | None = None
    reason: str | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> "Claim":
        if self.status == "published" and not self.source:
            raise ValueError("a published claim needs a 'source' (a key of 'sources')")
        if (self.relation is None) != (self.value is None):
            raise ValueError("give 'relation' and 'value' together")
        if self.relation is None and self.direction is None:
            raise ValueError("a claim needs a 'relation' and 'value', or a 'direction'")
        return self


class Comparison(_Strict):
    """A comparison of two groups: ``groups[0]`` over ``groups[1]`` in every ratio."""

    groups: tuple[str, str]
    claims: dict[str, Claim] = Field(default_factory=dict)


class Association(Claim):
    """A covariate association claim (sex, age, attacks, ...), used by covariate models."""

    covariate: str = Field(min_length=1)
    statistic: str = "association"


class Assumption(_Strict):
    """Something the paper does not say that the reanalysis must assume."""

    status: Literal["assumption"] = "assumption"
    value: Any = None
    prior: dict[str, Any] | None = None
    reason: str = Field(min_length=1)
    vary: list[Any] | None = None


class Analyte(_Strict):
    name: str = Field(min_length=1)
    units: str = Field(min_length=1)
    assay: str | None = None
    source: str | None = None


class Study(_Strict):
    """A validated study file."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    title: str = Field(min_length=1)
    citation: str = Field(min_length=1)
    doi: str | None = None
    design: str | None = None
    sources: dict[str, Source]
    analyte: Analyte
    groups: dict[str, Group]
    comparisons: dict[str, Comparison] = Field(default_factory=dict)
    associations: dict[str, Association] = Field(default_factory=dict)
    assumptions: dict[str, Assumption] = Field(default_factory=dict)

    # filled in by load_study, not part of the file
    path: Path | None = Field(default=None, exclude=True)
    sha256: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _cross_references(self) -> "Study":
        if len(self.groups) < 1:
            raise ValueError("groups: a study needs at least one group")
        known = set(self.sources)

        def check_source(where: str, src: str | None) -> None:
            if src is not None and src not in known:
                raise ValueError(
                    f"{where}.source: {src!r} is not a key of 'sources' (known: {', '.join(sorted(known))})"
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
                    raise ValueError(f"comparisons.{c}.groups: {g!r} is not a group of this study")
            if comp.groups[0] == comp.groups[1]:
                raise ValueError(f"comparisons.{c}.groups: compare two different groups")
            for k, cl in comp.claims.items():
                check_source(f"comparisons.{c}.claims.{k}", cl.source)
        for a, assoc in self.associations.items():
            check_source(f"associations.{a}", assoc.source)
        return self

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

    def assumption(self, name: str, default: Any = None) -> Any:
        """Value of a declared assumption, or ``default`` when the file does not declare it."""
        a = self.assumptions.get(name)
        return default if a is None or a.value is None else a.value


def _format_location(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if not str(p).startswith("function-"))


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = _format_location(err["loc"])
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if err["type"] == "extra_forbidden":
        msg = "unknown key (remove it or fix its spelling)"
    elif err["type"] == "missing":
        msg = "required field is missing"
    elif err["type"] == "literal_error":
        msg = msg.replace("Input should be", "must be")
    # model-level validators report a location relative to the model; join the pieces
    if msg.split(":", 1)[0].replace(".", "").replace("_", "").isalnum() and ":" in msg and loc:
        head, rest = msg.split(":", 1)
        if " " not in head:
            return f"{loc}.{head}:{rest}"
    return f"{loc}: {msg}" if loc else msg


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
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StudyError(f"{path}: cannot read the study file ({exc.strerror or exc})") from None
    try:
        # safe_load: YAML tags never construct Python objects from a user file
        data = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise StudyError(f"{path}: not a UTF-8 text file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise StudyError(f"{path}: YAML syntax error{where}: {problem}") from None
    if data is None:
        raise StudyError(f"{path}: the file is empty; a study file is a YAML mapping (see data/studies/)")
    if not isinstance(data, dict):
        raise StudyError(
            f"{path}: the top level must be a mapping of fields (id, title, groups, ...), not a {type(data).__name__}"
        )
    for reserved in ("path", "sha256"):
        if reserved in data:
            raise StudyError(f"{path}: {reserved}: unknown key (remove it or fix its spelling)")
    try:
        study = Study.model_validate(data)
    except ValidationError as exc:
        raise StudyError(f"{path}: {_first_error(exc)}") from None
    return study.model_copy(update={"path": path, "sha256": hashlib.sha256(raw).hexdigest()})

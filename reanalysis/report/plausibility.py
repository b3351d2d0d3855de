"""Measurement plausibility: a study's group levels against external reference values.

A study may name a reference-data file (``reference:`` in the study file, a path relative to
it) holding measurements of the same kind of analyte by an independent method, each with its
population, size, assay, units, value and source.  This module

* loads and validates such a file (:func:`load_reference`; one-line errors, like study files);
* compares each group's posterior population median (with its 95% interval, read from the
  fit's ``estimands.csv``) with the upper end of every reference value, as a fold-difference
  (:func:`audit`); units must match exactly (after normalising case and spaces) or it errors;
* says which estimands depend on absolute levels and which only on ratios, from their units
  alone: an estimand in the analyte's units needs the assay's absolute scale to be right,
  a dimensionless one (fold, ratio, probability, percent) survives an assay that reads
  proportionally to the true concentration (:func:`classify_estimands`);
* draws the comparison on a log axis (:func:`plausibility_figure`; returns, never saves).

Nothing here knows which analyte it is looking at: all of that lives in the data files.
"""
from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from models.study import Source, StrictModel, Study, first_error, one_line, rule_error, StudyLoader

#: Fold-difference from which a level counts as implausible as an absolute concentration
#: (more than an order of magnitude above the highest upper end of the reference ranges).
IMPLAUSIBLE_FOLD = 10.0
#: Units of estimands that are free of the measurement scale (ratios of two levels,
#: probabilities, percentages): they survive a proportional (multiplicative) assay bias.
RELATIVE_UNITS = ("fold", "ratio", "probability", "percent", "%")


class PlausibilityError(Exception):
    """Reference data unreadable or invalid, or not comparable with the study.
    ``str()`` is one line."""


class RefValue(StrictModel):
    """One reported value: a range ``{low, high}``, a mean and SD ``{mean, sd}``, or the
    highest value seen ``{max}``."""

    low: float | None = Field(default=None, strict=True)
    high: float | None = Field(default=None, strict=True)
    mean: float | None = Field(default=None, strict=True)
    sd: float | None = Field(default=None, strict=True)
    max: float | None = Field(default=None, strict=True)

    @model_validator(mode="after")
    def _one_shape(self) -> "RefValue":
        given = {k for k in ("low", "high", "mean", "sd", "max") if getattr(self, k) is not None}
        shapes = ({"low", "high"}, {"mean", "sd"}, {"max"})
        if given not in shapes:
            raise rule_error(
                "", f"give exactly one of {{low, high}}, {{mean, sd}} or {{max}} (got {{{', '.join(sorted(given))}}})"
            )
        for k in given:
            v = getattr(self, k)
            if v != v or v in (float("inf"), float("-inf")):
                raise rule_error(k, "must be a finite number")
        if given == {"low", "high"}:
            if self.low < 0:
                raise rule_error("low", f"must be >= 0 (got {self.low:g})")
            if self.low > self.high:
                raise rule_error("low", f"{self.low:g} exceeds high ({self.high:g})")
            if self.high <= 0:
                raise rule_error("high", f"must be > 0 (got {self.high:g})")
        elif given == {"mean", "sd"}:
            if self.mean <= 0:
                raise rule_error("mean", f"must be > 0 (got {self.mean:g})")
            if self.sd < 0:
                raise rule_error("sd", f"must be >= 0 (got {self.sd:g})")
        elif self.max <= 0:
            raise rule_error("max", f"must be > 0 (got {self.max:g})")
        return self

    @property
    def kind(self) -> str:
        """``range``, ``mean_sd`` or ``max``."""
        if self.high is not None:
            return "range"
        return "mean_sd" if self.mean is not None else "max"

    @property
    def upper(self) -> float:
        """Upper end: the range's high end, mean + 2 SD, or the maximum."""
        if self.kind == "range":
            return self.high
        if self.kind == "mean_sd":
            return self.mean + 2 * self.sd
        return self.max

    @property
    def upper_rule(self) -> str:
        return {"range": "upper end of the range", "mean_sd": "mean + 2 SD", "max": "highest value reported"}[self.kind]

    def describe(self) -> str:
        if self.kind == "range":
            return f"{self.low:g}-{self.high:g}"
        if self.kind == "mean_sd":
            return f"{self.mean:g} ± {self.sd:g} (mean ± SD)"
        return f"up to {self.max:g}"


class Measurement(StrictModel):
    id: str = Field(min_length=1)
    analyte: str = Field(min_length=1)
    population: str = Field(min_length=1)
    n: int | None = Field(default=None, strict=True, ge=1)
    assay: str = Field(min_length=1)
    units: str = Field(min_length=1)
    value: RefValue
    source: str = Field(min_length=1)
    where: str | None = None


class RefNote(StrictModel):
    """A qualitative finding (e.g. a method comparison) that is not a value."""

    id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    source: str = Field(min_length=1)
    analyte: str | None = None
    assay: str | None = None


class ReferenceSet(StrictModel):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    title: str = Field(min_length=1)
    method: str = Field(min_length=1)
    description: str | None = None
    sources: dict[str, Source]
    measurements: list[Measurement] = Field(min_length=1)
    notes: list[RefNote] = Field(default_factory=list)

    path: Path | None = Field(default=None, exclude=True)

    @field_validator("measurements")
    @classmethod
    def _unique_ids(cls, v: list[Measurement]) -> list[Measurement]:
        seen = set()
        for m in v:
            if m.id in seen:
                raise ValueError(f"duplicate measurement id {m.id!r}")
            seen.add(m.id)
        return v

    @model_validator(mode="after")
    def _sources_known(self) -> "ReferenceSet":
        known = set(self.sources)
        for kind, items in (("measurements", self.measurements), ("notes", self.notes)):
            for i, item in enumerate(items):
                if item.source not in known:
                    raise rule_error(
                        f"{kind}.{i}.source", f"{item.source!r} is not a key of 'sources' (known: {', '.join(sorted(known))})"
                    )
        return self

    def citation(self, key: str) -> str:
        return self.sources[key].citation


def load_reference(path: str | Path) -> ReferenceSet:
    """Read and validate a reference-data file; any problem is one line
    ``"<file>: <field>: <what is wrong>"`` in a :class:`PlausibilityError`."""
    path = Path(path)

    def fail(text: str) -> PlausibilityError:
        return PlausibilityError(one_line(f"{path}: {text}"))

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail("reference file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read the reference file ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = yaml.load(text, Loader=StudyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise fail(f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict):
        raise fail("the top level must be a mapping (id, title, method, sources, measurements)")
    if "path" in data:
        raise fail("path: unknown key (remove it or fix its spelling)")
    try:
        ref = ReferenceSet.model_validate(data)
    except ValidationError as exc:
        raise fail(first_error(exc, ReferenceSet)) from None
    return ref.model_copy(update={"path": path})


def normalise_units(units: str) -> str:
    """``"ng/mL"`` and ``"ng / ml"`` compare equal; ``"µg/l"`` does not equal ``"ng/ml"``."""
    return re.sub(r"\s+", "", units).lower().replace("µ", "u").replace("μ", "u")


# -- the audit ------------------------------------------------------------------------------
@dataclass
class GroupLevel:
    group: str
    label: str
    median: float  # posterior median of the population median
    low: float  # 95% interval of the population median
    high: float
    published_median: float | None = None


@dataclass
class Fold:
    group: str
    measurement: Measurement
    upper: float
    fold_median: float
    fold_low: float
    fold_high: float


@dataclass
class Audit:
    study_id: str
    analyte: str
    units: str
    assay: str | None
    reference: ReferenceSet
    groups: list[GroupLevel]
    folds: list[Fold]
    #: the reference value with the largest upper end among the *ranges* (typical values)
    top_range: Measurement | None
    #: the reference value with the largest upper end of all (including peaks)
    top_any: Measurement
    dependence: pd.DataFrame = field(default_factory=pd.DataFrame)

    def fold(self, group: str, measurement_id: str) -> Fold:
        return next(f for f in self.folds if f.group == group and f.measurement.id == measurement_id)

    def headline(self) -> list[Fold]:
        """Per group, the fold over the largest upper end of the reference ranges (or of all
        values, when the file has no ranges)."""
        top = self.top_range or self.top_any
        return [self.fold(g.group, top.id) for g in self.groups]

    def verdict(self, group: str) -> str:
        f = self.fold(group, (self.top_range or self.top_any).id)
        if f.fold_low >= IMPLAUSIBLE_FOLD:
            return "implausible as an absolute concentration"
        if f.fold_low > 1:
            return "above the reference ranges"
        return "compatible with the reference ranges"

    def statements(self) -> list[str]:
        """Plain-language findings, one per line, generic in the analyte and units."""
        u = self.units
        top = self.top_range or self.top_any
        out = []
        for g in self.groups:
            f = self.fold(g.group, top.id)
            text = (
                f"{g.label}: posterior population median {fmt(g.median)} {u} (95% interval {fmt(g.low)}-{fmt(g.high)}) is "
                f"{fmt(f.fold_median)} times (95% interval {fmt(f.fold_low)}-{fmt(f.fold_high)}) the largest upper end of the "
                f"{self.reference.method} reference ranges ({fmt(f.upper)} {u}, {top.analyte}, {top.population}; "
                f"{top.value.upper_rule}): {self.verdict(g.group)}."
            )
            if self.top_any.id != top.id:
                fa = self.fold(g.group, self.top_any.id)
                text += (
                    f" Even the highest reference value ({fmt(fa.upper)} {u}, {self.top_any.analyte}, "
                    f"{self.top_any.population}) is exceeded {fmt(fa.fold_median)}-fold."
                )
            out.append(text)
        return out

    def dependence_statements(self) -> list[str]:
        d = self.dependence
        absolute = d.loc[d["scale"] == "absolute", "label"].tolist()
        relative = d.loc[d["scale"] == "relative", "label"].tolist()
        other = d.loc[d["scale"] == "unclassified", "label"].tolist()
        out = []
        if absolute:
            out.append(
                f"Depend on absolute levels (in {self.units}; they stand only if the assay's absolute scale is right, "
                f"which the reference values above call into question): " + "; ".join(absolute) + "."
            )
        if relative:
            out.append(
                "Depend only on ratios (dimensionless: fold, ratio, probability, percent; they survive if the assay reads "
                "proportionally to the true concentration, i.e. with a constant multiplicative bias): " + "; ".join(relative) + "."
            )
        if other:
            out.append("Units not recognised, so not classified: " + "; ".join(other) + ".")
        out.append(
            "No estimand survives an assay that does not track the analyte at all (cross-reactivity, matrix effects); "
            "reference values cannot test proportionality, only the absolute scale."
        )
        return out


def fmt(x: float) -> str:
    """Numbers in the audit's sentences: 3 significant figures, whole numbers from 100 on."""
    if x != x:
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def classify_estimands(estimands: pd.DataFrame, units: str) -> pd.DataFrame:
    """Each estimand's dependence on the measurement scale, from its units alone.

    ``absolute``: in the analyte's units (levels, differences); ``relative``: dimensionless
    (fold, ratio, probability, percent); ``unclassified``: anything else.
    """
    target = normalise_units(units)
    rows = []
    for _, r in estimands.iterrows():
        u = str(r["units"])
        nu = normalise_units(u)
        if nu == target:
            scale = "absolute"
        elif nu in RELATIVE_UNITS or nu.startswith("%") or "percent" in nu or nu.startswith("fold"):
            scale = "relative"
        else:
            scale = "unclassified"
        rows.append({"estimand": r["estimand"], "label": r["label"], "units": u, "scale": scale})
    return pd.DataFrame(rows, columns=["estimand", "label", "units", "scale"])


def declared_audit(study: Study, estimands: pd.DataFrame) -> Audit | None:
    """:func:`audit` against the reference measurements the study file declares, or None when
    it declares none (the console and the report each decide what a
    :class:`PlausibilityError` means to them)."""
    return audit(study, estimands) if study.reference is not None else None


def audit(study: Study, estimands: pd.DataFrame, reference: ReferenceSet | None = None) -> Audit:
    """Compare each group's posterior population median with the reference values.

    Parameters
    ----------
    study : Study
        The study; its ``analyte.units`` must equal the reference units, and its
        ``reference`` file is loaded unless ``reference`` is given.
    estimands : DataFrame
        The fit's ``estimands.csv`` (columns estimand, label, units, median, hdi_low,
        hdi_high); rows ``median[<group>]`` are the groups' population medians.
    """
    if reference is None:
        if study.reference_path is None:
            raise PlausibilityError(f"study {study.id}: no 'reference' file declared in the study file")
        reference = load_reference(study.reference_path)
    units = study.analyte.units
    for m in reference.measurements:
        if normalise_units(m.units) != normalise_units(units):
            raise PlausibilityError(
                f"{reference.path or reference.id}: measurement {m.id!r} is in {m.units!r} but study {study.id} "
                f"is in {units!r}; convert the reference values to the study's units"
            )
    table = estimands.set_index("estimand")
    groups = []
    for g in study.group_ids:
        key = f"median[{g}]"
        if key not in table.index:
            raise PlausibilityError(f"estimands table has no row {key!r} (the population median of group {g!r})")
        r = table.loc[key]
        if normalise_units(str(r["units"])) != normalise_units(units):
            raise PlausibilityError(f"estimand {key!r} is in {r['units']!r}, not the study's {units!r}")
        groups.append(
            GroupLevel(g, study.groups[g].label, float(r["median"]), float(r["hdi_low"]), float(r["hdi_high"]),
                       study.reported(g).get("median"))
        )
    folds = [
        Fold(g.group, m, m.value.upper, g.median / m.value.upper, g.low / m.value.upper, g.high / m.value.upper)
        for g in groups
        for m in reference.measurements
    ]
    ranges = [m for m in reference.measurements if m.value.kind == "range"]
    top_range = max(ranges, key=lambda m: m.value.upper) if ranges else None
    top_any = max(reference.measurements, key=lambda m: m.value.upper)
    return Audit(
        study_id=study.id,
        analyte=study.analyte.name,
        units=units,
        assay=study.analyte.assay,
        reference=reference,
        groups=groups,
        folds=folds,
        top_range=top_range,
        top_any=top_any,
        dependence=classify_estimands(estimands, units),
    )


# -- figure ---------------------------------------------------------------------------------
def plausibility_figure(a: Audit):
    """The study's group levels against the reference values, log axis in the study's units.

    Grey: reference values (bar = range, or mean to mean + 2 SD with a dot at the mean;
    triangle = highest value reported).  Orange: each group's posterior population median
    with its 95% interval; red diamond: the published sample median.  Returns the figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reanalysis.figures.plots import WIDTH, plain_log_ticks

    refs = a.reference.measurements
    n_rows = len(refs) + len(a.groups)
    fig, ax = plt.subplots(figsize=(WIDTH, 2.9 + 0.4 * n_rows))
    labels, y = [], 0
    for m in refs:
        v = m.value
        if v.kind == "range":
            ax.plot([v.low, v.high], [y, y], color="dimgray", lw=5, solid_capstyle="butt")
        elif v.kind == "mean_sd":
            ax.plot([v.mean, v.upper], [y, y], color="darkgray", lw=5, solid_capstyle="butt")
            ax.plot(v.mean, y, "o", color="dimgray", ms=7)
        else:
            ax.plot(v.max, y, "^", color="dimgray", ms=9)
        n = f", n={m.n}" if m.n else ""
        labels.append(f"{m.analyte}: {m.population} ({m.assay}{n})")
        y += 1
    y += 0.5
    group_y = []
    for g in a.groups:
        ax.plot([g.low, g.high], [y, y], color="darkorange", lw=5, solid_capstyle="butt")
        ax.plot(g.median, y, "o", color="white", mec="darkorange", mew=2, ms=8)
        if g.published_median is not None:
            ax.plot(g.published_median, y, "D", color="crimson", ms=6)
        labels.append(f"{g.label} ({a.study_id}{', ' + a.assay if a.assay else ''})")
        group_y.append(y)
        y += 1
    ticks = list(range(len(refs))) + group_y
    ax.set_yticks(ticks, [textwrap.fill(t, 40) for t in labels], fontsize=7.5)
    ax.invert_yaxis()
    ax.set_xscale("log")
    top = a.top_range or a.top_any
    ax.axvline(top.value.upper, color="k", ls="--", lw=1)
    for g, gy in zip(a.groups, group_y):
        f = a.fold(g.group, top.id)
        ax.annotate(f"{fmt(f.fold_median)}x dashed line", (g.high, gy), xytext=(8, 0), textcoords="offset points",
                    va="center", fontsize=7.5)
    lows = [m.value.low if m.value.kind == "range" else m.value.mean if m.value.kind == "mean_sd" else m.value.max for m in refs]
    lo = min(lows + [g.low for g in a.groups])
    hi = max(max(m.value.upper for m in refs), max(g.high for g in a.groups))
    ax.set_xlim(lo / 3, hi * 60)
    ax.set_xlabel(f"concentration ({a.units}, log scale)")
    ax.plot([], [], color="dimgray", lw=5, label="reference: range, or mean (dot) to mean + 2 SD")
    ax.plot([], [], "^", color="dimgray", label="reference: highest value reported")
    ax.plot([], [], color="darkorange", lw=5, label="this study: population median, 95% interval")
    ax.plot([], [], "D", color="crimson", label="this study: published sample median")
    ax.plot([], [], color="k", ls="--", lw=1, label=f"largest upper end of reference ranges ({fmt(top.value.upper)} {a.units})")
    plain_log_ticks(ax.xaxis)
    ax.tick_params(axis="x", labelsize=7.5)
    ax.xaxis.label.set_fontsize(8)
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False)
    # over the whole figure: over the axes alone, the title ran past the figure's right edge
    fig.suptitle(textwrap.fill(f"Measurement plausibility: {a.analyte} ({a.study_id}) against reference values: {a.reference.title}", 80),
                 fontsize=9)
    fig.tight_layout()
    return fig

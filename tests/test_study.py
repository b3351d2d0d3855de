"""Tests for models.study: the real study file, every validation rule, and the generic schema.

Every invalid-file test checks the whole contract of :class:`StudyError`: the message is ONE
line, starts with the file path, then names the field (``<file>: <field path>: ...``), then
says what is wrong.
"""
from __future__ import annotations

import copy
import hashlib
import math
import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from models.study import Number, Study, StudyError, load_study

_MISSING = object()


# --- helpers -------------------------------------------------------------------------------
@pytest.fixture
def base(study_path) -> dict:
    """A fresh, mutable copy of the real study file as plain YAML data."""
    return yaml.safe_load(study_path.read_text(encoding="utf-8"))


def _pub(value, source="abstract"):
    return {"value": value, "status": "published", "source": source}


def _edit(data: dict, dotted: str, value=_MISSING) -> None:
    """Set (or, without ``value``, delete) the entry at a dotted path like 'groups.ms.n'."""
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is _MISSING:
        del node[last]
    else:
        node[last] = copy.deepcopy(value)


def variant(write_study, base: dict, edits: dict, name: str = "variant.yaml") -> Path:
    """Write a copy of the real study with ``edits`` ({dotted path: value or _MISSING})."""
    data = copy.deepcopy(base)
    for dotted, value in edits.items():
        _edit(data, dotted, value)
    return write_study(data, name)


def assert_study_error(path: Path, field: str | None, phrase: str) -> str:
    """``load_study(path)`` raises a one-line StudyError "<path>: <field>: <phrase ...>"."""
    with pytest.raises(StudyError) as info:
        load_study(path)
    msg = str(info.value)
    assert "\n" not in msg and "\r" not in msg, f"message is not one line: {msg!r}"
    prefix = f"{path}: "
    assert msg.startswith(prefix), f"message does not start with the file path: {msg!r}"
    rest = msg[len(prefix):]
    if field is not None:
        assert rest.startswith(f"{field}: "), f"message does not name field {field!r}: {msg!r}"
        rest = rest[len(field) + 2:]
    assert re.search(phrase, rest), f"message does not say {phrase!r}: {msg!r}"
    return msg


def _walk(obj):
    """Yield every pydantic model nested anywhere inside ``obj`` (itself included)."""
    if isinstance(obj, BaseModel):
        yield obj
        for name in type(obj).model_fields:
            yield from _walk(getattr(obj, name))
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _walk(v)


# --- the real study file -------------------------------------------------------------------
def test_real_study_groups_and_counts(study_path):
    study = load_study(study_path)
    assert isinstance(study, Study)
    assert study.id == "lasemi2018"
    assert study.group_ids == ["control", "ms"]
    assert study.n("control") == 29
    assert study.n("ms") == 45
    assert study.path == study_path


def test_real_study_reported_statistics(study_path):
    study = load_study(study_path)
    assert study.reported("ms") == {"mean": 235, "sd": 100, "median": 196}
    assert list(study.reported("ms")) == ["mean", "sd", "median"]  # canonical order
    assert study.reported("control") == {"mean": 812, "sd": 154, "median": 866}


def test_real_study_sha256(study_path):
    study = load_study(study_path)
    assert re.fullmatch(r"[0-9a-f]{64}", study.sha256)
    assert study.sha256 == hashlib.sha256(study_path.read_bytes()).hexdigest()


def test_real_study_every_published_number_has_a_source(study_path):
    study = load_study(study_path)
    numbers = 0
    for model in _walk(study):
        if isinstance(model, Number):
            numbers += 1
            assert math.isfinite(model.value)
        status = getattr(model, "status", None)
        if status == "published":
            assert model.source, f"published without a source: {model!r}"
            assert model.source in study.sources, f"unknown source: {model!r}"
        elif status == "assumption":
            assert model.reason, f"assumption without a reason: {model!r}"
    # 2 groups: n + 2 sex counts + 3 statistics; ms also has 3 subtype counts
    assert numbers == 15


def test_unmodified_round_trip_loads(write_study, base):
    """The variants below differ from a valid file only by their one edit."""
    study = load_study(variant(write_study, base, {}))
    assert study.group_ids == ["control", "ms"]
    assert study.reported("ms") == {"mean": 235, "sd": 100, "median": 196}


# --- one test per validation rule ----------------------------------------------------------
def test_wrong_type_n_is_a_word(write_study, base):
    path = variant(write_study, base, {"groups.ms.n.value": "forty"})
    assert_study_error(path, "groups.ms.n.value", "valid number")


@pytest.mark.parametrize(
    "edits, field, phrase",
    [
        ({"groups.ms.counts.sex.female.value": 30}, "groups.ms.counts.sex", r"add up to 44, but n is 45"),
        ({"groups.control.counts.sex.male.value": 11}, "groups.control.counts.sex", r"add up to 30, but n is 29"),
        ({"groups.ms.counts.subtype.primary_progressive.value": 2}, "groups.ms.counts.subtype", r"add up to 46, but n is 45"),
    ],
    ids=["ms-sex", "control-sex", "ms-subtype"],
)
def test_counts_must_add_up_to_n(write_study, base, edits, field, phrase):
    assert_study_error(variant(write_study, base, edits), field, phrase)


@pytest.mark.parametrize("sd", [0, -100], ids=["zero", "negative"])
def test_sd_must_be_positive(write_study, base, sd):
    path = variant(write_study, base, {"groups.ms.statistics.sd.value": sd})
    assert_study_error(path, "groups.ms.statistics.sd", rf"must be > 0 \(got {sd}\)")


@pytest.mark.parametrize(
    "extra, lo, hi",
    [
        ({"q1": 200, "q3": 300}, "q1", "median"),  # q1 > median (196)
        ({"q1": 100, "q3": 150}, "median", "q3"),  # median > q3
        ({"min": 200, "max": 500}, "min", "median"),  # min > median
        ({"min": 10, "max": 150}, "median", "max"),  # median > max
        ({"min": 120, "q1": 110, "q3": 300, "max": 500}, "min", "q1"),  # min > q1
    ],
    ids=["q1>median", "median>q3", "min>median", "median>max", "min>q1"],
)
def test_order_statistics_must_be_ordered(write_study, base, extra, lo, hi):
    edits = {f"groups.ms.statistics.{k}": _pub(v) for k, v in extra.items()}
    path = variant(write_study, base, edits)
    assert_study_error(path, "groups.ms.statistics", rf"{lo} \([\d.]+\) must not exceed {hi} \([\d.]+\)")


@pytest.mark.parametrize(
    "mean, lo, hi",
    [(235, 10, 200), (5, 10, 500)],  # mean above max; mean below min
    ids=["above-max", "below-min"],
)
def test_mean_must_lie_within_min_max(write_study, base, mean, lo, hi):
    edits = {
        "groups.ms.statistics.mean.value": mean,
        "groups.ms.statistics.min": _pub(lo),
        "groups.ms.statistics.max": _pub(hi),
    }
    path = variant(write_study, base, edits)
    assert_study_error(path, "groups.ms.statistics.mean", rf"{mean} lies outside min-max")


@pytest.mark.parametrize(
    "edits, field",
    [
        ({"journal": "Wien Klin Wochenschr"}, "journal"),
        ({"sha256": "0" * 64}, "sha256"),  # filled in by load_study, never read from the file
        ({"groups.ms.age": 40}, "groups.ms.age"),
        ({"groups.ms.statistics.sd.units": "ng/ml"}, "groups.ms.statistics.sd.units"),
        ({"groups.ms.n.valeu": 45}, "groups.ms.n.valeu"),
        ({"sources.abstract.pages": "307-313"}, "sources.abstract.pages"),
    ],
    ids=["top-level", "reserved-sha256", "in-group", "in-number", "in-count", "in-source"],
)
def test_unknown_keys_are_rejected(write_study, base, edits, field):
    assert_study_error(variant(write_study, base, edits), field, r"unknown key")


def test_unknown_statistic_name_is_rejected(write_study, base):
    """A misspelt statistic (e.g. 'SD') is an unknown key inside 'statistics'."""
    stats = base["groups"]["ms"]["statistics"]
    stats["SD"] = stats.pop("sd")
    path = variant(write_study, base, {})
    assert_study_error(path, "groups.ms.statistics.SD", r"unknown key|must be 'mean'")


@pytest.mark.parametrize(
    "dotted, field, phrase",
    [
        ("groups.ms.statistics.sd.source", "groups.ms.statistics.sd", r"published number needs a 'source'"),
        ("groups.ms.n.source", "groups.ms.n", r"published number needs a 'source'"),
        ("groups.ms.counts.sex.female.source", "groups.ms.counts.sex.female", r"published number needs a 'source'"),
        ("comparisons.control_vs_ms.claims.p_value.source", "comparisons.control_vs_ms.claims.p_value", r"published claim needs a 'source'"),
        ("associations.age.source", "associations.age", r"published claim needs a 'source'"),
    ],
    ids=["statistic", "n", "count", "claim", "association"],
)
def test_published_number_needs_a_source(write_study, base, dotted, field, phrase):
    assert_study_error(variant(write_study, base, {dotted: _MISSING}), field, phrase)


@pytest.mark.parametrize(
    "dotted",
    [
        "groups.ms.statistics.sd.source",
        "groups.control.n.source",
        "groups.ms.counts.subtype.relapsing_remitting.source",
        "comparisons.control_vs_ms.claims.fold.source",
        "associations.sex.source",
        "analyte.source",
    ],
    ids=["statistic", "n", "count", "claim", "association", "analyte"],
)
def test_source_must_be_a_key_of_sources(write_study, base, dotted):
    path = variant(write_study, base, {dotted: "pubmed"})
    assert_study_error(path, dotted, r"'pubmed' is not a key of 'sources'")


def test_assumption_number_needs_a_reason(write_study, base):
    path = variant(write_study, base, {"groups.ms.statistics.sd": {"value": 100, "status": "assumption"}})
    assert_study_error(path, "groups.ms.statistics.sd", r"assumption needs a one-line 'reason'")


def test_declared_assumption_needs_a_reason(write_study, base):
    path = variant(write_study, base, {"assumptions.rounding.reason": _MISSING})
    assert_study_error(path, "assumptions.rounding.reason", r"required field is missing")


@pytest.mark.parametrize(
    "dotted",
    ["title", "groups.ms.n", "sources", "analyte.units", "groups.control.label", "groups.ms.statistics.sd.status"],
)
def test_missing_required_field(write_study, base, dotted):
    assert_study_error(variant(write_study, base, {dotted: _MISSING}), dotted, r"required field is missing")


@pytest.mark.parametrize(
    "dotted, value",
    [
        ("groups.ms.n.value", 45.5),
        ("groups.ms.n.value", 0),
        ("groups.ms.counts.sex.male.value", 13.5),
    ],
    ids=["n-fraction", "n-zero", "count-fraction"],
)
def test_counts_must_be_whole_numbers(write_study, base, dotted, value):
    path = variant(write_study, base, {dotted: value})
    assert_study_error(path, dotted, rf"must be a whole number >= 1 \(got {value:g}\)")


def test_comparison_must_name_known_groups(write_study, base):
    path = variant(write_study, base, {"comparisons.control_vs_ms.groups": ["control", "rrms"]})
    assert_study_error(path, "comparisons.control_vs_ms.groups", r"'rrms' is not a group of this study")


@pytest.mark.parametrize(
    "dotted, value, yaml_text",
    [
        ("groups.ms.statistics.sd.value", math.nan, ".nan"),
        ("groups.ms.statistics.mean.value", math.inf, ".inf"),
        ("groups.ms.statistics.median.value", -math.inf, "-.inf"),
        ("groups.ms.n.value", math.inf, ".inf"),
    ],
    ids=["sd-nan", "mean-inf", "median-minus-inf", "n-inf"],
)
def test_values_must_be_finite(write_study, base, dotted, value, yaml_text):
    path = variant(write_study, base, {dotted: value})
    assert f"value: {yaml_text}" in path.read_text()  # really written as YAML .nan / .inf
    assert_study_error(path, dotted, r"must be a finite number")


def test_statistic_must_be_numeric(write_study, base):
    path = variant(write_study, base, {"groups.ms.statistics.sd.value": "about 100"})
    assert_study_error(path, "groups.ms.statistics.sd.value", r"valid number")


# --- unreadable files ----------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"], ids=["empty", "blank", "comment"])
def test_empty_file(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text, encoding="utf-8")
    assert_study_error(path, None, r"the file is empty")


@pytest.mark.parametrize(
    "text, kind",
    [("- id: x\n- title: y\n", "list"), ("just a sentence\n", "str"), ("42\n", "int")],
    ids=["list", "string", "number"],
)
def test_top_level_must_be_a_mapping(tmp_path, text, kind):
    path = tmp_path / "notmap.yaml"
    path.write_text(text, encoding="utf-8")
    assert_study_error(path, None, rf"top level must be a mapping.*not a {kind}$")


def test_yaml_syntax_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("id: x\ntitle: [unclosed\n", encoding="utf-8")
    assert_study_error(path, None, r"^YAML syntax error at line \d+, column \d+: \S")


def test_missing_file(tmp_path):
    path = tmp_path / "no_such_study.yaml"
    assert_study_error(path, None, r"cannot read the study file \(No such file or directory\)")


def test_non_utf8_file(study_path, tmp_path):
    path = tmp_path / "latin1.yaml"
    # the real file plus one Latin-1 comment line (b"\xfc" is not valid UTF-8)
    path.write_bytes(study_path.read_bytes() + "# Wochenschrift für ...\n".encode("latin-1"))
    assert_study_error(path, None, r"not a UTF-8 text file")


@pytest.mark.parametrize("where", ["top", "nested"])
def test_unsafe_yaml_tag_is_rejected_and_not_executed(study_path, tmp_path, where):
    marker = tmp_path / "pwned"
    tag = f'!!python/object/apply:os.system ["touch {marker}"]'
    if where == "top":
        text = tag + "\n"
    else:
        text = study_path.read_text(encoding="utf-8").replace(
            "title: Vitamin K2 in multiple sclerosis patients", f"title: {tag}"
        )
        assert tag in text
    path = tmp_path / "unsafe.yaml"
    path.write_text(text, encoding="utf-8")
    assert_study_error(path, None, r"python/object/apply:os\.system")
    assert not marker.exists(), "loading the study file executed a command"


# --- the schema is generic -----------------------------------------------------------------
def _minimal(groups: dict) -> dict:
    return {
        "id": "generic_1",
        "title": "A generic study",
        "citation": "Someone et al. 2020",
        "sources": {"paper": {"citation": "Someone et al. 2020, table 1"}},
        "analyte": {"name": "marker", "units": "mg/l"},
        "groups": groups,
    }


def test_single_group_with_median_and_quartiles_loads(write_study):
    stats = {k: _pub(v, "paper") for k, v in {"q1": 4, "median": 7, "q3": 11}.items()}
    study = load_study(write_study(_minimal({"all": {"label": "All", "n": _pub(12, "paper"), "statistics": stats}})))
    assert study.group_ids == ["all"]
    assert study.n("all") == 12
    assert study.reported("all") == {"median": 7, "q1": 4, "q3": 11}
    assert study.comparisons == {} and study.assumptions == {}


def test_single_group_with_median_and_range_loads(write_study):
    stats = {k: _pub(v, "paper") for k, v in {"median": 7, "min": 1.5, "max": 30}.items()}
    study = load_study(write_study(_minimal({"all": {"label": "All", "n": _pub(12, "paper"), "statistics": stats}})))
    assert study.reported("all") == {"median": 7, "min": 1.5, "max": 30}


def test_three_group_study_loads(write_study):
    def group(label, n, mean, sd):
        return {
            "label": label,
            "n": _pub(n, "paper"),
            "statistics": {"mean": _pub(mean, "paper"), "sd": _pub(sd, "paper")},
        }

    data = _minimal({"a": group("A", 10, 5, 1), "b": group("B", 12, 6, 2), "c": group("C", 8, 7, 1.5)})
    data["comparisons"] = {
        "a_vs_c": {
            "groups": ["a", "c"],
            "claims": {"p": {"statistic": "p_value", "relation": "<", "value": 0.05, "source": "paper"}},
        }
    }
    study = load_study(write_study(data))
    assert study.group_ids == ["a", "b", "c"]
    assert [study.n(g) for g in study.group_ids] == [10, 12, 8]
    assert study.reported("c") == {"mean": 7, "sd": 1.5}
    assert study.comparisons["a_vs_c"].groups == ("a", "c")

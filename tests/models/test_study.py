"""Tests for models.study: the real study file, every validation rule, and the generic schema.

Every invalid-file test checks the whole contract of :class:`StudyError`: the message is ONE
line, starts with the file path, then names the field (``<file>: <field path>: ...``), then
says what is wrong.
"""
from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from models.study import Number, Study, load_study
from tests.studyfiles import MISSING, assert_study_error, edit, variant



# --- helpers -------------------------------------------------------------------------------
def _pub(value, source="abstract"):
    return {"value": value, "status": "published", "source": source}


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
    assert_study_error(variant(write_study, base, {dotted: MISSING}), field, phrase)


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
    path = variant(write_study, base, {"assumptions.rounding.reason": MISSING})
    assert_study_error(path, "assumptions.rounding.reason", r"required field is missing")


@pytest.mark.parametrize(
    "dotted",
    ["title", "groups.ms.n", "sources", "analyte.units", "groups.control.label", "groups.ms.statistics.sd.status"],
)
def test_missing_required_field(write_study, base, dotted):
    assert_study_error(variant(write_study, base, {dotted: MISSING}), dotted, r"required field is missing")


@pytest.mark.parametrize(
    "dotted, value, minimum",
    [
        ("groups.ms.n.value", 45.5, 1),
        ("groups.ms.n.value", 0, 1),  # a group has at least one subject
        ("groups.ms.n.value", -3, 1),
        ("groups.ms.counts.sex.male.value", 13.5, 0),  # a breakdown level may be 0
        ("groups.ms.counts.subtype.primary_progressive.value", -1, 0),
    ],
    ids=["n-fraction", "n-zero", "n-negative", "count-fraction", "count-negative"],
)
def test_counts_must_be_whole_numbers(write_study, base, dotted, value, minimum):
    path = variant(write_study, base, {dotted: value})
    assert_study_error(path, dotted, rf"^must be a whole number >= {minimum} \(got {value:g}\)$")


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
    [("- id: x\n- title: y\n", "a list"), ("just a sentence\n", "a string"), ("42\n", "a number"), ("4.5\n", "a number")],
    ids=["list", "string", "number", "float"],
)
def test_top_level_must_be_a_mapping(tmp_path, text, kind):
    path = tmp_path / "notmap.yaml"
    path.write_text(text, encoding="utf-8")
    assert_study_error(path, None, rf"^the top level must be a mapping of fields \(id, title, groups, \.\.\.\), not {kind}$")


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


# --- exact messages: unknown statistic, strict numbers, wording ----------------------------
def _exact_error(path: Path, expected: str) -> None:
    """``load_study(path)`` raises exactly ``"<path>: <expected>"`` (one line)."""
    msg = assert_study_error(path, None, r"")
    assert msg == f"{path}: {expected}"


def test_unknown_statistic_message_is_exact(write_study, base):
    stats = base["groups"]["ms"]["statistics"]
    stats["SD"] = stats.pop("sd")
    path = variant(write_study, base, {})
    _exact_error(
        path,
        "groups.ms.statistics.SD: unknown key (not a statistic; use one of mean, sd, sem, median, q1, q3, iqr, p5, p10, p90, p95, min, max, mean_ci_low, mean_ci_high, gmean, gmean_ci_low, gmean_ci_high) (did you mean 'sd'?)",
    )


def test_non_string_key_is_named_without_key_marker(write_study, base):
    levels = base["groups"]["ms"]["counts"]["sex"]
    levels[1] = levels.pop("male")  # YAML writes the key as the integer 1
    path = variant(write_study, base, {})
    _exact_error(path, "groups.ms.counts.sex.1: a key must be a string, not a number (put it in quotes)")


@pytest.mark.parametrize(
    "dotted, value, expected",
    [
        ("groups.ms.n.value", "45", "must be a valid number, not a string (write it without quotes)"),
        ("groups.ms.n.value", True, "must be a valid number, not a boolean (true/false)"),
        ("groups.ms.statistics.sd.value", "100", "must be a valid number, not a string (write it without quotes)"),
        ("groups.ms.statistics.sd.value", False, "must be a valid number, not a boolean (true/false)"),
        ("groups.ms.statistics.mean.value", None, "must be a valid number, not null (an empty value)"),
        ("groups.ms.statistics.mean.value", [235], "must be a valid number, not a list"),
        ("groups.ms.counts.sex.male.value", "14", "must be a valid number, not a string (write it without quotes)"),
        ("groups.ms.counts.sex.male.value", True, "must be a valid number, not a boolean (true/false)"),
        ("groups.ms.statistics.sd.value", "about 100", "must be a valid number, not a string"),
        ("comparisons.control_vs_ms.claims.p_value.value", "0.001", "must be a valid number, not a string (write it without quotes)"),
        ("comparisons.control_vs_ms.claims.fold.value", True, "must be a valid number, not a boolean (true/false)"),
        ("associations.sex.significant", "yes", "must be true or false, not a string"),
        ("associations.sex.significant", 1, "must be true or false, not a number"),
    ],
    ids=[
        "n-string", "n-bool", "sd-string", "sd-bool", "mean-null", "mean-list", "count-string",
        "count-bool", "sd-words", "claim-string", "claim-bool", "significant-string", "significant-int",
    ],
)
def test_numbers_are_strict(write_study, base, dotted, value, expected):
    """Quoted numbers and booleans are errors naming the field, never silently converted."""
    path = variant(write_study, base, {dotted: value})
    node = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key in dotted.split("."):
        node = node[key]
    assert node == value and type(node) is type(value)  # really written as a YAML string/bool
    _exact_error(path, f"{dotted}: {expected}")


def test_int_and_float_values_still_load(write_study, base):
    path = variant(write_study, base, {"groups.ms.statistics.sd.value": 100.5, "groups.ms.n.value": 45})
    study = load_study(path)
    assert study.reported("ms")["sd"] == 100.5 and isinstance(study.reported("ms")["sd"], float)
    assert study.n("ms") == 45


@pytest.mark.parametrize(
    "dotted, value, expected",
    [
        ("groups.ms", [1, 2], "groups.ms: must be a mapping of fields, not a list"),
        ("groups.ms.n", 45, "groups.ms.n: must be a mapping of fields, not a number"),
        ("analyte", "vitamin K2", "analyte: must be a mapping of fields, not a string"),
        ("sources", ["abstract"], "sources: must be a mapping, not a list"),
        ("groups.ms.counts.sex", "31 female", "groups.ms.counts.sex: must be a mapping, not a string"),
        ("title", 2018, "title: must be a string, not a number (put it in quotes)"),
        ("comparisons.control_vs_ms.groups", "control", "comparisons.control_vs_ms.groups: must be a list, not a string"),
        ("title", "", "title: must not be empty"),
    ],
    ids=["group-list", "n-number", "analyte-string", "sources-list", "counts-string", "title-number", "groups-string", "title-empty"],
)
def test_type_errors_use_plain_type_names(write_study, base, dotted, value, expected):
    path = variant(write_study, base, {dotted: value})
    msg = assert_study_error(path, None, r"")
    assert msg == f"{path}: {expected}"
    rest = msg[len(f"{path}: "):]
    assert not re.search(r"\b(int|str|float|dict|NoneType)\b|\ba [aeiouAEIOU]", rest), rest  # no Python names, no "a int"


# --- counts of zero ------------------------------------------------------------------------
def test_breakdown_level_of_zero_loads(write_study, base):
    path = variant(
        write_study,
        base,
        {
            "groups.ms.counts.subtype.primary_progressive.value": 0,
            "groups.ms.counts.subtype.relapsing_remitting.value": 40,
        },
    )
    study = load_study(path)
    levels = study.groups["ms"].counts["subtype"]
    assert levels["primary_progressive"].value == 0
    assert sum(c.value for c in levels.values()) == study.n("ms") == 45


def test_breakdown_with_zero_must_still_add_up_to_n(write_study, base):
    path = variant(write_study, base, {"groups.ms.counts.subtype.primary_progressive.value": 0})
    _exact_error(path, "groups.ms.counts.subtype: the counts add up to 44, but n is 45")


def test_group_size_zero_is_rejected_even_with_zero_counts(write_study, base):
    data = _minimal({"all": {"label": "All", "n": _pub(0, "paper"), "statistics": {"mean": _pub(3, "paper")}}})
    data["groups"]["all"]["counts"] = {"sex": {"female": _pub(0, "paper"), "male": _pub(0, "paper")}}
    path = write_study(data)
    _exact_error(path, "groups.all.n.value: must be a whole number >= 1 (got 0)")


# --- model-level rules report clean dotted paths -------------------------------------------
@pytest.mark.parametrize(
    "edits, expected",
    [
        ({"groups.ms.statistics.sd.value": -1}, "groups.ms.statistics.sd: must be > 0 (got -1)"),
        ({"groups.ms.statistics.median.value": -2}, "groups.ms.statistics.median: must be > 0 for a positive measurement (got -2)"),
        ({"groups.ms.statistics": {}}, "groups.ms.statistics: a group must report at least one statistic"),
        ({"groups.ms.counts.sex-at-birth": {"female": _pub(1)}}, "groups.ms.counts.sex-at-birth: the counts add up to 1, but n is 45"),
        ({"groups.ms.counts.sex at birth": {"female": _pub(1)}}, "groups.ms.counts.sex at birth: the counts add up to 1, but n is 45"),
        ({"groups": {}}, "groups: a study needs at least one group"),
        ({"comparisons.control_vs_ms.groups": ["ms", "ms"]}, "comparisons.control_vs_ms.groups: compare two different groups"),
        ({"groups.ms.n.source": "pubmed"}, "groups.ms.n.source: 'pubmed' is not a key of 'sources' (known: abstract, news, overcomingms)"),
        ({"groups.ms.n.status": "guess"}, "groups.ms.n.status: must be 'published' or 'assumption'"),
    ],
    ids=["sd", "median", "no-statistics", "hyphen-breakdown", "space-breakdown", "no-groups", "same-groups", "source", "literal"],
)
def test_rule_errors_have_clean_dotted_paths(write_study, base, edits, expected):
    path = variant(write_study, base, edits)
    msg = assert_study_error(path, None, r"")
    assert msg == f"{path}: {expected}"
    assert "[key]" not in msg and ".." not in msg and ": :" not in msg


def test_rule_errors_read_well_without_load_study(base):
    """Validating directly (no load_study) still gives "<relative field>: <text>" messages."""
    base["groups"]["ms"]["counts"]["sex"]["female"]["value"] = 30
    with pytest.raises(ValidationError) as info:
        Study.model_validate(base)
    (err,) = info.value.errors()
    assert err["loc"] == ("groups", "ms")
    assert err["msg"] == "counts.sex: the counts add up to 44, but n is 45"


# --- YAML: duplicate keys and tags ---------------------------------------------------------
def _line_of(text: str, needle: str) -> int:
    """1-based number of the only line containing ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def test_duplicate_key_is_rejected(study_path, tmp_path):
    text = study_path.read_text(encoding="utf-8")
    sd_line = "      sd: {value: 100, status: published, source: abstract"
    first = _line_of(text, sd_line)
    lines = text.splitlines(keepends=True)
    lines.insert(first, "      sd: {value: 99, status: published, source: abstract}\n")  # right after
    path = tmp_path / "dup.yaml"
    path.write_text("".join(lines), encoding="utf-8")
    _exact_error(path, f"duplicate key 'sd' at line {first + 1} (first given at line {first}; keep only one)")


def test_duplicate_top_level_key_is_rejected(study_path, tmp_path):
    text = study_path.read_text(encoding="utf-8")
    path = tmp_path / "dup.yaml"
    path.write_text(text + "id: lasemi2018b\n", encoding="utf-8")
    last = len(text.splitlines()) + 1
    _exact_error(path, f"duplicate key 'id' at line {last} (first given at line {_line_of(text, 'id: lasemi2018')}; keep only one)")


def test_duplicate_key_in_flow_mapping_is_rejected(study_path, tmp_path):
    text = study_path.read_text(encoding="utf-8")
    old = "n: {value: 45, status: published"
    line = _line_of(text, old)
    path = tmp_path / "dup.yaml"
    path.write_text(text.replace(old, "n: {value: 45, value: 46, status: published"), encoding="utf-8")
    _exact_error(path, f"duplicate key 'value' at line {line} (first given at line {line}; keep only one)")


def test_merge_keys_may_be_overridden(study_path, tmp_path):
    """'<<: *anchor' is not a duplicate: explicit keys override merged ones, as in YAML."""
    text = study_path.read_text(encoding="utf-8")
    text = text.replace(
        "n: {value: 29, status: published, source: abstract, where: participants}",
        "n: &n_ctl {value: 29, status: published, source: abstract, where: participants}",
    ).replace(
        "n: {value: 45, status: published, source: abstract, where: participants}",
        "n: {<<: *n_ctl, value: 45}",
    )
    assert "<<: *n_ctl" in text
    path = tmp_path / "merge.yaml"
    path.write_text(text, encoding="utf-8")
    study = load_study(path)
    assert study.n("control") == 29 and study.n("ms") == 45
    assert study.groups["ms"].n.source == "abstract"


@pytest.mark.parametrize("where", ["top", "nested"])
def test_unsafe_yaml_tag_message_is_exact(study_path, tmp_path, where):
    marker = tmp_path / "pwned"
    tag = f'!!python/object/apply:os.system ["touch {marker}"]'
    if where == "top":
        text, line = tag + "\n", 1
    else:
        original = study_path.read_text(encoding="utf-8")
        line = _line_of(original, "title: Vitamin K2 in multiple sclerosis patients")
        text = original.replace("title: Vitamin K2 in multiple sclerosis patients", f"title: {tag}")
    path = tmp_path / "unsafe.yaml"
    path.write_text(text, encoding="utf-8")
    _exact_error(
        path,
        f"unsupported YAML tag '!!python/object/apply:os.system' at line {line} (study files hold plain data only)",
    )
    assert not marker.exists()


@pytest.mark.parametrize(
    "value, tag",
    [("!!python/name:os.system ''", "!!python/name:os.system"), ("!custom 3", "!custom")],
    ids=["python-name", "local-tag"],
)
def test_other_unknown_tags_are_rejected(study_path, tmp_path, value, tag):
    original = study_path.read_text(encoding="utf-8")
    line = _line_of(original, "design: >-")
    path = tmp_path / "tag.yaml"
    path.write_text(original.replace("design: >-", f"design: {value}\nignored: >-"), encoding="utf-8")
    _exact_error(path, f"unsupported YAML tag '{tag}' at line {line} (study files hold plain data only)")


@pytest.mark.parametrize("value", ["!!int abc", "!!float abc", "!!timestamp yesterday"])
def test_bad_value_for_standard_tag_is_a_study_error(study_path, tmp_path, value):
    original = study_path.read_text(encoding="utf-8")
    line = _line_of(original, "doi: 10.1007")
    text = re.sub(r"doi: \S+", f"doi: {value}", original)
    path = tmp_path / "badtag.yaml"
    path.write_text(text, encoding="utf-8")
    tag, literal = value.split(" ")
    _exact_error(
        path, f"unsupported YAML at line {line}: '{literal}' is not a valid {tag} (study files hold plain data only)"
    )


def test_yaml_syntax_error_is_still_a_syntax_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("id: x\n  title: y\n", encoding="utf-8")
    assert_study_error(path, None, r"^YAML syntax error at line 2, column \d+: \S")


# --- exact values at their printed precision ---------------------------------------------------
def _exact(write_study, base, **claim):
    c = {"statistic": "p_value", "relation": "=", "status": "published", "source": "news", **claim}
    base["comparisons"]["control_vs_ms"]["claims"]["p_value"] = c
    return write_study(base)


@pytest.mark.parametrize(
    "value, printed, interval",
    [
        (0.02, None, (0.015, 0.025)),  # YAML's 0.02: two decimals
        (0.02, "0.020", (0.0195, 0.0205)),  # trailing zero kept by 'printed'
        (0.0004, None, (0.00035, 0.00045)),
        (0, "0.000", (0.0, 0.0005)),  # p shown as 0.000 means p < 0.0005
        (1.5e-05, None, (1.45e-05, 1.55e-05)),
    ],
)
def test_exact_value_reads_as_its_printed_interval(write_study, base, value, printed, interval):
    kw = {"value": value} if printed is None else {"value": value, "printed": printed}
    claim = load_study(_exact(write_study, base, **kw)).comparisons["control_vs_ms"].claims["p_value"]
    assert claim.printed_interval == pytest.approx(interval, abs=1e-15)


def test_thresholds_have_no_printed_interval(study_path):
    assert load_study(study_path).comparisons["control_vs_ms"].claims["p_value"].printed_interval is None


@pytest.mark.parametrize(
    "claim, phrase",
    [
        ({"value": 0}, r"an exact value of 0 needs 'printed'"),
        ({"value": 0.02, "printed": "0.030"}, r"printed: '0.030' does not read as the value 0.02"),
        ({"value": 0.02, "printed": "2e-2"}, r"is not a plain decimal"),
        ({"value": 0.02, "printed": 0.02}, r"^printed: must be a string, not a number \(put it in quotes\)"),
        ({"value": 0.001, "relation": "<", "printed": "0.001"}, r"'printed' belongs to an exact value"),
    ],
    ids=["zero-without-digits", "mismatch", "exponent", "unquoted", "threshold"],
)
def test_printed_errors(write_study, base, claim, phrase):
    # a wrong type names the field itself ("...p_value.printed: must be ..."), hence the prefix
    msg = assert_study_error(_exact(write_study, base, **claim), None, "")
    rest = msg.split("comparisons.control_vs_ms.claims.p_value", 1)[1]
    assert re.search(phrase, rest.lstrip(".:").lstrip()), msg


def test_sided_needs_a_significance_claim(write_study, base):
    path = variant(write_study, base, {"associations.attacks.sided": "one"})
    assert_study_error(path, "associations.attacks", "'sided' reads the level of a significance claim")
    path = variant(write_study, base, {"associations.sex.sided": "both"})
    assert_study_error(path, "associations.sex.sided", "")


# --- assumptions the toolkit reads, assumptions nothing reads, claims read from assumptions ---
@pytest.mark.parametrize(
    "edits, field, phrase",
    [
        ({"assumptions.quantile_method.value": 10}, "assumptions.quantile_method.value", r"Hyndman-Fan sample quantile type 1-9.*SPSS"),
        ({"assumptions.quantile_method.value": 6.5}, "assumptions.quantile_method.value", r"type 1-9"),
        ({"assumptions.group_test.value": "mann_whitnee"}, "assumptions.group_test.value", r"unknown group test .*did you mean 'mann_whitney'"),
        ({"assumptions.group_test.vary": ["welch"]}, "assumptions.group_test.vary.0", r"unknown group test 'welch'.*did you mean 'welch_t'"),
        ({"assumptions.rounding.value": -1}, "assumptions.rounding.value", r"number >= 0"),
        ({"assumptions.reference_level.value": 0}, "assumptions.reference_level.value", r"number > 0"),
    ],
)
def test_toolkit_assumptions_are_checked_when_the_file_is_loaded(write_study, base, edits, field, phrase):
    """A value the toolkit cannot use is a one-line error at load, never a traceback after sampling."""
    assert_study_error(variant(write_study, base, edits), field, phrase)


def test_every_supported_quantile_type_loads(write_study, base):
    for t in range(1, 10):
        assert load_study(variant(write_study, base, {"assumptions.quantile_method.value": t})).assumption("quantile_method") == t


def test_an_assumption_nothing_reads_is_an_error(write_study, base):
    base["assumptions"]["reference_levl"] = {"value": 300, "reason": "typo of a toolkit assumption"}
    assert_study_error(variant(write_study, base, {}), "assumptions.reference_levl", r"no field .* reads it.*did you mean 'reference_level'")
    edits = {"associations.age.tolerance": MISSING}
    assert_study_error(variant(write_study, base, edits, "b.yaml"), "assumptions.age_claim_tolerance", r"no field of the study file reads it")


def test_claim_statistic_read_from_an_assumption(write_study, base):
    """``statistic_from`` takes the claim's statistic from an assumption, so a sensitivity
    run that sets the assumption changes which ratio the claim is (and re-validation of a
    dumped study keeps following the assumption)."""
    from reanalysis.sensitivity import apply_overrides

    st = load_study(variant(write_study, base, {}))
    fold = st.comparisons["control_vs_ms"].claims["fold"]
    assert (fold.statistic_from, fold.statistic) == ("fold_statistic", st.assumption("fold_statistic"))
    other = apply_overrides(st, "all", {"fold_statistic": "ratio_of_medians"})
    assert other.comparisons["control_vs_ms"].claims["fold"].statistic == "ratio_of_medians"


@pytest.mark.parametrize(
    "edits, field, phrase",
    [
        ({"comparisons.control_vs_ms.claims.fold.statistic": "ratio_of_means"}, "comparisons.control_vs_ms.claims.fold.statistic", r"not both"),
        ({"comparisons.control_vs_ms.claims.fold.statistic_from": "fold_stat"}, "comparisons.control_vs_ms.claims.fold.statistic_from", r"'fold_stat' is not a key of 'assumptions'"),
        ({"assumptions.fold_statistic.vary": ["ratio_of_mean"]}, "assumptions.fold_statistic.vary.0", r"claim statistic .*did you mean 'ratio_of_means'"),
    ],
)
def test_claim_statistic_from_errors(write_study, base, edits, field, phrase):
    assert_study_error(variant(write_study, base, edits), field, phrase)


@pytest.mark.parametrize(
    "path, wrong, right",
    [
        ("", "comparsions", "comparisons"),
        ("groups.ms", "statistcs", "statistics"),
        ("associations.sex", "covarate", "covariate"),
        ("covariates.age_decades", "assumptions", "assumption"),
    ],
)
def test_unknown_key_suggests_the_nearest_field(write_study, base, path, wrong, right):
    node = base
    for part in filter(None, path.split(".")):
        node = node[part]
    node[wrong] = node.pop(right) if right in node else {}
    field = f"{path}.{wrong}" if path else wrong
    assert_study_error(variant(write_study, base, {}), field, rf"unknown key .*did you mean '{right}'\?")


# --- formats papers print --------------------------------------------------------------------
def test_sem_iqr_and_percentiles_load_in_canonical_order(write_study, base):
    pub = {"status": "published", "source": "abstract"}
    edits = {
        "groups.ms.statistics": {"p95": {"value": 420, **pub}, "sem": {"value": 15, **pub}, "median": {"value": 196, **pub},
                                 "p10": {"value": 90, **pub}, "iqr": {"value": 120, **pub}},
    }
    st = load_study(variant(write_study, base, edits))
    assert list(st.reported("ms")) == ["sem", "median", "iqr", "p10", "p95"]


def test_confidence_intervals_and_geometric_means_load(write_study, base):
    pub = {"status": "published", "source": "abstract"}
    edits = {
        "groups.ms.statistics": {"gmean_ci_high": {"value": 260, **pub}, "gmean": {"value": 215, **pub}, "gmean_ci_low": {"value": 180, **pub},
                                 "mean_ci_low": {"value": -5, **pub}, "mean_ci_high": {"value": 480, **pub}},
    }
    st = load_study(variant(write_study, base, edits))
    assert list(st.reported("ms")) == ["mean_ci_low", "mean_ci_high", "gmean", "gmean_ci_low", "gmean_ci_high"]
    assert st.reported("ms")["mean_ci_low"] == -5  # a t interval of skewed values may reach below zero


@pytest.mark.parametrize("stats, field, phrase", [
    ({"mean_ci_low": 100}, "groups.ms.statistics.mean_ci_low", r"needs both ends: add 'mean_ci_high'"),
    ({"gmean_ci_high": 100, "gmean": 90}, "groups.ms.statistics.gmean_ci_high", r"needs both ends: add 'gmean_ci_low'"),
    ({"gmean": 300, "gmean_ci_low": 100, "gmean_ci_high": 200}, "groups.ms.statistics.gmean_ci_low", r"increasing around gmean \(300\)"),
    ({"mean_ci_low": 300, "mean_ci_high": 200}, "groups.ms.statistics.mean_ci_low", r"300 to 200 must be increasing"),
    ({"sem": 0}, "groups.ms.statistics.sem", r"must be > 0"),
    ({"iqr": 50, "q1": 100, "q3": 150}, "groups.ms.statistics.iqr", r"not both"),
    ({"p10": 200, "median": 150}, "groups.ms.statistics", r"p10 \(200\) must not exceed median \(150\)"),
    ({"p90": 100, "q3": 150}, "groups.ms.statistics", r"q3 \(150\) must not exceed p90 \(100\)"),
])
def test_formats_are_checked(write_study, base, stats, field, phrase):
    pub = {"status": "published", "source": "abstract"}
    path = variant(write_study, base, {"groups.ms.statistics": {k: {"value": v, **pub} for k, v in stats.items()}})
    assert_study_error(path, field, phrase)


def test_at_most_and_at_least_claims():
    import numpy as np

    from models.study import Claim

    x = np.array([0.9, 1.0, 1.1])
    for relation, expected in (("<", [1, 0, 0]), ("<=", [1, 1, 0]), (">", [0, 0, 1]), (">=", [0, 1, 1])):
        claim = Claim(statistic="ratio_of_means", relation=relation, value=1.0, source="s")
        assert claim.threshold_holds(x).tolist() == [bool(v) for v in expected]


@pytest.mark.parametrize("group_test, field, phrase", [
    ({"groups": ["control", "mss"], "test": "kruskal_wallis", "claims": {"p": {"statistic": "p_value", "relation": "<", "value": 0.01, "source": "abstract"}}},
     "group_tests.all.groups", r"'mss' is not a group of this study \(did you mean 'ms'\?\)"),
    ({"groups": ["control", "ms"], "test": "kruskal_wallis", "claims": {"p": {"statistic": "ratio_of_means", "relation": ">", "value": 3, "source": "abstract"}}},
     "group_tests.all.claims.p.statistic", r"checked by its p-value"),
    ({"groups": ["control", "ms"], "test": "friedman", "claims": {"p": {"statistic": "p_value", "relation": "<", "value": 0.01, "source": "abstract"}}},
     "group_tests.all.test", r"kruskal_wallis"),
])
def test_tests_across_several_groups_are_checked_at_load(write_study, base, group_test, field, phrase):
    assert_study_error(variant(write_study, base, {"group_tests": {"all": group_test}}), field, phrase)

"""Property-based tests: malformed study files are rejected the documented way.

Every generated file is invalid by construction (one mutation of a known category applied to
the real study file, or a file that is not a study at all).  ``fit.py`` must return exit code
2, print exactly one line on stderr naming the file, and create nothing in ``--out``.
The fast tier runs 60 examples; the slow tier runs 600.
"""
from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "data" / "studies" / "lasemi2018.yaml"
BASE = yaml.safe_load(STUDY.read_text())


def _load_fit():
    spec = importlib.util.spec_from_file_location("fit_script", ROOT / "scripts" / "fit.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


FIT = _load_fit()

REQUIRED = [("id",), ("title",), ("citation",), ("sources",), ("analyte",), ("groups",), ("analyte", "units"),
            ("groups", "ms", "n"), ("groups", "control", "label"), ("groups", "ms", "n", "value"),
            ("groups", "ms", "statistics", "sd", "value"), ("groups", "control", "n", "status")]
NUMBER_LEAVES = [("groups", g, "statistics", s, "value") for g in ("ms", "control") for s in ("mean", "sd", "median")] + [
    ("groups", "ms", "n", "value"), ("groups", "control", "counts", "sex", "female", "value")]
WRONG_TYPES = st.one_of(
    st.text(alphabet="abcxyz -_!?", min_size=1, max_size=12),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), max_size=2),
    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
)
NODES = [(), ("groups",), ("groups", "ms"), ("groups", "ms", "statistics", "sd"), ("analyte",), ("sources", "abstract"),
         ("groups", "control", "counts"), ("comparisons", "control_vs_ms"), ("assumptions", "rounding")]


def _get(d, path):
    for p in path:
        d = d[p]
    return d


@st.composite
def malformed(draw):
    """(text or bytes of a malformed study file, category)."""
    kind = draw(st.sampled_from(["delete", "wrong_type", "bad_sd", "n_mismatch", "unknown_key", "quartiles",
                                 "no_source", "huge", "not_mapping", "empty", "bad_yaml", "not_utf8", "bad_status"]))
    d = copy.deepcopy(BASE)
    if kind == "delete":
        path = draw(st.sampled_from(REQUIRED))
        del _get(d, path[:-1])[path[-1]]
    elif kind == "wrong_type":
        path = draw(st.sampled_from(NUMBER_LEAVES))
        _get(d, path[:-1])[path[-1]] = draw(WRONG_TYPES)
    elif kind == "bad_sd":
        g = draw(st.sampled_from(["ms", "control"]))
        d["groups"][g]["statistics"]["sd"]["value"] = draw(st.floats(max_value=0, allow_nan=False, allow_infinity=False))
    elif kind == "n_mismatch":
        g = draw(st.sampled_from(["ms", "control"]))
        d["groups"][g]["n"]["value"] += draw(st.integers(min_value=1, max_value=1000))
    elif kind == "unknown_key":
        node = _get(d, draw(st.sampled_from(NODES)))
        key = draw(st.text(alphabet="qwxz_", min_size=3, max_size=10))
        node[key] = draw(st.one_of(st.integers(), st.text(max_size=5)))
    elif kind == "quartiles":
        g = draw(st.sampled_from(["ms", "control"]))
        med = d["groups"][g]["statistics"]["median"]["value"]
        lo = draw(st.floats(min_value=med + 1, max_value=med * 10))
        d["groups"][g]["statistics"]["q1"] = {"value": lo, "status": "published", "source": "abstract"}
    elif kind == "no_source":
        g = draw(st.sampled_from(["ms", "control"]))
        s = draw(st.sampled_from(["mean", "sd", "median"]))
        d["groups"][g]["statistics"][s].pop("source")
    elif kind == "huge":
        path = draw(st.sampled_from(NUMBER_LEAVES))
        return _huge(d, path), kind
    elif kind == "not_mapping":
        return yaml.safe_dump(draw(st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.text(alphabet="abc", min_size=1)))), kind
    elif kind == "empty":
        return draw(st.sampled_from(["", "\n", "# nothing\n", "---\n"])), kind
    elif kind == "bad_yaml":
        return draw(st.sampled_from(["id: [unclosed\n", "groups: {a: 1\n", "a: b: c\n", "\tid: x\n", "id: x\n  title: y\n- z\n"])), kind
    elif kind == "not_utf8":
        return b"id: \xff\xfe\xfa\n", kind
    elif kind == "bad_status":
        g = draw(st.sampled_from(["ms", "control"]))
        d["groups"][g]["n"]["status"] = draw(st.text(alphabet="xyzpublishd", min_size=1, max_size=10).filter(lambda s: s not in ("published", "assumption")))
    return yaml.safe_dump(d, sort_keys=False), kind


def _huge(d, path):
    # YAML reads 1.0e+999 as infinity: beyond float range, so not a finite number
    _get(d, path[:-1])[path[-1]] = 123456.0
    return yaml.safe_dump(d, sort_keys=False).replace("value: 123456.0", "value: 1.0e+999", 1)


def _check(tmp_path_factory, capsys, content):
    tmp = tmp_path_factory.mktemp("fuzz")
    study = tmp / "study.yaml"
    study.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp / "out"
    rc = FIT.main(["--study", str(study), "--model", "group", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, (rc, err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {study}: ") or lines[0].startswith(f"error: {study}:"), err
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def _fuzz(examples):
    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(case=malformed())
    def test(tmp_path_factory, capsys, case):
        content, _kind = case
        _check(tmp_path_factory, capsys, content)

    return test


test_malformed_study_files_fast = _fuzz(60)
test_malformed_study_files_slow = pytest.mark.slow(_fuzz(600))


def test_valid_base_still_loads():
    """The mutations start from a file that is valid, so every rejection is the mutation's."""
    from models.study import load_study

    assert load_study(STUDY).id == "lasemi2018"

"""The account of published items: one row per number and claim of a study file (walked
independently here, from the raw YAML), each with a role and a reason that match what the
models do with it."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reanalysis.report.published_items import COLUMNS, ROLES, published_items
from models.study import load_study
from tests.studyfiles import variant

ROOT = Path(__file__).resolve().parents[2]
STUDY_FILES = sorted((ROOT / "data" / "studies").glob("*.yaml"))


def _items_in_yaml(path: Path) -> list[str]:
    """Every number and claim of a study file, from the YAML itself (not the schema)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for g, grp in raw["groups"].items():
        out.append(f"groups.{g}.n")
        out += [f"groups.{g}.counts.{b}.{lv}" for b, levels in (grp.get("counts") or {}).items() for lv in levels]
        out += [f"groups.{g}.statistics.{s}" for s in (grp.get("statistics") or {})]
    for c, comp in (raw.get("comparisons") or {}).items():
        out += [f"comparisons.{c}.claims.{k}" for k in (comp.get("claims") or {})]
    for t, gt in (raw.get("group_tests") or {}).items():
        out += [f"group_tests.{t}.claims.{k}" for k in (gt.get("claims") or {})]
    out += [f"associations.{a}" for a in (raw.get("associations") or {})]
    return out


def _extra_variants(write_study, base) -> list[Path]:
    """Study files the tests write: extremes and quartiles, an unsupported claim statistic."""
    edits = {
        "groups.ms.statistics.min": {"value": 40, "status": "published", "source": "abstract"},
        "groups.ms.statistics.max": {"value": 600, "status": "published", "source": "abstract"},
        "groups.control.statistics.q1": {"value": 700, "status": "published", "source": "abstract"},
        "groups.control.statistics.q3": {"value": 950, "status": "published", "source": "abstract"},
        "comparisons.control_vs_ms.claims.t": {"statistic": "t", "relation": ">", "value": 10, "source": "abstract", "test": "welch_t"},
        "comparisons.control_vs_ms.claims.u": {"statistic": "U", "relation": ">", "value": 10, "source": "abstract"},
    }
    return [variant(write_study, base, edits, "extremes.yaml")]


@pytest.mark.parametrize("model", ["group", "hierarchical"])
def test_one_row_per_published_item_for_every_study_file(write_study, base, model):
    for path in STUDY_FILES + _extra_variants(write_study, base):
        study = load_study(path)
        if model == "hierarchical" and not study.covariates:
            continue
        table = published_items(study, model, checked_keys=[])
        assert list(table.columns) == list(COLUMNS)
        assert list(table["item"]) == _items_in_yaml(path), path.name
        assert set(table["role"]) <= set(ROLES)
        assert table["reason"].str.len().min() > 10


def test_roles_in_the_covariate_model(study_path):
    study = load_study(study_path)
    t = published_items(study, "hierarchical", checked_keys=["control_vs_ms.fold", "ms.median"]).set_index("item")
    assert (t.loc[[i for i in t.index if ".statistics." in i], "role"] == "likelihood").all()
    assert t.loc["comparisons.control_vs_ms.claims.p_value", "role"] == "likelihood"
    assert t.loc["comparisons.control_vs_ms.claims.fold", "role"] == "check"
    assert t.loc["associations.sex", "role"] == "likelihood"
    assert t.loc["associations.medication", ["role", "checked"]].tolist() == ["unused", False]
    assert "no relationship" in t.loc["associations.medication", "reason"]
    assert t.loc["groups.ms.counts.sex.male", "role"] == "likelihood"
    assert "complement" in t.loc["groups.ms.counts.sex.male", "reason"]
    assert bool(t.loc["groups.ms.statistics.median", "checked"]) and not bool(t.loc["groups.ms.statistics.mean", "checked"])


def test_roles_in_the_group_model(write_study, base):
    (path,) = _extra_variants(write_study, base)
    study = load_study(path)
    t = published_items(study, "group", checked_keys=["control_vs_ms.p_value", "control_vs_ms.fold"]).set_index("item")
    assert (t.loc[[i for i in t.index if ".statistics." in i], "role"] == "likelihood").all()  # extremes too
    assert (t.loc[[i for i in t.index if ".counts." in i], "role"] == "unused").all()
    assert (t.loc[[i for i in t.index if i.startswith("associations.")], "role"] == "unused").all()
    # the p-value: a two-group test term (the assumed Mann-Whitney), conditioned on the
    # central statistics; with the gamma family, which has no such term, a check
    assert t.loc["comparisons.control_vs_ms.claims.p_value", "role"] == "likelihood"
    assert "mann_whitney" in t.loc["comparisons.control_vs_ms.claims.p_value", "reason"]
    gamma = published_items(study, "group", checked_keys=["control_vs_ms.p_value"], family="gamma").set_index("item")
    assert gamma.loc["comparisons.control_vs_ms.claims.p_value", "role"] == "check"
    assert "lognormal family only" in gamma.loc["comparisons.control_vs_ms.claims.p_value", "reason"]
    # a Welch t next to both groups' means and SDs: determined by them; not (here) checked
    assert t.loc["comparisons.control_vs_ms.claims.t", "role"] == "unused"
    assert "determined by the published statistics" in t.loc["comparisons.control_vs_ms.claims.t", "reason"]
    assert "no simulator for statistic 'U'" in t.loc["comparisons.control_vs_ms.claims.u", "reason"]


def test_group_model_roles_of_test_claims_say_why(write_study, base):
    """use: check keeps a usable claim out; a t test next to both groups' means and SDs is
    determined by them (the Iranian study's p = 0.003)."""
    path = variant(write_study, base, {"comparisons.control_vs_ms.claims.p_value.use": "check"}, "use_check.yaml")
    t = published_items(load_study(path), "group", checked_keys=["control_vs_ms.p_value"]).set_index("item")
    assert t.loc["comparisons.control_vs_ms.claims.p_value", ["role", "checked"]].tolist() == ["check", True]
    assert "use: check" in t.loc["comparisons.control_vs_ms.claims.p_value", "reason"]
    iran = load_study(ROOT / "data" / "studies" / "iranjneurol2013.yaml")
    t = published_items(iran, "group", checked_keys=["control_vs_ms.p_value"]).set_index("item")
    assert t.loc["comparisons.control_vs_ms.claims.p_value", "role"] == "check"
    assert "determined by the published statistics" in t.loc["comparisons.control_vs_ms.claims.p_value", "reason"]
    hcy = load_study(ROOT / "data" / "studies" / "jneurol2012homocysteine.yaml")
    t = published_items(hcy, "group", checked_keys=[]).set_index("item")
    assert t.loc["comparisons.ms_vs_ndc.claims.p_value", "role"] == "likelihood"


def test_the_covariate_model_does_not_fit_extremes(write_study, base):
    (path,) = _extra_variants(write_study, base)
    t = published_items(load_study(path), "hierarchical", checked_keys=["ms.min"]).set_index("item")
    assert t.loc["groups.ms.statistics.min", "role"] == "check"
    assert t.loc["groups.ms.statistics.max", "role"] == "unused"
    assert t.loc["groups.control.statistics.q1", "role"] == "likelihood"


def test_unknown_model_is_an_error(study_path):
    with pytest.raises(ValueError, match="unknown model 'mixture'"):
        published_items(load_study(study_path), "mixture", [])

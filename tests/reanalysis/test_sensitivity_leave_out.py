"""A grid may leave out scenarios its model cannot sample, each with its reason: they are
not run, and the run says which and why (console and manifest)."""
from __future__ import annotations

from pathlib import Path

import pytest

from models.study import load_study
from reanalysis import sensitivity as sens

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "data" / "studies" / "lasemi2018.yaml"
GROUP_GRID = ROOT / "data" / "sensitivity" / "group.yaml"


@pytest.fixture(scope="module")
def study():
    return load_study(STUDY)


def test_the_group_grid_leaves_out_the_gamma_with_the_medians_alone(study):
    left: list[dict] = []
    specs = sens.expand_grid(sens.load_grid(GROUP_GRID), study, GROUP_GRID, left)
    gone = {"factorial: priors=wide, family=gamma, statistics=medians"}
    assert {x["name"] for x in left} == gone
    assert all("medians alone" in x["reason"] and "divergences" in x["reason"] and "\n" not in x["reason"] for x in left)
    names = {s.name for s in specs}
    assert not names & gone
    # the narrow-prior combination samples within the gate and stays, the default priors'
    # after a second attempt at a stricter target; so do the one-at-a-time ones
    assert {"factorial: priors=narrow, family=gamma, statistics=medians", "factorial: priors=default, family=gamma, statistics=medians"} <= names
    assert {"family=gamma", "statistics=medians"} <= names
    # without a list to fill, the same scenarios are left out
    assert [s.name for s in sens.expand_grid(sens.load_grid(GROUP_GRID), study, GROUP_GRID)] == [s.name for s in specs]


def test_a_rule_must_name_a_reason_and_may_not_leave_out_the_default(tmp_path, study):
    with pytest.raises(Exception, match="reason"):
        sens.Grid.model_validate({"leave_out": [{"family": "gamma"}]})
    grid = sens.Grid.model_validate({"leave_out": [{"family": "lognormal", "reason": "r"}]})
    with pytest.raises(sens.GridError, match=r"grid: leave_out\.0: it matches the default scenario"):
        sens.expand_grid(grid, study)


def test_the_run_prints_and_records_what_was_left_out(tmp_path, monkeypatch, capsys):
    import json

    import yaml

    from tests.scriptruns import main_caller

    def fake_run_grid(specs, *a, **k):
        return {sp.name: {"name": sp.name, "status": "ok", "reason": "", "rows": [], "checks": [], "divergences": 0, "seconds": 0.0,
                          "cache_hit": False, "shared_with": None, "psens": None} for sp in specs}

    monkeypatch.setattr(sens, "run_grid", fake_run_grid)
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"base": {"model": "group"}, "one_at_a_time": {"family": "every"},
                                    "leave_out": [{"family": "weibull", "reason": "not this time"}]}))
    code, stdout, stderr = main_caller("sensitivity", capsys)("--grid", grid, "--out", tmp_path / "out")
    assert code == 0, stderr
    assert "left out by the grid: family=weibull (not this time)" in stderr
    assert "1 scenario(s) left out by the grid" in stdout
    (folder,) = (tmp_path / "out").iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["left_out"] == [{"name": "family=weibull", "reason": "not this time"}]
    assert "family=weibull" not in {s["name"] for s in manifest["scenarios"]}

"""Every study file in the repository loads, and the study-file reference is complete and
generated from the schema (so a new field cannot go undocumented)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from models import study_reference
from models.study import TOOLKIT_ASSUMPTIONS, load_study

ROOT = Path(__file__).resolve().parents[2]
STUDY_FILES = sorted((ROOT / "data" / "studies").glob("*.yaml"))


@pytest.mark.parametrize("path", STUDY_FILES, ids=lambda p: p.name)
def test_every_study_file_in_the_repository_loads(path):
    study = load_study(path)
    assert study.group_ids


def test_there_is_a_template_and_a_study_without_covariates():
    names = {p.name for p in STUDY_FILES}
    assert "template.yaml" in names
    assert any(not load_study(p).covariates for p in STUDY_FILES if p.name != "template.yaml")


def test_every_field_of_the_schema_is_described():
    assert study_reference.undocumented_fields() == []


def test_reference_is_generated_from_the_schema_and_up_to_date():
    text = study_reference.render()
    for name in TOOLKIT_ASSUMPTIONS:
        assert f"`{name}`" in text
    assert study_reference.REFERENCE_PATH.read_text(encoding="utf-8") == text, "run: python -m models.study_reference"


def test_reference_check_mode_fails_on_a_stale_file(tmp_path, monkeypatch):
    stale = tmp_path / "study-file.md"
    stale.write_text("# old\n", encoding="utf-8")
    monkeypatch.setattr(study_reference, "REFERENCE_PATH", stale)
    assert study_reference.main(["--check"]) == 1
    assert study_reference.main([]) == 0
    assert study_reference.main(["--check"]) == 0


def test_an_undescribed_field_is_caught(monkeypatch):
    """The completeness test can fail: a field without a description is reported."""
    from models.study import Source

    field = Source.model_fields["note"]
    monkeypatch.setattr(field, "description", None)
    assert "Source.note" in study_reference.undocumented_fields()


@pytest.mark.slow
def test_study_without_covariates_fits_and_reproduces_its_numbers(tmp_path):
    """The tutorial's worked example: the group model fits it, passes the sampler gate and
    reproduces every published number, the exact p-value included."""
    import pandas as pd

    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fit.py"), "--study", str(ROOT / "data" / "studies" / "iranjneurol2013.yaml"),
         "--out", str(tmp_path), "--no-progress"],
        capture_output=True, text=True, cwd=ROOT, timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    checks = pd.read_csv(folder / "checks.csv")
    assert set(checks["key"]) >= {"control.mean", "control.sd", "ms.mean", "ms.sd", "control_vs_ms.p_value"}
    assert (checks["verdict"] == "reproduced").all(), checks[["key", "verdict"]]


@pytest.mark.slow
def test_group_model_fits_the_formats_papers_print(tmp_path):
    """SEM, the IQR as one width, outer percentiles, SPSS's quartile type and an "at most"
    p-value: the group model fits them, passes its gate and reproduces each."""
    import pandas as pd
    import yaml

    data = yaml.safe_load((ROOT / "data" / "studies" / "template.yaml").read_text(encoding="utf-8"))
    pub = {"status": "published", "source": "paper"}
    data["groups"]["control"]["statistics"] = {k: {"value": v, **pub} for k, v in {"median": 52, "iqr": 33, "p10": 27, "p90": 95}.items()}
    data["groups"]["patients"]["statistics"] = {k: {"value": v, **pub} for k, v in {"mean": 41.5, "sem": 3.2}.items()}
    claim = data["comparisons"]["control_vs_patients"]["claims"]["p_value"]
    claim.update(relation="<=", value=0.05)
    claim.pop("printed")
    path = tmp_path / "formats.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "fit.py"), "--study", str(path), "--out", str(tmp_path / "out"), "--no-progress"],
                          capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (folder,) = list((tmp_path / "out").iterdir())
    checks = pd.read_csv(folder / "checks.csv").set_index("key")
    for key in ("control.iqr", "control.p10", "control.p90", "patients.sem", "control_vs_patients.p_value"):
        assert checks.loc[key, "verdict"] == "reproduced", checks.loc[key]

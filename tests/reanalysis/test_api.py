"""The Python API (reanalysis.fit, Fit, load_study; docs/api.md): the same defaults as the
command line, errors before any sampling, a light import, and the documentation's notebook
example run exactly as it stands (slow tier: a default fit)."""
from __future__ import annotations

import inspect
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import reanalysis
from reanalysis.analysis import AnalysisError
from tests.scriptruns import import_script

ROOT = Path(__file__).resolve().parents[2]
API_DOC = ROOT / "docs" / "api.md"


def notebook_example() -> str:
    """The first Python block of docs/api.md."""
    blocks = re.findall(r"```python\n(.*?)```", API_DOC.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "docs/api.md has no python block"
    return blocks[0]


def test_the_notebook_example_is_under_ten_lines():
    lines = [ln for ln in notebook_example().splitlines() if ln.strip()]
    assert len(lines) < 10, lines


def test_importing_the_package_loads_no_sampler_library():
    code = "import sys, reanalysis; print(sorted(m for m in ('pymc', 'pytensor', 'jax', 'arviz') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_every_public_name_resolves():
    for name in reanalysis.__all__:
        assert getattr(reanalysis, name) is not None
    assert set(reanalysis.__all__) <= set(dir(reanalysis))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        reanalysis.nope  # noqa: B018


def test_fit_and_the_command_line_share_their_defaults():
    """One source of defaults: fit()'s keywords equal fit.py's options when none is given."""
    args = import_script("fit").parse_args([])
    params = inspect.signature(reanalysis.fit).parameters
    for name in ("model", "family", "priors", "seed", "draws", "max_draws", "tune", "chains", "reps", "ppc_draws"):
        assert params[name].default == getattr(args, name), name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "hierarchical", "family": "gamma"}, r"--family gamma does not apply to the hierarchical model; choose one of: normal, student_t"),
        ({"model": "nope"}, r"unknown model 'nope'; choose one of: group, hierarchical"),
        ({"model": "group", "reps": 1}, r"--reps 1: the group model needs at least \d+ simulated cohorts"),
    ],
)
def test_a_bad_option_fails_before_sampling(kwargs, message, study_path, monkeypatch):
    import reanalysis.analysis

    def no_sampling(*a, **k):
        raise AssertionError("sampled despite a bad option")

    monkeypatch.setattr(reanalysis.analysis, "fit_posterior", no_sampling)
    with pytest.raises(AnalysisError, match=message):
        reanalysis.fit(study_path, **kwargs)


def test_an_unknown_prior_set_fails_before_sampling(study_path):
    from models.priors import PriorError

    with pytest.raises(PriorError, match="unknown prior set 'skeptical' for model 'group'"):
        reanalysis.fit(study_path, model="group", priors="skeptical")


@pytest.mark.slow
def test_the_notebook_example_runs_as_documented(tmp_path, monkeypatch):
    """docs/api.md's example, exactly, from a folder where its relative paths resolve (the
    project's data/, a results/ of its own)."""
    (tmp_path / "data").symlink_to(ROOT / "data")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    t = time.perf_counter()
    exec(compile(notebook_example(), str(API_DOC), "exec"), namespace)
    print(f"\nnotebook example: {time.perf_counter() - t:.1f} s")
    result, folder, table = namespace["result"], namespace["folder"], namespace["table"]
    assert folder.parent == Path("results") and folder.is_dir()
    written = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"idata.nc", "estimands.csv", "checks.csv", "evidence.csv", "informativeness.csv", "published_items.csv",
            "summary.csv", "manifest.json", "report.html"} <= written
    assert {f"figures/{f}" for f in result.figure_files} <= written
    assert len(table) == len(result.estimands) and list(table.columns) == ["estimand", "median", "hdi_low", "hdi_high"]
    saved = pd.read_csv(folder / "estimands.csv")
    assert list(saved["estimand"]) == list(result.estimands["estimand"])
    assert result.model == "hierarchical" and result.family == "normal" and result.seed == 20180302
    assert namespace["report"] == folder / "report.html"


def test_the_console_command_runs_the_scripts_mains(capsys, tmp_path, monkeypatch):
    from reanalysis.cli import fit, main, report

    for module in (fit, report):  # the dispatcher names the program in usage lines
        monkeypatch.setattr(module, "PROG", module.PROG)

    assert main(["nope"]) == 2 and "unknown command 'nope'" in capsys.readouterr().err
    assert main([]) == 2 and "usage: reanalysis {fit,sensitivity,sbc,report,tables,compare}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--help"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("usage: reanalysis fit")
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "missing" in err and len(err.splitlines()) == 1

"""The README's generated results section (reanalysis/report/readme_results.py, scripts/readme_results.py):
rendered from a result folder, with its provenance, and never typed by hand."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from reanalysis.report.readme_results import BEGIN, END, ResultsError, replace_block, results_markdown
from tests.scriptruns import import_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "readme_results.py"


@pytest.fixture
def result(tmp_path) -> Path:
    folder = tmp_path / "lasemi2018-hierarchical-20261205T000000Z-abcdef"
    folder.mkdir()
    manifest = {
        "command": "python scripts/fit.py --seed 7",
        "study": {"id": "s", "path": str(ROOT / "data" / "studies" / "lasemi2018.yaml")},
        "model": "hierarchical", "family": "normal", "prior_set": "default", "seed": 7,
        "sampler": {"created_at": "2026-12-05T08:01:02+00:00", "draws": 500, "tune": 1000, "chains": 4, "extensions": 1},
        "diagnostics": {"divergences": 1, "max_rhat": 1.0123, "min_ess_bulk": 812.4, "min_ess_tail": 377.0, "ok": False},
        "git_commit": "0123456789abcdef",
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    pd.DataFrame([
        {"estimand": "ratio_of_medians[a_vs_b]", "label": "ratio of population medians", "units": "fold", "median": 3.7712, "hdi_low": 3.1391, "hdi_high": 4.4501},
        {"estimand": "P(x > 3)", "label": "probability", "units": "probability", "median": 0.9585, "hdi_low": None, "hdi_high": None},
    ]).to_csv(folder / "estimands.csv", index=False)
    pd.DataFrame([
        {"item": "A: median", "key": "a.median", "kind": "number", "units": "ng/ml", "published": 866.0, "predictive_median": 790.0,
         "predictive_low": 688.4, "predictive_high": 907.4, "p_two_sided": 0.196, "share_at_or_above": 0.098, "share_claim_holds": None, "verdict": "reproduced"},
        {"item": "a vs b: claim 'p'", "key": "a_vs_b.p", "kind": "claim", "units": "p-value", "published": "p_value < 0.001", "predictive_median": 1e-12,
         "predictive_low": 5e-13, "predictive_high": 1e-11, "p_two_sided": None, "share_at_or_above": None, "share_claim_holds": 1.0, "verdict": "reproduced"},
    ]).to_csv(folder / "checks.csv", index=False)
    pd.DataFrame([{"estimand": "ratio_of_medians[a_vs_b]", "label": "from the published numbers"}]).to_csv(folder / "informativeness.csv", index=False)
    return folder


def test_block_states_provenance_and_every_row(result):
    md = results_markdown(result, readme_dir=ROOT)
    assert md.startswith(BEGIN) and md.rstrip().endswith(END)
    assert "`python scripts/fit.py --seed 7`" in md and "`0123456789`" in md and "2026-12-05 08:01 UTC" in md
    assert "`data/studies/lasemi2018.yaml`" in md and "continued 1 times" in md
    assert "1 divergences, max R-hat 1.0123, min bulk ESS 812, min tail ESS 377 -> FAILED" in md
    assert "| 3.77 | 3.14 to 4.45 | from the published numbers |" in md
    assert "| 0.959 |  |" in md
    assert "| A: median | 866 | 688 to 907 | 0.196 |  | reproduced |" in md
    assert "| p_value < 0.001 | 5.00e-13 to 1.00e-11 |  | 1.00 | reproduced |" in md


def test_block_says_when_the_run_had_uncommitted_changes(result):
    manifest = json.loads((result / "manifest.json").read_text())
    manifest["git_commit"] = "0123456789abcdef-dirty"
    (result / "manifest.json").write_text(json.dumps(manifest))
    assert "at commit `0123456789-dirty`" in results_markdown(result, readme_dir=ROOT)


def test_replace_block_keeps_the_rest_and_needs_markers(result):
    text = f"intro\n{BEGIN}\nold numbers\n{END}\noutro\n"
    new = replace_block(text, results_markdown(result))
    assert new.startswith("intro\n") and new.endswith("\noutro\n") and "old numbers" not in new
    with pytest.raises(ResultsError, match="no generated results block"):
        replace_block("no markers", "x")


def test_script_writes_checks_and_rejects_bad_input(result, tmp_path, capsys):
    """The script's smoke test runs it as a user does; the other cases call its ``main``."""
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n{BEGIN}\nold\n{END}\n")
    main = import_script("readme_results").main
    assert main([str(result), "--readme", str(readme), "--check"]) == 3
    proc = subprocess.run([sys.executable, str(SCRIPT), result, "--readme", readme], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "3.14 to 4.45" in readme.read_text()
    assert main([str(result), "--readme", str(readme), "--check"]) == 0
    capsys.readouterr()
    assert main([str(tmp_path / "nowhere"), "--readme", str(readme)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "manifest.json: missing" in err


def test_readme_results_are_generated():
    """The README's results section sits between the markers and names its source."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    block = text[text.index(BEGIN) : text.index(END)]
    assert re.search(r"Generated from the result folder `[^`]+`: `python scripts/fit.py[^`]*` at commit `[0-9a-f]{7,}`, \d{4}-\d\d-\d\d \d\d:\d\d UTC", block)

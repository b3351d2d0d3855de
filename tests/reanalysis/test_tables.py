"""Tests for reanalysis.report.tables and the tables / compare commands: manuscript tables
in three formats from a result folder's CSV files, several folders side by side, and one-line
errors with exit code 2."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from reanalysis.cli import main
from reanalysis.report import tables


def result_folder(path, seed: int, shift: float = 0.0, family: str = "lognormal"):
    path.mkdir()
    pd.DataFrame([
        {"estimand": "ratio_of_medians[ms_vs_control]", "label": "ratio of population medians, MS patients / controls", "units": "fold",
         "median": 2.9412 + shift, "hdi_low": 2.45, "hdi_high": 3.41},
        {"estimand": "median[ms]", "label": "median, MS patients", "units": "pg/ml", "median": 281.2, "hdi_low": 250.0, "hdi_high": 311.9},
    ]).to_csv(path / "estimands.csv", index=False)
    pd.DataFrame([
        {"item": "MS patients: median", "key": "ms.median", "kind": "number", "units": "pg/ml", "published": 280.0, "predictive_median": 281.0,
         "predictive_low": 240.0, "predictive_high": 320.0, "p_two_sided": 0.94, "share_at_or_above": 0.5, "share_claim_holds": float("nan"),
         "verdict": "reproduced"},
        {"item": "ms vs control: claim 'p_value'", "key": "c.p_value", "kind": "claim", "units": "p-value", "published": "p_value < 0.001",
         "predictive_median": 1e-9, "predictive_low": 1e-12, "predictive_high": 1e-6, "p_two_sided": float("nan"), "share_at_or_above": float("nan"),
         "share_claim_holds": 0.999, "verdict": "reproduced"},
    ]).to_csv(path / "checks.csv", index=False)
    (path / "manifest.json").write_text(json.dumps({"model": "group", "family": family, "prior_set": "default", "seed": seed}))
    return path


def test_a_manuscript_table_in_each_format(tmp_path):
    folder = result_folder(tmp_path / "fit", 1)
    md = tables.render(tables.manuscript_table(folder, "estimands"), "md", "Estimands")
    lines = md.splitlines()
    assert lines[0] == "Table: Estimands" and lines[2] == "| Estimand | Median | 95% HDI | Units |"
    assert "| ratio of population medians, MS patients / controls | 2.94 | 2.45 to 3.41 | fold |" in lines
    tex = tables.render(tables.manuscript_table(folder, "checks"), "tex", "Checks 100% _raw_")
    assert r"\caption{Checks 100\% \_raw\_}" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    assert r"95\% predictive interval" in tex and "holds in 0.999" in tex
    assert all(line.count("&") == 5 for line in tex.splitlines() if line.endswith(r"\\"))
    csv = tables.render(tables.full_table(folder, "estimands"), "csv", "")
    assert csv.splitlines()[0] == "estimand,label,units,median,hdi_low,hdi_high" and "2.9412" in csv


def test_latex_escapes_every_special_character_once():
    assert tables.tex_escape(r"a_b & 5% $x$ #1 {y} ~ ^ \ ±") == r"a\_b \& 5\% \$x\$ \#1 \{y\} \textasciitilde{} \textasciicircum{} \textbackslash{} $\pm$"


def test_markdown_cells_keep_a_pipe_inside_the_cell():
    assert tables.to_markdown(pd.DataFrame({"a": ["x | y"]}), "c").splitlines()[-1] == r"| x \| y |"


def test_two_fits_side_by_side_named_by_what_differs(tmp_path):
    a, b = result_folder(tmp_path / "a", 1), result_folder(tmp_path / "b", 1, shift=0.5, family="weibull")
    df = tables.side_by_side([a, b], "estimands")
    assert list(df.columns) == ["Estimand", "Units", "family lognormal", "family weibull"]
    assert df.iloc[0]["family lognormal"] == "2.94 (2.45 to 3.41)" and df.iloc[0]["family weibull"] == "3.44 (2.45 to 3.41)"
    checks = tables.side_by_side([a, b], "checks")
    assert checks.iloc[0]["family lognormal"] == "281; p 0.94; reproduced"
    assert checks.iloc[1]["family weibull"].endswith("holds in 0.999; reproduced")


def test_the_commands_write_tables_and_refuse_bad_input_in_one_line(tmp_path, capsys):
    a, b = result_folder(tmp_path / "a", 1), result_folder(tmp_path / "b", 2)
    assert main(["tables", str(a), "--format", "tex", "--out", str(tmp_path / "t.tex")]) == 0
    assert (tmp_path / "t.tex").read_text().startswith(r"\begin{table}")
    assert main(["compare", str(a), str(b), "--table", "checks"]) == 0
    assert "| seed 1 | seed 2 |" in capsys.readouterr().out
    for argv, phrase in ((["tables", str(tmp_path / "nope")], "not a result folder"),
                         (["tables", str(a), "--table", "families"], "no family_comparison.csv in this result folder (fit with --compare-families"),
                         (["tables", str(a), "--out", str(tmp_path / "no" / "t.md")], "does not exist")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and phrase in err
    with pytest.raises(SystemExit) as info:
        main(["compare", str(a)])
    assert info.value.code == 2

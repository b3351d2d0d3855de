"""The console report of a fit (reanalysis.report.console, printed by fit.py): every line at
most 100 columns, no NaN, published numbers and claims in tables of their own, the verdict
last; ``--quiet`` and ``--json``.  Built from small tables with the result folder's columns,
so no fit runs."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from models.study import load_study
from models.wording import claim_probability_label, estimand_label
from reanalysis.cli import fit as fit_cli
from reanalysis.diagnostics import Diagnostics
from reanalysis.report import console

NAN = np.nan
#: The study file the tables below come from (their words: models.wording).
STUDY = load_study(Path(__file__).resolve().parents[2] / "data" / "studies" / "lasemi2018.yaml")
#: A label as long as the longest the models write.
LONG_LABEL = claim_probability_label(STUDY, "effect_percent[optic_lesion]", "higher, as claimed")
SENTENCES = [
    "Healthy controls had higher serum vitamin K2 than MS patients: the population median was 3.77 times as high "
    "(95% interval 3.17 to 4.47); posterior probability that it is higher: above 0.998 (all 2,000 posterior draws agree).",
    "The model does not reproduce 1 of 14 published numbers and claims.",
]
FOLDER = "results/lasemi2018-hierarchical-20261205T152953Z-903eac"


def estimands() -> pd.DataFrame:
    rows = [
        ("ratio_of_medians[control_vs_ms]", 3.772879, 3.193539, 4.448512, 1.001, 1767.2, 1616.0),
        ("difference_in_medians[control_vs_ms]", 582.91, 503.33, 666.71, 1.002, 1846.0, 1317.0),
        ("effect_percent[female]", -19.3112, -41.2311, 12.0133, 1.0031, 1184.0, 940.3),
        ("category_spread_percent", 20.44, 0.004493, 68.79, 1.002, 1657.0, 1162.0),
        ("P(effect_percent[optic_lesion] > 0)", 0.925, NAN, NAN, NAN, NAN, NAN),
    ]
    cols = ["estimand", "median", "hdi_low", "hdi_high", "r_hat", "ess_bulk", "ess_tail"]
    t = pd.DataFrame(rows, columns=cols)
    t.insert(1, "label", [estimand_label(STUDY, k)[0] for k in t["estimand"]])
    t.insert(2, "units", [estimand_label(STUDY, k)[1] for k in t["estimand"]])
    t.loc[t.index[-1], "label"] = LONG_LABEL
    return t


def checks() -> pd.DataFrame:
    cols = ["item", "key", "kind", "units", "published", "predictive_median", "predictive_low", "predictive_high",
            "p_two_sided", "share_at_or_above", "share_claim_holds", "verdict"]
    rows = [
        ("Healthy controls: median", "control.median", "number", "ng/ml", 866.0, 790.22, 683.63, 914.52, 0.2, 0.1, NAN, "reproduced"),
        ("Healthy controls: mean minus median (skew)", "control.mean_minus_median", "number", "ng/ml", -54.0, 25.79, -30.85, 91.10, 0.008, 0.996, NAN,
         "not reproduced"),
        ("Healthy controls vs MS patients: ratio of means", "control_vs_ms.fold", "claim", "fold", "ratio of means > 3", 3.4588, 2.7823, 4.2217, NAN, NAN, 0.895, "reproduced"),
        ("female vs male: female patients significantly lower than male patients", "association.sex", "claim", "% change",
         "lower (significant)", -24.74, -51.74, 11.74, NAN, NAN, 0.5375, "reproduced"),
    ]
    return pd.DataFrame(rows, columns=cols)


def exact_claim() -> pd.DataFrame:
    """A checks table whose claim is an exact value: judged by its p, with a share as well."""
    t = checks().iloc[[0, 2]].copy()
    t.loc[t.index[1], ["item", "published", "p_two_sided", "share_claim_holds"]] = [
        "Healthy controls vs MS patients: p-value", "p = 0.003 (read as 0.0025 to <0.0035)", 0.31, 0.04]
    return t


def evidence() -> pd.DataFrame:
    return pd.DataFrame({"comparison": ["control_vs_ms"] * 2, "t": [19.57, 19.57], "df": [72.0, 72.0],
                         "prior_scale_r": [0.707, 1.0], "log10_bf10": [27.01, 27.15]})


def informativeness(claims: bool) -> pd.DataFrame:
    """Rows with every value and interval :func:`reanalysis.informativeness.console_table`
    reads; ``claims=False`` is the group model's (no claims block: no precision share)."""
    base = {"contraction": 0.6, "psens_prior": 0.089, "psens_prior_lo": 0.069, "psens_prior_hi": 0.104,
            "share_stats_minus_claims": -0.61, "share_stats_minus_claims_lo": -0.71, "share_stats_minus_claims_hi": -0.49,
            "shift_prior": -0.41, "shift_prior_lo": -0.49, "shift_prior_hi": -0.32,
            "shift_likelihood": 0.64, "shift_likelihood_lo": 0.54, "shift_likelihood_hi": 0.74}
    rows = [
        {"estimand": "effect_percent[optic_lesion]", "label": "prior-data conflict", "driver": "effect[optic_lesion]", **base},
        {"estimand": "slope_percent[ms, attacks_per_year]", "label": "from a qualitative claim read through assumed covariate distributions",
         "driver": "effect[attacks_per_year]", **base},
        {"estimand": "difference_in_medians[control_vs_ms]", "label": "from the published numbers", "driver": "intercept", **base},
    ]
    t = pd.DataFrame(rows)
    if not claims:
        for c in ("share_stats_minus_claims", "share_stats_minus_claims_lo", "share_stats_minus_claims_hi"):
            t[c] = NAN
    return t


def items() -> pd.DataFrame:
    return pd.DataFrame({
        "item": ["groups.control.n", "groups.ms.counts.subtype.secondary_progressive", "associations.sex"],
        "role": ["likelihood", "unused", "unused"],
        "value": ["29", "5", "female: lower (significant)"],
        "reason": ["size of the simulated cohorts behind the group's statistics",
                   "the group model has no covariates (the covariate model uses counts a covariate names)",
                   "the group model has no covariates (fit the covariate model to use association claims)"],
    })


def diagnostics(ok: bool = True) -> Diagnostics:
    return Diagnostics(0, 1.0034, 967.4, 547.3, [] if ok else ["max R-hat 1.031 > 1.01 (cv[ms])"])


def full_report(claims: bool = True, check_table: pd.DataFrame | None = None) -> list[str]:
    lines = console.report_lines("lasemi2018", estimands(), checks() if check_table is None else check_table, evidence(), diagnostics(),
                                 FOLDER, {"total": 320.6, "sample": 275.4}, informativeness(claims), items(), study=STUDY)
    return lines + console.verdict_lines(SENTENCES)


def section(lines: list[str], title: str) -> list[str]:
    """The lines of the section whose heading starts with ``== title``, up to the next blank line."""
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"== {title}"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start + 1:end]


# -- the default report ----------------------------------------------------------------------
@pytest.mark.parametrize("claims", [True, False], ids=["covariate model", "group model"])
def test_every_line_fits_100_columns_and_no_value_prints_as_nan(claims):
    lines = full_report(claims)
    too_wide = [ln for ln in lines if len(ln) > 100]
    assert not too_wide, too_wide
    text = "\n".join(lines)
    assert not re.search(r"\bnan\b", text, re.IGNORECASE), text


def test_numbers_never_wrap_and_long_labels_keep_every_word():
    lines = full_report()
    est = section(lines, "Estimands")
    for value in ("3.773", "[3.194, 4.449]", "-19.31", "[-41.23, 12.01]", "[0.004493, 68.79]", "0.925"):
        assert any(value in ln for ln in est), value
    # the 75-character label wraps inside its column (its continuation lines indented), words in order
    start = next(i for i, ln in enumerate(est) if ln.startswith("posterior probability"))
    rows = [est[start]]
    while est[start + len(rows)].startswith("  "):
        rows.append(est[start + len(rows)])
    label = " ".join(re.split(r"\s{2,}", ln.strip())[0] for ln in rows)
    assert len(rows) > 1 and label == LONG_LABEL, rows
    assert re.split(r"\s{2,}", est[start].strip())[1:] == ["0.925", "probability"], est[start]


def test_estimands_name_where_each_ones_diagnostics_are():
    est = section(full_report(), "Estimands")
    summary = [ln for ln in est if "estimands.csv" in ln]
    assert len(summary) == 1 and summary[0].startswith("Worst of these estimands: R-hat 1.003") and "bulk ESS 1184" in summary[0] and "tail ESS 940" in summary[0], est


def test_claims_have_a_table_of_their_own():
    lines = full_report()
    numbers, claims = section(lines, "Checks against the published numbers"), section(lines, "Checks against the published claims")
    assert any("Healthy controls: median" in ln for ln in numbers)
    assert not any("ratio of means" in ln or "female vs male" in ln for ln in numbers), numbers
    assert not any("Healthy controls: median" in ln for ln in claims), claims
    fold = next(ln for ln in claims if "ratio of means" in ln)
    assert "ratio of means > 3" in fold and "0.895" in fold and fold.rstrip().endswith("reproduced")
    # a claim row has no predictive p, and the header no column for it
    assert not re.search(r"\bp\b", claims[0]), claims[0]
    assert "0.008" in next(ln for ln in numbers if "Healthy controls: mean" in ln)


def test_an_exact_claim_shows_its_p_next_to_its_share():
    claims = section(full_report(check_table=exact_claim()), "Checks against the published claims")
    assert re.search(r"\bp\b", claims[0]), claims[0]
    row = " ".join(ln for ln in claims if "p_value" in ln or "read as" in ln or "0.0035" in ln)
    assert "0.040" in row and "0.310" in row, claims


def test_the_group_model_prints_no_empty_informativeness_column():
    info = section(full_report(claims=False), "Where each estimand comes from")
    assert "share stats - claims" not in " ".join(info)
    assert "share stats - claims" in " ".join(section(full_report(claims=True), "Where each estimand comes from"))
    # the estimand and the prior term that drives a conflict, in the study file's words
    at = next(i for i, ln in enumerate(info) if ln.startswith("effect of optic nerve lesion, with vs without, pooled over groups:"))
    conflict = " ".join(ln.strip() for ln in info[at:at + 2])
    assert "prior-data conflict (prior of the effect of optic nerve lesion, with vs without)" in conflict, info


def test_unused_items_wrap_under_their_name():
    pub = section(full_report(), "Published items")
    assert pub[0] == "1 likelihood, 0 check, 2 unused (of 3)"
    assert any(ln.startswith("  unused: associations.sex (female: lower (significant))") for ln in pub), pub


def test_the_verdict_is_the_last_section_after_diagnostics_and_results():
    lines = full_report()
    headings = [i for i, ln in enumerate(lines) if ln.startswith("== ")]
    assert lines[headings[-1]] == "== Verdict =="
    diag = next(i for i, ln in enumerate(lines) if ln.startswith("Diagnostics: "))
    results = lines.index(f"Results: {FOLDER}")
    assert diag < results < headings[-1]
    assert lines[diag].endswith("-> OK") and "Run time: 320.6 s in all, 275.4 s sampling" in lines
    assert lines[headings[-1] + 1].startswith("- Healthy controls had higher serum vitamin K2")


def test_wrap_keeps_lines_even():
    lines = console.wrap("posterior probability that the ratio of population means is > 3", 60)
    assert len(lines) == 2 and len(lines[-1].strip()) > 5, lines


def test_table_pads_columns_and_wraps_only_the_text_column():
    cols = [console.Column("name", flex=True), console.Column("value", ">")]
    lines = console.table(cols, [["a " * 40, "123456.7"], ["b", "1"]], width=30)
    assert all(len(ln) <= 30 for ln in lines), lines
    assert [ln for ln in lines if "123456.7" in ln] == [lines[1]] and lines[1].endswith("123456.7")
    assert lines[-1].endswith(" 1") and lines[-1].startswith("b")


# -- --quiet and --json ------------------------------------------------------------------------
def test_quiet_is_the_result_folder_and_the_verdict():
    lines = console.quiet_lines(FOLDER, SENTENCES)
    assert lines[0] == f"Results: {FOLDER}"
    assert [ln for ln in lines if ln.startswith("== ")] == ["== Verdict =="]
    bullets = [ln for ln in lines if ln.startswith("- ")]
    assert len(bullets) == len(SENTENCES) and all(len(ln) <= 100 for ln in lines)


def test_json_has_the_fields_and_no_nan():
    report = console.json_report("lasemi2018", "hierarchical", "normal", np.int64(20180302), FOLDER, diagnostics(ok=False),
                                 estimands(), checks(), SENTENCES)
    doc = json.loads(console.json_text(report))
    assert {k: doc[k] for k in ("study", "model", "family", "seed", "folder")} == {
        "study": "lasemi2018", "model": "hierarchical", "family": "normal", "seed": 20180302, "folder": FOLDER}
    assert doc["diagnostics"] == {"ok": False, "divergences": 0, "max_rhat": 1.0034, "min_ess_bulk": 967.4, "min_ess_tail": 547.3,
                                  "problems": ["max R-hat 1.031 > 1.01 (cv[ms])"]}
    assert [e["estimand"] for e in doc["estimands"]] == list(estimands()["estimand"])
    assert set(doc["estimands"][0]) == {"estimand", "label", "units", "median", "hdi_low", "hdi_high"}
    prob = doc["estimands"][-1]
    assert prob["label"] == LONG_LABEL and prob["median"] == 0.925 and prob["hdi_low"] is None
    number, claim = doc["checks"][1], doc["checks"][2]
    assert number == {"item": "Healthy controls: mean minus median (skew)", "kind": "number", "verdict": "not reproduced", "p_two_sided": 0.008}
    assert claim == {"item": "Healthy controls vs MS patients: ratio of means", "kind": "claim", "verdict": "reproduced", "share_claim_holds": 0.895}
    assert doc["verdict"] == SENTENCES
    assert "NaN" not in console.json_text(report)


# -- fit.py: the options and what each prints -----------------------------------------------
def test_quiet_and_json_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exc:
        fit_cli.parse_args(["--quiet", "--json"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_help_documents_quiet_and_json(capsys):
    with pytest.raises(SystemExit):
        fit_cli.parse_args(["--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert "--quiet print only the result folder and the verdict" in flat
    assert "--json print one JSON object" in flat


@pytest.fixture
def printed(monkeypatch, capsys):
    """``printed(*options) -> stdout`` of :func:`reanalysis.cli.fit.print_console` for a
    fit made of the tables above (the verdict's sentences stand in for the real ones)."""
    monkeypatch.setattr(fit_cli, "verdict_sentences", lambda result: SENTENCES)
    result = SimpleNamespace(
        study=STUDY, model="hierarchical", family="normal", seed=20180302, diagnostics=diagnostics(),
        estimands=estimands(), checks=checks(), evidence=evidence(), informativeness=informativeness(True), published_items=items(),
        timings={"total": 320.6, "sample": 275.4}, family_comparison=None,
    )

    def run(*options):
        args = SimpleNamespace(quiet="--quiet" in options, json="--json" in options)
        fit_cli.print_console(args, result, FOLDER)
        return capsys.readouterr().out

    return run


def test_fit_prints_the_tables_then_the_verdict(printed):
    out = printed()
    for title in ("== Estimands", "== Checks against the published numbers", "== Checks against the published claims",
                  "== Where each estimand comes from", "== Published items", "== Verdict =="):
        assert title in out, title
    assert "==" not in out.split("== Verdict ==", 1)[1]
    assert max(len(ln) for ln in out.splitlines()) <= 100


def test_fit_quiet_prints_the_folder_and_the_verdict_only(printed):
    out = printed("--quiet")
    assert out.splitlines()[0] == f"Results: {FOLDER}"
    assert "== Estimands" not in out and "Diagnostics:" not in out
    assert out.split("== Verdict ==\n", 1)[1].startswith("- Healthy controls")


def test_fit_json_prints_one_object(printed):
    doc = json.loads(printed("--json"))
    assert doc["folder"] == FOLDER and doc["verdict"] == SENTENCES and doc["diagnostics"]["ok"] is True
    assert math.isclose(doc["estimands"][0]["median"], 3.772879)


def test_an_empty_evidence_table_says_why():
    from reanalysis.report.console import evidence_lines

    lines = evidence_lines(pd.DataFrame(columns=["comparison", "t", "df", "prior_scale_r", "log10_bf10"]))
    assert lines[-1].startswith("No JZS Bayes factor: it needs the mean and SD of both groups")
    assert evidence_lines(None) == []

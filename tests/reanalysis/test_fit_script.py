"""Tests of scripts/fit.py.

The one subprocess run of fit.py here is the session's short fit (``short_fit`` in
conftest.py, shared with test_report.py): fit.py exactly as a user runs it, supervised child
and all.  Every test about its outputs reads that result folder.  Bad input, ``--help`` and
the option checks call ``main(argv)`` in this process (no interpreter start-up and imports
per case): each stops before any sampling.  The ``slow`` tier adds a second short fit
(reproducibility) and a short fit of the default (covariate) model.  Ctrl-C in each phase of
a fit is tested in test_interrupt.py.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.scriptruns import SHORT_FIT, SHORT_FIT_SEED, FitRun, describe, main_caller, run_fit, tree_hashes

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "data" / "studies" / "lasemi2018.yaml"
SEED = SHORT_FIT_SEED
STAGING_PREFIX = ".incomplete-"
FIGURES = {"ratio_posterior.png", "group_values.png", "predictive_checks.png", "rank_plots.png", "effects_forest.png", "prior_posterior.png"}
DATA_FILES = {"idata.nc", "summary.csv", "estimands.csv", "checks.csv", "evidence.csv", "manifest.json"}


class _NoFigureWorkers:
    """Stands in for reanalysis.figures.workers.FigureWorkers in runs that stop at an option
    check: the real pool would start two worker processes (spawned, each importing
    matplotlib and ArviZ, once JAX is imported) for nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, *a, **k):
        raise AssertionError("a run that should stop at an option check drew a figure")


@pytest.fixture
def fit_main(monkeypatch, capsys):
    """``fit_main(*args) -> (exit code, stdout, stderr)``: fit.py's ``main`` in this process;
    argparse's exit becomes its code."""
    import pytensor

    import reanalysis.figures.workers

    monkeypatch.setattr(reanalysis.figures.workers, "FigureWorkers", _NoFigureWorkers)
    # fit() lowers PyTensor's traceback limit for the whole process: restored after the test
    monkeypatch.setattr(pytensor.config, "traceback__limit", pytensor.config.traceback__limit)
    return main_caller("fit", capsys)


@pytest.fixture
def bad_sd_study(write_study) -> Path:
    """The real study with the MS group's SD set to -1."""
    data = yaml.safe_load(STUDY.read_text(encoding="utf-8"))
    data["groups"]["ms"]["statistics"]["sd"]["value"] = -1
    return write_study(data, name="bad_sd.yaml")


# -- 1. --help ------------------------------------------------------------------------------
def test_help_lists_options_and_exit_codes(fit_main):
    """(``--help`` as a subprocess, and that it imports no sampler library, is tested in
    test_interrupt.py.)"""
    code, text, err = fit_main("--help")
    assert code == 0, err
    for opt in ("--study", "--family", "--draws", "--chains", "--seed", "--out"):
        assert opt in text, f"{opt} missing from --help"
    assert "Exit codes" in text
    flat = " ".join(text.split())
    for code, meaning in (("0", "success"), ("2", "bad input"), ("3", "diagnostics failed"), ("130", "interrupted"), ("1", "unexpected")):
        pattern = rf"(?<![\d.]){code} [^;]*{meaning}"
        assert re.search(pattern, flat), f"exit code {code} ({meaning}) not documented in --help"
    # each model's own warm-up and draws, as the model modules declare them
    from reanalysis.analysis import model_api
    from reanalysis.registry import MODELS

    apis = [model_api(m) for m in MODELS]
    assert f"--tune TUNE warm-up iterations per chain (default: the model's: {', '.join(f'{a.name} {a.default_tune}' for a in apis)})" in flat
    assert f"(default: the model's: {', '.join(f'{a.name} {a.default_draws}' for a in apis)})" in flat
    assert "Traceback" not in err


# -- 2. the shared short fit ----------------------------------------------------------------
def test_short_fit_exit_code_and_diagnostics(short_fit):
    proc = short_fit.proc
    assert proc.returncode in (0, 3), describe(proc)
    assert "Traceback" not in proc.stderr
    # a healthy run's log is the toolkit's own: no library chatter about internal variables
    for noise in ("Sampling: [", "NaN-value", "RuntimeWarning", "Multiprocess sampling", "NUTS: [", "Initializing NUTS"):
        assert noise not in proc.stderr, f"{noise!r} on stderr:\n{proc.stderr}"
    # every step is logged with the elapsed time, from the study to the written folder
    steps = [ln for ln in proc.stderr.splitlines() if re.match(r"\[\s*\d+\.\ds\] ", ln)]
    for step in ("study lasemi2018", "sampling 2 chains", "sampled in", "posterior predictive checks", "informativeness",
                 "writing the result folder", "written: "):
        assert any(step in ln for ln in steps), (step, proc.stderr)
    diag = short_fit.manifest["diagnostics"]
    if proc.returncode == 3:
        assert "SAMPLER DIAGNOSTICS FAILED" in proc.stderr
        assert diag["ok"] is False and diag["problems"]
    else:
        assert "SAMPLER DIAGNOSTICS FAILED" not in proc.stderr
        assert diag["ok"] is True and diag["problems"] == []


def test_short_fit_writes_exactly_one_complete_result_folder(short_fit):
    entries = short_fit.entries
    assert not [p for p in entries if p.name.startswith(STAGING_PREFIX)], entries
    assert [p.name for p in entries] == [short_fit.folder.name], entries
    folder = short_fit.folder
    assert folder.is_dir()
    names = {p.name for p in folder.iterdir() if p.is_file()}
    assert DATA_FILES <= names, DATA_FILES - names
    figures = {p.name for p in (folder / "figures").glob("*.png")}
    assert figures == FIGURES
    for p in (folder / "figures").glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 1000, p
    # the manifest lists exactly the files written (besides itself)
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert short_fit.manifest["files"] == written
    # the folder path is reported on stdout
    assert str(folder) in short_fit.proc.stdout


def test_short_fit_manifest(short_fit):
    m = short_fit.manifest
    assert m["seed"] == SEED
    assert m["study"]["id"] == "lasemi2018"
    assert m["study"]["sha256"] == hashlib.sha256(STUDY.read_bytes()).hexdigest()
    assert m["family"] == "lognormal" and m["model"] == "group" and m["prior_set"] == "default"
    assert isinstance(m["priors"], dict) and m["priors"]
    for pkg in ("pymc", "arviz", "jax"):
        assert m["packages"][pkg] == metadata.version(pkg)
    assert "git_commit" in m
    assert m["git_commit"] is None or isinstance(m["git_commit"], str)
    timings = m["timings_seconds"]
    assert "total" in timings and timings["total"] > 0
    assert timings["total"] >= timings["sample"] > 0
    # every figure was drawn by a worker, which timed it
    figures = sorted(f.split("/", 1)[1] for f in m["files"] if f.startswith("figures/") and f.endswith(".png"))
    assert figures and sorted(m["figure_seconds"]) == figures
    # each PNG has its vector copy
    assert {f"figures/{f[:-4]}.svg" for f in figures} <= set(m["files"])
    assert all(v > 0 for v in m["figure_seconds"].values())
    sampler = m["sampler"]
    assert (sampler["draws"], sampler["tune"], sampler["chains"], sampler["seed"]) == (300, 300, 2, SEED)


def test_short_fit_estimands(short_fit):
    est = pd.read_csv(short_fit.folder / "estimands.csv")
    keys = list(est["estimand"])
    expected = [
        "ratio_of_medians[control_vs_ms]",
        "ratio_of_means[control_vs_ms]",
        "difference_in_medians[control_vs_ms]",
        "prob_superiority[control_vs_ms]",
        "median[control]",
        "median[ms]",
    ]
    for key in expected:
        assert key in keys, f"{key} missing from estimands.csv: {keys}"
    p_rows = est[est["estimand"].str.startswith("P(ratio_of_means")]
    assert len(p_rows) == 1, keys
    assert 0 <= p_rows["median"].iloc[0] <= 1

    with_hdi = est.dropna(subset=["hdi_low", "hdi_high"])
    assert set(expected) <= set(with_hdi["estimand"])
    for _, row in with_hdi.iterrows():
        assert row["hdi_low"] <= row["median"] <= row["hdi_high"], row.to_dict()

    rom = est.set_index("estimand").loc["ratio_of_medians[control_vs_ms]"]
    # 95% HDI inside (2, 7): excludes 1 (no difference) and anything below 2; the published
    # medians 866/196 give 4.4
    assert 2 < rom["hdi_low"] <= rom["median"] <= rom["hdi_high"] < 7, rom.to_dict()


def test_short_fit_checks_medians_first(short_fit):
    checks = pd.read_csv(short_fit.folder / "checks.csv")
    assert list(checks["key"][:2]) == ["control.median", "ms.median"]
    assert [float(v) for v in checks["published"][:2]] == [866.0, 196.0]


def test_short_fit_evidence(short_fit):
    ev = pd.read_csv(short_fit.folder / "evidence.csv")
    row = ev[[math.isclose(r, 0.707) for r in ev["prior_scale_r"]]]
    assert len(row) == 1, ev
    assert row["log10_bf10"].iloc[0] > 20


def test_short_fit_idata_opens(short_fit):
    import arviz as az

    idata = az.from_netcdf(short_fit.folder / "idata.nc")
    groups = idata.groups()
    assert "posterior" in groups and "sample_stats" in groups
    assert (idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]) == (2, 300)
    assert "ratio_of_medians" in idata.posterior


def test_short_fit_prints_tables(short_fit):
    """The console report (reanalysis.report.console): the published numbers and the
    comparison's claims in tables of their own, no NaN, every line at most 100 columns but
    the result folder's path, which is never wrapped."""
    out = short_fit.proc.stdout
    for title in ("== Estimands", "== Checks against the published numbers", "== Checks against the published claims"):
        assert title in out, title
    claims = out.split("== Checks against the published claims", 1)[1].split("\n\n", 1)[0]
    assert "Healthy controls vs MS patients: ratio of means" in claims and "Healthy controls: median" not in claims
    assert "NaN" not in out
    wide = [ln for ln in out.splitlines() if len(ln) > 100 and not ln.startswith("Results: ")]
    assert not wide, wide


def test_short_fit_speaks_in_the_study_files_words(short_fit):
    """The label column of estimands.csv, the items of checks.csv and the console's tables
    name groups, comparisons and estimands in the study file's words, never by identifiers."""
    internal = re.compile(r"\w\[|P\(X_|% per unit|[A-Za-z0-9]_[A-Za-z0-9]")
    estimands = pd.read_csv(short_fit.folder / "estimands.csv")
    checks = pd.read_csv(short_fit.folder / "checks.csv")
    texts = [*estimands["label"], *estimands["units"], *checks["item"], *checks["published"].astype(str)]
    assert not [t for t in texts if internal.search(t)]
    out = short_fit.proc.stdout
    for title in ("== Estimands", "== Bayes factor", "== Checks against the published numbers", "== Checks against the published claims",
                  "== Where each estimand comes from"):
        body = out.split(title, 1)[1].split("\n\n", 1)[0].splitlines()[1:]
        # file names (estimands.csv, published_items.csv) are the only snake_case a reader meets
        words = [ln for ln in body if internal.search(re.sub(r"\b\w+\.csv\b", "", ln))]
        assert not words, (title, words)


def test_short_fit_accounts_for_every_published_item_and_ends_with_the_verdict(short_fit):
    """published_items.csv has one row per number and claim of the study file, the console
    summarises it, and the verdict is the last section, at most 100 columns wide."""
    from reanalysis.report.published_items import enumerate_items
    from models.study import load_study

    (folder,) = [p for p in short_fit.out.iterdir() if p.is_dir()]
    items = pd.read_csv(folder / "published_items.csv")
    assert list(items["item"]) == [it["item"] for it in enumerate_items(load_study(STUDY))]
    checked = set(items.loc[items["checked"], "item"])
    assert {"groups.control.statistics.median", "comparisons.control_vs_ms.claims.fold"} <= checked
    assert "groups.control.n" not in checked
    # the group model has no covariates: the sex counts and association claims are unused, said so
    unused = items.set_index("item").loc[lambda t: t["role"] == "unused"]
    assert {"groups.ms.counts.sex.female", "associations.sex"} <= set(unused.index)
    out = short_fit.proc.stdout
    assert "== Published items" in out and "unused: associations.sex" in out
    verdict = out.split("== Verdict ==", 1)[1]
    assert "==" not in verdict, "the verdict is not the last section"
    lines = [ln for ln in verdict.splitlines() if ln.strip()]
    # (a short fit may fail its gate: the verdict then says so first)
    first = lines[1] if lines[0].startswith("- The sampler diagnostics failed") else lines[0]
    assert first.startswith("- Healthy controls had higher serum vitamin K2 than MS patients")
    assert max(len(ln) for ln in lines) <= 100


# -- 3. bad input (in this process: each stops before sampling) ------------------------------
def _assert_one_line_error(result, *fragments):
    code, _, err = result
    assert code == 2, f"exit {code}\n{err[-3000:]}"
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, f"stderr must be one line:\n{err}"
    assert lines[0].startswith("error: "), lines[0]
    for f in fragments:
        assert f in lines[0], f"{f!r} not in {lines[0]!r}"


@pytest.mark.parametrize("case", ["negative_sd", "missing_file", "empty_file"])
def test_bad_study_exits_2_with_one_line(case, bad_sd_study, tmp_path, fit_main):
    if case == "negative_sd":
        study, fragments = bad_sd_study, [str(bad_sd_study), "groups.ms.statistics.sd"]
    elif case == "missing_file":
        study = tmp_path / "does_not_exist.yaml"
        fragments = [str(study)]
    else:
        study = tmp_path / "empty.yaml"
        study.write_bytes(b"")
        fragments = [str(study), "empty"]
    out = tmp_path / "out"
    _assert_one_line_error(fit_main("--study", study, "--out", out, "--no-progress"), *fragments)
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


@pytest.mark.parametrize("model, reps, low", [("hierarchical", 1, 2), ("group", 5, 10)])
def test_reps_below_the_model_minimum_exits_2_with_one_line(model, reps, low, tmp_path, fit_main):
    """The smallest --reps depends on the model (the covariate model's default, 5, is below
    the group model's minimum), so it is checked once the model is known."""
    out = tmp_path / "out"
    _assert_one_line_error(fit_main("--model", model, "--reps", reps, "--out", out, "--no-progress"),
                           f"--reps {reps}", f"the {model} model needs at least {low}")
    assert not out.exists()


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--draws", "600", "--max-draws", "500"], ["--max-draws 500 is below --draws 600"]),
    ],
)
def test_max_draws_that_cannot_apply_exits_2_with_one_line(args, fragments, tmp_path, fit_main):
    out = tmp_path / "out"
    _assert_one_line_error(fit_main(*args, "--out", out, "--no-progress"), *fragments)
    assert not out.exists()


def test_draws_zero_is_an_argparse_error(tmp_path, fit_main):
    out = tmp_path / "out"
    code, _, err = fit_main("--draws", "0", "--out", out)
    assert code == 2, err
    assert "Traceback" not in err
    assert "usage:" in err and "--draws must be >= 1" in err
    assert not out.exists()


def test_a_mistyped_option_names_the_nearest_one(tmp_path, fit_main):
    out = tmp_path / "out"
    code, _, err = fit_main("--prios", "wide", "--out", out)
    assert code == 2 and "Traceback" not in err
    assert "unrecognized arguments: --prios wide; --prios (did you mean '--priors'?)" in err, err
    assert not out.exists()


def test_a_mistyped_command_names_the_nearest_one(capsys):
    from reanalysis.cli import main

    assert main(["fitt"]) == 2
    assert "unknown command 'fitt' (did you mean 'fit'?)" in capsys.readouterr().err


# -- 4. a failing run never touches an earlier result ----------------------------------------
def test_bad_input_leaves_existing_result_untouched(short_fit, bad_sd_study, fit_main):
    before_entries = [p.name for p in short_fit.entries]
    before = tree_hashes(short_fit.folder)
    assert DATA_FILES <= set(before)
    for args in (["--study", str(bad_sd_study)], ["--draws", "0"]):
        code, _, err = fit_main(*args, "--out", short_fit.out)
        assert code == 2, err
    assert [p.name for p in short_fit.entries] == before_entries
    assert tree_hashes(short_fit.folder) == before


# -- 5. slow: reproducibility and the default model ------------------------------------------------------
@pytest.mark.slow
def test_same_seed_reproduces_tables_byte_for_byte(short_fit, tmp_path):
    """A second short fit with the same seed (the first is the shared one)."""
    assert short_fit.proc.returncode in (0, 3), describe(short_fit.proc)
    out = tmp_path / "again"
    proc = run_fit(*SHORT_FIT, "--out", out)
    assert proc.returncode == short_fit.proc.returncode, describe(proc)
    again = FitRun(proc, out, 0.0).folder
    assert again.name != short_fit.folder.name
    for name in ("estimands.csv", "checks.csv", "evidence.csv"):
        assert (again / name).read_bytes() == (short_fit.folder / name).read_bytes(), name


@pytest.mark.slow
def test_default_model_is_the_hierarchical_one_for_a_study_with_covariates(tmp_path):
    """Without --model, a study file that declares covariates gets the covariate model
    (JAX sampler): its result folder, the level-versus-age figure and the informativeness
    table; short chains may fail the ESS gate (exit 3) but nothing else.  Short of the ESS
    target after 150 draws, the chains continue once, to --max-draws.  Each group's
    population median agrees with the predictive median of its sample median (for an odd
    group size the two are the same functional of the population)."""
    out = tmp_path / "out"
    proc = run_fit(
        "--draws", "150", "--max-draws", "300", "--tune", "150", "--chains", "2", "--ppc-draws", "1000", "--no-progress", "--out", str(out),
        timeout=1800,
    )
    assert proc.returncode in (0, 3), describe(proc)
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    assert folder.name.startswith("lasemi2018-hierarchical-")
    assert (folder / "figures" / "level_vs_covariate.png").stat().st_size > 10_000
    table = pd.read_csv(folder / "informativeness.csv")
    assert "effect_percent[age_decades]" in set(table.iloc[:, 0])
    sampler = json.loads((folder / "manifest.json").read_text())["sampler"]
    assert (sampler["draws_per_block"], sampler["max_draws"], sampler["draws"], sampler["extensions"]) == (150, 300, 300, 1)
    import arviz as az

    assert az.from_netcdf(folder / "idata.nc").posterior.sizes["draw"] == 300
    assert "150 more (up to 300)" in proc.stderr
    est = pd.read_csv(folder / "estimands.csv").set_index("estimand")["median"]
    checks = pd.read_csv(folder / "checks.csv").set_index("key")["predictive_median"]
    for g in ("control", "ms"):
        assert abs(est[f"median[{g}]"] / checks[f"{g}.median"] - 1) < 0.015, g

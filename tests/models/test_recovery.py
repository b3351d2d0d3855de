"""Parameter recovery and posterior predictive checks with real NUTS fits (slow).

* Recovery: studies are simulated from known population parameters with the published group
  sizes, reduced to the statistics the paper reports (mean, SD, median, rounded to whole
  numbers), fitted with the group model, and the share of true parameters inside the 94% HDI
  is checked - lognormal data with a lognormal fit and gamma data with a gamma fit, 20
  studies each.
* Predictive check: the default model fitted to the real study must pass the sampler
  diagnostics and reproduce the published medians.

Run with ``-s`` to see the coverage and check tables::

    .venv/bin/python -m pytest -m slow -s tests/models/test_recovery.py
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
import yaml

from models import checks, estimands
from reanalysis import diagnostics
from models.families import get_family
from models.group import build_model
from models.priors import get_priors
from reanalysis.sampling import sample_nuts
from models.study import Study, load_study

pytestmark = pytest.mark.slow

STUDY_PATH = Path(__file__).resolve().parents[2] / "data" / "studies" / "lasemi2018.yaml"
#: Reported statistics replaced by simulated ones (what the paper reports for each group).
REPORTED = ("mean", "sd", "median")
HDI_PROB = 0.94
PARAMETERS = ("mean", "cv")
#: True parameters are drawn uniformly from these ranges (mean in ng/ml, CV as a ratio).
TRUE_RANGES = {
    "control": {"mean": (500.0, 1100.0), "cv": (0.12, 0.40)},
    "ms": {"mean": (150.0, 400.0), "cv": (0.25, 0.70)},
}
#: R-hat above which a recovery fit (2 chains x 500 draws) counts as not converged.
MAX_RHAT_RECOVERY = 1.05
#: Seed of the true parameters and simulated cohorts; fit i uses sampler seed i.
RECOVERY_SEED = 20240611
#: Seed of the real-study fit: the one scripts/fit.py uses by default.
FIT_SEED = 20180302


def _raw_study() -> dict:
    with open(STUDY_PATH, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def simulate_study(raw: dict, family: str, rng: np.random.Generator) -> tuple[Study, dict]:
    """A copy of the study with each group's mean, SD and median replaced by those of one
    cohort of the published size simulated from random true parameters.

    Returns the validated study and ``{(group, parameter): true value}``.
    """
    fam = get_family(family)
    data = copy.deepcopy(raw)
    truth = {}
    for g, ranges in TRUE_RANGES.items():
        mean = rng.uniform(*ranges["mean"])
        cv = rng.uniform(*ranges["cv"])
        truth[(g, "mean")], truth[(g, "cv")] = mean, cv
        n = int(data["groups"][g]["n"]["value"])
        x = fam.quantile(np, np.sort(rng.standard_normal(n)), mean, cv)
        values = {"mean": np.mean(x), "sd": np.std(x, ddof=1), "median": np.median(x)}
        stats = data["groups"][g]["statistics"]
        assert set(stats) == set(REPORTED), "the study file reports other statistics than this test simulates"
        for s in REPORTED:
            # published values are whole ng/ml (assumptions.rounding = 1)
            stats[s]["value"] = float(max(1.0, np.round(values[s])))
    return Study.model_validate(data), truth


def recovery_run(family: str, n_studies: int, seed: int) -> pd.DataFrame:
    """Simulate and fit ``n_studies`` studies; one row per (study, group, parameter)."""
    rng = np.random.default_rng(seed)
    raw = _raw_study()
    priors = get_priors("group")
    rows = []
    for i in range(n_studies):
        study, truth = simulate_study(raw, family, rng)
        t0 = time.perf_counter()
        model = build_model(study, priors, family)
        idata = sample_nuts(model, draws=500, tune=500, chains=2, seed=i, progressbar=False)
        seconds = time.perf_counter() - t0
        hdi = az.hdi(idata.posterior[list(PARAMETERS)], hdi_prob=HDI_PROB)
        rhat = az.rhat(idata.posterior[list(PARAMETERS)])
        divergences = int(idata.sample_stats["diverging"].sum())
        for (g, p), true in truth.items():
            lo, hi = (float(hdi[p].sel(group=g, hdi=k)) for k in ("lower", "higher"))
            rows.append(
                {
                    "study": i,
                    "group": g,
                    "parameter": p,
                    "true": true,
                    "observed": ", ".join(f"{s}={study.reported(g)[s]:g}" for s in REPORTED) if p == "mean" else "",
                    "hdi_low": lo,
                    "hdi_high": hi,
                    "covered": lo <= true <= hi,
                    "r_hat": float(rhat[p].sel(group=g)),
                    "divergences": divergences,
                    "seconds": seconds,
                }
            )
    return pd.DataFrame(rows)


def _print_coverage(title: str, df: pd.DataFrame, elapsed: float) -> None:
    per = df.groupby(["group", "parameter"], sort=False)["covered"].agg(["sum", "count"])
    per["share"] = per["sum"] / per["count"]
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(f"\n== {title} ==")
        print(df.drop(columns=["seconds"]).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(f"\ncoverage of the {HDI_PROB:.0%} HDI per parameter:")
        print(per.to_string(float_format=lambda v: f"{v:.2f}"))
        n_fits = df["study"].nunique()
        print(
            f"overall: {int(df['covered'].sum())}/{len(df)} = {df['covered'].mean():.1%}; "
            f"fits with divergences: {int((df.groupby('study')['divergences'].first() > 0).sum())}/{n_fits}; "
            f"max R-hat {df['r_hat'].max():.3f}; {elapsed:.0f} s for {n_fits} fits"
        )


def _coverage_per_parameter(df: pd.DataFrame) -> dict[str, int]:
    return {f"{g}.{p}": int(v) for (g, p), v in df.groupby(["group", "parameter"], sort=False)["covered"].sum().items()}


@pytest.fixture(scope="module")
def lognormal_recovery() -> pd.DataFrame:
    t0 = time.perf_counter()
    df = recovery_run("lognormal", 20, RECOVERY_SEED)
    _print_coverage("recovery: lognormal data, lognormal fit, 20 studies", df, time.perf_counter() - t0)
    return df


@pytest.fixture(scope="module")
def gamma_recovery() -> pd.DataFrame:
    t0 = time.perf_counter()
    df = recovery_run("gamma", 20, RECOVERY_SEED + 1)
    _print_coverage("recovery: gamma data, gamma fit, 20 studies", df, time.perf_counter() - t0)
    return df


def test_lognormal_recovery_overall_coverage(lognormal_recovery):
    df = lognormal_recovery
    assert len(df) == 80
    covered = int(df["covered"].sum())
    assert covered >= 0.9 * len(df), f"only {covered}/{len(df)} true parameters inside the {HDI_PROB:.0%} HDI"


def test_lognormal_recovery_coverage_per_parameter(lognormal_recovery):
    per = _coverage_per_parameter(lognormal_recovery)
    assert len(per) == 4
    low = {k: v for k, v in per.items() if v < 16}
    assert not low, f"parameters covered in fewer than 16/20 studies: {low} (all: {per})"


@pytest.mark.parametrize("run", ["lognormal_recovery", "gamma_recovery"])
def test_recovery_fits_converged(run, request):
    """A chain stuck in a spurious mode widens the HDI until it "covers" everything; such a
    fit is no evidence of recovery, so every fit must have converged."""
    df = request.getfixturevalue(run)
    bad = df.loc[df["r_hat"] > MAX_RHAT_RECOVERY, ["study", "group", "parameter", "r_hat", "hdi_low", "hdi_high"]]
    assert bad.empty, f"fits with R-hat > {MAX_RHAT_RECOVERY}:\n{bad.to_string(index=False)}"


def test_gamma_recovery_overall_coverage(gamma_recovery):
    df = gamma_recovery
    assert len(df) == 80
    covered = int(df["covered"].sum())
    assert covered >= 0.9 * len(df), f"only {covered}/{len(df)} true parameters inside the {HDI_PROB:.0%} HDI"


def test_gamma_recovery_coverage_per_parameter(gamma_recovery):
    per = _coverage_per_parameter(gamma_recovery)
    assert len(per) == 4
    low = {k: v for k, v in per.items() if v < 16}
    assert not low, f"parameters covered in fewer than 16/20 studies: {low} (all: {per})"


# --- the real study ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_fit():
    """The default model fitted to the real study as scripts/fit.py does, with the check table."""
    t0 = time.perf_counter()
    study = load_study(STUDY_PATH)
    model = build_model(study, get_priors("group"), "lognormal")
    idata = sample_nuts(model, draws=1000, tune=1000, chains=4, seed=FIT_SEED, progressbar=False)
    estimands.add_estimands(idata, study, "lognormal")
    table = estimands.estimand_table(idata, study)
    diag = diagnostics.check_diagnostics(idata, table)
    cohorts = checks.simulate_predictive(idata, study, "lognormal", n_draws=2000, seed=FIT_SEED)
    check_tab = checks.check_table(checks.predictive_statistics(cohorts, study), study)
    with pd.option_context("display.width", 180, "display.max_columns", 20, "display.max_colwidth", 60):
        print("\n== real study: estimands ==")
        cols = ["estimand", "median", "hdi_low", "hdi_high", "r_hat", "ess_bulk", "ess_tail"]
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print("\n== real study: posterior predictive checks ==")
        cols = ["key", "published", "predictive_median", "predictive_low", "predictive_high", "p_two_sided", "share_at_or_above", "share_claim_holds", "verdict"]
        print(check_tab[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(f"\ndiagnostics: {diag.as_dict()}")
        print(f"sampler: {dict(idata.posterior.attrs)}; {time.perf_counter() - t0:.0f} s in all")
    return study, idata, table, diag, check_tab


def test_real_fit_diagnostics(real_fit):
    _, idata, table, diag, _ = real_fit
    assert diag.divergences == 0
    t = table.dropna(subset=["r_hat"])
    assert set(t["estimand"].str.split("[").str[0]) >= {"mean", "cv", "median", "ratio_of_means", "ratio_of_medians"}
    assert (t["r_hat"] <= 1.01).all(), t.loc[t["r_hat"] > 1.01, ["estimand", "r_hat"]]
    assert (t["ess_bulk"] >= 400).all(), t.loc[t["ess_bulk"] < 400, ["estimand", "ess_bulk"]]
    assert (t["ess_tail"] >= 400).all(), t.loc[t["ess_tail"] < 400, ["estimand", "ess_tail"]]
    assert diag.ok, diag.problems


@pytest.mark.parametrize("key, published", [("control.median", 866.0), ("ms.median", 196.0)])
def test_published_medians_reproduced(real_fit, key, published):
    _, _, _, _, check_tab = real_fit
    row = check_tab.set_index("key").loc[key]
    assert row["published"] == published
    assert row["p_two_sided"] >= 0.05, row
    assert row["verdict"] == "reproduced", row
    assert row["predictive_low"] <= published <= row["predictive_high"], row

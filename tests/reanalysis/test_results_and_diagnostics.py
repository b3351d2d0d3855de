"""Tests for reanalysis.results (atomic result folders, names), reanalysis.diagnostics (the checks every
run must pass) and models.checks (posterior predictive verdicts), on small hand-made inputs."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

from models import checks, estimands
from reanalysis import diagnostics, results
from models.study import load_study

STUDY_PATH = Path(__file__).resolve().parents[2] / "data" / "studies" / "lasemi2018.yaml"
CHAINS, DRAWS = 4, 500


@pytest.fixture(scope="module")
def study():
    return load_study(STUDY_PATH)


# --- results.staged_result_dir ---------------------------------------------------------------
def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_staged_result_dir_success_renames_into_place(tmp_path):
    parent = tmp_path / "results" / "nested"  # created on demand
    name = "lasemi2018-group-20180302T120000Z-abc123"
    with results.staged_result_dir(parent, name) as stage:
        # while the body runs the result is hidden in a staging folder, not at its final path
        assert stage.parent == parent
        assert stage.name.startswith(results.STAGING_PREFIX)
        assert not (parent / name).exists()
        (stage / "manifest.json").write_text("{}\n")
        (stage / "figures").mkdir()
        (stage / "figures" / "a.png").write_bytes(b"png")
    final = parent / name
    assert final.is_dir()
    assert (final / "manifest.json").read_text() == "{}\n"
    assert (final / "figures" / "a.png").read_bytes() == b"png"
    assert _entries(parent) == [name]
    assert not any(n.startswith(results.STAGING_PREFIX) for n in _entries(parent))


@pytest.mark.parametrize("exc", [ValueError("boom"), KeyboardInterrupt()], ids=["ValueError", "KeyboardInterrupt"])
def test_staged_result_dir_failure_leaves_nothing_and_propagates(tmp_path, exc):
    name = "run-1"
    with pytest.raises(type(exc)) as info:
        with results.staged_result_dir(tmp_path, name) as stage:
            (stage / "idata.nc").write_bytes(b"half written")
            raise exc
    assert info.value is exc
    assert _entries(tmp_path) == []


def test_staged_result_dir_refuses_to_overwrite_an_existing_result(tmp_path):
    final = tmp_path / "run-1"
    final.mkdir()
    (final / "manifest.json").write_text("earlier run\n")
    before = (final / "manifest.json").stat().st_mtime_ns
    ran = []
    with pytest.raises(FileExistsError, match="run-1"):
        with results.staged_result_dir(tmp_path, "run-1") as stage:
            ran.append(stage)
            (stage / "manifest.json").write_text("new run\n")
    assert ran == []  # the body never ran
    assert (final / "manifest.json").read_text() == "earlier run\n"
    assert (final / "manifest.json").stat().st_mtime_ns == before
    assert _entries(final) == ["manifest.json"]
    assert _entries(tmp_path) == ["run-1"]


def test_result_name_differs_for_two_runs_in_the_same_second():
    when = dt.datetime(2018, 3, 2, 12, 0, 0, tzinfo=dt.timezone.utc)
    # 24 random bits: a collision among three names has probability ~2e-7
    names = {results.result_name("lasemi2018", "group", when) for _ in range(3)}
    assert len(names) == 3
    for n in names:
        assert re.fullmatch(r"lasemi2018-group-20180302T120000Z-[0-9a-f]{6}", n), n
    # without a time: now, in UTC
    now = results.result_name("lasemi2018", "group")
    stamp = dt.datetime.strptime(now.split("-")[2], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    assert abs((dt.datetime.now(dt.timezone.utc) - stamp).total_seconds()) < 60


# --- diagnostics.check_diagnostics -------------------------------------------------------------
def _idata(mean, cv, diverging=None):
    if diverging is None:
        diverging = np.zeros((CHAINS, DRAWS), dtype=bool)
    return az.from_dict(
        posterior={"mean": mean, "cv": cv},
        sample_stats={"diverging": diverging},
        coords={"group": ["control", "ms"]},
        dims={"mean": ["group"], "cv": ["group"]},
    )


def _iid_draws(seed=1):
    rng = np.random.default_rng(seed)
    mean = np.array([812.0, 235.0]) * np.exp(0.05 * rng.standard_normal((CHAINS, DRAWS, 2)))
    cv = np.array([0.19, 0.43]) * np.exp(0.1 * rng.standard_normal((CHAINS, DRAWS, 2)))
    return mean, cv


def _check(idata, study):
    estimands.add_estimands(idata, study, "lognormal")
    return diagnostics.check_diagnostics(idata, estimands.estimand_table(idata, study))


def test_well_mixed_chains_pass(study):
    d = _check(_idata(*_iid_draws()), study)
    assert d.ok, d.problems
    assert d.problems == []
    assert d.divergences == 0
    assert d.max_rhat < diagnostics.MAX_RHAT
    assert d.min_ess_bulk >= diagnostics.MIN_ESS and d.min_ess_tail >= diagnostics.MIN_ESS
    out = d.as_dict()
    assert out["ok"] is True and out["problems"] == []


def test_chain_with_shifted_mean_fails_on_r_hat(study):
    mean, cv = _iid_draws()
    mean[3] *= 1.3  # one chain stuck elsewhere
    d = _check(_idata(mean, cv), study)
    assert not d.ok
    assert d.max_rhat > diagnostics.MAX_RHAT
    rhat_problems = [p for p in d.problems if "R-hat" in p]
    # each named in words, with its key in estimands.csv
    assert any(p.startswith("Healthy controls: population mean (mean[control]): R-hat") for p in rhat_problems), d.problems
    assert any(p.startswith("MS patients: population mean (mean[ms]): R-hat") for p in rhat_problems), d.problems
    # a common shift cancels in the ratio of means: that estimand is not blamed
    assert not any("ratio_of_means" in p for p in d.problems), d.problems
    assert d.as_dict()["ok"] is False


def test_divergences_fail_and_are_named(study):
    div = np.zeros((CHAINS, DRAWS), dtype=bool)
    div[0, [10, 20]] = True
    div[2, 400] = True
    d = _check(_idata(*_iid_draws(), diverging=div), study)
    assert not d.ok
    assert d.divergences == 3
    assert len(d.problems) == 1 and "3 divergent" in d.problems[0], d.problems


def test_autocorrelated_chains_fail_on_ess(study):
    rng = np.random.default_rng(4)
    e = rng.standard_normal((CHAINS, DRAWS, 2))
    x = np.zeros_like(e)
    for t in range(DRAWS):  # AR(1), rho 0.95: a few dozen effective draws per chain
        x[:, t] = (0.95 * x[:, t - 1] if t else 0.0) + np.sqrt(1 - 0.95**2) * e[:, t]
    _, cv = _iid_draws()
    d = _check(_idata(np.array([812.0, 235.0]) * np.exp(0.05 * x), cv), study)
    assert not d.ok
    assert d.min_ess_bulk < diagnostics.MIN_ESS
    assert any("ESS" in p and p.startswith("Healthy controls: population mean (mean[control])") for p in d.problems), d.problems


def _table(**overrides):
    row = {"estimand": "ratio_of_means[control_vs_ms]", "r_hat": 1.001, "ess_bulk": 2500.0, "ess_tail": 2100.0}
    rows = [
        {"estimand": "mean[control]", "r_hat": 1.002, "ess_bulk": 1800.0, "ess_tail": 1500.0},
        {**row, **overrides},
        # a probability row: no diagnostics of its own, skipped
        {"estimand": "P(ratio_of_means[control_vs_ms] > 3)", "r_hat": np.nan, "ess_bulk": np.nan, "ess_tail": np.nan},
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("column", ["ess_bulk", "ess_tail"])
def test_estimand_with_ess_below_400_fails_naming_it(column):
    idata = _idata(*_iid_draws())
    d = diagnostics.check_diagnostics(idata, _table(**{column: 399.0}))
    assert not d.ok
    assert len(d.problems) == 1, d.problems
    assert d.problems[0].startswith("ratio_of_means[control_vs_ms]")  # a table without labels: the key alone
    assert column.split("_")[1] in d.problems[0] and "399" in d.problems[0] and "400" in d.problems[0]
    # exactly at the threshold passes
    assert diagnostics.check_diagnostics(idata, _table(**{column: 400.0})).ok


def test_r_hat_threshold_and_non_finite_r_hat():
    idata = _idata(*_iid_draws())
    assert diagnostics.check_diagnostics(idata, _table(r_hat=1.01)).ok
    bad = diagnostics.check_diagnostics(idata, _table(r_hat=1.0101))
    assert not bad.ok and "R-hat" in bad.problems[0]
    assert not diagnostics.check_diagnostics(idata, _table(r_hat=np.inf)).ok
    # a missing ESS is a failure, not a pass
    assert not diagnostics.check_diagnostics(idata, _table(ess_bulk=np.nan)).ok


def test_more_draws_are_asked_for_low_ess_or_high_r_hat_but_not_for_divergences():
    idata = _idata(*_iid_draws())
    target = diagnostics.TARGET_ESS
    assert target > diagnostics.MIN_ESS
    assert not diagnostics.needs_more_draws(diagnostics.check_diagnostics(idata, _table(ess_tail=target)))
    # passing the gate but short of the target: more draws
    assert diagnostics.needs_more_draws(diagnostics.check_diagnostics(idata, _table(ess_tail=target - 1)))
    assert diagnostics.needs_more_draws(diagnostics.check_diagnostics(idata, _table(ess_bulk=100.0)))
    assert diagnostics.needs_more_draws(diagnostics.check_diagnostics(idata, _table(r_hat=1.02)))
    # divergences fail the gate, but more draws of the same chains would not remove them
    diverging = np.zeros((CHAINS, DRAWS), dtype=bool)
    diverging[0, 0] = True
    d = diagnostics.check_diagnostics(_idata(*_iid_draws(), diverging=diverging), _table())
    assert not d.ok and not diagnostics.needs_more_draws(d)
    # ... nor would they make a diverged fit pass: it is not continued for its ESS either
    d = diagnostics.check_diagnostics(_idata(*_iid_draws(), diverging=diverging), _table(ess_tail=100.0))
    assert not d.ok and not diagnostics.needs_more_draws(d)


def test_draws_plan_defaults_and_bad_combinations():
    from reanalysis.analysis import AnalysisError, draws_plan, model_api
    from tests.toy_model import ToyModel

    hier, group, pymc_model = model_api("hierarchical"), model_api("group"), ToyModel()
    assert hier.extends and group.extends and not pymc_model.extends
    # each model's warm-up is its module's DEFAULT_TUNE
    from models import group as group_module, hierarchical

    assert (hier.default_tune, group.default_tune) == (hierarchical.DEFAULT_TUNE, getattr(group_module, "DEFAULT_TUNE", 1000))
    assert draws_plan(hier, None, None) == (hier.default_draws, hier.max_draws)
    # a model without a maximum of its own draws exactly its default unless asked for more
    assert draws_plan(group, None, None) == (group.default_draws, group.default_draws)
    assert draws_plan(group, 300, 600) == (300, 600)
    assert draws_plan(hier, 3000, None) == (3000, 3000)  # more than the default maximum: no extension
    assert draws_plan(hier, 200, 200) == (200, 200)
    assert draws_plan(pymc_model, 300, 300) == (300, 300)
    with pytest.raises(AnalysisError, match="--max-draws 100 is below --draws 200"):
        draws_plan(hier, 200, 100)
    with pytest.raises(AnalysisError, match="toy model's sampler .PyMC. draws exactly --draws"):
        draws_plan(pymc_model, 300, 600)


# --- checks.check_table ------------------------------------------------------------------------
def _stats_at(study, factors: dict[str, float] | None = None, n=4000, seed=0):
    """Simulated statistics centred on each published value (times ``factors[key]``), plus
    claim statistics for which the claims hold in a known share of cohorts."""
    rng = np.random.default_rng(seed)
    factors = factors or {}
    out = {}
    for g in study.group_ids:
        for s, pub in study.reported(g).items():
            key = f"{g}.{s}"
            out[key] = pub * factors.get(key, 1.0) * np.exp(0.05 * rng.standard_normal(n))
    return out


def _row(table, key):
    rows = table[table["key"] == key]
    assert len(rows) == 1, key
    return rows.iloc[0]


def _with_claims(stats, p_share=0.7, fold_share=0.9, n=4000):
    out = dict(stats)
    # p-values: exactly p_share of them below 0.001
    k = int(round(p_share * n))
    out["control_vs_ms.p_value"] = np.concatenate([np.full(k, 1e-5), np.full(n - k, 0.02)])
    k = int(round(fold_share * n))
    out["control_vs_ms.fold"] = np.concatenate([np.full(k, 3.5), np.full(n - k, 2.5)])
    return out


def test_published_values_at_the_centre_are_reproduced(study):
    table = checks.check_table(_with_claims(_stats_at(study)), study)
    numbers = table[table["kind"] == "number"]
    assert len(numbers) == 6
    assert set(numbers["verdict"]) == {"reproduced"}
    assert numbers["share_at_or_above"].between(0.4, 0.6).all()
    assert (numbers["p_two_sided"] > 0.8).all()
    assert numbers["share_claim_holds"].isna().all()
    for _, row in numbers.iterrows():
        assert row["predictive_low"] < row["published"] < row["predictive_high"]
    # medians are the headline rows
    assert list(table["key"][:2]) == ["control.median", "ms.median"]


def test_published_values_far_in_the_tail_are_not_reproduced(study):
    stats = _stats_at(study, {"control.median": 0.7, "ms.sd": 1.6})
    table = checks.check_table(_with_claims(stats), study)
    low = _row(table, "control.median")  # every simulated median is below the published one
    assert low["share_at_or_above"] == 0.0 and low["p_two_sided"] == 0.0 and low["verdict"] == "not reproduced"
    assert low["predictive_high"] < low["published"]
    high = _row(table, "ms.sd")  # every simulated SD is above the published one
    assert high["share_at_or_above"] == 1.0 and high["p_two_sided"] == 0.0 and high["verdict"] == "not reproduced"
    assert _row(table, "ms.median")["verdict"] == "reproduced"


def test_published_value_in_the_outer_few_percent_is_in_tension(study):
    stats = _stats_at(study)
    pub = study.reported("ms")["mean"]
    n = stats["ms.mean"].size
    # 2% of simulated means at or above the published one: two-sided 0.04
    stats["ms.mean"] = np.concatenate([np.full(int(0.02 * n), pub * 1.01), np.full(n - int(0.02 * n), pub * 0.9)])
    row = _row(checks.check_table(_with_claims(stats), study), "ms.mean")
    assert row["share_at_or_above"] == pytest.approx(0.02)
    assert row["p_two_sided"] == pytest.approx(0.04)
    assert row["verdict"] == "tension"


@pytest.mark.parametrize("p_share, fold_share", [(0.7, 0.9), (0.003, 0.04), (1.0, 0.0)])
def test_claim_probability_is_the_share_of_cohorts_where_the_claim_holds(study, p_share, fold_share):
    stats = _with_claims(_stats_at(study), p_share, fold_share)
    table = checks.check_table(stats, study)
    claims = table[table["kind"] == "claim"]
    assert list(claims["key"]) == ["control_vs_ms.p_value", "control_vs_ms.fold"]
    p_row, fold_row = _row(table, "control_vs_ms.p_value"), _row(table, "control_vs_ms.fold")
    assert p_row["share_claim_holds"] == pytest.approx(np.mean(stats["control_vs_ms.p_value"] < 0.001))
    assert p_row["share_claim_holds"] == pytest.approx(p_share)
    assert fold_row["share_claim_holds"] == pytest.approx(np.mean(stats["control_vs_ms.fold"] > 3))
    assert fold_row["share_claim_holds"] == pytest.approx(fold_share)
    # a threshold claim has no predictive p-value and no side
    assert claims["p_two_sided"].isna().all() and claims["share_at_or_above"].isna().all()

    def verdict(share):
        return "not reproduced" if share < 0.01 else "tension" if share < 0.05 else "reproduced"

    assert p_row["verdict"] == verdict(p_share)
    assert fold_row["verdict"] == verdict(fold_share)


def test_check_table_columns_are_named_for_what_they_hold(study):
    table = checks.check_table(_with_claims(_stats_at(study)), study)
    assert list(table.columns) == list(checks.COLUMNS)
    assert not any("ppp" in c for c in table.columns)
    numbers = table[table["kind"] == "number"]
    # one definition: twice the smaller tail share, capped at 1
    for _, row in numbers.iterrows():
        share = row["share_at_or_above"]
        assert row["p_two_sided"] == pytest.approx(min(1.0, 2 * min(share, 1 - share)), abs=1e-3)


def test_predictive_p_two_sided_point_and_printed_interval():
    sim = np.linspace(0.0, 1.0, 1001)
    assert checks.predictive_p_two_sided(sim, 0.5) == pytest.approx(1.0)
    assert checks.predictive_p_two_sided(sim, 0.01) == pytest.approx(2 * 11 / 1001)
    assert checks.predictive_p_two_sided(sim, 0.99) == pytest.approx(2 * 11 / 1001)
    # an interval is judged by its nearer end: at least the p of any point inside it
    assert checks.predictive_p_two_sided(sim, 0.005, 0.015) == pytest.approx(2 * np.mean(sim < 0.015))
    assert checks.predictive_p_two_sided(sim, 0.005, 0.015) >= checks.predictive_p_two_sided(sim, 0.01)
    assert checks.predictive_p_two_sided(sim, 2.0) == 0.0


def _exact_study(write_study, base, value, printed=None):
    claim = {"statistic": "p_value", "relation": "=", "value": value, "status": "published", "source": "news"}
    if printed is not None:
        claim["printed"] = printed
    base["comparisons"]["control_vs_ms"]["claims"]["p_value"] = claim
    return load_study(write_study(base))


def _exact_row(study, p_sim):
    stats = {**_stats_at(study), "control_vs_ms.p_value": p_sim}
    return _row(checks.check_table(stats, study), "control_vs_ms.p_value")


@pytest.mark.parametrize("value, printed", [(0.02, None), (0.02, "0.020"), (0.0004, None), (0.031, "0.031")])
def test_exact_p_centred_in_the_simulations_is_reproduced(write_study, base, value, printed):
    """An exact p whose simulated distribution is centred on it is reproduced, however many
    digits it was printed with (the old 'within 5%' rule flagged p = 0.02 and p = 0.0004)."""
    study = _exact_study(write_study, base, value, printed)
    p_sim = value * np.exp(0.5 * np.random.default_rng(1).standard_normal(4000))
    row = _exact_row(study, p_sim)
    assert row["kind"] == "claim" and row["verdict"] == "reproduced"
    assert row["p_two_sided"] > 0.8
    low, high = study.comparisons["control_vs_ms"].claims["p_value"].printed_interval
    assert row["share_claim_holds"] == pytest.approx(np.mean((p_sim >= low) & (p_sim < high)))
    assert row["share_claim_holds"] < 0.9
    assert np.isnan(row["share_at_or_above"])


def test_p_printed_as_zero_is_p_below_the_last_digit(write_study, base):
    study = _exact_study(write_study, base, 0, "0.000")
    rng = np.random.default_rng(2)
    tiny = 10.0 ** rng.uniform(-9, -4, 4000)  # every simulated p prints as 0.000
    row = _exact_row(study, tiny)
    assert row["p_two_sided"] == 1.0 and row["share_claim_holds"] == 1.0 and row["verdict"] == "reproduced"
    assert "0.000" in row["published"]
    large = 0.01 * np.exp(0.3 * rng.standard_normal(4000))  # no simulated p prints as 0.000
    row = _exact_row(study, large)
    assert row["p_two_sided"] == 0.0 and row["verdict"] == "not reproduced"


def test_exact_value_check_is_not_flagged_by_construction():
    """When the published value is itself a draw of the simulated statistic, printed to two
    decimals, the two-sided p of its printed interval falls below 0.05 at most 5% of the time
    (at the limit of infinite digits it is the uniform point p-value)."""
    rng = np.random.default_rng(3)
    sim = 0.03 * np.exp(0.6 * rng.standard_normal(4000))
    published = np.round(0.03 * np.exp(0.6 * rng.standard_normal(400)), 2)
    p = np.array([checks.predictive_p_two_sided(sim, v - 0.005, v + 0.005) for v in published])
    assert np.mean(p < 0.05) <= 0.05
    assert np.mean(p < 0.5) > 0.2  # still informative, not always 1


def test_predictive_statistics_follow_the_posterior(study):
    """Posterior concentrated at the published mean and SD/mean: the simulated cohort means
    centre on the published means and every published item gets a statistic."""
    n = CHAINS * DRAWS
    mean = np.broadcast_to(np.array([812.0, 235.0]), (CHAINS, DRAWS, 2)).copy()
    cv = np.broadcast_to(np.array([154 / 812, 100 / 235]), (CHAINS, DRAWS, 2)).copy()
    cohorts = checks.simulate_predictive(_idata(mean, cv), study, "lognormal", n_draws=1000, seed=3)
    assert cohorts["control"].shape == (1000, 29) and cohorts["ms"].shape == (1000, 45)
    assert np.all(np.diff(cohorts["ms"], axis=-1) >= 0)  # sorted
    stats = checks.predictive_statistics(cohorts, study)
    assert set(stats) >= {
        "control.mean", "control.sd", "control.median", "ms.mean", "ms.sd", "ms.median",
        "control_vs_ms.p_value", "control_vs_ms.fold",
    }
    assert all(v.shape == (1000,) for v in stats.values())
    assert np.median(stats["control.mean"]) == pytest.approx(812, rel=0.02)
    assert np.median(stats["ms.mean"]) == pytest.approx(235, rel=0.02)
    assert n >= 1000
    table = checks.check_table(stats, study)
    assert _row(table, "control.mean")["verdict"] == "reproduced"
    assert _row(table, "control_vs_ms.fold")["share_claim_holds"] > 0.9


def test_graph_cache_key_changes_with_every_model_input():
    from reanalysis.analysis import graph_cache_key, model_api
    from models.priors import get_priors

    study = load_study(STUDY_PATH)
    api = model_api("hierarchical")
    priors = get_priors("hierarchical")
    base = graph_cache_key(api, study, priors, "normal", 5, 1)
    assert base == graph_cache_key(api, study, get_priors("hierarchical"), "normal", 5, 1)
    changed = study.model_copy(update={"id": study.id + "-copy"})
    others = [
        graph_cache_key(api, changed, priors, "normal", 5, 1),
        graph_cache_key(api, study, get_priors("hierarchical", "skeptical"), "normal", 5, 1),
        graph_cache_key(api, study, priors, "student_t", 5, 1),
        graph_cache_key(api, study, priors, "normal", 4, 1),
        graph_cache_key(api, study, priors, "normal", 5, 2),
        graph_cache_key(model_api("group"), study, priors, "normal", 5, 1),
    ]
    assert len({base, *others}) == len(others) + 1


def test_figure_titles_report_and_table_give_the_same_p_values(write_study, base):
    """The predictive-check figure titles and the report's checks table print the values of
    ``checks.csv``'s columns, under the column's meaning (no 'ppp' anywhere)."""
    import html
    from types import SimpleNamespace

    import matplotlib.pyplot as plt

    from reanalysis.figures.plots import predictive_figure
    from reanalysis.report.html import section_checks

    study = _exact_study(write_study, base, 0.02, "0.020")
    stats = {**_stats_at(study, {"ms.sd": 1.04}), "control_vs_ms.p_value": 0.02 * np.exp(0.3 * np.random.default_rng(4).standard_normal(4000))}
    stats["control_vs_ms.fold"] = np.full(4000, 3.5)
    table = checks.check_table(stats, study)
    fig = predictive_figure(stats, table, study)
    try:
        titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    finally:
        plt.close(fig)
    assert len(titles) == len(table)
    for title, (_, row) in zip(titles, table.iterrows()):
        assert title.startswith(row["verdict"])
        if np.isfinite(row["p_two_sided"]):
            assert f"p (two-sided) {checks.format_p(row['p_two_sided'])}" in title, title
        else:
            assert f"holds in {row['share_claim_holds']:.0%}" in title, title
        assert "ppp" not in title
    page = html.unescape(section_checks(SimpleNamespace(checks=table, figures={})))
    assert "Predictive p (two-sided)" in page and "ppp" not in page
    for _, row in table.iterrows():
        if np.isfinite(row["p_two_sided"]):
            assert f"<td>{checks.format_p(row['p_two_sided'])}</td>" in page.replace('<td class="num">', "<td>")
        if row["kind"] == "number":
            assert f"{checks.format_p(row['share_at_or_above'])} at or above" in page
        else:
            assert f"{checks.format_p(row['share_claim_holds'])} claim holds" in page


def test_report_reads_checks_written_with_the_old_column_names(tmp_path, study):
    """A checks.csv from before the renaming still renders, each old value under its meaning."""
    from reanalysis.report.html import _read_csv

    table = checks.check_table(_with_claims(_stats_at(study)), study)
    old = table.drop(columns=["p_two_sided", "share_at_or_above", "share_claim_holds"])
    number = table["kind"] == "number"
    old["ppp"] = table["share_at_or_above"].where(number, table["share_claim_holds"])
    old["ppp_two_sided"] = table["p_two_sided"]
    old.to_csv(tmp_path / "checks.csv", index=False)
    back = _read_csv(tmp_path / "checks.csv", "checks.csv")
    for c in ("p_two_sided", "share_at_or_above", "share_claim_holds"):
        np.testing.assert_allclose(back[c].to_numpy(float), table[c].to_numpy(float))
    assert "ppp" not in back.columns


def test_calibration_figure_title_clears_the_panel_titles():
    """The SBC figure's title sits above every panel's title, never over the first row."""
    from reanalysis import calibration
    from reanalysis.figures import plots

    rng = np.random.default_rng(0)
    ranks = pd.DataFrame({"sim": np.tile(np.arange(20), 38), "parameter": np.repeat([f"parameter_{i}[a, b]" for i in range(38)], 20),
                          "rank": rng.integers(0, calibration.N_RANK_DRAWS + 1, size=760)})
    fig = plots.sbc_ecdf_figure(ranks, calibration.ecdf_difference, 0.2)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    top = fig._suptitle.get_window_extent(renderer).y0
    assert all(ax.title.get_window_extent(renderer).y1 <= top for ax in fig.axes if ax.get_title())


def test_progress_counters_write_whole_lines_to_a_file(capsys, monkeypatch):
    from reanalysis import results

    results.counter("calibration fits 1/2")
    results.counter("calibration fits 2/2")
    results.end_counter()
    err = capsys.readouterr().err
    assert "\r" not in err and err.splitlines() == ["calibration fits 1/2", "calibration fits 2/2"]
    monkeypatch.setattr(results, "stderr_is_terminal", lambda: True)
    results.counter("calibration fits 1/2")
    results.end_counter()
    assert capsys.readouterr().err == "\rcalibration fits 1/2\n"

"""The group model's two-group test term (models/two_group.py): its large-sample law against
simulated cohorts, the reading of published values, which claims it uses, load-time
rejections, and the PyTensor graph against NumPy (value and gradient)."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import special
from scipy import stats as sps

from models.families import get_family
from models.study import load_study
from models.two_group import (
    TwoGroupTerm,
    claim_use,
    conditional_law,
    event_log_prob,
    lognormal_params,
    quadrature,
    simulate_term,
    statistic_bounds,
    term_law,
    two_group_terms,
)
from tests.studyfiles import assert_study_error

ROOT = Path(__file__).resolve().parents[2]
IRAN = ROOT / "data" / "studies" / "iranjneurol2013.yaml"
HCY = ROOT / "data" / "studies" / "jneurol2012homocysteine.yaml"
COHORTS = 4000


def _law_and_simulation(test, sizes, pops, cond, seed=3):
    term = TwoGroupTerm("ab.c", ("a", "b"), test, sizes, (0.0, math.inf), cond)
    params = [lognormal_params(np, np.log(m), np.log(cv)) for m, cv in pops]
    law = term_law(np, term, params)
    T, stats, _ = simulate_term(term, get_family("lognormal"), pops, COHORTS, np.random.default_rng(seed))
    return term, params, law, T, stats


@pytest.mark.parametrize(
    "test, sizes, pops, cond",
    [
        ("mann_whitney", (52, 52), ((38.9, 0.61), (28.2, 0.69)), (("median", "q1", "q3"), ("median", "q1", "q3"))),
        ("welch_t", (29, 45), ((300.0, 0.40), (236.0, 0.43)), (("mean", "sd"), ("median",))),
        ("student_t", (52, 52), ((37.1, 0.53), (26.5, 0.62)), (("median", "iqr"), ("median", "sem"))),
    ],
)
def test_law_matches_simulated_cohorts(test, sizes, pops, cond):
    """Mean, SD, correlations with the conditioned statistics and the conditional law's
    calibration, within bounds the benchmark's 20,000-cohort run meets with room
    (benchmarks/results/two-group-approximation.txt)."""
    term, params, law, T, stats = _law_and_simulation(test, sizes, pops, cond)
    sd_sim = T.std(ddof=1)
    # the t statistic's skew leaves a bias of about 0.04 of its SD; 3 Monte Carlo SEs on top
    assert abs(law["mean"] - T.mean()) < 0.06 * sd_sim + 3 * sd_sim / math.sqrt(COHORTS)
    assert np.sqrt(law["var"]) == pytest.approx(sd_sim, rel=0.06)
    for s, c, cov in zip(stats, law["cross"], law["stats_cov"]):
        for j in range(s.shape[1]):
            r_model = c[j] / np.sqrt(law["var"] * cov[j, j])
            assert r_model == pytest.approx(np.corrcoef(T, s[:, j])[0, 1], abs=0.07)
    mu, v, _ = conditional_law(np, term, params, [s.T for s in stats])
    u = sps.norm.cdf((T - mu) / np.sqrt(v))
    assert 0.85 <= np.mean(np.abs(u - 0.5) < 0.45) <= 0.95
    assert sps.kstest(u, "uniform").statistic < 0.07


def test_conditioning_shrinks_the_variance_as_the_simulation_does():
    """Mann-Whitney next to both groups' quartiles: the statistics explain ~90% of U's
    variance in simulated cohorts, and the model's conditional SD is within 10% of the
    residual SD of U regressed on them (the covariate model's cap of 0.75 would have left
    it twice as wide)."""
    term, params, law, T, stats = _law_and_simulation("mann_whitney", (52, 52), ((38.9, 0.61), (28.2, 0.69)),
                                                       (("median", "q1", "q3"), ("median", "q1", "q3")))
    X = np.column_stack([np.ones(COHORTS), *[s for s in stats]])
    beta, *_ = np.linalg.lstsq(X, T, rcond=None)
    resid_sd = np.std(T - X @ beta)
    _, v, _ = conditional_law(np, term, params, [s.T for s in stats])
    assert 1 - resid_sd**2 / T.var() > 0.85
    assert np.sqrt(v) == pytest.approx(resid_sd, rel=0.10)


def test_quadrature_gives_the_closed_form_superiority():
    ma, sa = lognormal_params(np, np.log(1.3), np.log(0.7))
    mb, sb = lognormal_params(np, np.log(1.0), np.log(2.5))
    z, w = quadrature([0.0, -0.67, 0.67])
    theta = float((w * special.ndtr((ma + sa * z - mb) / sb)).sum())
    assert theta == pytest.approx(special.ndtr((ma - mb) / math.hypot(sa, sb)), abs=1e-10)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)


def test_event_probability_matches_the_normal_and_stays_finite_far_out():
    for mu, v, bounds in [(2.0, 1.0, (1.5, 2.5)), (-2.0, 0.5, (1.0, math.inf)), (0.3, 0.2, (0.0, 0.4)), (25.0, 1.0, (2.0, 2.2))]:
        sd = math.sqrt(v)
        lo, hi = bounds
        exact = (sps.norm.cdf(hi, mu, sd) - sps.norm.cdf(lo, mu, sd)) + (sps.norm.cdf(-lo, mu, sd) - sps.norm.cdf(-hi, mu, sd))
        got = float(event_log_prob(np, mu, v, bounds))
        if exact > 1e-300:
            assert got == pytest.approx(math.log(exact), rel=1e-8)
        else:
            assert np.isfinite(got) and got < -250


def _study_with(tmp_path, claim: dict, statistics=None, group_test=None, name="s.yaml"):
    data = yaml.safe_load(IRAN.read_text(encoding="utf-8"))
    data["comparisons"]["control_vs_ms"]["claims"]["p_value"] = {"status": "published", "source": "abstract", **claim}
    if statistics is not None:
        for g, stats in statistics.items():
            data["groups"][g]["statistics"] = {k: {"value": v, "status": "published", "source": "abstract"} for k, v in stats.items()}
    if group_test is not None:
        data["assumptions"]["group_test"]["value"] = group_test
        data["assumptions"]["group_test"].pop("vary", None)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


QUARTILES = {"control": {"median": 33.0, "q1": 22.0, "q3": 48.0}, "ms": {"median": 24.0, "q1": 15.0, "q3": 36.0}}


def test_a_t_test_next_to_means_and_sds_is_a_check_and_cannot_be_forced_into_the_likelihood(tmp_path):
    study = load_study(IRAN)
    role, reason = claim_use(study, "control_vs_ms", "p_value")
    assert role == "check" and "determined by the published statistics" in reason
    assert two_group_terms(study) == []
    path = _study_with(tmp_path, {"statistic": "p_value", "relation": "=", "value": 0.003, "printed": "0.003", "use": "likelihood"})
    assert_study_error(path, "comparisons.control_vs_ms.claims.p_value.use", r"cannot fit this claim \(determined .*'use: check'")


def test_use_check_keeps_a_usable_claim_out_and_the_default_uses_it(tmp_path):
    claim = {"statistic": "p_value", "relation": "=", "value": 0.004, "printed": "0.004", "test": "mann_whitney"}
    used = load_study(_study_with(tmp_path, claim, QUARTILES))
    assert claim_use(used, "control_vs_ms", "p_value")[0] == "likelihood"
    assert [t.name for t in two_group_terms(used)] == ["control_vs_ms.p_value"]
    assert two_group_terms(used)[0].conditioned == (("median", "q1", "q3"), ("median", "q1", "q3"))
    assert claim_use(used, "control_vs_ms", "p_value", family="gamma")[0] == "check"
    kept_out = load_study(_study_with(tmp_path, {**claim, "use": "check"}, QUARTILES, name="c.yaml"))
    assert claim_use(kept_out, "control_vs_ms", "p_value") == ("check", "the study file says use: check")
    assert two_group_terms(kept_out) == []


def test_a_t_test_next_to_published_extremes_stays_a_check(tmp_path):
    stats = {g: {"median": v["median"], "min": v["q1"] / 3, "max": v["q3"] * 2} for g, v in QUARTILES.items()}
    study = load_study(_study_with(tmp_path, {"statistic": "p_value", "relation": "=", "value": 0.02, "test": "welch_t"}, stats))
    role, reason = claim_use(study, "control_vs_ms", "p_value")
    assert role == "check" and "extremes" in reason
    mw = load_study(_study_with(tmp_path, {"statistic": "p_value", "relation": "=", "value": 0.02, "test": "mann_whitney"}, stats, name="m.yaml"))
    assert two_group_terms(mw)[0].conditioned == (("median",), ("median",))


@pytest.mark.parametrize(
    "claim, group_test, field, phrase",
    [
        ({"statistic": "p_value", "relation": "<", "value": 0.05, "test": "mann-whitney"}, None, "test", r"unknown group test 'mann-whitney'.*did you mean 'mann_whitney'"),
        ({"statistic": "t", "relation": "=", "value": 2.5, "test": "mann_whitney"}, None, "test", r"a mann_whitney test does not give a 't' statistic"),
        ({"statistic": "z", "relation": "=", "value": 2.5}, "welch_t", "test", r"does not come from the default test 'welch_t'.*test: mann_whitney"),
        ({"statistic": "ratio_of_means", "relation": ">", "value": 1.2, "test": "welch_t"}, None, "test", r"a test belongs to a claim about"),
        ({"statistic": "ratio_of_means", "relation": ">", "value": 1.2, "use": "likelihood"}, None, "use", r"cannot fit this claim.*use: check"),
        ({"statistic": "p_value", "relation": "=", "value": 0.02, "use": "both"}, None, "use", r"likelihood.*check"),
    ],
)
def test_unusable_claims_are_rejected_at_load(tmp_path, claim, group_test, field, phrase):
    path = _study_with(tmp_path, claim, QUARTILES, group_test=group_test)
    assert_study_error(path, f"comparisons.control_vs_ms.claims.p_value.{field}", phrase)


def test_published_values_are_read_at_their_printed_precision(tmp_path):
    """p = 0.02 is [0.015, 0.025): the |z| of Mann-Whitney (continuity-corrected) and the
    |t| of Student's test at those p-values bound the term's interval."""
    hcy = load_study(HCY)
    lo, hi = statistic_bounds(hcy, "ms_vs_ndc", "p_value")
    na, nb = 217, 219
    sigma0 = math.sqrt(na * nb * (na + nb + 1) / 12)
    for bound, p in ((lo, 0.025), (hi, 0.015)):
        z = (bound * na * nb - 0.5) / sigma0
        assert 2 * sps.norm.sf(z) == pytest.approx(p, rel=1e-9)
    student = load_study(_study_with(tmp_path, {"statistic": "p_value", "relation": "=", "value": 0.003, "printed": "0.003", "test": "student_t"}, QUARTILES))
    lo, hi = statistic_bounds(student, "control_vs_ms", "p_value")
    assert 2 * sps.t.sf(lo, 102) == pytest.approx(0.0035) and 2 * sps.t.sf(hi, 102) == pytest.approx(0.0025)
    f = load_study(_study_with(tmp_path, {"statistic": "F", "relation": "=", "value": 6.3, "test": "student_t"}, QUARTILES, name="f.yaml"))
    assert statistic_bounds(f, "control_vs_ms", "p_value") == pytest.approx((math.sqrt(6.25), math.sqrt(6.35)))
    t = load_study(_study_with(tmp_path, {"statistic": "t", "relation": "=", "value": -2.41, "test": "welch_t"}, QUARTILES, name="t.yaml"))
    assert statistic_bounds(t, "control_vs_ms", "p_value") == pytest.approx((2.405, 2.415))
    below = load_study(_study_with(tmp_path, {"statistic": "p_value", "relation": "<", "value": 0.001, "test": "mann_whitney"}, QUARTILES, name="b.yaml"))
    lo, hi = statistic_bounds(below, "control_vs_ms", "p_value")
    assert hi == math.inf and 2 * sps.norm.sf((lo * 52 * 52 - 0.5) / math.sqrt(52 * 52 * 105 / 12)) == pytest.approx(0.001)


@pytest.mark.parametrize("test", ["mann_whitney", "welch_t"])
def test_pytensor_graph_equals_numpy_and_its_gradient_is_right(test):
    """The term as the sampler's graph (value and gradient), at the law's own numbers."""
    import pytensor
    import pytensor.tensor as pt

    cond = (("median", "q1", "q3"), ("mean", "sd", "median"))
    term = TwoGroupTerm("ab.c", ("a", "b"), test, (40, 35), (0.15, 0.2) if test == "mann_whitney" else (2.0, 2.3), cond)
    obs = [np.log([1.2, 0.8, 1.7]), np.log([1.05, 0.62, 0.92])]
    lm, lc = pt.dvector("lm"), pt.dvector("lc")
    params = [lognormal_params(pt, lm[i], lc[i]) for i in range(2)]
    mu, v, _ = conditional_law(pt, term, params, [pt.as_tensor(o) for o in obs], rounding=0.01)
    out = event_log_prob(pt, mu, v, term.bounds)
    # no rewrites, Python linker: a C compile of this graph would dominate the fast tier
    f = pytensor.function([lm, lc], [out, *pt.grad(out, [lm, lc])], mode=pytensor.compile.mode.Mode(linker="py", optimizer=None))

    def numpy_value(x):
        p = [lognormal_params(np, x[i], x[2 + i]) for i in range(2)]
        m, vv, _ = conditional_law(np, term, p, obs, rounding=0.01)
        return float(event_log_prob(np, m, vv, term.bounds))

    x = np.array([np.log(1.3), 0.0, np.log(0.6), np.log(0.5)])
    val, g_lm, g_lc = f(x[:2], x[2:])
    assert val == pytest.approx(numpy_value(x), rel=1e-9)
    h = 1e-6
    numeric = [(numpy_value(x + h * e) - numpy_value(x - h * e)) / (2 * h) for e in np.eye(4)]
    np.testing.assert_allclose(np.concatenate([g_lm, g_lc]), numeric, rtol=1e-5, atol=1e-7)


def test_checks_compute_the_test_each_claim_names(tmp_path):
    """A claim's own test, not the study's assumed one (Student's t here), in the checks; t, z and F rows with
    their units; the Mann-Whitney z is the one behind scipy's (and SPSS's) p."""
    from models.checks import check_table, predictive_statistics
    from models.statistics import group_test_pvalue, group_test_statistic

    rng = np.random.default_rng(0)
    cohorts = {"control": np.sort(rng.lognormal(3.5, 0.5, (300, 52)), -1), "ms": np.sort(rng.lognormal(3.2, 0.6, (300, 52)), -1)}
    a, b = cohorts["control"], cohorts["ms"]
    z = group_test_statistic(a, b, "mann_whitney")
    np.testing.assert_allclose(np.minimum(1, 2 * sps.norm.sf(np.abs(z))), group_test_pvalue(a, b, "mann_whitney"), rtol=1e-10)
    cases = [
        ({"statistic": "p_value", "relation": "=", "value": 0.004, "printed": "0.004", "test": "student_t"}, group_test_pvalue(a, b, "student_t"), "p-value"),
        ({"statistic": "t", "relation": "=", "value": -2.41, "test": "welch_t"}, -np.abs(group_test_statistic(a, b, "welch_t")), "t statistic"),
        ({"statistic": "z", "relation": ">", "value": 2.0, "test": "mann_whitney"}, np.abs(z), "z statistic"),
        ({"statistic": "F", "relation": "=", "value": 6.3, "test": "student_t"}, group_test_statistic(a, b, "student_t") ** 2, "F statistic"),
    ]
    for i, (claim, expected, units) in enumerate(cases):
        study = load_study(_study_with(tmp_path, claim, QUARTILES, name=f"c{i}.yaml"))
        stats = predictive_statistics(cohorts, study)
        np.testing.assert_allclose(stats["control_vs_ms.p_value"], expected, rtol=1e-12)
        row = check_table(stats, study).set_index("key").loc["control_vs_ms.p_value"]
        assert row["units"] == units


@pytest.mark.parametrize("test", ["mann_whitney", "welch_t"])
def test_a_simulated_study_observes_the_claim_exactly_when_its_test_prints_the_value(tmp_path, test):
    """The calibration's observed outcome of a claim (models.two_group.claims_hold) agrees
    with the p-value the test itself gives on the same cohorts, read at its printed
    precision (p = 0.02: 0.015 <= p < 0.025)."""
    from models.statistics import group_test_pvalue
    from models.two_group import claims_hold

    data = yaml.safe_load(HCY.read_text(encoding="utf-8"))
    for g in ("ms", "ndc"):
        data["groups"][g]["statistics"] = {"median": data["groups"][g]["statistics"]["median"]}
    data["comparisons"]["ms_vs_ndc"]["claims"]["p_value"]["test"] = test
    path = tmp_path / "h.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    study = load_study(path)
    terms = two_group_terms(study)
    rng = np.random.default_rng(2)
    holds, printed = [], []
    for _ in range(400):
        cohorts = {"ms": np.sort(rng.lognormal(2.25, 0.4, 217)), "ndc": np.sort(rng.lognormal(2.17, 0.4, 219))}
        holds.append(claims_hold(terms, cohorts)["claim_holds_ms_vs_ndc_p_value"])
        p = group_test_pvalue(cohorts["ms"][None], cohorts["ndc"][None], test)[0]
        printed.append(0.015 <= p < 0.025)
    assert np.array_equal(np.array(holds, bool), np.array(printed))
    assert 5 <= sum(printed) <= 100  # the check is not vacuous

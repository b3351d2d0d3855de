"""Tests for the covariate part of the study schema (models.study: covariates, association
assumptions) and for models.cohort: the simulated design, residual deviates, the regression
behind association claims, claim rules and the two-group test statistics.

Everything here is NumPy/SciPy at build time: no PyMC model is compiled, so the file runs in
a few seconds.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from models import cohort
from models.cohort import (
    build_design,
    claim_design,
    claim_rule,
    cohort_log_levels,
    modelled_associations,
    pack_symmetric,
    regression_estimate,
    residual_deviates,
    triangle,
)
from models.study import load_study
from tests.studyfiles import MISSING, assert_study_error, variant

STUDY_PATH = Path(__file__).resolve().parents[2] / "data" / "studies" / "lasemi2018.yaml"
SEED = 20180302


# --- helpers -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study():
    return load_study(STUDY_PATH)


@pytest.fixture(scope="module")
def design(study):
    return build_design(study, reps=200, seed=SEED)


def _col(design, name):
    return design.covariates.index(name)


def _unit_indicator(x):
    """(x - min) / (max - min) along the last axis: undoes the centring of an indicator."""
    lo, hi = x.min(axis=-1, keepdims=True), x.max(axis=-1, keepdims=True)
    return (x - lo) / (hi - lo)


# --- 1. schema -----------------------------------------------------------------------------
def test_lasemi_covariates_load(study):
    assert list(study.covariates) == ["female", "subtype", "age_decades", "attacks_per_year", "optic_lesion"]
    assert study.covariates["female"].counts == "sex.female" and not study.covariates["female"].categorical
    assert study.covariates["subtype"].categorical
    assert study.covariates["age_decades"].per == 10
    assert study.covariate_groups("female") == ["control", "ms"]
    assert study.covariate_groups("subtype") == ["ms"]
    assert study.covariate_groups("age_decades") == ["control", "ms"]
    assert study.covariate_groups("attacks_per_year") == ["ms"]
    dist = study.covariate_distribution("age_decades")
    assert (dist.distribution, dist.mean, dist.sd) == ("normal", 35, 9)
    assert study.covariate_distribution("optic_lesion").share == 0.3
    assert study.associations["sex"].subjects == "sex_claim_subjects"
    assert study.associations["age"].tolerance == "age_claim_tolerance"
    assert study.associations["sex"].alpha == "sex_claim_alpha"


@pytest.mark.parametrize(
    "edits, field, phrase",
    [
        # exactly one of counts / assumption
        ({"covariates.female.assumption": "age_distribution"}, "covariates.female", "exactly one of 'counts'"),
        ({"covariates.female.counts": MISSING}, "covariates.female", "exactly one of 'counts'"),
        # counts naming a missing breakdown or level
        ({"covariates.female.counts": "gender.female"}, "covariates.female.counts", "no group has counts of 'gender'"),
        ({"covariates.female.counts": "sex.woman"}, "covariates.female.counts", "no level 'woman' of 'sex'"),
        ({"covariates.female.groups": ["control", "ms"], "covariates.subtype.groups": ["control", "ms"]},
         "covariates.subtype.counts", "group 'control' has no counts of 'subtype'"),
        # assumption not declared
        ({"covariates.age_decades.assumption": "age_dist"}, "covariates.age_decades.assumption", "'age_dist' is not a key of 'assumptions'"),
        # covariate groups naming an unknown group
        ({"covariates.attacks_per_year.groups": ["patients"]}, "covariates.attacks_per_year.groups", "'patients' is not a group"),
    ],
    ids=["both", "neither", "breakdown", "level", "groups-without-breakdown", "undeclared-assumption", "unknown-group"],
)
def test_covariate_schema_errors(write_study, base, edits, field, phrase):
    assert_study_error(variant(write_study, base, edits), field, phrase)


@pytest.mark.parametrize(
    "where, value",
    [
        ("age_distribution.value", {"distribution": "normal", "mean": 35}),
        ("age_distribution.value", {"distribution": "normal", "mean": 35, "sd": 0}),
        ("age_distribution.value", {"distribution": "normal", "mean": 35, "sd": 9, "share": 0.5}),
        ("age_distribution.value", {"distribution": "uniform", "mean": 35, "sd": 9}),
        ("age_distribution.value", [35, 9]),
        ("optic_lesion_share.value", {"distribution": "bernoulli", "share": 1.5}),
        ("optic_lesion_share.value", {"distribution": "bernoulli", "mean": 0.3, "sd": 0.1}),
        ("attack_rate.value", {"distribution": "gamma", "mean": 0, "sd": 0.7}),
        ("attack_rate.value", {"distribution": "gamma", "mean": -1.0, "sd": 0.7}),
        ("attack_rate.vary.1", {"distribution": "gamma", "mean": -2.0, "sd": 1.4}),
        ("age_distribution.vary.0", {"distribution": "normal", "sd": 5}),
    ],
    ids=["normal-no-sd", "sd-zero", "extra-share", "unknown-dist", "not-mapping", "share-1.5", "bernoulli-mean",
         "gamma-mean-0", "gamma-mean-neg", "vary-gamma", "vary-normal-no-mean"],
)
def test_covariate_assumption_not_a_distribution(write_study, base, where, value):
    name, rest = where.split(".", 1)
    if rest == "value":
        edits = {f"assumptions.{name}.value": value}
    else:  # one entry of the vary list
        vary = copy.deepcopy(base["assumptions"][name]["vary"])
        vary[int(rest.split(".")[1])] = value
        edits = {f"assumptions.{name}.vary": vary}
    assert_study_error(variant(write_study, base, edits), f"assumptions.{where}", "not a covariate distribution")


@pytest.mark.parametrize(
    "edits, field, phrase",
    [
        ({"assumptions.sex_claim_subjects.value": ["patients"]}, "assumptions.sex_claim_subjects.value", "must be a list of group ids"),
        ({"assumptions.sex_claim_subjects.value": "ms"}, "assumptions.sex_claim_subjects.value", "must be a list of group ids"),
        ({"assumptions.sex_claim_subjects.value": []}, "assumptions.sex_claim_subjects.value", "must be a list of group ids"),
        ({"assumptions.age_claim_subjects.vary": [["ms"], ["control", "healthy"]]}, "assumptions.age_claim_subjects.vary.1", "must be a list"),
        ({"associations.sex.subjects": "who"}, "associations.sex.subjects", "'who' is not a key of 'assumptions'"),
        ({"assumptions.sex_claim_alpha.value": 0.5}, "assumptions.sex_claim_alpha.value", r"must be a number in \(0, 0.5\)"),
        ({"assumptions.sex_claim_alpha.value": 0}, "assumptions.sex_claim_alpha.value", r"must be a number in \(0, 0.5\)"),
        ({"assumptions.sex_claim_alpha.value": 0.7}, "assumptions.sex_claim_alpha.value", r"must be a number in \(0, 0.5\)"),
        ({"assumptions.sex_claim_alpha.value": True}, "assumptions.sex_claim_alpha.value", "must be a number"),
        ({"assumptions.sex_claim_alpha.vary": [0.01, 0.6]}, "assumptions.sex_claim_alpha.vary.1", "must be a number"),
        ({"associations.sex.alpha": "alpha_level"}, "associations.sex.alpha", "'alpha_level' is not a key"),
        ({"assumptions.age_claim_tolerance.value": 0}, "assumptions.age_claim_tolerance.value", r"must be a number in \(0, inf\)"),
        ({"assumptions.age_claim_tolerance.value": -5}, "assumptions.age_claim_tolerance.value", "must be a number"),
        ({"assumptions.age_claim_tolerance.value": "5"}, "assumptions.age_claim_tolerance.value", "must be a number"),
        ({"assumptions.age_claim_tolerance.vary": [2.5, -1]}, "assumptions.age_claim_tolerance.vary.1", "must be a number"),
    ],
    ids=["subjects-unknown", "subjects-string", "subjects-empty", "subjects-vary", "subjects-undeclared",
         "alpha-0.5", "alpha-0", "alpha-0.7", "alpha-bool", "alpha-vary", "alpha-undeclared",
         "tolerance-0", "tolerance-neg", "tolerance-string", "tolerance-vary"],
)
def test_association_assumption_errors(write_study, base, edits, field, phrase):
    assert_study_error(variant(write_study, base, edits), field, phrase)


def test_valid_variants_load(write_study, base):
    """The checks are not over-eager: edge values inside the ranges load."""
    study = load_study(variant(write_study, base, {
        "assumptions.sex_claim_alpha.value": 0.49,
        "assumptions.age_claim_tolerance.value": 0.1,
        "assumptions.optic_lesion_share.value": {"distribution": "bernoulli", "share": 1.0},
        "assumptions.age_distribution.value": {"distribution": "normal", "mean": -3, "sd": 1e-3},
    }))
    assert study.assumption("sex_claim_alpha") == 0.49


# --- 2. design -----------------------------------------------------------------------------
def test_design_shape_and_groups(study, design):
    assert design.groups == ("control", "ms")
    assert design.covariates == ("female", "age_decades", "attacks_per_year", "optic_lesion")
    assert design.x.shape == (200, 74, 4) and design.reps == 200 and design.n == 74
    assert design.slices == {"control": slice(0, 29), "ms": slice(29, 74)}
    assert np.array_equal(design.group_index, np.repeat([0, 1], [29, 45]))
    assert design.defined.tolist() == [[True, True, False, False], [True, True, True, True]]
    assert design.categorical == "subtype"
    assert design.levels == ("relapsing_remitting", "secondary_progressive", "primary_progressive")
    assert design.onehot.shape == (200, 74, 3)


@pytest.mark.parametrize("group, count", [("control", 19), ("ms", 31)])
def test_design_female_counts_exact(design, group, count):
    x = design.x[:, design.slices[group], _col(design, "female")]
    for row in x:
        assert len(np.unique(row)) == 2
    np.testing.assert_allclose(_unit_indicator(x).sum(axis=-1), count, atol=1e-9)


def test_design_optic_share_exact(study, design):
    x = design.x[:, design.slices["ms"], _col(design, "optic_lesion")]
    for row in x:
        assert len(np.unique(row)) == 2
    np.testing.assert_allclose(_unit_indicator(x).sum(axis=-1), round(0.3 * 45), atol=1e-9)


def test_design_zero_outside_groups(design):
    c = design.slices["control"]
    assert np.all(design.x[:, c, _col(design, "attacks_per_year")] == 0)
    assert np.all(design.x[:, c, _col(design, "optic_lesion")] == 0)
    assert np.all(design.onehot[:, c, :] == 0)
    # and not identically 0 where defined
    assert np.std(design.x[:, design.slices["ms"], _col(design, "attacks_per_year")]) > 0.1


@pytest.mark.parametrize("name, groups", [("female", ["control", "ms"]), ("age_decades", ["control", "ms"]),
                                          ("attacks_per_year", ["ms"]), ("optic_lesion", ["ms"])])
def test_design_centred_where_defined(design, name, groups):
    x = np.concatenate([design.x[:, design.slices[g], _col(design, name)] for g in groups], axis=1)
    assert abs(x.mean()) < 1e-12


def test_design_age_matches_assumption(design):
    ages = design.x[:, :, _col(design, "age_decades")] * 10 + 35
    assert ages.mean() == pytest.approx(35, abs=1e-9)
    assert ages.std() == pytest.approx(9, rel=0.03)
    # both groups share the distribution (age-matched)
    for g in ("control", "ms"):
        assert ages[:, design.slices[g]].mean() == pytest.approx(35, abs=0.5)
        assert ages[:, design.slices[g]].std() == pytest.approx(9, rel=0.05)
    # normal: symmetric, light tails
    assert abs(stats.skew(ages.ravel())) < 0.1
    assert abs(stats.kurtosis(ages.ravel())) < 0.15


def test_design_attack_rates_gamma(design):
    x = design.x[:, design.slices["ms"], _col(design, "attacks_per_year")].ravel()
    assert x.std() == pytest.approx(0.7, rel=0.05)
    # raw rates = x + raw mean (about 1): all positive, right-skewed like gamma(shape ~2)
    assert x.min() > -1.05
    assert stats.skew(x) == pytest.approx(2 * 0.7 / 1.0, abs=0.25)


def test_draw_gamma_positive_with_declared_moments(study):
    u = np.random.default_rng(3).uniform(1e-12, 1 - 1e-12, size=(400, 100))
    dist = study.covariate_distribution("attacks_per_year")
    raw = cohort._draw(dist, u)
    assert np.all(raw > 0)
    assert raw.mean() == pytest.approx(1.0, rel=0.02)
    assert raw.std() == pytest.approx(0.7, rel=0.03)
    # monotone in u (common random numbers)
    order = np.argsort(u[0])
    assert np.all(np.diff(raw[0][order]) >= 0)


def test_design_subtype_counts_exact(design):
    ms = design.slices["ms"]
    counts = np.array([39, 5, 1])
    raw = design.onehot[:, ms, :] + counts / 45
    np.testing.assert_allclose(raw, np.round(raw), atol=1e-12)
    np.testing.assert_allclose(raw.sum(axis=-1), 1.0, atol=1e-12)  # one level per subject
    np.testing.assert_allclose(raw.sum(axis=1), np.broadcast_to(counts, (200, 3)), atol=1e-9)
    # centred within the group
    np.testing.assert_allclose(design.onehot[:, ms, :].mean(axis=(0, 1)), 0, atol=1e-12)


def test_design_same_seed_identical_other_seed_differs(study):
    a, b, c = build_design(study, 10, 5), build_design(study, 10, 5), build_design(study, 10, 6)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.onehot, b.onehot)
    assert not np.array_equal(a.x, c.x)


def test_design_assumption_change_keeps_subjects(write_study, base, study):
    """Common random numbers: another age SD moves every subject's age monotonically (same
    ranks), another age mean leaves the centred design unchanged, and the other covariates
    are not redrawn."""
    wider = load_study(variant(write_study, base, {"assumptions.age_distribution.value": {"distribution": "normal", "mean": 50, "sd": 14}}))
    d0, d1 = build_design(study, 20, SEED), build_design(wider, 20, SEED)
    j = _col(d0, "age_decades")
    a0, a1 = d0.x[:, :, j], d1.x[:, :, j]
    assert not np.allclose(a0, a1)
    assert np.array_equal(np.argsort(a0, axis=-1), np.argsort(a1, axis=-1))
    # normal with the same mean shift: x1 = x0 * 14/9 exactly (centring removes the mean)
    np.testing.assert_allclose(a1, a0 * 14 / 9, rtol=1e-9, atol=1e-12)
    others = [i for i in range(len(d0.covariates)) if i != j]
    assert np.array_equal(d0.x[:, :, others], d1.x[:, :, others])
    assert np.array_equal(d0.onehot, d1.onehot)


# --- 3. residual deviates -------------------------------------------------------------------
def test_residual_deviates_normal():
    z = residual_deviates(400, 200, seed=1)
    assert z.shape == (400, 200)
    assert abs(z.mean()) < 0.01
    assert z.std() == pytest.approx(1, abs=0.01)
    assert abs(stats.kurtosis(z.ravel())) < 0.1
    assert np.array_equal(z, residual_deviates(400, 200, seed=1))
    assert not np.array_equal(z, residual_deviates(400, 200, seed=2))


def test_residual_deviates_student_t():
    df = 5.0
    t = residual_deviates(400, 200, seed=1, df=df).ravel()
    z = residual_deviates(400, 200, seed=1).ravel()
    assert np.all(np.sign(t) == np.sign(z))  # same normal numerator
    assert stats.kurtosis(t) > 2.0  # Student-t(5): excess kurtosis 6; normal: 0
    assert t.var() == pytest.approx(df / (df - 2), rel=0.08)
    for q in (0.9, 0.99):
        assert np.quantile(t, q) == pytest.approx(stats.t.ppf(q, df), rel=0.05)
    # df respected: a KS test cannot tell it from t(5) but rejects t(30)
    assert stats.kstest(t[:20000], stats.t(df).cdf).pvalue > 0.001
    assert stats.kstest(residual_deviates(400, 200, seed=1, df=30.0).ravel(), stats.t(30).cdf).pvalue > 0.001
    assert stats.kstest(t, stats.t(30).cdf).pvalue < 1e-6


# --- 4. regression estimate and claims -----------------------------------------------------
def test_regression_estimate_matches_ols():
    rng = np.random.default_rng(7)
    reps, m = 6, 40
    groups = np.repeat([0, 1], [15, 25])
    dummies = np.stack([(groups == 0), (groups == 1)], axis=-1).astype(float)
    X = np.concatenate([np.broadcast_to(dummies, (reps, m, 2)), rng.normal(size=(reps, m, 1))], axis=-1)
    y = 0.3 * X[:, :, -1] + rng.normal(size=(reps, m)) + groups
    inv = np.linalg.inv(np.einsum("rmi,rmj->rij", X, X))
    P = np.einsum("rij,rmj->rim", inv, X)
    df = m - 3
    coef, t = regression_estimate(np, y, X, P, inv[:, -1, -1], df)
    for r in range(reps):
        beta, rss, *_ = np.linalg.lstsq(X[r], y[r], rcond=None)
        se = math.sqrt(rss[0] / df * inv[r, -1, -1])
        assert coef[r] == pytest.approx(beta[-1], rel=1e-9)
        assert t[r] == pytest.approx(beta[-1] / se, rel=1e-9)


def test_claim_designs_lasemi(study, design):
    assoc = modelled_associations(study)
    assert set(assoc) == {"sex", "age", "attacks", "optic"}  # medication (direction none) is not modelled
    sex = claim_design(study, design, "sex", assoc["sex"])
    assert sex.subjects == ("ms",)
    assert np.array_equal(sex.index, np.arange(29, 74))
    assert sex.X.shape == (200, 45, 2) and sex.df == 43
    # the design that the likelihood and the predictive "holds" both read: the sex claim is
    # "significantly lower" at the conventional two-sided 0.05
    assert (sex.kind, sex.statistic) == ("below", "t")
    assert sex.bounds == pytest.approx((-stats.t.ppf(0.975, 43),))
    np.testing.assert_array_equal(sex.X[:, :, -1], design.x[:, 29:, _col(design, "female")])
    age = claim_design(study, design, "age", assoc["age"])
    assert age.subjects == ("control", "ms")
    assert np.array_equal(age.index, np.arange(74))
    assert age.X.shape == (200, 74, 3) and age.df == 71
    attacks = claim_design(study, design, "attacks", assoc["attacks"])
    assert attacks.subjects == ("ms",) and attacks.df == 43
    # P and v are (X'X)^-1 X' and its covariate diagonal
    r = 3
    inv = np.linalg.inv(age.X[r].T @ age.X[r])
    np.testing.assert_allclose(age.P[r], inv @ age.X[r].T, atol=1e-10)
    assert age.v[r] == pytest.approx(inv[-1, -1])


def test_claim_design_subjects_follow_the_assumption(write_study, base):
    st = load_study(variant(write_study, base, {"assumptions.sex_claim_subjects.value": ["control", "ms"]}))
    d = build_design(st, 5, SEED)
    cd = claim_design(st, d, "sex", st.associations["sex"])
    assert cd.subjects == ("control", "ms") and cd.index.size == 74 and cd.df == 71


def test_claim_design_rejects_subjects_outside_the_covariate(write_study, base):
    st = load_study(variant(write_study, base, {"associations.attacks.subjects": "age_claim_subjects"}))
    d = build_design(st, 5, SEED)
    with pytest.raises(ValueError, match=r"associations.attacks: .*not defined in group\(s\) control"):
        claim_design(st, d, "attacks", st.associations["attacks"])


def test_claim_rules(study):
    a = study.associations
    kind, statistic, bounds = claim_rule(study, a["age"], 71)
    assert (kind, statistic) == ("interval", "coefficient")
    assert bounds == pytest.approx((math.log(0.85), math.log(0.95)))
    kind, statistic, bounds = claim_rule(study, a["sex"], 43)
    assert (kind, statistic) == ("below", "t")
    # "significantly" at the conventional two-sided 0.05: one-sided tail 0.025
    assert bounds == pytest.approx((-stats.t.ppf(0.975, 43),))
    assert claim_rule(study, a["attacks"], 43) == ("below", "coefficient", (0.0,))
    assert claim_rule(study, a["optic"], 43) == ("above", "coefficient", (0.0,))


def test_claim_rule_follows_declared_alpha_and_tolerance(write_study, base):
    st = load_study(variant(write_study, base, {"assumptions.sex_claim_alpha.value": 0.01, "assumptions.age_claim_tolerance.value": 2.5}))
    assert claim_rule(st, st.associations["sex"], 43)[2] == pytest.approx((-stats.t.ppf(0.995, 43),))
    assert claim_rule(st, st.associations["age"], 71)[2] == pytest.approx((math.log(0.875), math.log(0.925)))
    st = load_study(variant(write_study, base, {"associations.sex.direction": "higher"}))
    assert claim_rule(st, st.associations["sex"], 43)[:2] == ("above", "t")
    assert claim_rule(st, st.associations["sex"], 43)[2] == pytest.approx((stats.t.ppf(0.975, 43),))


@pytest.mark.parametrize("sided, alpha, tail", [(MISSING, MISSING, 0.025), ("two", 0.05, 0.025), ("one", 0.05, 0.05), ("one", 0.01, 0.01), (MISSING, 0.1, 0.05)])
def test_significance_level_is_two_sided_unless_declared_one_sided(write_study, base, sided, alpha, tail):
    """Without a declared level "significantly" is p < 0.05 two-sided; ``sided: one`` reads
    the declared level as one-sided."""
    edits = {"associations.sex.sided": sided}
    if alpha is MISSING:
        # the claim no longer names the assumption, so it goes too (nothing would read it)
        edits["associations.sex.alpha"] = MISSING
        edits["assumptions.sex_claim_alpha"] = MISSING
    else:
        edits["assumptions.sex_claim_alpha.value"] = alpha
    st = load_study(variant(write_study, base, edits))
    for df in (5, 43):
        assert claim_rule(st, st.associations["sex"], df) == ("below", "t", pytest.approx((-stats.t.ppf(1 - tail, df),)))


def test_claim_rule_tolerance_reaching_minus_100(write_study, base):
    st = load_study(variant(write_study, base, {"assumptions.age_claim_tolerance.value": 95}))
    with pytest.raises(ValueError, match="reaches -100%"):
        claim_rule(st, st.associations["age"], 71)


# --- 6. cohort log levels --------------------------------------------------------------------
def test_cohort_log_levels_batch_equals_loop(design):
    rng = np.random.default_rng(2)
    D, G, C, L = 4, 2, 4, 3
    alpha, slope = rng.normal(size=(D, G)), rng.normal(size=(D, G, C))
    u, sigma = rng.normal(size=(D, L)), rng.uniform(0.1, 1, size=(D, G))
    x, oh = design.x[:7], design.onehot[:7]
    eps = residual_deviates(7, design.n, 0)
    batch = cohort_log_levels(np, alpha[:, None, :], slope[:, None, :, :], u[:, None, None, :], sigma[:, None, :], x, oh, eps, design.group_index)
    assert batch.shape == (D, 7, design.n)
    for d in range(D):
        one = cohort_log_levels(np, alpha[d], slope[d], u[d], sigma[d], x, oh, eps, design.group_index)
        np.testing.assert_allclose(batch[d], one, rtol=1e-12)
    # explicit formula for one subject
    r, i, g = 2, 40, 1
    want = alpha[0, g] + x[r, i] @ slope[0, g] + oh[r, i] @ u[0] + sigma[0, g] * eps[r, i]
    assert batch[0, r, i] == pytest.approx(want)
    # without a categorical covariate
    nocat = cohort_log_levels(np, alpha[0], slope[0], None, sigma[0], x, oh, eps, design.group_index)
    np.testing.assert_allclose(nocat, batch[0] - (oh * u[0]).sum(axis=-1), atol=1e-12)


def test_packed_symmetric_forms_give_the_quadratic_forms():
    # theta' Q theta from the packed upper triangle and the effects' pairwise products
    # (the covariate model's lack-of-fit term) equals the full quadratic form
    rng = np.random.default_rng(4)
    T = 6
    half = rng.normal(size=(3, 7, T, T))
    Q = half + np.swapaxes(half, -1, -2)
    theta = rng.normal(size=T)
    rows, cols = triangle(T)
    packed = pack_symmetric(Q)
    assert packed.shape == (3, 7, T * (T + 1) // 2)
    np.testing.assert_allclose(packed @ (theta[rows] * theta[cols]), np.einsum("...s,...st,...t->...", theta, Q, theta), rtol=1e-12)

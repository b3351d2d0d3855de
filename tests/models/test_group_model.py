"""Tests for models.group (and models.priors): the group model built from the real study file
has the documented structure, a finite log density and gradient everywhere it may be
evaluated, a CV prior truncated to the likelihood tables' range, a density that peaks at the
published group means, and a deterministic dependence on the seed of its fixed deviates."""
from __future__ import annotations

import copy
import functools
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
import yaml
from scipy import optimize

from models.group import LOG_CV_BOUNDS, START_JITTER, build_model
from models.likelihood import CV_RANGE
from models.priors import PRIOR_SETS, PriorError, get_priors
from models.study import load_study
from tests.compile_modes import UNOPTIMISED

STUDY_PATH = Path(__file__).resolve().parents[2] / "data" / "studies" / "lasemi2018.yaml"
PUBLISHED_MEANS = {"control": 812.0, "ms": 235.0}
FAST = {"mode": UNOPTIMISED}
#: Simulated cohorts per group in these tests: the default (4000) takes the gamma family
#: about a minute to tabulate; the structure and the density's shape do not need them.
REPS = 300


pytestmark = pytest.mark.usefixtures("single_threaded_blas")


@pytest.fixture(scope="module")
def study():
    return load_study(STUDY_PATH)


@functools.cache
def _built(family: str):
    """(family, model, initial point, logp, dlogp): the model of the real study, its initial
    point and its compiled density and gradient, once per family.

    Compilation (and, for the gamma family, building the likelihood tables) is most of this
    file's run time, so everything here is compiled in FAST_COMPILE mode (about 2 s less per
    family); tests/models/test_likelihood.py checks the likelihood graph on the default C backend.
    """
    model = build_model(load_study(STUDY_PATH), get_priors("group"), family=family, reps=REPS)
    return family, model, model.initial_point(), model.compile_logp(**FAST), model.compile_dlogp(**FAST)


@pytest.fixture(params=["lognormal", "gamma"])
def built(request):
    return _built(request.param)


def _interval(log_cv):
    """log CV -> the sampler's unconstrained value of the truncated CV prior."""
    lo, hi = LOG_CV_BOUNDS
    return (hi - lo) / (4 * START_JITTER) * (np.log(log_cv - lo) - np.log(hi - log_cv))


def _point(x):
    """Vector (log_mean[2], log_cv[2]) -> model point."""
    x = np.asarray(x, dtype=float)
    return {"log_mean_scaled__": x[:2] / START_JITTER, "log_cv_scaledinterval__": _interval(x[2:])}


def _upoint(u):
    """Unconstrained vector (log_mean[2], transformed log_cv[2]) -> model point."""
    u = np.asarray(u, dtype=float)
    return {"log_mean_scaled__": u[:2], "log_cv_scaledinterval__": u[2:]}


def _vector(point):
    return np.concatenate([point["log_mean_scaled__"], point["log_cv_scaledinterval__"]])


# --- structure ---------------------------------------------------------------------------------
def test_coords_variables_and_observed_data(built, study):
    family, model, *_ = built
    assert list(model.coords["group"]) == ["control", "ms"]
    assert list(model.coords["statistic_control"]) == ["mean", "sd", "median"]
    assert list(model.coords["statistic_ms"]) == ["mean", "sd", "median"]
    assert [rv.name for rv in model.free_RVs] == ["log_mean", "log_cv"]
    assert {d.name for d in model.deterministics} == {"mean", "cv"}
    # the published p < 0.001 (Mann-Whitney assumed) is a likelihood term where the family
    # has the two-group law (lognormal), a check otherwise (gamma)
    claims = ["claim_control_vs_ms_p_value"] if family == "lognormal" else []
    assert sorted(rv.name for rv in model.observed_RVs) == claims + ["stats_control", "stats_ms"]
    for name in ("log_mean", "log_cv", "mean", "cv"):
        assert model.named_vars_to_dims[name] == ("group",)
    # observed: the log of the published values, in the order of the statistic coords
    for g in ("control", "ms"):
        obs = model.rvs_to_values[model[f"stats_{g}"]]
        obs = obs.get_value() if hasattr(obs, "get_value") else obs.data
        np.testing.assert_allclose(np.asarray(obs), np.log(list(study.reported(g).values())), rtol=1e-14)


def test_two_group_claim_builds_its_probability_inside_its_log_density(study):
    """The claim's parameters are the model variables its probability is made of, not the
    probability's graph (PyMC rewrites that graph on every log-density derivation), and its
    log density is the two-group law's probability, computed outside the model."""
    from pytensor.graph.traversal import applys_between

    from models.group import rounding_width, two_group_log_prob
    from models.hierarchical import claim_logp
    from models.two_group import two_group_terms

    _, model, ip, _, _ = _built("lognormal")
    claim = model["claim_control_vs_ms_p_value"]
    assert set(applys_between(model.free_RVs, [claim])) - {v.owner for v in model.free_RVs} == {claim.owner}
    (term,) = two_group_terms(study, "lognormal")
    values = {g: np.log(list(study.reported(g).values())) for g in study.group_ids}
    lm, lc = pt.vector("lm"), pt.vector("lc")
    held = two_group_log_prob(study, term, lm, lc, {g: pt.as_tensor(v) for g, v in values.items()}, float(study.assumption("reference_level", 1.0)), rounding_width(study))
    # observed not to hold: log(1 - P(holds)), which resolves P(holds) even where it is 1 - 1e-20
    direct = pytensor.function([lm, lc], claim_logp(pt.constant(0.0), held), **FAST)
    constrained = model.compile_fn(model.replace_rvs_by_values([model["log_mean"], model["log_cv"]]), inputs=model.value_vars, **FAST)
    flag = model["claim_holds_control_vs_ms_p_value"]
    flag.set_value(0.0)
    try:
        ours = model.compile_fn(model.logp(vars=[claim], sum=False), **FAST)
        for shift in (0.0, 0.4, -0.4):
            point = {k: v + shift for k, v in ip.items()}
            expected = float(direct(*constrained(point)))
            assert -1e4 < expected < -1.0
            np.testing.assert_allclose(float(ours(point)[0]), expected, rtol=1e-10)
    finally:
        flag.set_value(1.0)


def test_point_logps_are_finite(built):
    family, model, ip, _, _ = built
    logps = model.point_logps(ip, **FAST)
    claims = {"claim_control_vs_ms_p_value"} if family == "lognormal" else set()
    assert set(logps) == {"log_mean", "log_cv", "stats_control", "stats_ms"} | claims
    assert all(np.isfinite(v) for v in logps.values()), logps


def test_logp_and_gradient_are_finite_at_the_initial_and_random_points(built):
    _, model, ip, logp, dlogp = built
    assert np.isfinite(logp(ip))
    assert np.all(np.isfinite(dlogp(ip)))
    rng = np.random.default_rng(0)
    points = [np.clip(rng.normal([0, 0, np.log(0.5), np.log(0.5)], [2, 2, 1.5, 1.5]), -9, 9) for _ in range(8)]
    # near both ends of the CV range of the tables (0.005 to 50), and means far below and
    # above the rounding unit
    points += [np.array([1.0, -0.2, np.log(45.0), np.log(0.0055)]), np.array([-9.0, 6.0, np.log(0.006), np.log(30.0)])]
    for x in points:
        assert np.isfinite(logp(_point(x))), x
        assert np.all(np.isfinite(dlogp(_point(x)))), x
    # and at unconstrained values far out, which the interval transform maps to the edges
    for u in ([0.0, 0.0, -30.0, 30.0], [0.0, 0.0, 30.0, -30.0]):
        assert np.isfinite(logp(_upoint(u))) and np.all(np.isfinite(dlogp(_upoint(u)))), u


def test_cv_prior_is_truncated_to_the_range_of_the_likelihood_tables(built):
    """Beyond the tables the likelihood would be clamped flat; the prior ends there instead."""
    _, model, *_ = built
    transform = model.rvs_to_transforms[model["log_cv"]]
    assert type(transform).__name__ == "ScaledInterval"
    lo, hi = transform.lower, transform.lower + transform.width
    assert (lo, hi) == pytest.approx((np.log(CV_RANGE[0]), np.log(CV_RANGE[1])))
    assert np.log(CV_RANGE) == pytest.approx(LOG_CV_BOUNDS)
    # slope START_JITTER at the centre of the range, so the sampler's initial jitter of
    # U(-1, 1) moves log CV by about 0.1 there, not 2.3 as a plain logit would
    fwd = pytensor.function([x := pytensor.tensor.dvector()], transform.forward(x))
    c, h = (lo + hi) / 2, 1e-6
    assert (fwd(np.array([c + h])) - fwd(np.array([c - h])))[0] / (2 * h) == pytest.approx(1 / START_JITTER, rel=1e-6)


def test_value_names_give_back_the_parameter_names(built):
    """PyMC recovers a parameter's name from its value variable's name (log likelihood and
    log prior groups, power scaling); a transform name with an underscore broke that."""
    from pymc.util import get_untransformed_name, is_transformed_name

    _, model, *_ = built
    for rv in model.free_RVs:
        value = model.rvs_to_values[rv]
        assert is_transformed_name(value.name) and get_untransformed_name(value.name) == rv.name, value.name


def test_given_tables_must_match_the_study(study):
    tables = _built("lognormal")[1].group_tables
    with pytest.raises(ValueError, match="do not match"):
        build_model(study, get_priors("group"), family="lognormal", tables=tables[:1])


def test_gradient_matches_finite_differences(built):
    *_, logp, dlogp = built
    for x in (np.array([0.9, -0.2, np.log(0.25), np.log(0.45)]), np.array([0.3, 0.3, np.log(0.8), np.log(0.3)])):
        u = _vector(_point(x))
        h = 1e-5
        g = lambda v: logp(_upoint(v))  # noqa: E731
        fd = np.array([(g(u + h * e) - g(u - h * e)) / (2 * h) for e in np.eye(4)])
        np.testing.assert_allclose(dlogp(_point(x)), fd, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(fd).max()))


def test_log_density_peaks_at_the_published_means(built):
    family, model, ip, logp, dlogp = built
    # start away from the model's initial point, which is already the moment estimate
    x0 = _vector(ip) + np.array([0.5, -0.5, 0.5, 0.5])
    res = optimize.minimize(
        lambda u: -logp(_upoint(u)), x0, jac=lambda u: -dlogp(_upoint(u)), method="BFGS", options={"gtol": 1e-6}
    )
    # BFGS may stop on precision loss at the optimum of the interpolated density
    assert res.success or np.abs(res.jac).max() < 1e-3, res
    # the model's own deterministics, as functions of the free (unconstrained) values
    outs = model.replace_rvs_by_values([model["mean"], model["cv"]])
    mean, cv = pytensor.function(model.value_vars, outs, **FAST)(res.x[:2], res.x[2:])
    for i, g in enumerate(("control", "ms")):
        assert mean[i] == pytest.approx(PUBLISHED_MEANS[g], rel=0.10), (family, g, mean)
    # published SD / mean is 0.19 (control) and 0.43 (ms); the fitted CVs are of that order
    assert 0.1 < cv[0] < 0.4 and 0.25 < cv[1] < 0.7, (family, cv)
    # and the published means are far better than a mean off by a factor of two
    off = res.x.copy()
    off[0] += np.log(2.0) / START_JITTER  # unconstrained units
    assert logp(_upoint(res.x)) > logp(_upoint(off)) + 10


def test_unknown_family_is_rejected(study):
    with pytest.raises(KeyError, match="nope"):
        build_model(study, get_priors("group"), family="nope")


# --- other studies and seeds -----------------------------------------------------------------
@pytest.fixture
def three_group_study(tmp_path):
    """The real study plus a third group that reports only median and quartiles."""
    data = yaml.safe_load(STUDY_PATH.read_text(encoding="utf-8"))
    pub = {"status": "published", "source": "abstract"}
    data["groups"]["nmo"] = {
        "label": "Neuromyelitis optica patients",
        "n": {"value": 20, **pub},
        "statistics": {
            "median": {"value": 410, **pub},
            "q1": {"value": 300, **pub},
            "q3": {"value": 520, **pub},
        },
    }
    path = tmp_path / "three_groups.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_study(path)


def test_three_group_study_builds_with_finite_logp(three_group_study):
    model = build_model(three_group_study, get_priors("group"), family="lognormal", reps=REPS)
    assert list(model.coords["group"]) == ["control", "ms", "nmo"]
    assert list(model.coords["statistic_nmo"]) == ["median", "q1", "q3"]
    ip = model.initial_point()
    assert ip["log_mean_scaled__"].shape == (3,) and ip["log_cv_scaledinterval__"].shape == (3,)
    logps = model.point_logps(ip, **FAST)
    assert set(logps) == {"log_mean", "log_cv", "stats_control", "stats_ms", "stats_nmo", "claim_control_vs_ms_p_value"}
    assert all(np.isfinite(v) for v in logps.values()), logps


@pytest.mark.parametrize("shape, near, far", [("sinh-arcsinh", 1.5, 1.0), ("normal", 1.0, 0.25)])
def test_same_seed_gives_identical_logp_and_another_seed_a_slightly_different_one(study, shape, near, far):
    """Other Monte Carlo deviates, same synthetic likelihood: near the mode the log density
    moves by about one unit at these 300 cohorts; far from the data (the initial point,
    logp ~ -100) the Monte Carlo error scales the large Mahalanobis term.  The
    sinh-arcsinh shape is looser there: its tail parameter, fitted on the same cohorts, sets
    how fast the density falls (scores grow like |u|^delta), so 300 cohorts move the far
    log density by up to a factor of 2 (with the model's 4000, -87 to -114 over three
    seeds, against -109 to -112 for the normal shape)."""
    from models.group import build_tables

    priors = get_priors("group")
    ref = float(study.assumption("reference_level"))
    # near the mode (the published means, SD/mean-like CVs) and at the initial point
    near_mode = [np.log(812.0 / ref), np.log(235.0 / ref), np.log(0.24), np.log(0.43)]
    points = [_point(near_mode), _point([0.0, 0.0, np.log(0.5), np.log(0.5)])]

    def logps(seed):
        tables = build_tables(study, "lognormal", REPS, seed, shape=shape)
        model = build_model(study, priors, family="lognormal", seed=seed, reps=REPS, tables=tables)
        # the same compilation mode as the default model's, so "identical" means bit for bit
        fn = model.compile_logp(**FAST)
        return np.array([fn(p) for p in points])

    a = np.array([_built("lognormal")[3](p) for p in points]) if shape == "sinh-arcsinh" else logps(20180302)
    b, c = logps(20180302), logps(7)
    np.testing.assert_array_equal(a, b)
    assert np.all(a != c)
    assert abs(c[0] - a[0]) < near, (a, c)
    assert abs(c[1] - a[1]) < far * abs(a[1]), (a, c)


# --- priors ----------------------------------------------------------------------------------
def test_prior_sets_have_the_group_parameters():
    for name in ("default", "wide", "narrow"):
        priors = get_priors("group", name)
        assert set(priors) == {"log_mean", "log_cv"}


def test_unknown_prior_set_raises_prior_error_naming_it():
    with pytest.raises(PriorError, match="'nope'") as info:
        get_priors("group", "nope")
    assert "default" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unknown_model_raises_prior_error_naming_it():
    with pytest.raises(PriorError, match="'covariate_model'"):
        get_priors("covariate_model")


def test_unknown_override_key_raises_prior_error_naming_it():
    with pytest.raises(PriorError, match="'log_sd'") as info:
        get_priors("group", overrides={"log_sd": {"dist": "normal", "mu": 0.0, "sigma": 1.0}})
    assert "log_mean" in str(info.value) and "log_cv" in str(info.value)


def test_overrides_replace_one_prior_and_never_touch_the_shared_sets():
    before = copy.deepcopy(PRIOR_SETS)
    priors = get_priors("group", overrides={"log_cv": {"dist": "student_t", "nu": 4, "mu": 0.0, "sigma": 1.0}})
    assert priors["log_cv"] == {"dist": "student_t", "nu": 4, "mu": 0.0, "sigma": 1.0}
    assert priors["log_mean"] == PRIOR_SETS["group"]["default"]["log_mean"]
    priors["log_mean"]["sigma"] = 99.0
    assert PRIOR_SETS == before
    assert get_priors("group")["log_mean"]["sigma"] == 3.0


# --- medians alone: the location in sampling SDs of a median ---------------------------------
@pytest.fixture(scope="module")
def medians_only(tmp_path_factory):
    """The real study with each group's median alone, and its model in both parameterisations."""
    import models.group as group

    data = yaml.safe_load(STUDY_PATH.read_text(encoding="utf-8"))
    for g in data["groups"].values():
        g["statistics"] = {"median": g["statistics"]["median"]}
    path = tmp_path_factory.mktemp("medians") / "medians.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    study = load_study(path)
    assert group.median_only(study)
    located = build_model(study, get_priors("group"), reps=REPS)
    saved = group._medians_alone
    group._medians_alone = lambda data: False  # the plain (log_mean, log_cv) model of the same study
    try:
        plain = build_model(study, get_priors("group"), reps=REPS)
    finally:
        group._medians_alone = saved
    return study, located, plain


def test_medians_alone_give_the_same_posterior_density_up_to_the_jacobian(medians_only):
    """At any (log_mean, log_cv) the located model's density in (loc_z, log_cv) is the plain
    model's times d log_mean / d loc_z = s(cv): the same posterior, sampled in other units."""
    from models.group import median_location

    study, located, plain = medians_only
    assert {v.name for v in located.free_RVs} == {"loc_z", "log_cv"} and "log_mean" in {d.name for d in located.deterministics}
    assert {v.name for v in plain.free_RVs} == {"log_mean", "log_cv"}
    lp_located, lp_plain = located.compile_logp(jacobian=False, **FAST), plain.compile_logp(jacobian=False, **FAST)
    n = np.array([study.n(g) for g in study.group_ids], dtype=float)
    ref = float(study.assumption("reference_level", 1.0))
    m = np.log([study.reported(g)["median"] / ref for g in study.group_ids])
    rng = np.random.default_rng(5)
    for _ in range(5):
        lm, lc = rng.normal(0.0, 1.0, 2) + m, rng.uniform(-2.5, 1.0, 2)
        ratio, scale = median_location(np, lc, n)
        z = (lm - m + ratio) / scale
        a = lp_located({"loc_z": z, "log_cv_scaledinterval__": _interval(lc)})
        b = lp_plain({"log_mean_scaled__": lm / START_JITTER, "log_cv_scaledinterval__": _interval(lc)})
        assert a - b == pytest.approx(np.log(scale).sum(), abs=1e-6)


def test_median_location_is_the_lognormals_exact_median_and_its_sampling_sd():
    """log(median / mean) = -sigma^2 / 2, and the SD of a log sample median of n is
    1 / (2 f(log median) sqrt(n)) = sqrt(pi / 2) sigma / sqrt(n) (f the normal density),
    against SciPy's lognormal."""
    from models.families import scipy_distribution
    from models.group import median_location

    lc = np.log([0.1, 0.5, 1.0, 2.0])
    ratio, scale = median_location(np, lc, 4.0)
    for c, r, s_ in zip(np.exp(lc), ratio, scale):
        d = scipy_distribution("lognormal", 1.0, c)
        m = d.median()
        assert r == pytest.approx(np.log(m), abs=1e-12)
        assert s_ == pytest.approx(1 / (2 * m * d.pdf(m)) / 2.0, rel=1e-9)


def test_medians_alone_keep_the_prior_of_log_mean(medians_only):
    """Prior draws of the derived log_mean follow the prior set's N(0, 3), independent of the CV."""
    import pymc as pm
    from scipy import stats

    _, located, _ = medians_only
    lm, lc = pm.draw([located["log_mean"], located["log_cv"]], draws=4000, random_seed=11)
    for g in range(lm.shape[1]):
        assert stats.kstest(lm[:, g], stats.norm(0.0, 3.0).cdf).pvalue > 0.001
        assert abs(np.corrcoef(lm[:, g], lc[:, g])[0, 1]) < 0.06


def test_calibration_ranks_log_mean_where_the_location_is_sampled_in_other_units(medians_only):
    """Calibration ranks the parameters its simulated studies were drawn with (log_mean and
    log_cv), also when the model samples loc_z (a function of the data, with no true value
    of its own)."""
    from reanalysis.calibration import parameter_names

    _, located, _ = medians_only
    labels = [label for label, _, _ in parameter_names(located, ["log_mean", "log_cv"])]
    assert labels == ["log_mean[control]", "log_mean[ms]", "log_cv[control]", "log_cv[ms]"]
    assert [v for _, v, _ in parameter_names(located)] == ["log_cv", "log_cv", "loc_z", "loc_z"]

"""Tests for models.hierarchical (the covariate model built from the real study file) and
models.effects (its estimands and posterior predictive cohorts).

Fast tier: no sampling.  The model is built once with ``reps=10``; the per-term log
densities are compiled once into one function (FAST_COMPILE) and evaluated at modified
initial points, so each claim term can be checked for the direction it rewards.  The
estimands and predictive checks run on a small fake posterior made with ``az.from_dict``.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import arviz as az
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
import yaml
from scipy import special

from models import effects
from models.hierarchical import build_model, deviation_basis, log_ndtr, resolve_priors
from models.priors import PriorError, get_priors
from models.study import load_study
from tests.compile_modes import PY_REWRITTEN
from tests.covariate_points import with_slopes

STUDY_PATH = Path(__file__).resolve().parents[2] / "data" / "studies" / "lasemi2018.yaml"
# the Python linker: no C module is compiled for the thousands of unfused nodes of an
# unoptimised gradient graph (FAST_COMPILE with the C linker took over 2 minutes per function)
FAST = {"mode": PY_REWRITTEN}
REPS = 10
OBSERVED = ["stats_control", "stats_ms", "claim_sex", "claim_age", "claim_attacks", "claim_optic", "claim_control_vs_ms_p_value"]
COVARIATES = ["female", "age_decades", "attacks_per_year", "optic_lesion"]


pytestmark = pytest.mark.usefixtures("single_threaded_blas")


@pytest.fixture(scope="module")
def study():
    return load_study(STUDY_PATH)


@functools.cache
def _model():
    return build_model(load_study(STUDY_PATH), get_priors("hierarchical"), reps=REPS)


@pytest.fixture(scope="module")
def model():
    return _model()


@functools.cache
def _converted():
    """The model's log densities as the sampler takes them (reanalysis.sampling): ONE graph
    conversion and XLA compilation (about 12 s) serve every point of this file, each
    evaluated in milliseconds (on PyTensor's Python linker each took 0.75 s).  The claims'
    "observed to hold" flags are inputs, so a claim observed not to hold needs no second
    compilation.  That these functions are PyMC's densities is
    test_jax_log_densities_match_pymc below."""
    from reanalysis.sampling import _jax_functions

    m = _model()
    shared = {v.name: v for v in (m[f"claim_holds_{name.removeprefix('claim_')}"] for name in OBSERVED if name.startswith("claim_"))}
    potential, postprocess, densities, names, out_names = _jax_functions(m, shared, log_densities=True)
    # the flags' values in the model (every claim holds), the data the functions take
    data = {n: np.asarray(v.get_value(), dtype=float) for n, v in shared.items()}
    return m, data, potential, postprocess, densities, names, out_names


def _term_logps():
    """point (, claim_holds_<name>=0 or 1) -> {observed name: its log density, "potential":
    the sampler's potential (minus the model's log density, with the transforms' Jacobians),
    "prior": the free variables' log densities at their constrained values (no Jacobian)}."""
    m, held, potential, _, densities, names, _ = _converted()

    def evaluate(point, **flags):
        data = {**held, **{n: np.asarray(v, dtype=float) for n, v in flags.items()}}
        values = densities({n: np.asarray(point[n])[None, None] for n in names}, data)
        terms = dict(zip([v.name for v in m.observed_RVs], (float(np.sum(v)) for v in values)))
        terms["prior"] = float(sum(np.sum(v) for v in values[len(m.observed_RVs) :]))
        terms["potential"] = float(potential({n: point[n] for n in names}, data))
        return terms

    return evaluate


def _point(model, **edits):
    """The model's initial point with a covariate's slope in every group (by covariate, or
    ``effect``: all covariates) or whole variables replaced."""
    slopes = dict(zip(COVARIATES, edits.pop("effect", [])))
    slopes.update({c: edits.pop(c) for c in COVARIATES if c in edits})
    point = with_slopes(model, model.initial_point(), slopes)
    point.update({key: np.asarray(value, dtype=float) for key, value in edits.items()})
    return point


def _variant(tmp_path, edit) -> Path:
    data = yaml.safe_load(STUDY_PATH.read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# --- 7. model structure ---------------------------------------------------------------------
def test_model_variables(model):
    free = [v.name for v in model.free_RVs]
    assert free == [
        "intercept", "group_difference", "effect_single", "effect_spread", "slope_mean", "effect_offset", "effect_z",
        "category_spread", "category_z", "log_sigma",
    ]
    assert model.coords["single_covariate"] == ("attacks_per_year", "optic_lesion")
    assert model.named_vars_to_dims["effect_z"] == ("deviation", "pooled_covariate")
    assert sorted(v.name for v in model.observed_RVs) == sorted(OBSERVED)
    # "more than three-fold" is a ratio of reported means: checked, not counted twice
    assert not any("fold" in v.name for v in model.observed_RVs)
    assert {"effect", "alpha", "slope", "sigma", "u"} <= {v.name for v in model.deterministics}
    assert model.coords["covariate"] == tuple(COVARIATES)
    assert model.coords["pooled_covariate"] == ("female", "age_decades")
    assert model.coords["group"] == ("control", "ms")
    assert len(model.coords["level"]) == 3
    assert model.design.reps == REPS and model.residual_df is None
    # padded per group: (group, cohort, subject slot, covariate)
    assert model["design_x"].get_value().shape == (2, REPS, 45, 4)


@pytest.mark.parametrize("defined", [[True, True], [True, True, False], [False, True, True, True], [True, False, True]])
def test_deviation_basis_is_orthonormal_and_orthogonal_to_the_defined_groups_mean(defined):
    defined = np.array(defined)
    basis = deviation_basis(defined)
    assert basis.shape == (len(defined), len(defined) - 1)
    np.testing.assert_allclose(basis.T @ basis, np.eye(len(defined) - 1), atol=1e-12)
    np.testing.assert_allclose(defined @ basis, 0.0, atol=1e-12)
    # z = mean + basis @ eta for iid standard normals z: the defined groups' deviations from
    # their mean are exactly the basis's span restricted to them
    centring = np.diag(defined.astype(float)) - np.outer(defined, defined) / defined.sum()
    inside = basis[defined]
    np.testing.assert_allclose(inside @ inside.T, centring[np.ix_(defined, defined)], atol=1e-12)


def test_pooled_effects_keep_the_plain_non_centred_prior(model):
    """Sampled as mean slope, deviations and offset, a pooled covariate's slopes are still
    ``effect + spread * z``: with draws from the prior, ``z = (slope - effect) / spread`` is
    standard normal in every group, uncorrelated with the effect and the spread, and the effect
    keeps its normal(0, 0.5) prior (the default set).  Checked at 20,000 draws, where a
    wrong conditional SD of the effect given the mean slope (by the spread's share) moves the
    SD of ``z`` by more than 0.05."""
    from scipy import stats as st

    import pymc as pm

    effect, slope, spread = pm.draw([model["effect"], model["slope"], model["effect_spread"]], draws=20_000, random_seed=7, mode=PY_REWRITTEN)
    covariates = list(model.coords["covariate"])
    for k, c in enumerate(model.coords["pooled_covariate"]):
        j = covariates.index(c)
        z = (slope[:, :, j] - effect[:, j, None]) / spread[:, k, None]
        assert st.kstest(effect[:, j], "norm", args=(0.0, 0.5)).pvalue > 1e-3
        for g in range(z.shape[1]):
            assert st.kstest(z[:, g], "norm").pvalue > 1e-3, (c, g)
            assert abs(np.corrcoef(z[:, g], effect[:, j])[0, 1]) < 0.03
            assert abs(np.corrcoef(np.abs(z[:, g]), spread[:, k])[0, 1]) < 0.03
        assert abs(np.corrcoef(z.T)[0, 1]) < 0.03


def test_observed_variables_build_their_parameters_inside_their_log_densities(model, monkeypatch):
    """The statistics' and claims' parameters are the model's free variables (and their own
    data), not the thousands of operations PyMC would rewrite on every derivation; one
    derivation of the log density builds those operations once for all of them."""
    import models.deferred as deferred
    from pytensor.graph.replace import clone_replace as deferred_clone
    from pytensor.graph.traversal import applys_between

    free = {v.owner for v in model.free_RVs}
    assert all(set(applys_between(model.free_RVs, [rv])) - free == {rv.owner} for rv in model.observed_RVs)
    copies = []
    monkeypatch.setattr(deferred, "clone_replace", lambda *a, **k: copies.append(1) or deferred_clone(*a, **k))
    model.logp(sum=False)
    assert len(copies) == 1


def test_model_logp_finite_at_initial_point(model):
    terms = _term_logps()(_point(model))
    assert all(np.isfinite(v) for v in terms.values()), terms
    # the terms are the model's whole log density: every observed variable, no potential
    # (that the sampler's potential sums the terms and the Jacobians is tested on a model of
    # every kind of term: test_potential_from_density_terms_is_the_model_logp)
    assert set(OBSERVED) == {v.name for v in model.observed_RVs} and not model.potentials
    # every claim is a log probability
    assert all(terms[k] <= 1e-12 for k in OBSERVED if k.startswith("claim_"))


def test_log_ndtr_matches_scipy():
    """log Phi to 1e-6 absolute over the whole range, including both sides of the switch
    to the asymptotic series at -20 (an earlier switch at -5 was off by 2e-4)."""
    z = pt.dvector()
    fn = pytensor.function([z], log_ndtr(z), **FAST)
    grid = np.concatenate([np.linspace(-40, 10, 2001), [-5.001, -5.01, -5.5, -6.0, -7.0, -19.999, -20.001]])
    got = fn(grid)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, special.log_ndtr(grid), rtol=1e-9, atol=1e-6)


# --- claim terms reward the claimed direction ------------------------------------------------
@pytest.mark.parametrize(
    "term, covariate, claimed, opposite",
    [
        ("claim_age", "age_decades", math.log(0.9), math.log(1.1)),
        ("claim_sex", "female", -0.4, 0.4),
        ("claim_attacks", "attacks_per_year", -0.3, 0.3),
        ("claim_optic", "optic_lesion", 0.3, -0.3),
    ],
)
def test_claim_terms_respond(model, term, covariate, claimed, opposite):
    logp = _term_logps()
    good = logp(_point(model, **{covariate: claimed}))
    bad = logp(_point(model, **{covariate: opposite}))
    assert good[term] > bad[term] + 2, (good[term], bad[term])
    assert good[term] > math.log(0.3)  # the claim is likely when the effect is as claimed


def test_age_claim_prefers_the_claimed_interval(model):
    """"Approximately -10% per decade" (5-15%): -10% beats both no effect and -40%."""
    logp = _term_logps()
    at = {b: logp(_point(model, age_decades=math.log(b)))["claim_age"] for b in (0.9, 1.0, 0.6)}
    assert at[0.9] > at[1.0] + 1 and at[0.9] > at[0.6] + 1


def test_p_value_claim_responds_to_group_difference(model):
    logp = _term_logps()
    far = logp(_point(model))["claim_control_vs_ms_p_value"]  # starts at the published medians
    none = logp(_point(model, group_difference=[0.0]))["claim_control_vs_ms_p_value"]
    assert far > math.log(0.9)
    assert none < far - 5


# --- families, errors, priors ---------------------------------------------------------------
@pytest.mark.slow
def test_student_t_family(study, model):
    """Student-t residuals: a scale mixture in the likelihood, with heavier tails, so the
    same effects give a different fit to the reported statistics.  Slow tier: a build and a
    compilation of the model's likelihood (11 s); the fast tier checks the Student-t
    mixture's moments against simulation (test_joint_likelihood.py) and that the family
    needs its degrees of freedom (test_student_t_family_needs_residual_df)."""
    m = build_model(study, get_priors("hierarchical"), family="student_t", reps=REPS)
    assert m.residual_df == 5.0
    point = _point(model)
    # the Python linker, as _term_logps: point_logps would compile every term in C, minutes
    # with a cold compilation cache
    fn = pytensor.function(m.value_vars, m.logp(vars=[m["stats_ms"]]), on_unused_input="ignore", **FAST)
    t_ms = float(fn(*[point[v.name] for v in m.value_vars]))
    assert np.isfinite(t_ms) and t_ms != _term_logps()(point)["stats_ms"]


#: Points far from the mode where a gradient once was NaN (test_gradient_finite_...).
FAR_EFFECTS = ([0.9, -0.47, -0.71, -0.83], [-1.0, 1.0, 1.0, 1.0], [2.0, -2.0, -2.0, 2.0])


@pytest.mark.slow
def test_gradient_finite_at_the_start_and_far_from_the_mode(model):
    """Finite, non-zero gradient at the initial point, and finite far from the mode.
    Regression: a jittered start with large effects made a claim certain, and the unused
    branch of a switch (log of 1 - probability) turned the whole gradient into NaN, so the
    chain never moved (300 divergences).  One compiled gradient serves every point: building
    it is most of this test's time (about 20 s of CPU), so the fast tier checks the
    sampler's own gradient, JAX's, at the same points instead
    (test_jax_log_densities_match_pymc)."""
    grad = model.compile_dlogp(**FAST)
    g0 = grad(model.initial_point())
    assert g0.shape == (sum(np.size(v) for v in model.initial_point().values()),)
    assert np.all(np.isfinite(g0)) and np.any(g0 != 0)
    for effect in FAR_EFFECTS:
        point = _point(model, effect=effect, log_sigma=[-2.5, -2.5])
        assert np.all(np.isfinite(grad(point))), effect


@pytest.mark.slow
def test_jax_gradient_is_finite_at_the_start_and_far_from_the_mode(model):
    """The gradient the sampler takes of its potential is finite and non-zero at the initial
    point and finite far from the mode (the regression of
    test_gradient_finite_at_the_start_and_far_from_the_mode, on PyTensor's gradient).  Slow
    tier: XLA compiles the gradient of the whole model (6 s); the fast tier's fits sample
    smaller models with the same code."""
    import jax

    _, data, potential, _, _, names, _ = _converted()
    grad = jax.jit(jax.grad(potential))
    start = model.initial_point()
    g0 = np.concatenate([np.ravel(v) for v in grad({n: start[n] for n in names}, data).values()])
    assert np.all(np.isfinite(g0)) and np.any(g0 != 0)
    for effect in FAR_EFFECTS:
        point = _point(model, effect=effect, log_sigma=[-2.5, -2.5])
        assert all(np.all(np.isfinite(v)) for v in grad({n: point[n] for n in names}, data).values()), effect


def test_jax_log_densities_match_pymc(model):
    """The log_likelihood and log_prior groups a JAX fit brings (reanalysis.sampling) are PyMC's:
    same variables, dims and values at scattered draws."""
    import pymc as pm

    from reanalysis.sampling import _density_groups

    m, data, _, postprocess, densities, names, out_names = _converted()
    start = m.initial_point()
    rng = np.random.default_rng(3)
    draws = {n: start[n] + 0.3 * rng.standard_normal((2, 3, *np.shape(start[n]))) for n in names}
    coords = {k: list(v) for k, v in m.coords.items()}
    dims = {k: list(v) for k, v in m.named_vars_to_dims.items()}
    posterior = {n: np.asarray(v) for n, v in zip(out_names, postprocess(draws, data))}
    idata = az.from_dict(posterior=posterior, coords=coords, dims=dims)
    ours = _density_groups(m, list(densities(draws, data)), coords, dims)
    saved = dict(m.rvs_to_initial_values)
    m.rvs_to_initial_values = {rv: None for rv in saved}
    try:
        theirs = {
            "log_likelihood": pm.compute_log_likelihood(idata, model=m, progressbar=False, extend_inferencedata=False, compile_kwargs=FAST),
            "log_prior": pm.compute_log_prior(idata, model=m, progressbar=False, extend_inferencedata=False, compile_kwargs=FAST),
        }
    finally:
        m.rvs_to_initial_values = saved
    for group, ref in theirs.items():
        assert sorted(ours[group].data_vars) == sorted(ref.data_vars), group
        for var in ref.data_vars:
            assert ours[group][var].dims == ref[var].dims, (group, var)
            np.testing.assert_allclose(ours[group][var].values, ref[var].values, rtol=1e-9, atol=1e-9, err_msg=f"{group}.{var}")


def test_claim_observed_not_to_hold(model):
    """A claim observed not to hold (as in simulated studies) contributes log(1 - p)."""
    point = _point(model, age_decades=math.log(0.9))
    held = _term_logps()(point)
    not_held = _term_logps()(point, claim_holds_age=0.0)
    assert not_held["claim_age"] == pytest.approx(math.log(-math.expm1(held["claim_age"])), rel=1e-9)
    # only the claim's own term changes
    assert all(not_held[k] == held[k] for k in OBSERVED if k != "claim_age")


def test_statistic_without_large_sample_distribution(tmp_path):
    def edit(d):
        d["groups"]["ms"]["statistics"]["max"] = {"value": 600, "status": "published", "source": "abstract"}

    study = load_study(_variant(tmp_path, edit))
    model = build_model(study, get_priors("hierarchical"), reps=REPS)
    # a maximum has no large-sample law: it is left to the checks, not fitted
    assert "max" not in model.coords["statistic_ms"] and "max" in study.reported("ms")

    def only_extremes(d):
        d["groups"]["ms"]["statistics"] = {k: {"value": v, "status": "published", "source": "abstract"} for k, v in (("min", 20), ("max", 600))}

    with pytest.raises(ValueError, match="groups.ms.statistics: the hierarchical model fits only mean, sd, median"):
        build_model(load_study(_variant(tmp_path, only_extremes)), get_priors("hierarchical"), reps=REPS)


def test_student_t_family_needs_residual_df(study):
    priors = get_priors("hierarchical")
    del priors["residual_df"]
    with pytest.raises(PriorError, match="residual_df"):
        build_model(study, priors, family="student_t", reps=REPS)
    build_model(study, priors, family="normal", reps=REPS)  # not needed otherwise


def test_unknown_family(study):
    with pytest.raises(ValueError, match="unknown residual family 'gamma'"):
        build_model(study, get_priors("hierarchical"), family="gamma", reps=REPS)


def test_study_without_covariates(tmp_path):
    def without_covariates(d):
        # the covariates' distributions go with them: nothing would read those assumptions
        for c in d.pop("covariates").values():
            d["assumptions"].pop(c.get("assumption"), None)

    study = load_study(_variant(tmp_path, without_covariates))
    with pytest.raises(ValueError, match="lasemi2018: the hierarchical model needs 'covariates'"):
        build_model(study, get_priors("hierarchical"), reps=REPS)


def test_resolve_priors_enthusiastic(study, model):
    pr = resolve_priors(study, get_priors("hierarchical", "enthusiastic"), model.design)
    mu = dict(zip(model.design.covariates, pr["effect_mu"]))
    assert mu["age_decades"] == pytest.approx(math.log(0.9))
    assert mu["female"] == pytest.approx(-0.2)
    assert mu["attacks_per_year"] == pytest.approx(-0.2)
    assert mu["optic_lesion"] == pytest.approx(0.2)
    assert pr["effect_sigma"] == pytest.approx([0.15] * 4)
    assert len(pr["group_difference"]) == 1
    assert pr["group_difference"][0]["mu"] == pytest.approx(-math.log(3))  # ms relative to control
    default = resolve_priors(study, get_priors("hierarchical"), model.design)
    assert np.all(default["effect_mu"] == 0) and default["group_difference"][0]["mu"] == 0


def test_resolve_priors_per_covariate_override(study, model):
    priors = get_priors("hierarchical")
    priors["effect.optic_lesion"] = {"dist": "normal", "mu": 0.1, "sigma": 0.05}
    pr = resolve_priors(study, priors, model.design)
    assert pr["effect_mu"].tolist() == [0, 0, 0, 0.1]
    assert pr["effect_sigma"].tolist() == [0.5, 0.5, 0.5, 0.05]


def test_resolve_priors_unknown_effect_key(study, model):
    priors = get_priors("hierarchical")
    priors["effect.nonexistent"] = {"dist": "normal", "mu": 0.0, "sigma": 1.0}
    with pytest.raises(PriorError, match="effect.nonexistent"):
        resolve_priors(study, priors, model.design)


# --- 8. estimands from a fake posterior ------------------------------------------------------
def _fake_idata(model, *, alpha=(1.0, -0.5), slope=None, u=None, effect=None, sigma=(0.2, 0.4), seed=0):
    rng = np.random.default_rng(seed)
    shape = (2, 50)
    G, C, L = 2, len(COVARIATES), len(model.coords["level"])
    post = {
        "alpha": np.broadcast_to(np.asarray(alpha, float), shape + (G,)) + 0.01 * rng.normal(size=shape + (G,)),
        "slope": rng.normal(0, 0.1, size=shape + (G, C)) if slope is None else np.broadcast_to(np.asarray(slope, float), shape + (G, C)).copy(),
        "sigma": np.broadcast_to(np.asarray(sigma, float), shape + (G,)).copy(),
        "u": rng.normal(0, 0.1, size=shape + (L,)) if u is None else np.broadcast_to(np.asarray(u, float), shape + (L,)).copy(),
        "effect": rng.normal(0, 0.1, size=shape + (C,)) if effect is None else np.broadcast_to(np.asarray(effect, float), shape + (C,)).copy(),
        "category_spread": np.abs(rng.normal(0.2, 0.05, size=shape)),
    }
    coords = {k: list(model.coords[k]) for k in ("group", "covariate", "level")}
    dims = {"alpha": ["group"], "slope": ["group", "covariate"], "sigma": ["group"], "u": ["level"], "effect": ["covariate"]}
    return az.from_dict(posterior=post, coords=coords, dims=dims)


@pytest.fixture(scope="module")
def fake(model, study):
    idata = _fake_idata(model, alpha=(2.0, -1.0))
    return effects.add_effects(idata, study, model.design)


def test_effect_percent(fake):
    post = fake.posterior
    np.testing.assert_allclose(post["effect_percent"].values, 100 * (np.exp(post["effect"].values) - 1), rtol=1e-12)
    np.testing.assert_allclose(post["category_spread_percent"].values, 100 * np.expm1(post["category_spread"].values))


def test_slope_percent_nan_exactly_where_undefined(fake):
    sp = fake.posterior["slope_percent"]
    nan = np.isnan(sp.values).all(axis=(0, 1))
    assert nan.tolist() == [[False, False, True, True], [False, False, False, False]]
    assert not np.isnan(sp.values).any(axis=(0, 1))[~nan].any()
    np.testing.assert_allclose(sp.sel(group="ms").values, 100 * np.expm1(fake.posterior["slope"].sel(group="ms").values))


def test_marginal_contrasts(fake):
    post = fake.posterior
    rom = post["ratio_of_medians"].sel(comparison="control_vs_ms").values
    assert np.all(rom > 1) and np.median(rom) == pytest.approx(math.exp(3), rel=0.3)
    assert np.all(post["ratio_of_means"].values > 1)
    assert np.all(post["difference_in_medians"].values > 0)
    ps = post["prob_superiority"].values
    assert np.all((ps > 0.95) & (ps <= 1))
    assert post["median"].dims == ("chain", "draw", "group")
    assert np.all(post["median"].sel(group="control") > post["median"].sel(group="ms"))


def test_adjusted_ratio_without_covariate_effects(model, study):
    idata = _fake_idata(model, alpha=(0.7, -0.2), slope=np.zeros((2, 4)), u=np.zeros(3))
    effects.add_effects(idata, study, model.design)
    post = idata.posterior
    alpha = post["alpha"].values
    np.testing.assert_allclose(post["adjusted_ratio"].sel(comparison="control_vs_ms").values, np.exp(alpha[..., 0] - alpha[..., 1]), rtol=1e-12)


def test_adjusted_ratio_compares_at_shared_covariates(model, study):
    """A sex slope in the controls only moves the control level by slope x (pooled female
    share - centring), the same shift as for the MS group's own slope at that share."""
    slope = np.zeros((2, 4))
    slope[0, 0] = 0.5
    idata = _fake_idata(model, alpha=(0.0, 0.0), slope=slope, u=np.zeros(3))
    effects.add_effects(idata, study, model.design)
    d = model.design
    pooled_female = d.x[:, :, 0].mean()  # female is defined in both groups, centred over both
    got = idata.posterior["adjusted_ratio"].values
    alpha = idata.posterior["alpha"].values
    np.testing.assert_allclose(got, np.exp(alpha[..., 0] - alpha[..., 1] + 0.5 * pooled_female)[..., None], rtol=1e-9)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # R-hat of constant fake draws
def test_estimand_table(fake, study):
    table = effects.estimand_table(fake, study)
    assert not table[["median", "mean"]].isna().any(axis=None)
    names = set(table["estimand"])
    for c, sign in (("female", "<"), ("age_decades", "<"), ("attacks_per_year", "<"), ("optic_lesion", ">")):
        assert f"P(effect_percent[{c}] {sign} 0)" in names
    assert "slope_percent[control, attacks_per_year]" not in names
    assert "slope_percent[ms, attacks_per_year]" in names
    assert "adjusted_ratio[control_vs_ms]" in names
    p = table.set_index("estimand")["median"]
    assert 0 <= p["P(effect_percent[female] < 0)"] <= 1
    assert p["P(ratio_of_means[control_vs_ms] > 3)"] > 0.9


# --- 9. posterior predictive -----------------------------------------------------------------
def test_simulate_predictive_shapes(fake, study, model):
    cohorts, assoc = effects.simulate_predictive(fake, study, model.design, None, n_draws=60, seed=1)
    assert set(cohorts) == {"control", "ms"}
    assert cohorts["control"].shape == (60, 29) and cohorts["ms"].shape == (60, 45)
    assert np.all(np.diff(cohorts["ms"], axis=-1) >= 0) and np.all(cohorts["ms"] > 0)
    assert set(assoc) == {f"association.{a}{s}" for a in ("sex", "age", "attacks", "optic") for s in ("", ".holds")}
    for key, value in assoc.items():
        assert value.shape == (60,)
        if key.endswith(".holds"):
            assert value.dtype == bool


def test_predictive_age_claim_follows_the_age_effect(model, study):
    def holds(age_slope):
        slope = np.zeros((2, 4))
        slope[:, 1] = age_slope
        idata = _fake_idata(model, slope=slope, u=np.zeros(3), sigma=(0.15, 0.15))
        _, assoc = effects.simulate_predictive(idata, study, model.design, None, n_draws=100, seed=2)
        return assoc["association.age.holds"].mean(), np.median(assoc["association.age"])

    h_claimed, est_claimed = holds(math.log(0.9))
    h_zero, est_zero = holds(0.0)
    assert h_claimed > h_zero + 0.5
    assert est_claimed == pytest.approx(-10, abs=3) and est_zero == pytest.approx(0, abs=3)


def test_covariate_view_and_figure(fake, study, model):
    """The level-versus-age view: age in years around the declared mean, sex as 0/1, one
    line per group and sex, and a figure with labelled axes (plotting only draws)."""
    import matplotlib

    matplotlib.use("Agg")
    from reanalysis.figures.plots import covariate_figure

    view = effects.covariate_view(fake, study, model.design, None, n_cohorts=2)
    assert (view["x"], view["split"]) == ("age_decades", "female")
    ages = np.concatenate([c["x"] for c in view["cohorts"]])
    assert 25 < ages.mean() < 45 and ages.std() > 4
    assert set(np.unique(np.concatenate([c["split"] for c in view["cohorts"]]))) == {0.0, 1.0}
    assert sorted(view["lines"]) == [("control", 0.0), ("control", 1.0), ("ms", 0.0), ("ms", 1.0)]
    grid, med, lo, hi = view["lines"][("ms", 1.0)]
    assert np.all(lo <= med) and np.all(med <= hi)
    fig = covariate_figure(view, study)
    assert fig.axes[0].get_xlabel() == "age (years)" and "ng/ml" in fig.axes[0].get_ylabel()
    # the other sex is named from the study's breakdown, not "not female"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(t.startswith("male: ") for t in legend) and not any("not female" in t for t in legend)


def test_prior_posterior_figure_has_a_panel_per_coordinate_and_the_models_scales(model, study):
    """A parameter with a dim (slope_mean: pooled covariate) gets one panel per coordinate,
    named from the study file; the standardised contrasts (effect_z: deviation x pooled
    covariate) share one panel; axes say what the model declares."""
    import matplotlib

    matplotlib.use("Agg")
    from reanalysis.analysis import model_api
    from reanalysis.figures.plots import prior_posterior_figure

    rng = np.random.default_rng(0)
    pooled = list(model.coords["pooled_covariate"])
    deviations = list(model.coords["deviation"])
    draws = {
        "slope_mean": rng.normal(size=(2, 50, len(pooled))), "effect_z": rng.normal(size=(2, 50, len(deviations), len(pooled))),
        "intercept": rng.normal(size=(2, 50)),
    }
    coords = {"deviation": deviations, "pooled_covariate": pooled}
    dims = {"slope_mean": ["pooled_covariate"], "effect_z": ["deviation", "pooled_covariate"]}
    idata = az.from_dict(posterior=draws, prior={k: 2 * v for k, v in draws.items()}, coords=coords, dims=dims)
    scales = model_api("hierarchical").parameter_scales
    fig = prior_posterior_figure(idata, ["slope_mean", "effect_z", "intercept"], scales, study)
    labels = [ax.get_xlabel().replace("\n", " ") for ax in fig.axes if ax.get_visible()]
    assert len(labels) == len(pooled) + 2
    assert f"mean over the groups of the slope of age, per decade ({scales['slope_mean']})" in labels
    assert labels[len(pooled)].endswith(f"({scales['effect_z']}; {len(deviations) * len(pooled)} overlaid)")
    assert labels[-1] == f"Healthy controls: typical level ({scales['intercept']})" and not any("natural log" in t for t in labels)
    # every sampled parameter of the model has its scale declared
    assert {v.name for v in model.free_RVs} <= set(scales)


def test_rank_figure_has_a_panel_per_coordinate_at_a_bounded_size():
    """One rank panel per coordinate, in two columns at page width (ArviZ's own size for 18
    panels was 22 x 33 inches, and saving it took seconds)."""
    import matplotlib

    matplotlib.use("Agg")
    from reanalysis.figures.plots import rank_figure

    rng = np.random.default_rng(1)
    idata = az.from_dict(posterior={"a": rng.normal(size=(4, 100, 2, 2)), "b": rng.normal(size=(4, 100))}, dims={"a": ["g", "c"]})
    fig = rank_figure(idata, ["a", "b"])
    assert len([ax for ax in fig.axes if ax.get_visible() and ax.has_data()]) == 5
    np.testing.assert_allclose(fig.get_size_inches(), (6.3, 0.7 + 1.3 * 3))


@pytest.mark.slow
def test_structure_key_is_the_same_for_two_builds_of_one_study(study, model):
    """Sensitivity runs reuse a compiled sampler only when the key repeats; slice constants
    of the padded layout once hashed by address and made every build look new.  Slow tier:
    a second build and two keys of the covariate model (10 s); the fast tier checks the
    key's treatment of slice constants on a small model
    (test_structure_key_hashes_slice_constants_by_value)."""
    from reanalysis.analysis import structure_key

    again = build_model(load_study(STUDY_PATH), get_priors("hierarchical"), reps=REPS)
    assert structure_key(again) == structure_key(model)


@pytest.mark.slow
def test_prior_sets_of_one_shape_share_a_compiled_model(study):
    """A sensitivity runner passes prior values as shared tensors: the default, skeptical,
    wide and narrow sets (same distributions) then have one structure, so one compiled
    sampler per worker, and the log density with tensor priors equals the one with numeric
    priors.  The enthusiastic set resolves its means from the claims, so it is a structure
    of its own.  A fixed residual df stays a number (it sets the likelihood's nodes).
    Five builds of the covariate model (about 30 s of CPU): the fast tier tests the same
    mechanism on the group model (test_sensitivity.py: the compiled-model cache, tensor
    priors against numeric ones) and the key's treatment of slice constants
    (test_structure_key_hashes_slice_constants_by_value)."""
    from reanalysis.analysis import build_keyed, model_api

    api = model_api("hierarchical")
    keys, built = {}, {}
    for name in ("default", "skeptical", "enthusiastic"):
        built[name], keys[name], shared = build_keyed(api, study, get_priors("hierarchical", name), "normal", REPS, 20180302)
        assert "prior.effect.sigma" in shared and "prior.log_sigma.mu" in shared
    assert keys["skeptical"] == keys["default"]
    assert keys["enthusiastic"] != keys["default"]
    _, _, shared = build_keyed(api, study, get_priors("hierarchical"), "student_t", REPS, 20180302)
    assert "prior.residual_df.value" not in shared and "prior.effect.sigma" in shared
    numeric = build_model(study, get_priors("hierarchical", "skeptical"), reps=REPS)
    point = numeric.initial_point()
    point = {k: v + 0.1 for k, v in point.items()}
    got = built["skeptical"].compile_logp(mode="FAST_COMPILE")(point)
    want = numeric.compile_logp(mode="FAST_COMPILE")(point)
    assert np.isfinite(want) and got == pytest.approx(want, rel=1e-8)  # rewrites may reorder sums


@pytest.mark.parametrize("idx", [[1, 2], [0, 2], [2, 0], [1]])
def test_select_picks_entries_of_vectors_and_matrices(idx):
    """A group reporting a subset of the statistics gets those entries of the batched mean
    and covariance: by a slice when they are contiguous, by selection matrices otherwise."""
    import pytensor.tensor as pt

    from models.hierarchical import _select

    rng = np.random.default_rng(3)
    v, m = rng.normal(size=3), rng.normal(size=(3, 3))
    np.testing.assert_allclose(_select(pt.as_tensor(v), idx, 3).eval(**FAST), v[idx])
    np.testing.assert_allclose(_select(pt.as_tensor(m), idx, 3, matrix=True).eval(**FAST), m[np.ix_(idx, idx)])


def test_a_simulated_studys_fit_starts_from_its_own_statistics(study, model):
    # calibration swaps simulated statistics into one model built for the study file; each
    # fit must start where that study's own fit would, not at the file's numbers
    from reanalysis.analysis import model_api

    api = model_api("hierarchical")
    own = {f"log_stats_{g}": np.asarray(model[f"log_stats_{g}"].get_value()) for g in ("control", "ms")}
    built = {v.name: np.array(x, dtype=float) for v, x in model.rvs_to_initial_values.items() if x is not None}
    try:
        api.set_starting_values(model, study, get_priors("hierarchical"), own)
        again = {v.name: np.array(x, dtype=float) for v, x in model.rvs_to_initial_values.items() if x is not None}
        assert again.keys() == built.keys() == {"intercept", "group_difference", "log_sigma"}
        for k in built:
            np.testing.assert_allclose(again[k], built[k], rtol=1e-12)
        # the control group three times higher (mean, SD and median alike: the same CV), the
        # MS group's SD doubled (statistics in the file's order: mean, sd, median)
        other = {"log_stats_control": own["log_stats_control"] + math.log(3.0),
                 "log_stats_ms": own["log_stats_ms"] + np.log([1.0, 2.0, 1.0])}
        api.set_starting_values(model, study, get_priors("hierarchical"), other)
        start = model.initial_point()
        assert start["intercept"] == pytest.approx(built["intercept"] + math.log(3.0))
        assert start["group_difference"] == pytest.approx(built["group_difference"] - math.log(3.0))
        cv_ms = 2 * 100 / 235  # the file's MS group: mean 235, SD 100
        assert start["log_sigma"] == pytest.approx([built["log_sigma"][0], math.log(math.sqrt(math.log1p(cv_ms**2)))])
    finally:
        for v in model.free_RVs:
            if v.name in built:
                model.rvs_to_initial_values[v] = built[v.name]

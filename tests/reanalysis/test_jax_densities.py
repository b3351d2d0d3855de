"""The covariate model's log densities as a JAX fit brings them (reanalysis/sampling.py):
the ``log_likelihood`` and ``log_prior`` groups equal PyMC's, and (slow tier) the gradient
the sampler takes of its potential is finite near and far from the mode.  A file of its own
so that it runs beside the rest of tests/models/test_hierarchical_model.py (seconds of graph
conversion and XLA compilation)."""
from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from models.hierarchical import build_model
from models.priors import get_priors
from models.study import load_study
from tests.models.test_hierarchical_model import FAR_EFFECTS, FAST, STUDY_PATH, _point


@pytest.fixture(scope="module")
def study():
    return load_study(STUDY_PATH)


@pytest.fixture(scope="module")
def converted(study):
    """The covariate model (2 design cohorts) and its JAX functions, as the sampler makes them."""
    from reanalysis.sampling import _jax_functions

    m = build_model(study, get_priors("hierarchical"), reps=2)
    return m, *_jax_functions(m, {}, log_densities=True)


@pytest.mark.slow
def test_jax_gradient_is_finite_at_the_start_and_far_from_the_mode(converted):
    """The gradient the sampler takes of its potential is finite and non-zero at the initial
    point and finite far from the mode (the regression of
    test_gradient_finite_at_the_start_and_far_from_the_mode, on PyTensor's gradient).  Slow
    tier: XLA compiles the gradient of the whole model (6 s); the fast tier's fits sample
    smaller models with the same code."""
    import jax

    m, potential, *_ = converted
    grad = jax.jit(jax.grad(potential))
    g0 = np.concatenate([np.ravel(v) for v in grad(m.initial_point(), {}).values()])
    assert np.all(np.isfinite(g0)) and np.any(g0 != 0)
    for effect in FAR_EFFECTS:
        point = _point(m, effect=effect, log_sigma=[-2.5, -2.5])
        assert all(np.all(np.isfinite(v)) for v in grad(point, {}).values()), effect


def test_jax_log_densities_match_pymc(converted):
    """The log_likelihood and log_prior groups a JAX fit brings (reanalysis.sampling) are PyMC's:
    same variables, dims and values at scattered draws."""
    import pymc as pm

    from reanalysis.sampling import _density_groups

    m, potential, postprocess, densities, names, out_names = converted
    start = m.initial_point()
    rng = np.random.default_rng(3)
    draws = {n: start[n] + 0.3 * rng.standard_normal((2, 3, *np.shape(start[n]))) for n in names}
    coords = {k: list(v) for k, v in m.coords.items()}
    dims = {k: list(v) for k, v in m.named_vars_to_dims.items()}
    posterior = {n: np.asarray(v) for n, v in zip(out_names, postprocess(draws, {}))}
    idata = az.from_dict(posterior=posterior, coords=coords, dims=dims)
    ours = _density_groups(m, list(densities(draws, {})), coords, dims)
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

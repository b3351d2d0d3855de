"""The JAX pointwise log densities equal PyMC's own (compute_log_likelihood/prior)."""
import arviz as az
import numpy as np
import pymc as pm
import pytest

from models.log_density import add_log_densities


def _model():
    with pm.Model(coords={"group": ["a", "b"], "obs": np.arange(5)}) as model:
        mu = pm.Normal("mu", 0, 1, dims="group")
        sigma = pm.HalfNormal("sigma", 1)  # a transformed variable: densities on its own scale
        y = pm.Data("y", np.linspace(-1, 1, 10).reshape(2, 5))
        pm.Normal("obs_y", mu[:, None], sigma, observed=y, dims=("group", "obs"))
        pm.StudentT("claim", nu=3, mu=mu.sum(), sigma=1, observed=0.5)
        # multivariate: one density per draw although the value has a dimension
        pm.MvNormal("stats", mu, np.eye(2) * 0.5, observed=np.array([0.1, -0.2]), dims="group")
    return model


def test_jax_log_densities_equal_pymcs():
    model = _model()
    rng = np.random.default_rng(0)
    idata = az.from_dict(
        posterior={"mu": rng.normal(size=(2, 7, 2)), "sigma": rng.gamma(2, size=(2, 7))},
        coords={"group": ["a", "b"]},
        dims={"mu": ["group"]},
    )
    ours = add_log_densities(idata.copy(), model)
    theirs = pm.compute_log_prior(pm.compute_log_likelihood(idata.copy(), model=model, progressbar=False), model=model, progressbar=False)
    for grp in ("log_likelihood", "log_prior"):
        assert set(ours[grp].data_vars) == set(theirs[grp].data_vars)
        for name in theirs[grp].data_vars:
            a, b = ours[grp][name], theirs[grp][name]
            assert a.shape == b.shape, (grp, name)
            assert a.dims[:2] == ("chain", "draw")
            np.testing.assert_allclose(a.values, b.values, rtol=1e-10, err_msg=f"{grp}.{name}")
    # and psens reads them
    assert np.isfinite(az.psens(ours, component="likelihood")["mu"].values).all()


def test_jax_log_densities_need_every_free_variable():
    idata = az.from_dict(posterior={"mu": np.zeros((1, 3, 2))}, dims={"mu": ["group"]}, coords={"group": ["a", "b"]})
    with pytest.raises(KeyError, match="sigma"):
        add_log_densities(idata, _model())

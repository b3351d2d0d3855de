"""Pointwise log densities of posterior draws (the ``log_likelihood`` and ``log_prior``
groups that ``az.psens`` reads), computed in JAX for the models that are sampled in JAX.

PyMC's ``compute_log_likelihood`` and ``compute_log_prior`` call a compiled C function once
per draw.  For the covariate model, whose log density has about a thousand small
operations, that took 12-16 s of the 4000-draw fit; the same graph converted to JAX and
mapped over all draws at once takes about a second (``models.sampling``, module docstring).
"""
from __future__ import annotations

import arviz as az
import numpy as np
import pymc as pm


def add_log_densities(idata: az.InferenceData, model: pm.Model) -> az.InferenceData:
    """Add the groups ``log_likelihood`` (every observed variable, elementwise) and
    ``log_prior`` (every free variable, elementwise) to ``idata``, as PyMC's
    ``compute_log_likelihood`` and ``compute_log_prior`` would, but in one vectorised JAX
    call over all draws.

    Parameters
    ----------
    idata : az.InferenceData
        Must hold a ``posterior`` group with every free variable (constrained values).
    model : pm.Model
        The model that produced the draws; its shared inputs are read with their current
        values.

    Returns
    -------
    az.InferenceData
        ``idata``, extended in place.
    """
    import jax
    from pymc.backends.arviz import coords_and_dims_for_inferencedata
    from pymc.model.transform.conditioning import remove_value_transforms
    from pymc.sampling.jax import get_jaxified_graph

    from .sampling import _configure_jax

    _configure_jax()
    # the draws are stored on the constrained scale, so the densities are taken there too
    # (no Jacobian terms), as PyMC does
    umodel = remove_value_transforms(model)
    observed, free = list(umodel.observed_RVs), list(umodel.free_RVs)
    outputs = umodel.logp(vars=observed, sum=False) + umodel.logp(vars=free, sum=False)
    fn = get_jaxified_graph(inputs=umodel.value_vars, outputs=outputs)
    names = [umodel.rvs_to_values[rv].name for rv in free]
    post = idata.posterior
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    flat = [post[n].values.reshape(chains * draws, *post[n].shape[2:]) for n in names]
    values = jax.jit(jax.vmap(fn))(*flat)
    values = [np.asarray(v).reshape(chains, draws, *np.shape(v)[1:]) for v in values]
    coords, dims = coords_and_dims_for_inferencedata(umodel)

    def group(rvs, arrays):
        # a multivariate variable's density has fewer axes than its value: its dims do not apply
        named = {rv.name: dims[rv.name] for rv, a in zip(rvs, arrays) if rv.name in dims and len(dims[rv.name]) == a.ndim - 2}
        return az.from_dict(
            posterior={rv.name: a for rv, a in zip(rvs, arrays)},
            coords={**coords, "chain": post["chain"].values, "draw": post["draw"].values},
            dims=named,
        ).posterior

    idata.add_groups(
        {"log_likelihood": group(observed, values[: len(observed)]), "log_prior": group(free, values[len(observed):])}
    )
    return idata

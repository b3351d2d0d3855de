"""How much each estimand is informed by the published data rather than by priors and
assumptions: posterior-to-prior contraction and power-scaling sensitivity (``az.psens``,
Kallioinen et al. 2023), with a plain-language label.
"""
from __future__ import annotations

import copy
import itertools
import logging
import warnings

import numpy as np
import pandas as pd

#: Power-scaling sensitivity at or above which a component counts as influential
#: (the threshold priorsense uses).
PSENS_THRESHOLD = 0.05
#: Contraction ``1 - var(posterior) / var(prior)`` at or above which the data count as
#: informative.
CONTRACTION_INFORMED = 0.5

LABEL_INFORMED = "informed by the published data"
LABEL_PRIOR = "mostly prior/assumption"
LABEL_CONFLICT = "prior-data conflict"
LABEL_PARTLY = "partly informed"


def psens_table(fit, study) -> pd.DataFrame:
    """``az.psens`` of every posterior variable and element, for prior and likelihood.

    Computes the ``log_likelihood`` and ``log_prior`` groups on a copy of ``fit.idata``
    (an :class:`models.analysis.Analysis`) unless it has them, adds the model's estimands to it, and returns
    columns ``estimand``, ``psens_prior``, ``psens_likelihood``.
    """
    import arviz as az
    import pymc as pm

    from .analysis import _model_kw, model_api

    idata = copy.deepcopy(fit.idata)
    model = fit.model
    # PyMC refuses to convert a model with custom initial values (chains start at moment
    # estimates); they play no part in the log densities, so drop them here and restore them
    saved = dict(model.rvs_to_initial_values)
    try:
        model.rvs_to_initial_values = {rv: None for rv in saved}
        # a JAX-sampled fit brings both groups (models.sampling.CompiledNuts, log_densities)
        if "log_likelihood" not in idata:
            pm.compute_log_likelihood(idata, model=model, progressbar=False)
        if "log_prior" not in idata:
            pm.compute_log_prior(idata, model=model, progressbar=False)
    finally:
        model.rvs_to_initial_values = saved
    api = model_api(fit.model_name)
    api.add_estimands(idata, study, fit.family, **_model_kw(api.add_estimands, model))
    out: dict[str, dict] = {}
    for component in ("prior", "likelihood"):
        # a variable with (near) constant draws gives 0/0 inside psens: its value is NaN in
        # the table, the warnings would only clutter stderr
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            level = logging.getLogger("arviz").level
            logging.getLogger("arviz").setLevel(logging.ERROR)
            try:
                ds = az.psens(idata, component=component)
            finally:
                logging.getLogger("arviz").setLevel(level)
        for var in ds.data_vars:
            da = ds[var]
            if da.ndim == 0:
                out.setdefault(var, {})[component] = float(da)
                continue
            for idx in itertools.product(*[da[d].values for d in da.dims]):
                key = f"{var}[{', '.join(str(i) for i in idx)}]"
                out.setdefault(key, {})[component] = float(da.sel(dict(zip(da.dims, idx))))
    return pd.DataFrame(
        [{"estimand": k, "psens_prior": v.get("prior", np.nan), "psens_likelihood": v.get("likelihood", np.nan)} for k, v in out.items()],
        columns=["estimand", "psens_prior", "psens_likelihood"],
    )


def prior_estimands(fit, study):
    """The model's estimands computed on the prior draws in ``fit.idata.prior`` (which must
    hold the sampled parameters and the deterministics the estimands read)."""
    import arviz as az

    from .analysis import _model_kw, model_api

    prior = az.InferenceData(posterior=fit.idata.prior.copy())
    api = model_api(fit.model_name)
    api.add_estimands(prior, study, fit.family, **_model_kw(api.add_estimands, fit.model))
    return prior.posterior


def label(contraction: float, psens_prior: float, psens_likelihood: float) -> str:
    """Plain-language label of one estimand (see the module constants for thresholds).

    Both components influential: the prior and the data pull different ways (a conflict).
    Prior influential but not the likelihood, or little contraction: the prior and the
    assumptions carry the estimate.  Strong contraction with an uninfluential prior: the
    published numbers carry it.
    """
    if psens_prior >= PSENS_THRESHOLD and psens_likelihood >= PSENS_THRESHOLD:
        return LABEL_CONFLICT
    if psens_prior >= PSENS_THRESHOLD or not contraction >= 0.2:
        return LABEL_PRIOR
    if contraction >= CONTRACTION_INFORMED:
        return LABEL_INFORMED
    return LABEL_PARTLY


def informativeness_table(table: pd.DataFrame, posterior, prior, psens: pd.DataFrame) -> pd.DataFrame:
    """One row per estimand of ``table`` (the estimand table): contraction, psens and label.

    Parameters
    ----------
    table : pd.DataFrame
        Estimand table (column ``estimand`` like ``"effect_percent[female]"``).
    posterior, prior : xr.Dataset
        Posterior and prior draws of the estimands.
    psens : pd.DataFrame
        From :func:`psens_table`.
    """
    ps = psens.set_index("estimand")
    rows = []
    for key in table["estimand"]:
        var = key.split("[")[0]
        if var not in posterior or var not in prior:
            continue
        index = key[len(var) + 1 : -1] if "[" in key else ""
        post_x, prior_x = (_values(ds[var], index) for ds in (posterior, prior))
        ok = np.isfinite(prior_x)
        vpost, vprior = np.nanvar(post_x), np.var(prior_x[ok]) if ok.any() else np.nan
        contraction = float(1.0 - vpost / vprior) if vprior > 0 else np.nan
        pp = float(ps.loc[key, "psens_prior"]) if key in ps.index else np.nan
        pl = float(ps.loc[key, "psens_likelihood"]) if key in ps.index else np.nan
        rows.append({"estimand": key, "contraction": contraction, "psens_prior": pp, "psens_likelihood": pl, "label": label(contraction, pp, pl)})
    return pd.DataFrame(rows, columns=["estimand", "contraction", "psens_prior", "psens_likelihood", "label"])


def _values(da, index: str) -> np.ndarray:
    extra = [d for d in da.dims if d not in ("chain", "draw")]
    if extra:
        da = da.sel(dict(zip(extra, [i.strip() for i in index.split(",")])))
    return np.asarray(da.values, dtype=float).ravel()

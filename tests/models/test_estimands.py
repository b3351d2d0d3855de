"""models.estimands.summary: quiet about estimands undefined by design, not about other NaNs."""
import warnings

import arviz as az
import numpy as np
import pytest

from models.estimands import partly_missing, summary


def _idata(x):
    return az.from_dict(posterior={"slope": x}, coords={"cell": ["a", "b"]}, dims={"slope": ["cell"]})


def test_a_cell_undefined_in_every_draw_is_dropped_silently(capfd):
    x = np.random.default_rng(0).normal(size=(2, 50, 2))
    x[..., 1] = np.nan
    idata = _idata(x)
    assert partly_missing(idata.posterior) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = summary(idata, kind="diagnostics")
    assert "NaN" not in capfd.readouterr().err
    assert np.isfinite(s.loc["slope[a]", "r_hat"]) and np.isnan(s.loc["slope[b]", "r_hat"])


def test_a_nan_in_one_draw_still_warns(capfd):
    x = np.random.default_rng(0).normal(size=(2, 50, 2))
    x[0, 3, 0] = np.nan
    idata = _idata(x)
    assert partly_missing(idata.posterior) == ["slope"]
    with pytest.warns(RuntimeWarning, match=r"NaN in some posterior draws of slope \(not an estimand undefined by design\)"):
        summary(idata, kind="diagnostics")

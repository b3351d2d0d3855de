"""Observed variables whose parameters are built inside their log densities
(models/deferred.py), on a small model: one copy of the graph per derivation, and no
derivation's graph depends on an earlier one's."""
import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import stats
from pytensor.graph.traversal import io_toposort

import models.deferred as deferred
from models.deferred import DeferredGraph


def _model():
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 1.0)
        sigma = pm.HalfNormal("sigma", 1.0)
        # log(exp(.)) inside another operation: a rewrite PyMC applies before a gradient
        # (canonicalize) replaces it there, which changes that operation's inputs in place
        graph = DeferredGraph([pt.exp(pt.log(pt.exp(mu))), sigma * 1.0])
        for name, y in (("a", 0.3), ("b", -0.2)):
            graph.observe(name, lambda value, outs: pm.logp(pm.Normal.dist(outs[0], outs[1]), value), np.array(y))
    return model


def _size(model) -> int:
    return len(io_toposort([], [model.logp()]))


def test_each_derivation_builds_one_copy_shared_by_its_variables(monkeypatch):
    model = _model()
    copies = []
    clone = deferred.clone_replace
    monkeypatch.setattr(deferred, "clone_replace", lambda *a, **k: copies.append(1) or clone(*a, **k))
    model.logp()
    assert len(copies) == 1
    model.logp()
    assert len(copies) == 2  # a new derivation: its own copy, not the first one's


def test_a_gradient_taken_in_between_leaves_the_next_log_density_unchanged():
    # PyMC's dlogp rewrites its log density's graph in place; a copy kept from that
    # derivation and handed to the next one made the next log density a different graph
    # (the covariate model: 2871 operations before, 1649 after, and another structure key)
    model = _model()
    before = _size(model)
    model.dlogp()
    assert _size(model) == before
    # and it is the model's density, computed here without PyMC
    point = {"mu": 0.4, "sigma_log__": -0.3}
    mu, sigma = 0.4, np.exp(-0.3)
    want = (stats.norm.logpdf(mu) + stats.halfnorm.logpdf(sigma) - 0.3  # log-transform Jacobian
            + stats.norm.logpdf(0.3, np.exp(mu), sigma) + stats.norm.logpdf(-0.2, np.exp(mu), sigma))
    np.testing.assert_allclose(model.compile_logp()(point), want, rtol=1e-12)

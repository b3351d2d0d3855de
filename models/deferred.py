"""Observed variables whose parameters are built inside their log densities.

PyMC derives a model's log density (``model.logp``, every compilation) by first rewriting
the whole graph of every observed variable's parameters into its intermediate form.  The
covariate model's statistics and claims are functions of a few free variables through
thousands of operations (the mixture moments, the claims' conditional laws): about 3 s
of those rewrites per derivation, 0.7 s for the group model's two-group claim.  Passing the
free variables themselves as the parameters, and building the graph inside the log
density from the arguments PyMC hands it, gives the same log density with the large graph
left out of those rewrites.
"""
from __future__ import annotations

import pymc as pm
from pytensor.graph.basic import equal_computations
from pytensor.graph.replace import clone_replace
from pytensor.graph.traversal import ancestors


class DeferredGraph:
    """Graphs ``outputs`` of a model's free variables, rebuilt on the log density's inputs.

    Parameters
    ----------
    outputs : list of tensors
        Built as usual in the model's context, from its free variables (and data, which
        stay as they are).

    Attributes
    ----------
    inputs : list
        The model's free variables the outputs depend on, in the model's order: the
        parameters of an observed variable (:meth:`observe`).
    """

    def __init__(self, outputs: list):
        model = pm.modelcontext(None)
        self.outputs = list(outputs)
        used = set(ancestors(self.outputs))
        self.inputs = [rv for rv in model.free_RVs if rv in used]
        # the last rebuild: every variable of one derivation gets the same arguments, so
        # they share one copy of the graph instead of one each.  Kept with the observed
        # variables it served: a variable served again starts a new derivation with a new
        # copy, so no derivation's graph holds another's (PyMC's dlogp rewrites its graph
        # in place, which changed the next log density when a copy was shared)
        self._last: tuple | None = None

    def on(self, args, name: str = "") -> list:
        """The outputs with :attr:`inputs` replaced by ``args`` (one copy per derivation:
        PyMC hands each observed variable's log density its own, equivalent, expressions of
        the free variables' values).  ``name``: the observed variable asking."""
        args = tuple(args)
        last = self._last
        if last is not None and name not in last[2] and equal_computations(list(last[0]), list(args)):
            last[2].add(name)
            return last[1]
        copy = clone_replace(self.outputs, replace=dict(zip(self.inputs, args)))
        self._last = (args, copy, {name})
        return copy

    def observe(self, name: str, logp, observed, like=None, **kwargs):
        """``pm.CustomDist`` ``name`` with :attr:`inputs` as parameters and log density
        ``logp(value, outputs)``: a scalar, or with ``like`` a vector as long as ``like``
        (e.g. the observed data themselves, then a parameter too)."""
        params = [*self.inputs, *([] if like is None else [like])]
        core = [",".join(f"d{i}_{j}" for j in range(p.ndim)) for i, p in enumerate(self.inputs)] + ([] if like is None else ["s"])
        out = "()" if like is None else "(s)"
        k = len(self.inputs)
        return pm.CustomDist(
            name, *params, logp=lambda value, *args: logp(value, self.on(args[:k], name)),
            signature=",".join(f"({c})" for c in core) + f"->{out}", observed=observed, **kwargs,
        )

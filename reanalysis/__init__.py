"""Bayesian reanalysis of published summary statistics: the toolkit around the models.

The public API (``docs/api.md``)::

    import reanalysis

    study = reanalysis.load_study("data/studies/lasemi2018.yaml")
    result = reanalysis.fit(study)
    result.estimands
    result.save("results")

:func:`fit` returns a :class:`Fit` (``.idata``, ``.estimands``, ``.checks``,
``.diagnostics``, ``.evidence``, ``.informativeness``, ``.figures()``, ``.save(dir)``,
``.report(path)``); :func:`run_sensitivity` and :func:`run_sbc` run the sensitivity grid and
the simulation-based calibration.  The statistical models live in the ``models`` package
(:mod:`models.interface`, registered in :mod:`reanalysis.registry`).

Importing this package imports nothing heavy: PyMC, PyTensor and JAX load on first use.
"""
from __future__ import annotations

import importlib

__all__ = ["Fit", "fit", "load_study", "run_sbc", "run_sensitivity", "register"]

#: Public name -> the module that defines it (imported on first access).
_EXPORTS = {
    "Fit": "reanalysis.api",
    "fit": "reanalysis.api",
    "load_study": "reanalysis.api",
    "run_sensitivity": "reanalysis.api",
    "run_sbc": "reanalysis.api",
    "register": "reanalysis.registry",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'reanalysis' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))

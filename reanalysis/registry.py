"""The registered models, by name: adding a model is a module with a
:class:`models.interface.Model` subclass and one line in :data:`MODELS`
(or a call to :func:`register`).

Standard library only at import: the command line reads :data:`MODELS` (and, through
:mod:`reanalysis.model_facts`, the models' settings from their source) without importing
PyMC.
"""
from __future__ import annotations

import importlib

#: Model name -> ``"module:Class"`` of its :class:`models.interface.Model` subclass.
MODELS: dict[str, str] = {
    "group": "models.group_model:GroupModel",
    "hierarchical": "models.hierarchical_model:HierarchicalModel",
}

_INSTANCES: dict[str, object] = {}


class UnknownModel(ValueError):
    """A model name that is not registered."""


def register(name: str, target: str) -> None:
    """Register the model class at ``target`` (``"module:Class"``) as ``name``.

    Examples
    --------
    >>> register("toy", "tests.toy_model:ToyModel")  # doctest: +SKIP
    """
    if ":" not in target:
        raise ValueError(f"model target {target!r} is not 'module:Class'")
    MODELS[name] = target
    _INSTANCES.pop(name, None)


def unregister(name: str) -> None:
    """Remove model ``name`` from the registry (tests that register a model of their own)."""
    MODELS.pop(name, None)
    _INSTANCES.pop(name, None)


def get_model(name: str):
    """The registered model ``name`` (one instance per name).

    Raises
    ------
    UnknownModel
        If ``name`` is not registered.
    TypeError
        If the registered class is not a :class:`models.interface.Model` or declares
        the wrong ``name``.
    """
    if name not in MODELS:
        raise UnknownModel(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    if name not in _INSTANCES:
        from models.interface import Model

        module, _, cls_name = MODELS[name].partition(":")
        cls = getattr(importlib.import_module(module), cls_name)
        if not (isinstance(cls, type) and issubclass(cls, Model)):
            raise TypeError(f"{MODELS[name]} is not a subclass of models.interface.Model")
        if cls.name != name:
            raise TypeError(f"{MODELS[name]} calls itself {cls.name!r}, registered as {name!r}")
        _INSTANCES[name] = cls()
    return _INSTANCES[name]

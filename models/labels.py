"""The one spelling of a posterior quantity's key, ``var[coord, coord]`` (``ratio_of_medians[control_vs_ms]``,
``slope_percent[ms, age]``): ArviZ's labeller builds it, as ``arviz.summary`` does for its
index, and :func:`variable_of` and :func:`coords_of` read it back."""
from __future__ import annotations

from arviz.labels import BaseLabeller

_LABELLER = BaseLabeller()


def estimand_key(var: str, *coords) -> str:
    """``var[c1, c2, ...]``, or ``var`` without coordinates: ArviZ's flat label of the
    selection ``coords`` (in the variable's dimension order).

    Examples
    --------
    >>> estimand_key("slope_percent", "ms", "age")
    'slope_percent[ms, age]'
    """
    sel = {i: c for i, c in enumerate(coords)}
    return _LABELLER.make_label_flat(var, sel, {i: i for i in sel})


def variable_of(key: str) -> str:
    """The variable of a key: ``"slope_percent[ms, age]"`` -> ``"slope_percent"``."""
    return str(key).split("[", 1)[0]


def coords_of(key: str) -> list[str]:
    """The coordinates of a key, in order: ``"slope_percent[ms, age]"`` -> ``["ms", "age"]``."""
    key = str(key)
    return [c.strip() for c in key[key.index("[") + 1 : -1].split(",")] if "[" in key else []

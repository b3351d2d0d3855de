"""What the command line says about the registered models (their names, families, default
draws, warm-up and simulated cohorts, and the ESS and R-hat targets), read from the model
modules' source without importing them.

Importing a model module imports PyMC and PyTensor (2-5 s); ``fit.py --help`` and its
option checks need only these constants, and must answer at once.  Every constant is read
as :func:`models.analysis.model_api` reads it (a module's own value, else the group
model's default).  A constant that is not a plain literal at the top of its module (computed,
imported, or set inside a block) makes :func:`model_facts` import the modules instead, so
the facts can be slower but never differ from the modules'.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ModelFacts:
    """The command-line facts of one registered model (:data:`models.analysis.MODELS`).

    Attributes mirror :class:`models.analysis.ModelAPI`; ``families`` maps each family's
    name to its one-line description.
    """

    name: str
    families: dict
    default_family: str
    default_draws: int
    default_tune: int
    default_reps: int
    min_reps: int
    max_draws: int | None
    sampler: str

    @property
    def extends(self) -> bool:
        """Whether a fit can continue its chains for more draws (the JAX runner can)."""
        return self.sampler == "jax"


class NotLiteral(ValueError):
    """A wanted constant is not a plain literal at the top of its module."""


def model_facts() -> tuple[dict[str, ModelFacts], dict]:
    """``(model name -> ModelFacts, {"TARGET_ESS": ..., "MAX_RHAT": ...})``, from the
    modules' source; from the imported modules when the source cannot be read that way
    (:class:`NotLiteral`)."""
    try:
        return _from_source()
    except (NotLiteral, OSError, SyntaxError):
        return _from_import()


def _from_source() -> tuple[dict[str, ModelFacts], dict]:
    models = _constants("analysis", ["MODELS"])["MODELS"]
    group_families = _family_descriptions()
    out = {}
    for name, module in models.items():
        if not module.startswith("models.") or module.count(".") != 1:
            raise NotLiteral(f"model module {module} is outside this package")
        wanted = ["FAMILIES", "DEFAULT_FAMILY", "DEFAULT_DRAWS", "DEFAULT_TUNE", "DEFAULT_REPS", "MIN_REPS", "MAX_DRAWS", "SAMPLER"]
        c = _constants(module.split(".", 1)[1], wanted)
        if "DEFAULT_REPS" not in c:
            raise NotLiteral(f"{module} defines no DEFAULT_REPS")
        families = c["FAMILIES"] if "FAMILIES" in c else group_families
        if not isinstance(families, dict):
            raise NotLiteral(f"{module}.FAMILIES is not a dict of descriptions")
        out[name] = ModelFacts(
            name=name,
            families=dict(families),
            default_family=c.get("DEFAULT_FAMILY", next(iter(families))),
            default_draws=int(c.get("DEFAULT_DRAWS", 1000)),
            default_tune=int(c.get("DEFAULT_TUNE", 1000)),
            default_reps=int(c["DEFAULT_REPS"]),
            min_reps=int(c.get("MIN_REPS", 2)),
            max_draws=c.get("MAX_DRAWS"),
            sampler=c.get("SAMPLER", "pymc"),
        )
    return out, _constants("diagnostics", ["TARGET_ESS", "MAX_RHAT"])


def _from_import() -> tuple[dict[str, ModelFacts], dict]:
    import importlib

    from . import diagnostics
    from .analysis import MODELS, model_api
    from .families import FAMILIES

    out = {}
    for name in MODELS:
        api = model_api(name)
        own = getattr(importlib.import_module(MODELS[name]), "FAMILIES", None)
        descriptions = dict(own) if own is not None else {k: f.description for k, f in FAMILIES.items()}
        out[name] = ModelFacts(
            name=name, families=descriptions, default_family=api.default_family, default_draws=api.default_draws,
            default_tune=api.default_tune, default_reps=api.default_reps, min_reps=api.min_reps, max_draws=api.max_draws,
            sampler=api.sampler,
        )
    return out, {"TARGET_ESS": diagnostics.TARGET_ESS, "MAX_RHAT": diagnostics.MAX_RHAT}


def _top_level(module: str) -> tuple[dict, set]:
    """The top-level ``name = value`` nodes of ``models/<module>.py`` (the last binding of
    each name), and the names bound anywhere else at module level (imports, blocks)."""
    tree = ast.parse((_PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    simple, other = {}, set()
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            simple[stmt.targets[0].id] = stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            simple[stmt.target.id] = stmt.value
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            other.add(stmt.name)
        else:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    other.add(node.id)
                elif isinstance(node, ast.alias):
                    other.add((node.asname or node.name).split(".")[0])
    return simple, other


def _constants(module: str, names: list[str]) -> dict:
    """The literal values of ``names`` in ``models/<module>.py``; an absent name is left out.

    Raises
    ------
    NotLiteral
        A name bound other than as a plain literal at the top of the module.
    """
    simple, other = _top_level(module)
    out = {}
    for name in names:
        if name in other:
            raise NotLiteral(f"models.{module}.{name} is not a plain assignment")
        if name in simple:
            try:
                out[name] = ast.literal_eval(simple[name])
            except ValueError:
                raise NotLiteral(f"models.{module}.{name} is not a literal") from None
    return out


def _family_descriptions() -> dict[str, str]:
    """Name -> description of :data:`models.families.FAMILIES` (``Family(name, description,
    ...)`` calls in a dict literal)."""
    simple, other = _top_level("families")
    node = simple.get("FAMILIES")
    if "FAMILIES" in other or not isinstance(node, ast.Dict):
        raise NotLiteral("models.families.FAMILIES is not a dict literal")
    out = {}
    for key, value in zip(node.keys, node.values):
        if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "Family"):
            raise NotLiteral("models.families.FAMILIES holds something other than Family(...) calls")
        described = {kw.arg: kw.value for kw in value.keywords}
        field = value.args[1] if len(value.args) > 1 else described.get("description")
        if field is None:
            raise NotLiteral("a family without a description")
        out[ast.literal_eval(key)] = ast.literal_eval(field)
    return out

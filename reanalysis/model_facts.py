"""What the command line says about the registered models (their names, families, default
draws, warm-up and simulated cohorts, and the ESS and R-hat targets), read from the models'
source without importing them.

Importing a model module imports PyMC and PyTensor (2-5 s); ``fit.py --help`` and its
option checks need only these settings, and must answer at once.  Each registered class
(:data:`reanalysis.registry.MODELS`) is read from its module: a class attribute given as a
literal, as the name of a literal constant (of its module, or imported from another module
of the package), or left to the default of :class:`models.interface.Model`.  Anything else
(computed, set inside a block) makes :func:`model_facts` import the models instead, so the
facts can be slower but never differ from the models'.
"""
from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

#: The folder holding the ``models`` and ``reanalysis`` packages.
_ROOT = Path(__file__).resolve().parent.parent
#: The settings read, as :class:`models.interface.Model` names them.
_SETTINGS = ("families", "default_family", "default_draws", "default_tune", "default_reps", "min_reps", "max_draws", "sampler")


@dataclass(frozen=True)
class ModelFacts:
    """The command-line facts of one registered model (:data:`reanalysis.registry.MODELS`).

    Attributes mirror :class:`models.interface.Model`; ``families`` maps each family's
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
    from reanalysis.registry import MODELS

    base = _class_body("models.interface", "Model")
    out = {}
    for name, target in MODELS.items():
        module, _, cls = target.partition(":")
        if not module.startswith("models."):
            raise NotLiteral(f"model {target} is outside the models package")
        own = _class_body(module, cls)
        c = {}
        for key in _SETTINGS:
            if key in own:
                c[key] = _value(module, own[key], key)
            elif key in base:
                c[key] = _value("models.interface", base[key], key)
        if "default_reps" not in c or "families" not in c:
            raise NotLiteral(f"{target} declares no default_reps or families")
        out[name] = ModelFacts(
            name=name,
            families=dict(c["families"]),
            default_family=c.get("default_family", next(iter(c["families"]))),
            default_draws=int(c["default_draws"]),
            default_tune=int(c["default_tune"]),
            default_reps=int(c["default_reps"]),
            min_reps=int(c["min_reps"]),
            max_draws=c["max_draws"],
            sampler=c["sampler"],
        )
    return out, _constants("reanalysis.settings", ["TARGET_ESS", "MAX_RHAT"])


def _from_import() -> tuple[dict[str, ModelFacts], dict]:
    from reanalysis import diagnostics
    from reanalysis.registry import MODELS, get_model

    out = {}
    for name in MODELS:
        m = get_model(name)
        out[name] = ModelFacts(
            name=name, families=m.family_descriptions(), default_family=m.default_family, default_draws=m.default_draws,
            default_tune=m.default_tune, default_reps=m.default_reps, min_reps=m.min_reps, max_draws=m.max_draws,
            sampler=m.sampler,
        )
    return out, {"TARGET_ESS": diagnostics.TARGET_ESS, "MAX_RHAT": diagnostics.MAX_RHAT}


def _class_body(module: str, cls: str) -> dict:
    """The ``name = value`` nodes of class ``cls``'s body in ``module`` (dotted)."""
    tree = _tree(module)
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef) and stmt.name == cls:
            out = {}
            for node in stmt.body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    out[node.targets[0].id] = node.value
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                    out[node.target.id] = node.value
            return out
    raise NotLiteral(f"no class {cls} at the top of {module}")


def _value(module: str, node: ast.AST, key: str):
    """The value of a class attribute's node: a literal, or a name bound in ``module`` to a
    literal constant, directly or by ``from .other import name``."""
    if not isinstance(node, ast.Name):
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise NotLiteral(f"{module}: {key} is not a literal") from None
    target = node.id
    tree = _tree(module)
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.level == 1 and stmt.module:
            for alias in stmt.names:
                if (alias.asname or alias.name) == target:
                    source = f"{module.rsplit('.', 1)[0]}.{stmt.module}"
                    if source == "models.families" and alias.name == "FAMILIES":
                        return _family_descriptions()
                    return _constant(source, alias.name)
    return _constant(module, target)


def _constant(module: str, name: str):
    found = _constants(module, [name])
    if name not in found:
        raise NotLiteral(f"{module}.{name} is not a constant at the top of its module")
    return found[name]


def _path(module: str) -> Path:
    return _ROOT / (module.replace(".", "/") + ".py")


@functools.lru_cache(maxsize=None)
def _tree(module: str) -> ast.Module:
    """The parsed source of ``module`` (each file is parsed once per process)."""
    return ast.parse(_path(module).read_text(encoding="utf-8"))


def _top_level(module: str) -> tuple[dict, set]:
    """The top-level ``name = value`` nodes of ``module`` (dotted, in this checkout) (the last binding of
    each name), and the names bound anywhere else at module level (imports, blocks)."""
    tree = _tree(module)
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
    """The literal values of ``names`` in ``module`` (dotted); an absent name is left out.

    Raises
    ------
    NotLiteral
        A name bound other than as a plain literal at the top of the module.
    """
    simple, other = _top_level(module)
    out = {}
    for name in names:
        if name in other:
            raise NotLiteral(f"{module}.{name} is not a plain assignment")
        if name in simple:
            try:
                out[name] = ast.literal_eval(simple[name])
            except ValueError:
                raise NotLiteral(f"{module}.{name} is not a literal") from None
    return out


def _family_descriptions() -> dict[str, str]:
    """Name -> description of :data:`models.families.FAMILIES` (``Family(name, description,
    ...)`` calls in a dict literal)."""
    simple, other = _top_level("models.families")
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

"""The study-file reference (``docs/study-file.md``), written from the schema itself.

Every field's description is its docstring in :mod:`models.study`, and the tables of
toolkit assumptions, claim statistics, quantile types and group tests are the registries
the code validates against, so the reference cannot drift from what a study file may say.
``python -m models.study_reference [--check]`` writes (or checks) the file.
"""
from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from . import study as schema
from .statistics import GROUP_TESTS, QUANTILE_TYPES

#: The reference's place in the repository.
REFERENCE_PATH = Path(__file__).resolve().parent.parent / "docs" / "study-file.md"
#: Sections in reading order: the top level, then what it contains.
SECTIONS = (
    schema.Study, schema.Source, schema.Analyte, schema.Group, schema.Number, schema.Comparison, schema.Claim,
    schema.Association, schema.Covariate, schema.CovariateDistribution, schema.Assumption,
)
#: What a section is reached as, for its heading.
_WHERE = {
    schema.Study: "the top level of the file",
    schema.Source: "each entry of `sources`",
    schema.Analyte: "`analyte`",
    schema.Group: "each entry of `groups`",
    schema.Number: "a published or assumed number: `n`, each count, each statistic",
    schema.Comparison: "each entry of `comparisons`",
    schema.Claim: "each entry of a comparison's `claims`",
    schema.Association: "each entry of `associations` (also takes the claim fields)",
    schema.Covariate: "each entry of `covariates`",
    schema.CovariateDistribution: "the value of an assumption named by a covariate's `assumption`",
    schema.Assumption: "each entry of `assumptions`",
}


def undocumented_fields() -> list[str]:
    """``Model.field`` for every file field without a description (should be empty)."""
    return [f"{m.__name__}.{k}" for m in SECTIONS for k, f in _file_fields(m) if not (f.description or "").strip()]


def _file_fields(model: type[BaseModel]):
    return [(k, f) for k, f in model.model_fields.items() if not f.exclude]


def _type_text(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_text(a) for a in args if a is not type(None))
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is dict:
        return f"mapping of names to {_type_text(args[1])}"
    if origin is list:
        return f"list of {_type_text(args[0])}" if args and args[0] is not Any else "list"
    if origin is tuple:
        return f"list of {len(args)} {_type_text(args[0])}" if args and args[-1] is not Ellipsis else "list"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        shown = schema.Number if issubclass(tp, schema.Number) else tp
        return f"[{shown.__name__}](#{shown.__name__.lower()})"
    return {str: "text", float: "number", int: "whole number", bool: "true/false", Any: "any value"}.get(tp, str(tp))


def _requirement(field) -> str:
    if field.is_required():
        return "required"
    default = field.get_default(call_default_factory=True)
    if default in (None, {}, []):
        return "optional"
    return f"default `{default}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render() -> str:
    """The whole reference as Markdown."""
    out = [
        "# Study-file reference",
        "",
        "A study file is YAML. It is validated once when loaded; any problem is one line naming the",
        "file, the field and the fix (exit code 2), and an unknown key suggests the nearest valid one.",
        "This page is generated from the schema (`python -m models.study_reference`); a test fails",
        "when a field has no description or when this page is out of date. A commented example is",
        "`data/studies/template.yaml`; the tutorial is `docs/tutorial.md`.",
        "",
    ]
    for model in SECTIONS:
        out += [f"## {model.__name__}", "", f"Where: {_WHERE[model]}.", ""]
        out += ["| field | type | | meaning |", "|---|---|---|---|"]
        for name, f in _file_fields(model):
            if model is schema.Association and name in schema.Claim.model_fields and name not in ("statistic",):
                continue
            out.append(f"| `{name}` | {_cell(_type_text(f.annotation))} | {_requirement(f)} | {_cell(f.description or '')} |")
        if model is schema.Number:
            out += ["", "Counts (`counts`) are whole numbers >= 0; a group's `n` is a whole number >= 1."]
        out.append("")
    out += ["## Assumptions the toolkit reads", "",
            "Declared under `assumptions` with these names; when a file does not declare one, the default applies.",
            "Every other assumption must be named by a field (a covariate's `assumption`, an association's",
            "`subjects`, `tolerance` or `alpha`, a claim's `statistic_from`); one that nothing reads is an error.", "",
            "| name | default | meaning |", "|---|---|---|"]
    for name, (meaning, default, _) in schema.TOOLKIT_ASSUMPTIONS.items():
        out.append(f"| `{name}` | `{default}` | {_cell(meaning.split(':')[0])} |")
    out += ["", "## Claim statistics", "", "| statistic | meaning |", "|---|---|"]
    out += [f"| `{k}` | {_cell(v)} |" for k, v in schema.CLAIM_STATISTICS.items()]
    out += ["", "## Sample quantile types (`quantile_method`)", "",
            "Hyndman & Fan (1996), Am Stat 50:361-365; the software named uses the type by default.", "",
            "| type | definition and software |", "|---|---|"]
    out += [f"| {k} | {_cell(v)} |" for k, v in QUANTILE_TYPES.items()]
    out += ["", "## Group tests (`group_test`)", "", "| test | meaning |", "|---|---|"]
    out += [f"| `{k}` | {_cell(v)} |" for k, v in GROUP_TESTS.items()]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the reference, or with ``--check`` exit 1 when the file is out of date."""
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        current = REFERENCE_PATH.read_text(encoding="utf-8") if REFERENCE_PATH.exists() else ""
        if current != text:
            print(f"{REFERENCE_PATH}: out of date; run python -m models.study_reference", file=sys.stderr)
            return 1
        return 0
    REFERENCE_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {REFERENCE_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The layout's rules, read from the source: ``models`` (study schema and the statistical
models) never imports ``reanalysis`` (the toolkit), importing ``models`` changes no process
state, and the graph cache's key reads every source file of both packages."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "reanalysis")

#: Private names that still cross modules, as (importing module, imported module, name):
#: none; a new one fails the test until its helper becomes public.
KNOWN_PRIVATE: set[tuple[str, str, str]] = set()


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(absolute module, imported names)`` of every import statement in ``path``."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            out.append((module, [a.name for a in node.names]))
    return out


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_models_never_import_the_toolkit():
    upward = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in _sources("models")
        for module, names in _imports(path)
        if module.split(".")[0] == "reanalysis" or (module == "" and "reanalysis" in names)
    ]
    assert not upward, "models/ must not import reanalysis/: " + "; ".join(upward)


def test_no_private_names_cross_modules():
    crossing = set()
    for package in PACKAGES:
        for path in _sources(package):
            rel = path.relative_to(ROOT).as_posix()
            for module, names in _imports(path):
                if module.split(".")[0] in PACKAGES:
                    crossing |= {(rel, module, n) for n in names if n.startswith("_") and not n.startswith("__")}
    new = sorted(crossing - KNOWN_PRIVATE)
    assert not new, f"private names imported from another module (make them public): {new}"


def test_importing_models_changes_no_process_state():
    # the settings the toolkit makes (reanalysis.sampling.configure_jax); JAX's own imports
    # set unrelated variables of their own
    code = (
        "import os, sys; ours = lambda: {k: v for k, v in os.environ.items() if k.startswith(('JAX_', 'K2_', 'PYTENSOR'))}; "
        "before = ours(); "
        "import models.gradient, models.asymptotic, models.hierarchical, models.group; "
        "print(ours() == before, any(m.split('.')[0] == 'reanalysis' for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"], out.stdout + out.stderr


def test_graph_cache_key_reads_every_source_file():
    from reanalysis.analysis import source_files

    on_disk = {p.relative_to(ROOT).as_posix() for package in PACKAGES for p in _sources(package)}
    assert set(source_files()) == on_disk
    assert {"models/group.py", "reanalysis/figures/plots.py", "reanalysis/report/html.py"} <= on_disk

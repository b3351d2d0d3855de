"""The two install routes pin the same versions, and the running environment is the pinned one.

requirements.txt (pip) and environment.yml (conda) are parsed here, not trusted: every package
pinned in one is pinned in the other at the same version (names compared the way both package
managers do: case-insensitive, '_' and '.' equal to '-'; ``python`` itself is conda-only).
"""
from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
#: The packages whose versions decide the numbers a fit produces.
CORE = ("pymc", "pytensor", "arviz", "numpyro", "jax")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirements(text: str) -> dict[str, str]:
    """``name==version`` lines -> {normalised name: version}; anything else is an error."""
    pins = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;]+)", line)
        assert m, f"requirements.txt:{lineno}: not an exact pin: {raw!r}"
        name = _norm(m.group(1))
        assert name not in pins, f"requirements.txt:{lineno}: {name} pinned twice"
        pins[name] = m.group(2)
    return pins


def parse_environment(text: str) -> dict[str, str]:
    """conda ``dependencies`` entries ``name=version`` -> {normalised name: version}."""
    data = yaml.safe_load(text)
    pins = {}
    for dep in data["dependencies"]:
        assert isinstance(dep, str), f"environment.yml: unexpected non-conda entry {dep!r} (e.g. a pip: section)"
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*={1,2}\s*([^\s=]+)", dep.strip())
        assert m, f"environment.yml: not an exact pin: {dep!r}"
        name = _norm(m.group(1))
        assert name not in pins, f"environment.yml: {name} pinned twice"
        pins[name] = m.group(2)
    return pins


@pytest.fixture(scope="module")
def requirements() -> dict[str, str]:
    return parse_requirements((ROOT / "requirements.txt").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def environment() -> dict[str, str]:
    return parse_environment((ROOT / "environment.yml").read_text(encoding="utf-8"))


def test_parsers_read_the_files_and_normalise_names(requirements, environment):
    assert "pyyaml" in requirements and "pyyaml" in environment  # PyYAML / pyyaml
    assert "python" in environment and "python" not in requirements
    assert set(CORE) <= set(requirements)
    assert parse_requirements("# c\nPyYAML==6.0.4  # note\n\nfoo_bar == 1.2\n") == {"pyyaml": "6.0.4", "foo-bar": "1.2"}
    assert parse_environment("dependencies:\n  - python=3.11\n  - PyYAML=6.0.4\n") == {"python": "3.11", "pyyaml": "6.0.4"}


def test_every_pip_pin_is_in_environment_yml_with_the_same_version(requirements, environment):
    missing = sorted(set(requirements) - set(environment))
    assert not missing, f"pinned in requirements.txt but not in environment.yml: {missing}"
    differ = {n: (v, environment[n]) for n, v in requirements.items() if environment[n] != v}
    assert not differ, f"versions differ (requirements.txt, environment.yml): {differ}"


def test_every_conda_pin_is_in_requirements_txt(requirements, environment):
    extra = sorted(set(environment) - set(requirements) - {"python"})
    assert not extra, f"pinned in environment.yml but not in requirements.txt: {extra}"


def test_environment_python_matches_the_project(environment):
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    m = re.search(r'requires-python\s*=\s*">=(\d+\.\d+),<(\d+\.\d+)"', pyproject)
    assert m, "requires-python not found in pyproject.toml"
    assert environment["python"] == m.group(1)


@pytest.mark.parametrize("package", CORE)
def test_installed_version_is_the_pinned_one(requirements, package):
    assert metadata.version(package) == requirements[package], (
        f"{package} {metadata.version(package)} is installed, requirements.txt pins {requirements[package]}"
    )


def test_the_package_pins_what_requirements_txt_pins(requirements):
    """pyproject.toml's dependencies and its test extra are exactly the pins of
    requirements.txt (``pip install -e .`` installs the same versions)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = project["dependencies"] + [d for deps in project.get("optional-dependencies", {}).values() for d in deps]
    pins = parse_requirements("\n".join(declared))
    assert pins == requirements, {n: (pins.get(n), requirements.get(n)) for n in set(pins) | set(requirements) if pins.get(n) != requirements.get(n)}
    assert project["scripts"]["reanalysis"] == "reanalysis.cli:main"

"""Result folders: atomic creation, collision-free names, and the run manifest.

A run writes into a hidden staging folder next to its destination and renames it into place
only when everything is written, so an interrupted or failed run leaves no half-written
result folder and never touches an earlier one.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

#: Packages whose versions go into every manifest.
MANIFEST_PACKAGES = ("pymc", "pytensor", "arviz", "numpy", "scipy", "pandas", "xarray", "jax", "numpyro", "pydantic", "matplotlib")
STAGING_PREFIX = ".incomplete-"


def result_name(study_id: str, model: str, when: dt.datetime | None = None) -> str:
    """``<study>-<model>-<UTC timestamp>-<random>``; the random suffix keeps two runs started
    in the same second apart."""
    when = when or dt.datetime.now(dt.timezone.utc)
    return f"{study_id}-{model}-{when:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@contextlib.contextmanager
def staged_result_dir(parent: Path, name: str):
    """Yield a staging folder; on success rename it to ``parent/name``, on any failure
    (including Ctrl-C) remove it.  The caller knows the final path: ``parent / name``.

    Under a supervisor (:mod:`reanalysis.supervisor`) both paths are announced to it first, so
    that a run it kills (no Python clean-up runs then) leaves nothing behind either.
    """
    from reanalysis.supervisor import announce

    parent = Path(parent)
    created = [p for p in (parent, *parent.parents) if not p.exists()]
    for folder in reversed(created):
        announce("mkdir", folder)  # removed again, if empty, when the run is stopped
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / name
    if final.exists():
        raise FileExistsError(f"{final} already exists; refusing to overwrite a result")
    staging = parent / f"{STAGING_PREFIX}{name}"
    announce("staging", staging)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    announce("final", final)
    os.replace(staging, final)


def git_commit(cwd: Path) -> str | None:
    """Commit of the project checkout (with ``-dirty`` if it has uncommitted changes)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(packages=MANIFEST_PACKAGES) -> dict[str, str]:
    """Python's and each package's installed version (``"not installed"`` if missing)."""
    out = {"python": platform.python_version()}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def run_manifest(study, project_root: Path, **fields) -> dict:
    """The part of a manifest every script writes (command, study file and its SHA-256,
    package versions, git commit), followed by the script's own ``fields``."""
    return {
        "command": command_line(),
        "study": {"id": study.id, "path": str(study.path), "sha256": study.sha256},
        **fields,
        "packages": package_versions(),
        "git_commit": git_commit(project_root),
    }


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def command_line() -> str:
    return " ".join([Path(sys.executable).name] + sys.argv)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (manifests and colophons record the inputs they read)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def stderr_is_terminal() -> bool:
    """Whether stderr is a terminal: progress bars and counters that redraw one line
    (carriage returns) only go there; a log file gets whole lines."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def counter(msg: str) -> None:
    """Print a progress counter on stderr: redrawn in place on a terminal, one line each
    in a file."""
    if stderr_is_terminal():
        print(f"\r{msg}", end="", file=sys.stderr, flush=True)
    else:
        print(msg, file=sys.stderr, flush=True)


def end_counter() -> None:
    """End a line of :func:`counter` (a terminal's only)."""
    if stderr_is_terminal():
        print(file=sys.stderr)


def progress_logger(t_start: float):
    """A ``log(msg)`` that prints ``[elapsed s] msg`` to stderr, timed from ``t_start``
    (a ``time.perf_counter()`` value taken when the script started)."""

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return log

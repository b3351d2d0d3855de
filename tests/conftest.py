"""Shared pytest fixtures, and the compilation caches of a test session.

Every cache that makes a warm run faster than a cold one lives in one temporary folder per
test session (set up here, before any test module imports PyTensor or JAX; the scripts the
tests run as subprocesses inherit the environment): the test times then do not depend on
what earlier runs of the user left in ``~/.pytensor`` or ``~/.cache/k2-reanalysis``, and
the tests never write there.  ``K2_TEST_CACHE=<folder>`` keeps the caches in that folder
instead (kept between sessions: for timing a warm tier).

The script runs the tests read are session fixtures: ONE short fit of the group model by
``scripts/fit.py`` (:func:`short_fit`), shared by ``test_fit_script.py`` and
``test_report.py``, and the sensitivity smoke run (:func:`sensitivity_smoke`).  Each starts
in a background process as soon as the tests are collected, and the files that read them run
last: on two cores they run while the other tests do.
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.scriptruns import ROOT, SENSITIVITY_SMOKE_GRID, SHORT_FIT, Background, FitRun, describe

_TESTS_DIR = Path(__file__).resolve().parent


# --- per-session compilation caches ----------------------------------------------------------
def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _session_caches() -> Path:
    """Point the JAX compilation cache, the graph cache of reanalysis/sampling.py and PyTensor's
    compiledir at one folder of this session; returns it."""
    keep = os.environ.get("K2_TEST_CACHE")
    if keep:
        folder = Path(keep).resolve()
        folder.mkdir(parents=True, exist_ok=True)
    else:
        # one folder per session under a common parent, so that a session killed before its
        # exit handler ran (a timeout's SIGTERM) leaves nothing for long: the next one
        # removes the folders of sessions no longer running
        parent = Path(tempfile.gettempdir()) / f"k2-test-caches-{os.getuid()}"
        parent.mkdir(exist_ok=True)
        for old in parent.iterdir():
            if old.name.isdigit() and not _running(int(old.name)):
                shutil.rmtree(old, ignore_errors=True)
        folder = parent / str(os.getpid())
        folder.mkdir()
        atexit.register(shutil.rmtree, folder, True)
    os.environ["K2_JAX_CACHE"] = str(folder / "jax")
    os.environ["K2_GRAPH_CACHE"] = str(folder / "graphs")
    # PyTensor reads its flags once, at import; a later flag of the same name wins
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, f"compiledir={folder / 'pytensor'}") if f)
    return folder


CACHE_DIR = _session_caches()
_IMPORTED_TOO_EARLY = sorted(m for m in ("pytensor", "jax", "reanalysis.sampling") if m in sys.modules)
# before any test runs JAX (the device count is fixed once XLA's backend starts), as the
# toolkit does before it samples
from reanalysis.jax_setup import configure_jax  # noqa: E402

configure_jax()


def pytest_report_header(config):
    line = f"compilation caches: {CACHE_DIR}"
    if _IMPORTED_TOO_EARLY:
        # imported by a plugin before this file set the folders: they use the user's caches
        line += f" (not used by {', '.join(_IMPORTED_TOO_EARLY)}: imported before tests/conftest.py)"
    return line


# --- study files (tests/models/test_study.py) ---------------------------------------------------
@pytest.fixture
def study_path() -> Path:
    """Path of the real study file data/studies/lasemi2018.yaml."""
    return (_TESTS_DIR.parent / "data" / "studies" / "lasemi2018.yaml").resolve()


@pytest.fixture
def base(study_path) -> dict:
    """A fresh, mutable copy of the real study file as plain YAML data."""
    return yaml.safe_load(study_path.read_text(encoding="utf-8"))


@pytest.fixture
def write_study(tmp_path):
    """Factory: ``write_study(data, name="study.yaml") -> Path`` dumps ``data`` as YAML."""

    def _write(data, name: str = "study.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return path

    return _write


# --- model tests ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def single_threaded_blas():
    """The gradients solve small triangular systems with matrix right-hand sides;
    multi-threaded OpenBLAS makes each take milliseconds instead of microseconds when the
    CPUs are busy.  Use with ``pytestmark = pytest.mark.usefixtures("single_threaded_blas")``."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


# --- script runs in the background: ONE short fit shared by every test of its outputs, and the
# --- sensitivity smoke test ----------------------------------------------------------------
#: Script runs started when collection ends (pytest_collection_finish), by name: a minute of
#: subprocess work each, on the second core while the other tests run.
_BACKGROUND: dict[str, Background] = {}


def _start_short_fit(folder: Path) -> Background:
    return Background([ROOT / "scripts" / "fit.py", *SHORT_FIT, "--out", folder / "results"], folder)


def _start_sensitivity_smoke(folder: Path) -> Background:
    grid = folder / "grid.yaml"
    grid.write_text(yaml.safe_dump(SENSITIVITY_SMOKE_GRID, sort_keys=False), encoding="utf-8")
    return Background([ROOT / "scripts" / "sensitivity.py", "--grid", grid, "--out", folder / "out", "--workers", "2"], folder)


#: Background runs: the fixtures that read them -> (name, start(folder)).
_BACKGROUND_RUNS = {
    "short_fit": ("short_fit", _start_short_fit),
    "short_fit_copy": ("short_fit", _start_short_fit),
    "sensitivity_smoke": ("sensitivity_smoke", _start_sensitivity_smoke),
}


def _reads_background(item) -> bool:
    return bool(set(_BACKGROUND_RUNS) & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(session, config, items):
    # the files that read a background run go last, so the runs overlap as many tests as
    # possible (whole files, in their order: a module fixture is set up once)
    late = {item.nodeid.split("::")[0] for item in items if _reads_background(item)}
    items[:] = sorted(items, key=lambda item: item.nodeid.split("::")[0] in late)


def pytest_collection_finish(session):
    if session.config.option.collectonly:
        return
    wanted = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    for fixture in sorted(wanted & set(_BACKGROUND_RUNS)):
        name, start = _BACKGROUND_RUNS[fixture]
        if name not in _BACKGROUND:
            # in the session's folder: removed with it, even after a killed session
            folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=CACHE_DIR))
            atexit.register(shutil.rmtree, folder, True)
            _BACKGROUND[name] = start(folder)


def pytest_sessionfinish(session):
    for run in _BACKGROUND.values():
        run.stop()  # a session stopped early (-x, Ctrl-C) leaves no script running


@pytest.fixture(scope="session")
def short_fit(tmp_path_factory) -> FitRun:
    """ONE short fit (``scripts/fit.py`` as a subprocess, :data:`SHORT_FIT`) shared by every
    test of its outputs in every file, started in the background when collection ends.  Its
    folder is read-only for the tests: a test that adds to a result folder works on a copy
    (:func:`short_fit_copy`)."""
    run = _BACKGROUND.get("short_fit") or _start_short_fit(tmp_path_factory.mktemp("short_fit"))
    proc = run.result()
    return FitRun(proc, run.folder / "results", run.seconds)


@pytest.fixture(scope="session")
def sensitivity_smoke(tmp_path_factory) -> Background:
    """``scripts/sensitivity.py`` on :data:`SENSITIVITY_SMOKE_GRID` with two worker
    processes, as a user runs it (started in the background when collection ends); wait
    for it with ``.result()``, its result folder is under ``.folder / "out"``."""
    return _BACKGROUND.get("sensitivity_smoke") or _start_sensitivity_smoke(tmp_path_factory.mktemp("sensitivity_smoke"))


@pytest.fixture(scope="session")
def short_fit_copy(short_fit, tmp_path_factory) -> Path:
    """A copy of the short fit's result folder that tests of the HTML report may add to."""
    assert short_fit.proc.returncode in (0, 3), describe(short_fit.proc)
    dest = tmp_path_factory.mktemp("short_fit_copy") / short_fit.folder.name
    shutil.copytree(short_fit.folder, dest)
    return dest

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

``make test`` runs the tests in two processes (pytest-xdist, ``-n 2 --dist loadfile``: a
file's module fixtures are built once).  The workers share the controller's cache folder;
the first worker starts the background runs and the others wait for their exit codes in
the session's folder (:class:`tests.scriptruns.Background`).
"""
from __future__ import annotations

import atexit
import copy
import functools
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


#: The test session: the process that started pytest.  With several test processes
#: (``make test`` runs two, pytest-xdist's ``-n``) the workers inherit it from the
#: controller, which loads this file first, and share its folder.
SESSION = int(os.environ.setdefault("K2_TEST_SESSION", str(os.getpid())))
#: This process owns the session's folder (removes it at exit) and starts the background
#: runs: the controller, or a lone test process; the first worker starts the runs.
OWNS_SESSION = SESSION == os.getpid()
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
STARTS_RUNS = WORKER in (None, "gw0")


def _session_caches() -> Path:
    """Point the JAX compilation cache, the graph and table caches of reanalysis/disk_cache.py
    and PyTensor's compiledir at one folder of this session; returns it."""
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
        folder = parent / str(SESSION)
        if OWNS_SESSION:
            for old in parent.iterdir():
                if old.name.isdigit() and not _running(int(old.name)):
                    shutil.rmtree(old, ignore_errors=True)
            folder.mkdir()
            atexit.register(shutil.rmtree, folder, True)
        folder.mkdir(exist_ok=True)
    os.environ["K2_JAX_CACHE"] = str(folder / "jax")
    os.environ["K2_GRAPH_CACHE"] = str(folder / "graphs")
    os.environ["K2_TABLE_CACHE"] = str(folder / "tables")
    # PyTensor reads its flags once, at import; a later flag of the same name wins.  Two
    # flags make the tier cheaper without changing a number (docs/decisions/test-tiers.md):
    # C modules compiled without optimisation (-O0 after PyTensor's -O3, gcc takes the last;
    # -O3 without -ffast-math keeps IEEE arithmetic), and no creation stack recorded on every
    # graph variable (traceback__limit=0: only PyTensor's error messages lose that line)
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    ours = f"compiledir={folder / 'pytensor'},gcc__cxxflags=-O0,traceback__limit=0"
    os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, ours) if f)
    return folder


CACHE_DIR = _session_caches()
_IMPORTED_TOO_EARLY = sorted(m for m in ("pytensor", "jax", "reanalysis.sampling", "reanalysis.disk_cache") if m in sys.modules)
# before any test runs JAX (the device count is fixed once XLA's backend starts), as the
# toolkit does before it samples
from reanalysis.jax_setup import configure_jax  # noqa: E402

configure_jax()


def pytest_configure(config):
    # The fast tier (`-m "not slow"`) compiles XLA's programs at LLVM optimisation level 0:
    # it compiles dozens of sampler programs and runs each for a few hundred draws, so
    # compilation is most of its XLA time (the tier: 49 s less CPU).  Unlike the gcc flag
    # above this changes the last bits of some results (no fused multiply-add), so draws
    # differ from a user's run; every test compares runs made under the same flags, and the
    # slow tier's real fits (3.5x slower sampling at level 0) and `make fit` keep XLA's
    # default (docs/decisions/test-tiers.md).  Set before any test starts XLA's backend,
    # which reads the flags once; subprocesses inherit them.
    if "not slow" in (config.option.markexpr or ""):
        os.environ["XLA_FLAGS"] = " ".join(f for f in (os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0") if f)


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


#: libyaml's dumper where PyYAML has it: hundreds of tests write a study file, and the
#: pure-Python one took about ten times as long (reading goes through the toolkit's own
#: loader, models.study.StudyLoader, which is libyaml's too).
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@functools.cache
def _real_study_data(path: Path) -> dict:
    from models.study import StudyLoader

    return yaml.load(path.read_text(encoding="utf-8"), Loader=StudyLoader)  # noqa: S506 - a SafeLoader subclass


@pytest.fixture
def base(study_path) -> dict:
    """A fresh, mutable copy of the real study file as plain YAML data (parsed once)."""
    return copy.deepcopy(_real_study_data(study_path))


@pytest.fixture
def write_study(tmp_path):
    """Factory: ``write_study(data, name="study.yaml") -> Path`` dumps ``data`` as YAML."""

    def _write(data, name: str = "study.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.dump(data, Dumper=_YAML_DUMPER, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return path

    return _write


# --- the toy model (tests/toy_model.py), registered for one test ------------------------------
@pytest.fixture
def toy():
    """The toy model, registered as ``"toy"`` for the test (a model is one module plus one
    registry line); unregistered afterwards."""
    from reanalysis.registry import get_model, register, unregister

    register("toy", "tests.toy_model:ToyModel")
    yield get_model("toy")
    unregister("toy")


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
#: Their folders: fixed names in a folder of this session (every test process finds them).
_RUNS_DIR = CACHE_DIR / f"runs-{SESSION}"
if OWNS_SESSION:
    # removed by the session's own process, after its summary has read the runs' times
    atexit.register(shutil.rmtree, _RUNS_DIR, True)


def _short_fit_args(folder: Path, start: bool) -> list:
    return [ROOT / "scripts" / "fit.py", *SHORT_FIT, "--out", folder / "results"]


def _sensitivity_smoke_args(folder: Path, start: bool) -> list:
    grid = folder / "grid.yaml"
    if start:
        folder.mkdir(parents=True, exist_ok=True)
        grid.write_text(yaml.safe_dump(SENSITIVITY_SMOKE_GRID, sort_keys=False), encoding="utf-8")
    # one worker: a second process cost about 10 s of CPU in the tier, and pools of several
    # workers are test_execution.py's (test_interrupt.py's slow run of this script has two)
    return [ROOT / "scripts" / "sensitivity.py", "--grid", grid, "--out", folder / "out", "--workers", "1"]


#: Background runs: the fixtures that read them -> (name, arguments(folder, start)); the
#: process that starts a run writes its input files.
_BACKGROUND_RUNS = {
    "short_fit": ("short_fit", _short_fit_args),
    "short_fit_copy": ("short_fit", _short_fit_args),
    "sensitivity_smoke": ("sensitivity_smoke", _sensitivity_smoke_args),
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
        name, arguments = _BACKGROUND_RUNS[fixture]
        if name not in _BACKGROUND:
            # every test process collects the same tests; one starts the run, the others
            # follow it (in the session's folder: removed with it, even after a killed session)
            folder = _RUNS_DIR / name
            _BACKGROUND[name] = Background(arguments(folder, STARTS_RUNS), folder, start=STARTS_RUNS)


def pytest_sessionfinish(session, exitstatus):
    for run in _BACKGROUND.values():
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) and not session.shouldstop:
            # another test process may still read it
            run.result()
        run.stop()  # a session stopped early (-x, Ctrl-C) leaves no script running


def pytest_terminal_summary(terminalreporter):
    # how long each background run took, start to exit code: the files that read them run
    # last, so a run longer than the other tests sets the tier's wall time
    for name in sorted({name for name, _ in _BACKGROUND_RUNS.values()}):
        started, code = _RUNS_DIR / name / "started", _RUNS_DIR / name / "returncode"
        if started.exists() and code.exists():
            seconds = code.stat().st_mtime - float(started.read_text())
            terminalreporter.write_line(f"background run {name}: {seconds:.0f} s, exit {code.read_text().strip()}")


def _background(name: str, fixture: str, tmp_path_factory) -> Background:
    # a test run alone, without the collection hook (e.g. by its node id in an IDE)
    if name not in _BACKGROUND:
        folder = tmp_path_factory.mktemp(name)
        _BACKGROUND[name] = Background(_BACKGROUND_RUNS[fixture][1](folder, True), folder)
    return _BACKGROUND[name]


@pytest.fixture(scope="session")
def short_fit(tmp_path_factory) -> FitRun:
    """ONE short fit (``scripts/fit.py`` as a subprocess, :data:`SHORT_FIT`) shared by every
    test of its outputs in every file, started in the background when collection ends.  Its
    folder is read-only for the tests: a test that adds to a result folder works on a copy
    (:func:`short_fit_copy`)."""
    run = _background("short_fit", "short_fit", tmp_path_factory)
    proc = run.result()
    return FitRun(proc, run.folder / "results", run.seconds)


@pytest.fixture(scope="session")
def sensitivity_smoke(tmp_path_factory) -> Background:
    """``scripts/sensitivity.py`` on :data:`SENSITIVITY_SMOKE_GRID` with two worker
    processes, as a user runs it (started in the background when collection ends); wait
    for it with ``.result()``, its result folder is under ``.folder / "out"``."""
    return _background("sensitivity_smoke", "sensitivity_smoke", tmp_path_factory)


@pytest.fixture(scope="session")
def short_fit_copy(short_fit, tmp_path_factory) -> Path:
    """A copy of the short fit's result folder that tests of the HTML report may add to."""
    assert short_fit.proc.returncode in (0, 3), describe(short_fit.proc)
    dest = tmp_path_factory.mktemp("short_fit_copy") / short_fit.folder.name
    shutil.copytree(short_fit.folder, dest)
    return dest

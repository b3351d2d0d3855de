"""Ctrl-C stops every long command at once: a real SIGINT in each phase of the work gives
exit 130 within 2 s, writes nothing, leaves an earlier result untouched and no process
running (reanalysis/supervisor.py; docs/decisions/interrupts.md).  And ``--help`` answers
without importing PyMC.

The fast tier checks the mechanism on a small script that uses the same supervisor (a
forked worker, a staging folder, a paused phase) and ``fit.py`` during its set-up; the slow
tier interrupts real fits of the default model in each phase, a sensitivity grid and a
calibration while their worker pools run.  Run the slow tier with ``-s`` to see one
``SIGINT <case>: exit, seconds, ...`` line per case.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.interrupting import LOAD_MARGIN, ROOT, STOP_SECONDS, ScriptRun, alive, check_stopped, descendants, tree_hashes
from reanalysis.supervisor import group_members

FIT = ROOT / "scripts" / "fit.py"
SENSITIVITY = ROOT / "scripts" / "sensitivity.py"
SBC = ROOT / "scripts" / "sbc.py"

DUMMY = """
import multiprocessing, os, sys, time
sys.path.insert(0, {root!r})
from reanalysis import results
from reanalysis.supervisor import phase, run


def parse(argv):
    if "--help" in argv:
        print("usage: dummy.py --out OUT")
        sys.exit(0)
    return argv


def sleeper():
    time.sleep(600)


def main(argv):
    out = argv[argv.index("--out") + 1]
    worker = multiprocessing.get_context("fork").Process(target=sleeper)
    worker.start()
    with results.staged_result_dir(os.path.join(out, "sub"), "result") as stage:
        (stage / "partial.txt").write_text("partial")
        phase("work")
    phase("final")
    if os.environ.get("DUMMY_CRASH"):
        os.kill(os.getpid(), 9)
    worker.terminate()
    worker.join()
    return int(os.environ.get("DUMMY_CODE", "0"))


if __name__ == "__main__":
    sys.exit(run(main, parse))
"""


@pytest.fixture
def dummy(tmp_path) -> Path:
    path = tmp_path / "dummy.py"
    path.write_text(DUMMY.format(root=str(ROOT)))
    return path


@pytest.fixture
def earlier(tmp_path) -> tuple[Path, dict]:
    """An --out folder holding an earlier, complete result (which must stay as it is)."""
    out = tmp_path / "results"
    folder = out / "lasemi2018-hierarchical-20260101T000000Z-abcdef"
    (folder / "figures").mkdir(parents=True)
    (folder / "estimands.csv").write_text("estimand,median\nx,1\n")
    (folder / "figures" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nearlier")
    return out, {folder.name: tree_hashes(folder)}


def start(tmp_path, args, env=None) -> ScriptRun:
    return ScriptRun(args, tmp_path / "stdout.txt", env=env)


# -- --help ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "script, options",
    [
        ("fit.py", ["--study", "--model", "--family", "--draws", "--max-draws", "--tune", "--out", "Exit codes", "130 interrupted"]),
        ("sensitivity.py", ["--grid", "--workers", "--scheduler", "--out", "130 interrupted"]),
        ("sbc.py", ["--model", "--sims", "--workers", "--out", "130 interrupted"]),
        ("report.py", ["RESULT_DIR", "--sensitivity"]),
    ],
)
def test_help_answers_at_once_and_lists_the_options(script, options):
    """``--help`` is argparse alone: no PyMC, PyTensor or JAX import (about 0.1-0.2 s here,
    against 2.6-4.9 s for fit.py when its parser imported the models)."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--help"], capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - t
    print(f"\n{script} --help: {seconds:.2f} s")
    assert proc.returncode == 0, proc.stderr
    flat = " ".join(proc.stdout.split())
    for option in options:
        assert option in flat, f"{option} missing from {script} --help"
    assert seconds < 3.0, f"{script} --help took {seconds:.2f} s"


def test_help_imports_no_sampler_library():
    code = (
        "import sys; sys.argv = ['fit.py', '--help']; sys.path.insert(0, 'scripts'); import runpy\n"
        "try:\n    runpy.run_path('scripts/fit.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('pymc', 'pytensor', 'jax', 'numpy', 'arviz', 'scipy') if m in sys.modules), file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr


def test_model_facts_read_from_source_equal_the_imported_modules():
    """fit.py's options read the models' constants without importing them; they must be the
    constants model_api gives."""
    from reanalysis.model_facts import _from_import, _from_source

    assert _from_source() == _from_import()


# -- the mechanism, on a small supervised script ---------------------------------------------------
def test_sigint_kills_the_worker_and_removes_the_staging_folder(tmp_path, dummy, earlier):
    out, before = earlier
    run = start(tmp_path, [dummy, "--out", out], env={"K2_PHASE_PAUSE": "work"})
    try:
        run.wait_for(r"^phase: work$", timeout=60)
        staged = list((out / "sub").glob(".incomplete-*"))
        assert len(staged) == 1 and (staged[0] / "partial.txt").is_file()
        assert len(descendants(run.proc.pid)) >= 2, "the child and its forked worker should be running"
        code, seconds = run.interrupt()
        check_stopped(run, code, seconds, out, before, "dummy script, paused in its work")
    finally:
        run.close()


def test_sigint_after_the_rename_removes_the_unfinished_result(tmp_path, dummy):
    out = tmp_path / "new" / "results"
    run = start(tmp_path, [dummy, "--out", out], env={"K2_PHASE_PAUSE": "final"})
    try:
        run.wait_for(r"^phase: final$", timeout=60)
        assert (out / "sub" / "result" / "partial.txt").is_file()
        code, seconds = run.interrupt()
        # the folders the run created for its output go too
        check_stopped(run, code, seconds, out, None, "dummy script, after its result folder was renamed")
        assert not (tmp_path / "new").exists()
    finally:
        run.close()


@pytest.mark.parametrize("code", [0, 3])
def test_a_complete_run_keeps_its_result_and_its_exit_code(tmp_path, dummy, code):
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(dummy), "--out", str(out)], env={**os.environ, "DUMMY_CODE": str(code)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == code, proc.stderr
    assert [p.name for p in (out / "sub").iterdir()] == ["result"]


def test_a_crashed_child_is_an_error_and_leaves_nothing(tmp_path, dummy):
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(dummy), "--out", str(out)], env={**os.environ, "DUMMY_CRASH": "1"},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "error: dummy.py stopped by signal SIGKILL; no result folder was written"
    assert not out.exists()


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_it_like_sigint(tmp_path, dummy, signum, code):
    out = tmp_path / "results"
    run = start(tmp_path, [dummy, "--out", out], env={"K2_PHASE_PAUSE": "work"})
    try:
        run.wait_for(r"^phase: work$", timeout=60)
        run.proc.send_signal(signum)
        assert run.proc.wait(30) == code
        time.sleep(0.05)
        assert run.leftovers() == []
        assert not out.exists()
    finally:
        run.close()


def test_killing_the_supervisor_takes_the_work_with_it(tmp_path, dummy):
    """SIGKILL cannot be handled: the child notices its supervisor's socket close and kills
    its own process group (its staging folder stays: nobody is left to remove it)."""
    out = tmp_path / "results"
    run = start(tmp_path, [dummy, "--out", out], env={"K2_PHASE_PAUSE": "work"})
    try:
        run.wait_for(r"^phase: work$", timeout=60)
        run.seen.update(descendants(run.proc.pid))
        (child,) = [p for p in run.seen if Path(f"/proc/{p}/stat").exists() and int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1]) == run.proc.pid]
        run.proc.kill()
        run.proc.wait()
        deadline = time.monotonic() + STOP_SECONDS * LOAD_MARGIN
        while group_members(child) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert group_members(child) == [] and run.leftovers() == []
    finally:
        run.close()


# -- fit.py, set-up ---------------------------------------------------------------------------------
def test_fit_sigint_during_setup(tmp_path, earlier):
    """The child is importing PyMC and reading the study file."""
    out, before = earlier
    run = start(tmp_path, [FIT, "--out", out, "--no-progress"])
    try:
        run.wait_for(r"^phase: setup$", timeout=60)
        code, seconds = run.interrupt()
        check_stopped(run, code, seconds, out, before, "fit.py (default model), set-up")
    finally:
        run.close()


# -- slow: real fits of the default model, and the pools of sensitivity and calibration ---------
def _fit(tmp_path, out, *args, env=None):
    return start(tmp_path, [FIT, "--out", out, *args], env=env)


@pytest.mark.slow
def test_fit_sigint_during_xla_compilation(tmp_path, earlier):
    """No persistent compilation cache, so XLA compiles the sampler (10-20 s); the SIGINT
    arrives when JAX has handed the sampler's program to XLA and before XLA has finished it:
    native code that a Python signal handler cannot interrupt safely."""
    out, before = earlier
    run = _fit(tmp_path, out, env={"K2_JAX_CACHE": "", "JAX_LOG_COMPILES": "1"})
    try:
        run.wait_for(r"^phase: compile$")
        # the sampler's program: its conversion takes 0.5-1.5 s, the small programs' 0.01 s
        run.wait_for(r"Finished jaxpr to MLIR module conversion jit\(_fun\) in (0\.[1-9]|[1-9])", after=run.matched_at)
        mark = run.matched_at
        code, seconds = run.interrupt()
        # still compiling when the signal went: no compilation finished, no chain running
        between = run.lines[mark + 1 : run.lines_at_signal]
        assert not any("Finished XLA compilation" in line or "Running chain" in line for line in between), between
        check_stopped(run, code, seconds, out, before, "fit.py (default model), XLA compilation")
    finally:
        run.close()


@pytest.mark.slow
def test_fit_sigint_during_sampling(tmp_path, earlier):
    """A default (full-length) fit, interrupted once the progress bar of its chains shows
    20% of their iterations (``--progress``: stderr is a pipe here)."""
    out, before = earlier
    run = _fit(tmp_path, out, "--progress")
    try:
        run.wait_for(r"^phase: compile$")
        run.wait_for(r"warm-up and draws \(4 chains\):\s+([2-9]\d|100)%", after=run.matched_at)
        code, seconds = run.interrupt()
        check_stopped(run, code, seconds, out, before, "fit.py (default model), sampling at >= 20%")
    finally:
        run.close()


@pytest.mark.slow
def test_fit_sigint_during_extension(tmp_path, earlier):
    """100 draws per chain fall short of the ESS target, so the chains continue; the SIGINT
    arrives while the continuation samples."""
    out, before = earlier
    run = _fit(tmp_path, out, "--draws", "100", "--max-draws", "400", "--tune", "300", "--progress")
    try:
        run.wait_for(r"^phase: extend$")
        run.wait_for(r"more draws \(4 chains\):\s+\d+%", after=run.matched_at)
        code, seconds = run.interrupt()
        check_stopped(run, code, seconds, out, before, "fit.py (default model), extension")
    finally:
        run.close()


@pytest.mark.slow
@pytest.mark.parametrize("where", ["figures", "write", "final"])
def test_fit_sigint_while_writing(tmp_path, earlier, where):
    """Held at a phase of writing the result (short chains: the phase, not the fit, is
    tested): figures being drawn by the workers, the tables being written into the staging
    folder, or the folder renamed into place before the run completed."""
    out, before = earlier
    run = _fit(tmp_path, out, "--draws", "100", "--max-draws", "100", "--tune", "100", "--ppc-draws", "200", "--no-progress",
               env={"K2_PHASE_PAUSE": where})
    try:
        run.wait_for(rf"^phase: {where}$")
        new = [p for p in out.iterdir() if p.name not in before]
        assert len(new) == 1, new  # the staging folder (or, at "final", the renamed one)
        if where == "write":
            assert (new[0] / "idata.nc").is_file()
        code, seconds = run.interrupt()
        check_stopped(run, code, seconds, out, before, f"fit.py (default model), {where}")
    finally:
        run.close()


def _grid(tmp_path) -> Path:
    """Two group-model scenarios of short chains (the pool, not the fits, is tested)."""
    grid = {
        "sampling": {"draws": 200, "tune": 200, "chains": 2, "reps": 200, "ppc_draws": 100},
        "scenarios": [{"name": "wide", "priors": "wide"}, {"name": "narrow", "priors": "narrow"}],
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def _pool_command(script: str, tmp_path) -> list:
    if script == "sensitivity":
        return [SENSITIVITY, "--study", ROOT / "data" / "studies" / "lasemi2018.yaml", "--grid", _grid(tmp_path), "--workers", "2"]
    return [SBC, "--sims", "10", "--draws", "50", "--tune", "50", "--chains", "2", "--chunk", "5", "--min-ess", "0"]


@pytest.mark.slow
@pytest.mark.parametrize("script", ["sensitivity", "sbc"])
def test_sigint_while_the_pool_runs(tmp_path, earlier, script):
    out, before = earlier
    run = start(tmp_path, [*_pool_command(script, tmp_path), "--out", out])
    try:
        run.wait_for(r"^phase: pool$")
        # the pool's workers are up (the child and its pool's processes)
        deadline = time.monotonic() + 120
        while len(descendants(run.proc.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        code, seconds = run.interrupt()
        check_stopped(run, code, seconds, out, before, f"{script}.py, worker pool running")
    finally:
        run.close()


@pytest.mark.slow
@pytest.mark.parametrize("script", ["sensitivity", "sbc"])
def test_sigint_while_writing_the_pool_results(tmp_path, earlier, script):
    out, before = earlier
    run = start(tmp_path, [*_pool_command(script, tmp_path), "--out", out], env={"K2_PHASE_PAUSE": "write"})
    try:
        run.wait_for(r"^phase: write$")
        assert len([p for p in out.iterdir() if p.name.startswith(".incomplete-")]) == 1
        code, seconds = run.interrupt()
        check_stopped(run, code, seconds, out, before, f"{script}.py, writing")
    finally:
        run.close()


def test_alive_tells_a_zombie_from_a_running_process():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(proc.pid)  # exited, not yet reaped: a zombie
    proc.wait()


def test_publish_replaces_the_figures_and_leaves_no_temporary_copy(tmp_path):
    from reanalysis.cli import fit

    figdir = tmp_path / "result" / "figures"
    figdir.mkdir(parents=True)
    for name in ("a.png", "b.png"):
        (figdir / name).write_bytes(b"new " + name.encode())
    dest = tmp_path / "published" / "figures"
    dest.mkdir(parents=True)
    (dest / "a.png").write_bytes(b"old")
    (dest / "other.png").write_bytes(b"kept")
    fit.publish(figdir, ["a.png", "b.png"], dest)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == {"a.png": b"new a.png", "b.png": b"new b.png", "other.png": b"kept"}

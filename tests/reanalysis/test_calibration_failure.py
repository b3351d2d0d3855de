"""A calibration whose fit fails stops at once: ``scripts/sbc.py`` prints one line naming the
simulated study and the error, exits 1 (unexpected error), leaves no worker process running
and writes nothing (an earlier result stays as it was).

The pool's side (every worker killed, the process exits) is tested fast on a small program
in tests/reanalysis/test_execution.py; the slow tier runs the real script with a worker
that fails (a ``sitecustomize`` hook, which the spawned workers import too).
"""
from __future__ import annotations

import os
import re

import pytest

from tests.interrupting import LOAD_MARGIN, STOP_SECONDS, ScriptRun, descendants, tree_hashes
from tests.scriptruns import ROOT, main_caller

SBC = ROOT / "scripts" / "sbc.py"
SHORT = ["--sims", "10", "--draws", "50", "--tune", "50", "--chains", "2", "--chunk", "2", "--no-progress"]


@pytest.fixture
def earlier(tmp_path) -> tuple:
    """An --out folder holding an earlier, complete result (which must stay as it is)."""
    out = tmp_path / "results"
    folder = out / "lasemi2018-sbc-group-lognormal-20260101T000000Z-abcdef"
    folder.mkdir(parents=True)
    (folder / "ranks.csv").write_text("sim,parameter,rank\n0,log_mean,42\n")
    return out, tree_hashes(out)


def test_a_failed_fit_is_named_in_one_line():
    from reanalysis.calibration import CalibrationError, _fit_chunk

    setup = {"model": "group", "family": "lognormal", "seed": 7, "study_path": "/nonexistent/study.yaml", "priors": {}}
    with pytest.raises(CalibrationError) as exc:
        _fit_chunk((setup, [{"sim": 3}, {"sim": 4}]))
    message = str(exc.value)
    assert message.startswith("calibration fit failed (group model, lognormal, seed 7), the set-up of simulated studies 3-4: "), message
    assert "\n" not in message and exc.value.__cause__ is not None


def test_the_script_reports_a_failed_fit_in_one_line_and_exits_1(tmp_path, capsys, monkeypatch, earlier):
    from reanalysis import calibration

    def failing(*args, **kwargs):
        raise calibration.CalibrationError("calibration fit failed (group model, lognormal, seed 1), simulated study 3: KeyError: 'x'")

    monkeypatch.setattr(calibration, "run_sbc", failing)
    out, before = earlier
    code, stdout, stderr = main_caller("sbc", capsys)(*SHORT, "--out", out)
    assert code == 1, stderr
    assert stderr.strip().splitlines() == [
        "error: calibration fit failed (group model, lognormal, seed 1), simulated study 3: KeyError: 'x'; no result folder was written"
    ]
    assert tree_hashes(out) == before


FAILING_WORKER = """
# test hook: the calibration fits fail at simulated study 0; the other chunks' fits run on
import importlib.abc, importlib.util, sys, time


class FailingFits(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "reanalysis.calibration":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)

            def fit_studies(setup, tasks, at):
                at["sim"] = tasks[0]["sim"]
                if tasks[0]["sim"] == 0:
                    time.sleep(1.0)  # the other worker is fitting by then
                    raise KeyError("log_cv")
                time.sleep(600)

            module._fit_studies = fit_studies

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, FailingFits())
"""


@pytest.mark.slow
def test_sbc_stops_at_the_first_failed_fit(tmp_path, earlier):
    """The real script, a real pool of two workers: the first chunk's fit fails while the
    other worker fits; the run ends within seconds of the error (it used to hang with its
    workers running until killed by hand)."""
    import time

    out, before = earlier
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FAILING_WORKER)
    path = os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])])
    run = ScriptRun([SBC, *SHORT, "--out", out], tmp_path / "stdout.txt", env={"PYTHONPATH": path})
    try:
        run.wait_for(r"^phase: pool$")
        deadline = time.monotonic() + 120
        while len(descendants(run.proc.pid)) < 3 and time.monotonic() < deadline:  # the child and its two workers
            time.sleep(0.1)
        run.wait_for(r"^error: ", timeout=120)
        failed = time.monotonic()
        code, _ = run.wait(timeout=60)
        seconds = time.monotonic() - failed
        print(f"\nsbc.py, a failed fit: exit {code}, {seconds:.2f} s from the error line to the exit, "
              f"{len(run.seen)} descendant processes seen, left: {run.leftovers() or 'none'}")
        assert code == 1, run.stderr[-4000:]
        assert seconds < STOP_SECONDS * LOAD_MARGIN, f"exited {seconds:.2f} s after the error"
        errors = [line for line in run.lines if not line.startswith("phase: ")]
        assert len(errors) == 1 and re.fullmatch(
            r"error: calibration fit failed \(group model, \w+, seed 1\), simulated study 0: KeyError: 'log_cv'; no result folder was written",
            errors[0],
        ), run.stderr[-4000:]
        assert run.leftovers() == [], f"processes left running: {run.leftovers()}"
        assert tree_hashes(out) == before, sorted(p.name for p in out.iterdir())
    finally:
        run.close()

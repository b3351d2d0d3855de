"""Running the scripts in tests: as a subprocess (as a user does) or their ``main(argv)`` in
the test's process, and the result folder of a fit.py run."""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_script(name: str):
    """The module of ``scripts/<name>.py``, to call its ``main(argv)`` in this process (the
    supervisor that runs the work in a child process is only used from the command line)."""
    import importlib

    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    return importlib.import_module(name)


STUDY = ROOT / "data" / "studies" / "lasemi2018.yaml"
SHORT_FIT_SEED = 20180302
#: Short settings: enough for the headline numbers, not necessarily for the ESS >= 400 gate.
SHORT_FIT = ["--model", "group", "--draws", "300", "--tune", "300", "--chains", "2", "--ppc-draws", "300", "--reps", "300",
             "--seed", str(SHORT_FIT_SEED), "--no-progress"]
RESULT_NAME = re.compile(r"^lasemi2018-group-\d{8}T\d{6}Z-[0-9a-f]{6}$")


#: The sensitivity smoke test's grid (tests/reanalysis/test_sensitivity.py): short sampling (far below
#: the diagnostics gate), the default, a scenario that changes only the checks (it shares the
#: default's posterior) and one that cannot build its model (a tolerance the study file
#: accepts but whose claim interval reaches -100%, which the covariate model's claim rule
#: rejects).
SENSITIVITY_SAMPLING = {"draws": 100, "tune": 100, "chains": 2, "reps": 50, "ppc_draws": 100}
SENSITIVITY_SMOKE_GRID = {
    "sampling": SENSITIVITY_SAMPLING,
    # which ratio "three-fold" means is read only by the checks (the group test is data of
    # the group model's likelihood since the p-value is fitted)
    "scenarios": [{"name": "fold ratio", "assumptions": {"fold_statistic": "ratio_of_medians"}},
                  {"name": "broken", "model": "hierarchical", "assumptions": {"age_claim_tolerance": 95}}],
}


def main_caller(name: str, capsys):
    """``call(*args) -> (exit code, stdout, stderr)``: the script ``name``'s ``main`` in this
    process, with argparse's exit turned into its code and the captured output returned."""
    script = import_script(name)

    def call(*args):
        capsys.readouterr()
        try:
            code = script.main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return call


def run_script(script: str, *args, timeout: float = 600) -> subprocess.CompletedProcess:
    """``scripts/<script>`` run as a user runs it: a subprocess (supervised child and all)."""
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def run_fit(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``scripts/fit.py`` run as a user runs it (:func:`run_script`)."""
    return run_script("fit.py", *args, timeout=timeout)


def describe(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout (tail) ---\n{proc.stdout[-3000:]}\n--- stderr (tail) ---\n{proc.stderr[-3000:]}"


def tree_hashes(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder`` (folders included as entries)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
    return out


@dataclass
class FitRun:
    proc: subprocess.CompletedProcess
    out: Path  # the --out folder
    seconds: float

    @property
    def entries(self) -> list[Path]:
        return sorted(self.out.iterdir()) if self.out.is_dir() else []

    @property
    def folder(self) -> Path:
        results = [p for p in self.entries if RESULT_NAME.match(p.name)]
        assert len(results) == 1, f"expected one result folder in {self.out}, found {self.entries}\n{describe(self.proc)}"
        return results[0]

    @property
    def manifest(self) -> dict:
        return json.loads((self.folder / "manifest.json").read_text())


class Background:
    """A script run started now and collected later (:meth:`result`): the tests go on on the
    other core meanwhile.

    One test process starts the run (``start=True``); with several test processes (pytest's
    ``-n``) the others follow it through its folder: the run writes its exit code to
    ``returncode`` when it ends, and :meth:`result` waits for that file.  Output goes to
    files, never pipes, which would block a script that writes more than a pipe holds
    before anyone reads."""

    #: Run the script, then write its exit code (atomically: a follower never reads half).
    _WRAPPER = '"$@"; code=$?; echo "$code" > "$0.tmp" && mv "$0.tmp" "$0"'

    def __init__(self, args: list, folder: Path, start: bool = True):
        self.folder = Path(folder)
        self.args = [str(a) for a in args]
        self._code = self.folder / "returncode"
        self.proc: subprocess.Popen | None = None
        self.seconds: float | None = None
        if start:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / "started").write_text(repr(time.time()))
            with open(self.folder / "stdout.txt", "w") as out, open(self.folder / "stderr.txt", "w") as err:
                # a session of its own: stop() kills the script with its wrapper
                self.proc = subprocess.Popen(
                    ["sh", "-c", self._WRAPPER, str(self._code), sys.executable, *self.args],
                    cwd=ROOT, stdout=out, stderr=err, start_new_session=True,
                )

    def result(self, timeout: float = 900) -> subprocess.CompletedProcess:
        """Wait for the run (killing it after ``timeout`` seconds when this process started
        it) and return it as ``subprocess.run`` would."""
        deadline = time.monotonic() + timeout
        while not self._code.exists():
            if self.proc is not None and self.proc.poll() is not None and not self._code.exists():
                raise RuntimeError(f"background run {self.args} ended without an exit code (killed?)")
            if time.monotonic() > deadline:
                self.stop()
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.1)
        if self.seconds is None:
            self.seconds = self._code.stat().st_mtime - float((self.folder / "started").read_text())
        code = int(self._code.read_text())
        out = (self.folder / "stdout.txt").read_text(encoding="utf-8")
        err = (self.folder / "stderr.txt").read_text(encoding="utf-8")
        return subprocess.CompletedProcess([sys.executable, *self.args], code, out, err)

    def stop(self) -> None:
        """Kill the run if this process started it and it is still going (a supervised
        script's child goes with it)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

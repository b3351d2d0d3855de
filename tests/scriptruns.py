"""Running the scripts in tests: as a subprocess (as a user does) or their ``main(argv)`` in
the test's process, and the result folder of a fit.py run."""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
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


def run_fit(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``scripts/fit.py`` run as a user runs it: a subprocess (supervised child and all)."""
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "fit.py"), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


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

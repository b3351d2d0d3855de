"""Run a script as a user does, wait for a phase of its work, send it a real SIGINT, and
record what the interruption left: exit code, seconds to exit, processes and files.

Phases are seen on stderr: ``phase: <name>`` lines (``K2_PHASE_TRACE``, set here), the
sampler's progress bar or JAX's compile log; ``K2_PHASE_PAUSE=<name>`` holds the work at a
phase until it is killed (reanalysis/supervisor.py).  Every descendant of the script's
process is recorded while it runs (a scan of /proc every 20 ms), so the tests can check
that none outlives it.
"""
from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The brief's limit for a Ctrl-C, and the factor a loaded machine may add in a test.
STOP_SECONDS, LOAD_MARGIN = 2.0, 1.5


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgid, start time) of a process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19])


def alive(pid: int, start: int | None = None) -> bool:
    """Whether process ``pid`` (started at ``start``, to tell a reused pid apart) is still
    running: not gone, not a zombie."""
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X") and (start is None or st[3] == start)


def descendants(pid: int) -> dict[int, int]:
    """pid -> start time of every live descendant of ``pid``."""
    children: dict[int, list[int]] = {}
    starts = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[0] not in ("Z", "X"):
                children.setdefault(st[1], []).append(int(entry.name))
                starts[int(entry.name)] = st[3]
    out, todo = {}, list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out[p] = starts[p]
        todo += children.get(p, [])
    return out


def tree_hashes(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder`` (folders as ``<dir>``)."""
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        rel = p.relative_to(folder).as_posix()
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
    return out


class ScriptRun:
    """A script started in its own process with ``args`` (stdout to ``stdout``)."""

    def __init__(self, args: list[str], stdout: Path, env: dict | None = None, cwd: Path = ROOT):
        full_env = {**os.environ, "K2_PHASE_TRACE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
        self._stdout = open(stdout, "w")
        self.proc = subprocess.Popen([sys.executable, *map(str, args)], cwd=cwd, stdout=self._stdout, stderr=subprocess.PIPE, env=full_env)
        self.lines: list[str] = []
        self.seen: dict[int, int] = {}  # every descendant seen: pid -> start time
        self._changed = threading.Condition()
        self._done = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._watch, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = self.proc.stderr.read1(65536)
            if not chunk:
                break
            buf += chunk
            # a progress bar rewrites its line with \r
            *done, buf = buf.replace(b"\r", b"\n").split(b"\n")
            with self._changed:
                self.lines += [d.decode(errors="replace") for d in done if d.strip()]
                self._changed.notify_all()
        with self._changed:
            if buf.strip():
                self.lines.append(buf.decode(errors="replace"))
            self._done.set()
            self._changed.notify_all()

    def _watch(self) -> None:
        while self.proc.poll() is None:
            try:
                self.seen.update(descendants(self.proc.pid))
            except (OSError, KeyError):
                pass
            time.sleep(0.02)

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 600, after: int = 0) -> re.Match:
        """The first stderr line from index ``after`` on that matches ``pattern``; fails the
        test if the script exits or ``timeout`` passes first."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        i = after
        with self._changed:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        self.matched_at = i
                        return m
                    i += 1
                if self._done.is_set():
                    raise AssertionError(f"exited ({self.proc.wait()}) before /{pattern}/:\n{self.stderr[-4000:]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no /{pattern}/ on stderr within {timeout} s:\n{self.stderr[-4000:]}")
                self._changed.wait(min(left, 0.5))

    def interrupt(self, timeout: float = 60) -> tuple[int, float]:
        """Send SIGINT; return (exit code, seconds until the process had exited)."""
        assert self.proc.poll() is None, f"finished before the SIGINT:\n{self.stderr[-4000:]}"
        self.seen.update(descendants(self.proc.pid))
        with self._changed:
            self.lines_at_signal = len(self.lines)  # stderr lines read before the signal went
            t = time.monotonic()
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout)
        seconds = time.monotonic() - t
        self._done.wait(10)
        return code, seconds

    def wait(self, timeout: float = 60) -> tuple[int, float]:
        """Wait for the script to exit by itself; return (exit code, ``time.time()`` at the
        exit), with its stderr read to the end.  ``subprocess.TimeoutExpired`` if it still
        runs after ``timeout`` seconds."""
        code = self.proc.wait(timeout)
        exited = time.time()
        self._done.wait(10)
        return code, exited

    def leftovers(self) -> list[int]:
        """Descendants seen while the script ran that still run."""
        return [p for p, start in self.seen.items() if alive(p, start)]

    def close(self) -> None:
        """Kill whatever is left (a failed test must not leave a fit running)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for p, start in self.seen.items():
            if alive(p, start):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        self._stdout.close()


def check_stopped(run: ScriptRun, code: int, seconds: float, out: Path, before: dict[str, dict] | None, label: str) -> None:
    """The common assertions of an interrupted run: exit 130, stopped in time, one
    "interrupted" line and no traceback, no process left, and ``out`` holding exactly the
    folders of ``before`` (name -> tree hashes), unchanged; ``before`` None: ``out`` absent."""
    left = run.leftovers()
    entries = sorted(p.name for p in out.iterdir()) if out.exists() else None
    # one line per run, collected with pytest -s into the interrupt matrix
    print(f"\nSIGINT {label}: exit {code}, {seconds:.2f} s, {len(run.seen)} descendant processes seen, left: {left or 'none'}; "
          f"--out entries after: {entries}")
    assert code == 130, f"exit {code}\n{run.stderr[-4000:]}"
    assert seconds < STOP_SECONDS * LOAD_MARGIN, f"took {seconds:.2f} s to stop"
    assert "Traceback" not in run.stderr and "Exception ignored" not in run.stderr, run.stderr[-4000:]
    assert "interrupted" in run.stderr.splitlines()[-1], run.stderr[-2000:]
    assert left == [], f"processes left running: {left}"
    if before is None:
        assert entries is None, f"left behind: {entries}"
    else:
        assert entries == sorted(before), f"left behind: {entries}"
        for name, hashes in before.items():
            assert tree_hashes(out / name) == hashes, f"{name} changed"

"""A dask.distributed cluster of separate processes on this machine: a scheduler and
single-threaded workers started by the ``dask scheduler`` / ``dask worker`` commands on
loopback, as a user would start them on a real cluster.  For trying ``--scheduler``
locally, and for the cluster tests and the scaling benchmark."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

#: The ``dask`` command of this Python environment.
DASK = Path(sys.executable).with_name("dask")
ROOT = Path(__file__).resolve().parents[1]


class LoopbackCluster:
    """A scheduler and ``workers`` single-threaded workers; a context manager that stops
    them (terminate, then kill after 30 s) on exit.

    Parameters
    ----------
    workers : int
        Worker processes, each with one thread.
    folder : Path
        Where the scheduler file and each process's log go.

    Attributes
    ----------
    address : str
        The scheduler's address (``tcp://127.0.0.1:PORT``), for ``--scheduler``.
    """

    def __init__(self, workers: int, folder: Path):
        self.folder, self.procs, self.logs = Path(folder), [], []
        if not DASK.exists():
            raise RuntimeError(f"no dask command beside {sys.executable}")
        info = self.folder / "scheduler.json"
        # the workers import the toolkit from this checkout
        self._env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
        try:
            self._start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(info))
            deadline = time.monotonic() + 60
            while not info.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            if not info.exists():
                raise RuntimeError(f"the scheduler did not start within 60 s (log: {self.logs[0].name})")
            self.address = json.loads(info.read_text())["address"]
            for _ in range(workers):
                self._start("worker", self.address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard", "--host", "127.0.0.1")
            from distributed import Client

            with Client(self.address, timeout="30s") as client:
                client.wait_for_workers(workers, timeout=120)
        except BaseException:
            self.stop()
            raise

    def _start(self, *args) -> None:
        log = open(self.folder / f"{args[0]}-{len(self.logs)}.log", "w")
        self.logs.append(log)
        self.procs.append(subprocess.Popen([str(DASK), *args], cwd=self.folder, env=self._env, stdout=log, stderr=subprocess.STDOUT))

    def stop(self) -> None:
        """Stop every process (workers first) and close the logs."""
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in self.logs:
            log.close()

    def __enter__(self) -> "LoopbackCluster":
        return self

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False

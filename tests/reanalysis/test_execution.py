"""The execution layer of independent fits (reanalysis/execution.py): the same tasks give the
same results in this process, in local worker processes and on a Dask cluster; a failed
task stops the run with its error; an unreachable scheduler is one line."""
from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from reanalysis.execution import SchedulerError, connect, describe, run_tasks
from tests.interrupting import LOAD_MARGIN, ROOT, STOP_SECONDS, ScriptRun, descendants, tree_hashes


def square_with_pid(x: int) -> tuple[int, int]:
    """A task: module level, so that it pickles to a worker."""
    return x * x, os.getpid()


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("task 3 failed")
    return x


def _run(**where) -> tuple[list[int], set[int]]:
    got = []
    started = []
    run_tasks(square_with_pid, range(6), got.append, on_start=lambda: started.append(True), **where)
    assert started == [True]
    return sorted(v for v, _ in got), {pid for _, pid in got}


def test_in_process():
    values, pids = _run(workers=1)
    assert values == [0, 1, 4, 9, 16, 25] and pids == {os.getpid()}


def test_local_worker_processes_fresh_per_task():
    values, pids = _run(workers=2, fresh_workers=True)
    assert values == [0, 1, 4, 9, 16, 25]
    assert os.getpid() not in pids and len(pids) == 6  # one process per task


def test_dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            values, _ = _run(client=client)
    assert values == [0, 1, 4, 9, 16, 25]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failed_task_stops_the_run_with_its_error(workers):
    with pytest.raises(ValueError, match="task 3 failed"):
        run_tasks(fail_on_three, range(6), lambda r: None, workers=workers)


def test_no_tasks_starts_nothing():
    run_tasks(square_with_pid, [], lambda r: pytest.fail("no result expected"), workers=2, on_start=lambda: pytest.fail("nothing to start"))


def test_describe():
    assert (describe(1), describe(2), describe(2, "tcp://h:8786")) == ("in process", "process pool", "dask.distributed")


def test_unreachable_scheduler_is_one_line():
    pytest.importorskip("distributed")
    with pytest.raises(SchedulerError, match=r"^--scheduler tcp://127\.0\.0\.1:9: cannot connect \(") as exc:
        connect("tcp://127.0.0.1:9", timeout="1s")
    assert "\n" not in str(exc.value)


# -- a failed task in a real pool of worker processes ------------------------------------------
POOL_FAILURE = """
import os, sys, time
sys.path.insert(0, {root!r})
from reanalysis import results
from reanalysis.execution import run_tasks

#: A task's arguments larger than a pipe's buffer (64 KiB on Linux), as a calibration chunk
#: carrying the model's precomputed tables is: the tasks still queued for the workers then
#: fill the pool's call queue and keep its feeder thread writing.
PAYLOAD = bytes(1 << 20)


def task(arg):
    i, _ = arg
    if i == 0:
        time.sleep(0.5)  # the other worker is busy with its task by then
        raise KeyError("sim 0")
    time.sleep(600)


def workers():
    # live processes started by this one, but for multiprocessing's resource tracker (the
    # parent's helper, not a worker: it exits with the parent)
    try:
        import psutil
    except ImportError:
        from tests.interrupting import descendants

        pids = list(descendants(os.getpid()))
    else:
        pids = [c.pid for c in psutil.Process().children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]
    running = []
    for pid in pids:
        try:
            with open(f"/proc/{{pid}}/cmdline", "rb") as fh:
                if b"resource_tracker" not in fh.read():
                    running.append(pid)
        except OSError:  # gone meanwhile
            pass
    return running


if __name__ == "__main__":
    try:
        run_tasks(task, [(i, PAYLOAD) for i in range(6)], lambda r: None, workers=2, fresh_workers=True)
    except KeyError:
        print(f"raised at {{time.time()}}; workers running: {{workers()}}", file=sys.stderr, flush=True)
        raise
    with results.staged_result_dir(sys.argv[1], "result") as stage:
        (stage / "ranks.csv").write_text("sim,rank\\n")
"""


def test_a_failed_task_stops_every_worker_and_the_process_exits(tmp_path):
    """The first failed task of a pool of fresh worker processes (as a calibration runs its
    chunks): ``run_tasks`` raises the task's error with no worker left running, and the
    process exits at once (it used to hang at exit on the pool's call queue, its workers
    killed and its tasks unsent), writing nothing; an earlier result stays."""
    program = tmp_path / "pool_failure.py"
    program.write_text(POOL_FAILURE.format(root=str(ROOT)))
    out = tmp_path / "results"
    (out / "earlier").mkdir(parents=True)
    (out / "earlier" / "ranks.csv").write_text("sim,rank\n0,42\n")
    before = tree_hashes(out)
    run = ScriptRun([program, out], tmp_path / "stdout.txt")
    try:
        try:
            code, exited = run.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 30 s after it started; processes: {sorted(descendants(run.proc.pid))}\n{run.stderr[-3000:]}")
        raised = re.search(r"^raised at ([\d.]+); workers running: \[(.*)\]$", run.stderr, re.M)
        assert raised, run.stderr[-3000:]
        print(f"\nfailed task in a 2-process pool: exit {code}, {exited - float(raised[1]):.2f} s from the error to the exit")
        assert code == 1 and "KeyError: 'sim 0'" in run.stderr, run.stderr[-3000:]
        assert raised[2] == "", f"worker processes still running when run_tasks raised: {raised[2]}"
        assert exited - float(raised[1]) < STOP_SECONDS * LOAD_MARGIN, f"exited {exited - float(raised[1]):.2f} s after the error"
        # the pool's own threads ended cleanly (one that died printed "Exception in thread")
        assert "Exception in thread" not in run.stderr, run.stderr[-3000:]
        deadline = time.monotonic() + STOP_SECONDS
        while run.leftovers() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert run.leftovers() == [], f"processes left running: {run.leftovers()}"
        assert tree_hashes(out) == before, sorted(p.name for p in out.iterdir())
    finally:
        run.close()

"""The execution layer of independent fits (reanalysis/execution.py): the same tasks give the
same results in this process, in local worker processes and on a Dask cluster; a failed
task stops the run with its error; an unreachable scheduler is one line."""
from __future__ import annotations

import os

import pytest

from reanalysis.execution import SchedulerError, connect, describe, run_tasks


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

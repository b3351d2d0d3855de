"""Independent fits run side by side: in this process, a pool of local worker processes, or
a dask.distributed cluster.  Sensitivity scenarios and calibration studies go through
:func:`run_tasks`; the caller only says what one task is and what to do with its result.

Local workers are spawned, never forked: JAX and the samplers' threads are not fork-safe,
and a fresh interpreter inherits no half-initialised state.  (The figure workers of
:mod:`reanalysis.figures.workers` are a different kind of pool: forked before JAX starts,
they draw and never sample.)
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable

#: Library loggers a worker quietens (PyMC's per-fit "Sampling ..." and convergence notes:
#: the caller reports each task's diagnostics itself).
QUIET_LOGGERS = ("pymc", "pymc.sampling", "pymc.stats.convergence")


def quiet_worker() -> None:
    """Start-up of a local worker process: Ctrl-C is the parent's to handle (it stops the
    pool), so a worker prints no traceback of its own; library loggers quietened."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet_libraries()


def quiet_libraries() -> None:
    """Quieten :data:`QUIET_LOGGERS` in this process."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def describe(workers: int, scheduler: str | None = None, client: Any = None) -> str:
    """Where :func:`run_tasks` runs with these settings, in words (for manifests and logs)."""
    if client is not None or scheduler:
        return "dask.distributed"
    return "process pool" if workers > 1 else "in process"


def run_tasks(
    fn: Callable[[Any], Any],
    tasks: Iterable[Any],
    on_result: Callable[[Any], None],
    workers: int = 2,
    scheduler: str | None = None,
    client: Any = None,
    fresh_workers: bool = False,
    on_start: Callable[[], None] | None = None,
    then: Callable[[], Iterable[Any]] | None = None,
) -> None:
    """Run ``fn(task)`` for every task and pass each result to ``on_result`` as it completes
    (in completion order, in this process).

    Parameters
    ----------
    fn : callable
        A module-level function (it is pickled to the workers).
    tasks : iterable
        Picklable task arguments.
    on_result : callable
        Receives each result.
    workers : int
        Local worker processes; 1 runs every task here, one after another (its fits may
        then use every core).  Ignored with ``scheduler`` or ``client``.
    scheduler : str, optional
        Address of a running dask.distributed scheduler (``tcp://host:8786``).
    client : distributed.Client, optional
        An existing client instead of ``scheduler``.
    fresh_workers : bool
        A fresh local worker process per task (returns the memory XLA keeps for each
        compiled sampler); otherwise each worker imports once and runs many tasks.
    on_start : callable, optional
        Called once the workers are started (the supervisor's phase marker).
    then : callable, optional
        Called once every task of a stage has completed; the tasks it returns run next on
        the same workers, as the next stage (built from the earlier stages' results, e.g.
        scenarios that start from the default scenario's adaptation, without starting the
        workers again).  Called after each stage until it returns no task.

    Raises
    ------
    BaseException
        The first task's error, or Ctrl-C: the remaining tasks are cancelled and local
        workers stopped at once.
    """
    tasks = list(tasks)
    stages = _Stages(tasks, then)
    if not tasks:
        stages.first = list(stages.next())
        if not stages.first:
            return
    if client is not None or scheduler:
        _run_dask(fn, stages, on_result, client, scheduler, on_start)
    elif workers <= 1:
        quiet_libraries()
        if on_start:
            on_start()
        for stage in stages:
            for task in stage:
                on_result(fn(task))
    else:
        _run_pool(fn, stages, on_result, max(1, min(workers, stages.size_hint())), fresh_workers, on_start)


class _Stages:
    """The first tasks, then whatever ``then`` returns once they are done, and so on until it
    returns no task."""

    def __init__(self, first: list, then):
        self.first, self._then = first, then

    def size_hint(self) -> int:
        # the next stages are unknown until the first ends: room for them when there are any
        return len(self.first) if self._then is None else 1 << 30

    def next(self) -> list:
        rest = list(self._then()) if self._then else []
        if not rest:
            self._then = None
        return rest

    def __iter__(self):
        stage = self.first
        while stage:
            yield stage
            stage = self.next()


def _run_pool(fn, stages: "_Stages", on_result, workers: int, fresh_workers: bool, on_start) -> None:
    import concurrent.futures as cf
    import multiprocessing as mp

    pool = cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=mp.get_context("spawn"), initializer=quiet_worker,
        max_tasks_per_child=1 if fresh_workers else None,
    )
    try:
        started = False
        for stage in stages:
            futures = [pool.submit(fn, t) for t in stage]
            if on_start and not started:
                on_start()
                started = True
            for fut in cf.as_completed(futures):
                on_result(fut.result())
    except BaseException:
        # Ctrl-C or a failed task: stop the workers now, do not wait for their tasks
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


#: Longest wait for a stopped pool's management thread to finish (it takes milliseconds).
STOP_TIMEOUT = 10.0


def _stop_pool(pool) -> None:
    """Stop a process pool at once: every worker process is killed, the tasks not yet done
    never run (the pool fails their futures), and the pool's management thread has finished,
    and with it the feeder thread of its call queue, when this returns.

    Killing the workers and calling ``shutdown(wait=False)`` is not enough: the management
    thread lives on, and with ``max_tasks_per_child`` it replaces the worker that ended after
    its task (a fresh worker that nobody kills, which takes the next queued task), or fails
    on the references ``shutdown`` has dropped and dies without closing the call queue.  The
    queue's feeder thread then stays blocked writing a task larger than the pipe's buffer
    (a calibration chunk with the model's tables) that no worker reads, and the interpreter
    joins that thread at exit: the process never ends.  So the workers are killed until the
    management thread has seen them die and cleaned up (it closes the queue's pipe, which
    unblocks the feeder), and only then is the pool shut down.  The futures are not
    cancelled here: the management thread's clean-up fails every pending future and stops
    with an error on one that is already cancelled.
    """
    manager = pool._executor_manager_thread
    # the management thread's own table of workers: replacements it starts appear here
    processes = pool._processes or {}
    deadline = time.monotonic() + STOP_TIMEOUT
    while True:
        for p in list(processes.values()):
            try:
                p.kill()  # SIGKILL: native code (XLA, a compiled sampler) cannot delay it
            except (OSError, ValueError):  # already gone, or closed by the pool
                pass
        if manager is None or not manager.is_alive() or time.monotonic() > deadline:
            break
        manager.join(0.02)
    if manager is not None and manager.is_alive():
        # not expected: a queue that cannot be flushed must still not hold up the exit
        pool._call_queue.cancel_join_thread()
        pool.shutdown(wait=False, cancel_futures=True)
    else:
        pool.shutdown(wait=True)


def _run_dask(fn, stages: "_Stages", on_result, client, scheduler: str | None, on_start) -> None:
    from distributed import as_completed

    own = client is None
    if own:
        client = connect(scheduler)
    futures = []
    try:
        started = False
        for stage in stages:
            futures = [client.submit(fn, t, pure=False) for t in stage]
            if on_start and not started:
                on_start()
                started = True
            for fut in as_completed(futures):
                on_result(fut.result())
    except BaseException:
        # Ctrl-C or a lost cluster: do not leave the tasks running on the cluster
        for fut in futures:
            fut.cancel()
        raise
    finally:
        if own:
            client.close()


class SchedulerError(Exception):
    """A dask.distributed scheduler that cannot be reached; ``str()`` is one line."""


def connect(address: str, timeout: str = "20s"):
    """A client of the dask.distributed scheduler at ``address``, checked before any work.

    Raises
    ------
    SchedulerError
        ``--scheduler ADDRESS: cannot connect (...)``.
    """
    from distributed import Client

    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SchedulerError(f"--scheduler {address}: cannot connect ({reason})") from None

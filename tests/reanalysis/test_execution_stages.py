"""Stages of tasks built from the earlier stages' results (``run_tasks(then=...)``): the
grid's posterior keys, the default scenario, then the others from its adaptation, on the
same workers."""
from __future__ import annotations

import os

import pytest

from reanalysis.execution import run_tasks


def tagged_square(task: tuple[str, int]) -> tuple[str, int, int]:
    """A task: module level, so that it pickles to a worker."""
    stage, x = task
    return stage, x * x, os.getpid()


def _staged(**where) -> tuple[list, list]:
    got = []
    seen_when_asked = []

    def then():
        # every first-stage result is in before the second stage is built
        seen_when_asked.append(sorted(v for s, v, _ in got if s == "first"))
        if len(seen_when_asked) > 1:
            return []  # no third stage
        base = next(v for s, v, _ in got if s == "first")
        return [("second", base + i) for i in range(4)]

    run_tasks(tagged_square, [("first", 3)], got.append, then=then, **where)
    return got, seen_when_asked


@pytest.mark.parametrize("workers", [1, 2])
def test_the_second_stage_is_built_from_the_first_and_runs_on_the_same_workers(workers):
    got, asked = _staged(workers=workers)
    assert asked == [[9], [9]]
    assert [s for s, _, _ in got] == ["first"] + ["second"] * 4
    assert sorted(v for s, v, _ in got if s == "second") == [81, 100, 121, 144]
    pids = {p for _, _, p in got}
    if workers == 1:
        assert pids == {os.getpid()}
    else:
        # one pool: its worker processes serve both stages (at most ``workers`` of them)
        assert os.getpid() not in pids and len(pids) <= 2


def test_a_second_stage_on_a_dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            got, asked = _staged(client=client)
    assert asked == [[9], [9]] and len(got) == 5


@pytest.mark.parametrize("workers", [1, 2])
def test_stages_follow_one_another_until_none_is_returned(workers):
    """Three stages (the sensitivity grid's posterior keys, then its default scenario, then
    the others), each built once the one before has completed."""
    got, asked = [], []

    def then():
        asked.append(len(got))
        last = max(v for _, v, _ in got)
        return [("next", last + 1)] * 2 if len(asked) < 3 else []

    run_tasks(tagged_square, [("first", 1)], got.append, workers=workers, then=then)
    assert asked == [1, 3, 5]  # each stage asked for once every earlier task is in
    assert [v for _, v, _ in got] == [1, 4, 4, 25, 25]


def test_an_empty_second_stage_ends_the_run():
    got = []
    run_tasks(tagged_square, [("first", 2)], got.append, workers=2, then=lambda: [])
    assert [(s, v) for s, v, _ in got] == [("first", 4)]

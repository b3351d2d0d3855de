#!/usr/bin/env python
"""Speed-up of a sensitivity grid from 1 to 2 workers of a dask.distributed cluster on this
machine, and what the measured parts imply for larger clusters.

For each worker count a scheduler and that many single-threaded workers are started as
separate processes (``dask scheduler`` / ``dask worker`` on loopback, as a user would on a
cluster), ``scripts/sensitivity.py --scheduler ADDRESS`` runs the grid through them, and
the cluster is stopped.  The runs come one right after the other, so their ratio is a
measurement of one session.

The projection splits a run into the work done once in the command's own process (set-up,
grouping the scenarios by posterior, writing: ``timings_seconds`` minus the scenario phase)
and the scenario tasks (their seconds from the manifest; a task's scenarios that share its
posterior count once).  With N workers the tasks cannot finish before the longest one, nor
before their total over N (each worker a core of the same speed), so the projected
scenario phase is ``max(longest task, total / N)`` plus, with warm starts, the default
scenario's own task before the others.  It assumes tasks of these sizes, one core per
worker and no scheduling overhead, and is stated as a bound, not a measurement.

Results: a table on stdout; JSON and the table as text in benchmarks/results/.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from reanalysis.loopback_cluster import LoopbackCluster  # noqa: E402
RESULTS_DIR = ROOT / "benchmarks" / "results"
SCRIPT = ROOT / "scripts" / "sensitivity.py"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_cluster_scaling.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", type=Path, default=ROOT / "data" / "sensitivity" / "group.yaml", help="grid to run (default: %(default)s)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to measure (default: 1 2)")
    p.add_argument("--project", type=int, nargs="+", default=[16, 64], help="worker counts to project to (default: 16 64)")
    p.add_argument("--tag", default="", help="suffix of the result files' name")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="after --: options passed to sensitivity.py (e.g. -- --draws 300)")
    return p.parse_args(argv)


def run(n: int, grid: Path, extra: list[str], tmp: Path) -> dict:
    folder = tmp / f"cluster-{n}"
    folder.mkdir()
    cluster = LoopbackCluster(n, folder)
    try:
        out = folder / "out"
        cmd = [sys.executable, str(SCRIPT), "--grid", str(grid), "--scheduler", cluster.address, "--out", str(out), "--no-progress", *extra]
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t
    finally:
        cluster.stop()
    rec = {"workers": n, "exit": proc.returncode, "wall_seconds": round(wall, 2)}
    folders = [p for p in out.iterdir() if not p.name.startswith(".")] if out.exists() else []
    if len(folders) != 1:
        rec["stderr_tail"] = proc.stderr[-2000:]
        return rec
    m = json.loads((folders[0] / "manifest.json").read_text())
    timings = m["timings_seconds"]
    tasks = [s["seconds"] for s in m["scenarios"] if not s["same_posterior_as"]]
    rec.update(
        scenarios=len(m["scenarios"]), tasks=len(tasks), failed=m["failed"], timings_seconds=timings,
        task_seconds=tasks, warm_start=bool(m["execution"].get("warm_start")),
        default_task_seconds=m["scenarios"][0]["seconds"],
        once_seconds=round(wall - timings["scenarios"], 2),
    )
    return rec


def project(rec: dict, n: int) -> float:
    """Bound on the wall time with ``n`` workers from one measured run (module docstring)."""
    tasks = list(rec["task_seconds"])
    first = 0.0
    if rec["warm_start"]:
        first = tasks.pop(0)  # the default runs alone before the others start
    rest = max(max(tasks, default=0.0), sum(tasks) / n) if tasks else 0.0
    return rec["once_seconds"] + first + rest


def main(argv=None) -> int:
    args = parse_args(argv)
    extra = [a for a in args.extra if a != "--"]
    records = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        for n in args.workers:
            print(f"{n} worker(s) ...", file=sys.stderr, flush=True)
            records.append(run(n, args.grid, extra, Path(tmp)))
    lines = [f"grid {args.grid} {' '.join(extra)}".rstrip(), "workers | wall s | scenario phase s | once s | tasks | sum of task s | longest task s | exit"]
    for r in records:
        if "timings_seconds" not in r:
            lines.append(f"{r['workers']} | {r['wall_seconds']} | failed: {r.get('stderr_tail', '')[-300:]}")
            continue
        lines.append(
            f"{r['workers']} | {r['wall_seconds']:.1f} | {r['timings_seconds']['scenarios']:.1f} | {r['once_seconds']:.1f} | {r['tasks']} | "
            f"{sum(r['task_seconds']):.1f} | {max(r['task_seconds']):.1f} | {r['exit']}"
        )
    ok = [r for r in records if "timings_seconds" in r]
    if len(ok) >= 2:
        lines.append(f"speed-up {ok[0]['workers']} -> {ok[-1]['workers']} workers: {ok[0]['wall_seconds'] / ok[-1]['wall_seconds']:.2f}x (wall time)")
    if ok:
        base = ok[-1]
        for n in args.project:
            lines.append(f"projected bound with {n} workers, from the {base['workers']}-worker run: {project(base, n):.0f} s")
    text = "\n".join(lines)
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = RESULTS_DIR / f"cluster-scaling-{dt.date.today().isoformat()}{'-' + args.tag if args.tag else ''}"
    stem.with_suffix(".json").write_text(json.dumps({"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "records": records}, indent=1))
    stem.with_suffix(".txt").write_text(text + "\n")
    return 0 if all(r.get("exit") in (0, 3) for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Speed-up of a sensitivity grid or a calibration from 1 to 2 workers of a
dask.distributed cluster on this machine, and what the measured parts imply for larger
clusters.

For each worker count a scheduler and that many single-threaded workers are started as
separate processes (``dask scheduler`` / ``dask worker`` on loopback, as a user would on a
cluster), ``scripts/sensitivity.py --scheduler ADDRESS`` (or ``scripts/sbc.py``, with
``--sbc``) runs through them, and the cluster is stopped.  The runs come one right after
the other, so their ratio is a measurement of one session.

The projection splits a run into the work done once in the command's own process (set-up,
grouping the scenarios by posterior, writing: ``timings_seconds`` minus the scenario phase)
and the scenario tasks (their seconds from the manifest; a task's scenarios that share its
posterior count once).  With N workers the tasks cannot finish before the longest one, nor
before their total over N (each worker a core of the same speed), so the projected
scenario phase is ``max(longest task, total / N)`` plus, with warm starts, the default
scenario's own task before the others.  It assumes tasks of these sizes, one core per
worker and no scheduling overhead, and is stated as a bound, not a measurement.

A calibration is split the same way, by its fits (``fits.csv``): the work done once is the
wall time minus the busiest worker's fit seconds (simulating the studies, each worker's
set-up, writing); each worker's first fit compiles its sampler and is counted apart.  With
N workers and S simulated studies (``--sims-to``, default the run's own) every worker
compiles once, in parallel, and the other S - N fits share the N workers:
``once + mean compiling fit + max(longest other fit, mean other fit * (S - N) / N)``.
Each worker is assumed as fast as in the run it is projected from: the 1-worker run's
worker had both of this machine's cores, the 2-worker run's workers shared them.

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
SCRIPTS = {"grid": ROOT / "scripts" / "sensitivity.py", "sbc": ROOT / "scripts" / "sbc.py"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_cluster_scaling.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", type=Path, default=ROOT / "data" / "sensitivity" / "group.yaml", help="grid to run (default: %(default)s)")
    p.add_argument("--sbc", action="store_true", help="run a calibration (scripts/sbc.py; its options after --) instead of a grid")
    p.add_argument("--sims-to", type=int, default=None, help="with --sbc: simulated studies to project to (default: the run's own)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to measure (default: 1 2)")
    p.add_argument("--project", type=int, nargs="+", default=[16, 64], help="worker counts to project to (default: 16 64)")
    p.add_argument("--tag", default="", help="suffix of the result files' name")
    p.add_argument("--from", dest="folders", type=Path, nargs="+", default=None, metavar="RESULT",
                   help="project from these finished runs' result folders (a grid's or a calibration's, local or on a cluster) instead of running")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="after --: options passed to sensitivity.py or sbc.py (e.g. -- --draws 300)")
    return p.parse_args(argv)


def run(n: int, script: Path, base: list[str], extra: list[str], tmp: Path) -> dict:
    folder = tmp / f"cluster-{n}"
    folder.mkdir()
    cluster = LoopbackCluster(n, folder)
    try:
        out = folder / "out"
        cmd = [sys.executable, str(script), *base, "--scheduler", cluster.address, "--out", str(out), "--no-progress", *extra]
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t
    finally:
        cluster.stop()
    folders = [p for p in out.iterdir() if not p.name.startswith(".")] if out.exists() else []
    if len(folders) != 1:
        return {"workers": n, "exit": proc.returncode, "wall_seconds": round(wall, 2), "stderr_tail": proc.stderr[-2000:]}
    return record(folders[0], n, wall, proc.returncode)


def record(folder: Path, workers: int | None = None, wall: float | None = None, exit_code: int = 0) -> dict:
    """The parts of a finished run (a grid's or a calibration's result folder) the projection
    needs; without ``wall`` the run's own total from its manifest, without ``workers`` its
    manifest's worker count."""
    m = json.loads((folder / "manifest.json").read_text())
    if (folder / "fits.csv").exists():
        import pandas as pd

        fits = pd.read_csv(folder / "fits.csv")
        wall = m["seconds"] if wall is None else wall
        compiling = fits["sampler_programs_compiled"] > 0
        busiest = float(fits.groupby("worker")["seconds"].sum().max())
        return {
            # a run on a cluster records no local worker count: the workers that fitted
            "workers": workers or m["sampler"]["workers"] or int(fits["worker"].nunique()), "exit": exit_code,
            "wall_seconds": round(wall, 2), "kind": "sbc",
            "sims": len(fits), "workers_used": int(fits["worker"].nunique()), "failing_gate": int((~fits["gate_ok"]).sum()),
            "compiling_fit_seconds": fits.loc[compiling, "seconds"].round(2).tolist(),
            "other_fit_seconds": fits.loc[~compiling, "seconds"].round(2).tolist(),
            "sampler_programs": int(fits["sampler_programs_compiled"].sum()), "xla_compiled": int(fits["xla_compiled"].sum()),
            "once_seconds": round(wall - busiest, 2),
        }
    timings = m["timings_seconds"]
    wall = timings["total"] if wall is None else wall
    tasks = [s["seconds"] for s in m["scenarios"] if not s["same_posterior_as"]]
    return {
        "workers": workers or m["execution"]["workers"], "exit": exit_code, "wall_seconds": round(wall, 2), "kind": "grid",
        "scenarios": len(m["scenarios"]), "tasks": len(tasks), "failed": m["failed"], "timings_seconds": timings,
        "task_seconds": tasks, "warm_start": bool(m["execution"].get("warm_start")),
        "default_task_seconds": m["scenarios"][0]["seconds"],
        "once_seconds": round(wall - timings["scenarios"], 2),
    }


def project(rec: dict, n: int) -> float:
    """Bound on a grid's wall time with ``n`` workers from one measured run (module docstring)."""
    tasks = list(rec["task_seconds"])
    first = 0.0
    if rec["warm_start"]:
        first = tasks.pop(0)  # the default runs alone before the others start
    rest = max(max(tasks, default=0.0), sum(tasks) / n) if tasks else 0.0
    return rec["once_seconds"] + first + rest


def project_sbc(rec: dict, n: int, sims: int) -> float:
    """Bound on a calibration's wall time with ``n`` workers and ``sims`` simulated studies
    from one measured run (module docstring)."""
    compiling, other = rec["compiling_fit_seconds"], rec["other_fit_seconds"]
    first = sum(compiling) / len(compiling)
    if sims <= n or not other:
        return rec["once_seconds"] + max(compiling)
    return rec["once_seconds"] + first + max(max(other), sum(other) / len(other) * (sims - n) / n)


def table(records: list[dict], sbc: bool) -> list[str]:
    """The measured runs as rows of text."""
    if sbc:
        head = "workers | wall s | once s | fits | compiling fits s (mean) | other fits s (mean, longest) | sampler programs | failing gate | exit"
    else:
        head = "workers | wall s | scenario phase s | once s | tasks | sum of task s | longest task s | exit"
    lines = [head]
    for r in records:
        if "once_seconds" not in r:
            lines.append(f"{r['workers']} | {r['wall_seconds']} | failed: {r.get('stderr_tail', '')[-300:]}")
        elif sbc:
            c, o = r["compiling_fit_seconds"], r["other_fit_seconds"]
            lines.append(
                f"{r['workers']} | {r['wall_seconds']:.1f} | {r['once_seconds']:.1f} | {r['sims']} | {sum(c) / len(c):.1f} | "
                f"{sum(o) / max(len(o), 1):.1f}, {max(o, default=0.0):.1f} | {r['sampler_programs']} | {r['failing_gate']} | {r['exit']}"
            )
        else:
            lines.append(
                f"{r['workers']} | {r['wall_seconds']:.1f} | {r['timings_seconds']['scenarios']:.1f} | {r['once_seconds']:.1f} | {r['tasks']} | "
                f"{sum(r['task_seconds']):.1f} | {max(r['task_seconds']):.1f} | {r['exit']}"
            )
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    extra = [a for a in args.extra if a != "--"]
    if args.folders:
        records = [record(f) for f in args.folders]
        sbc = records[0]["kind"] == "sbc"
        if any(r["kind"] != records[0]["kind"] for r in records):
            print("error: --from takes the result folders of grids or of calibrations, not both", file=sys.stderr)
            return 2
        what = "from " + ", ".join(str(f) for f in args.folders)
    else:
        sbc = args.sbc
        script = SCRIPTS["sbc" if sbc else "grid"]
        records = []
        with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
            for n in args.workers:
                print(f"{n} worker(s) ...", file=sys.stderr, flush=True)
                records.append(run(n, script, [] if sbc else ["--grid", str(args.grid)], extra, Path(tmp)))
        what = f"calibration {script.name} {' '.join(extra)}" if sbc else f"grid {args.grid} {' '.join(extra)}"
    lines = [what.rstrip(), *table(records, sbc)]
    ok = [r for r in records if "once_seconds" in r]
    if len(ok) >= 2 and not args.folders:
        lines.append(f"speed-up {ok[0]['workers']} -> {ok[-1]['workers']} workers: {ok[0]['wall_seconds'] / ok[-1]['wall_seconds']:.2f}x (wall time)")
    for base_rec in ok if sbc or args.folders else ok[-1:]:
        for n in args.project:
            if sbc:
                sims = args.sims_to or base_rec["sims"]
                lines.append(f"projected bound with {n} workers, {sims} simulated studies, from the {base_rec['workers']}-worker run: "
                             f"{project_sbc(base_rec, n, sims):.0f} s")
            else:
                lines.append(f"projected bound with {n} workers, from the {base_rec['workers']}-worker run: {project(base_rec, n):.0f} s")
    text = "\n".join(lines)
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = RESULTS_DIR / f"cluster-scaling-{dt.date.today().isoformat()}{'-' + args.tag if args.tag else ''}"
    stem.with_suffix(".json").write_text(json.dumps({"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "records": records}, indent=1))
    stem.with_suffix(".txt").write_text(text + "\n")
    # 3: a grid's scenario failed its gate; 4: a calibration's ranks were not uniform
    return 0 if all(r.get("exit") in (0, 3, 4) for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())

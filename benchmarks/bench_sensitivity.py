#!/usr/bin/env python
"""Benchmark of sensitivity runs: the same grid run three ways, as subprocesses of
``scripts/sensitivity.py``, in one session:

  pool        --workers 2: two worker processes, each keeping a cache of compiled models
              (scenarios that change only values reuse the compiled log density) and
              scenarios whose posterior is identical sampled once (the default);
  pool-noshare --workers 2 --no-share: every scenario sampled, but compiled models
              reused within a worker (isolates the compiled-model cache);
  pool-fresh  --workers 2 --no-cache --no-share: the same pool, every scenario built,
              compiled and sampled afresh (isolates the effect of the reuse);
  sequential  --workers 1 --no-cache --no-share: the scenarios one after another in one
              process with a fresh model build each, chains on both cores as a single
              fit.py run uses them (the baseline the issue asks for).

Reported per mode: wall time of the subprocess, the scenario phase from its manifest,
seconds per scenario, exit code and failed scenarios; speed-ups are ratios of wall times
within this run.  PyTensor's on-disk cache of compiled C modules is warmed by a first
untimed run of the same grid (``--no-warmup`` skips it), so all modes see a warm cache.
Results: a table on stdout; JSON and the table as text in benchmarks/results/.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
SCRIPT = ROOT / "scripts" / "sensitivity.py"
GRID = ROOT / "data" / "sensitivity" / "group.yaml"
MODES = {
    "pool": ["--workers", "2"],
    "pool-noshare": ["--workers", "2", "--no-share"],
    "pool-fresh": ["--workers", "2", "--no-cache", "--no-share"],
    "sequential": ["--workers", "1", "--no-cache", "--no-share"],
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_sensitivity.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", type=Path, default=GRID, help="grid to time (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="300 tune + 300 draws per scenario instead of the grid's")
    p.add_argument("--oat-only", action="store_true", help="drop the grid's factorial block (the one-at-a-time subset)")
    p.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES), help="modes to run (default: all)")
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed run that warms the compiled-module cache")
    p.add_argument("--out", type=Path, default=None, help="result file stem (default: benchmarks/results/sensitivity-<date>[-quick])")
    return p.parse_args(argv)


def run_mode(args_extra: list[str], grid: Path, quick: bool, tmp: Path) -> dict:
    out = tmp / f"out-{len(list(tmp.iterdir()))}"
    cmd = [sys.executable, str(SCRIPT), "--grid", str(grid), "--out", str(out), *args_extra]
    if quick:
        cmd += ["--draws", "300", "--tune", "300"]
    load_before = os.getloadavg()
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    rec = {"command": " ".join(cmd[1:]), "exit": proc.returncode, "wall_seconds": round(wall, 2),
           "load_before": load_before, "load_after": os.getloadavg()}
    folders = list(out.iterdir()) if out.exists() else []
    if len(folders) == 1:
        m = json.loads((folders[0] / "manifest.json").read_text())
        rec["timings_seconds"] = m["timings_seconds"]
        rec["scenarios"] = len(m["scenarios"])
        rec["failed"] = m["failed"]
        rec["sampled"] = sum(1 for s in m["scenarios"] if not s["same_posterior_as"])
        rec["compiled_model_reused"] = sum(1 for s in m["scenarios"] if s["compiled_model_reused"])
        rec["scenario_seconds"] = {s["name"]: s["seconds"] for s in m["scenarios"]}
    else:
        rec["stderr_tail"] = proc.stderr[-2000:]
    return rec


def main(argv=None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-sens-"))
    grid = args.grid
    if args.oat_only:
        import yaml

        data = yaml.safe_load(args.grid.read_text(encoding="utf-8"))
        data.pop("factorial", None)
        grid = tmp.parent / f"{tmp.name}-grid.yaml"
        grid.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    try:
        if not args.no_warmup:
            print("warm-up run (untimed) ...", file=sys.stderr, flush=True)
            run_mode(MODES["pool"], grid, args.quick, tmp)
        runs = {}
        for mode in args.modes:
            print(f"{mode} ...", file=sys.stderr, flush=True)
            runs[mode] = run_mode(MODES[mode], grid, args.quick, tmp)
            print(f"  {runs[mode]['wall_seconds']:.1f} s, exit {runs[mode]['exit']}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if args.oat_only:
            grid.unlink(missing_ok=True)

    lines = [f"Sensitivity benchmark {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, grid {args.grid.relative_to(ROOT) if args.grid.is_relative_to(ROOT) else args.grid}"
             f"{' without its factorial block' if args.oat_only else ''}{' (quick: 300 + 300 per chain)' if args.quick else ''}, {os.cpu_count()} CPUs", ""]
    lines.append(f"{'mode':<13} {'wall s':>8} {'scenarios':>9} {'sampled':>8} {'reused':>7} {'s/scenario':>10} {'failed':>6} {'exit':>4}")
    for mode, r in runs.items():
        n = r.get("scenarios", 0) or 1
        lines.append(f"{mode:<13} {r['wall_seconds']:>8.1f} {r.get('scenarios', '?'):>9} {r.get('sampled', '?'):>8} "
                     f"{r.get('compiled_model_reused', '?'):>7} {r['wall_seconds'] / n:>10.2f} {len(r.get('failed', [])):>6} {r['exit']:>4}")
    lines.append("")
    if "sequential" in runs:
        for mode in ("pool", "pool-noshare", "pool-fresh"):
            if mode in runs:
                lines.append(f"speed-up of {mode} over sequential fresh builds: {runs['sequential']['wall_seconds'] / runs[mode]['wall_seconds']:.2f}x")
    if "pool" in runs and "pool-fresh" in runs:
        lines.append(f"speed-up from reuse within the pool (pool-fresh / pool): {runs['pool-fresh']['wall_seconds'] / runs['pool']['wall_seconds']:.2f}x")
    if "pool-noshare" in runs and "pool-fresh" in runs:
        lines.append(f"speed-up from the compiled-model cache alone (pool-fresh / pool-noshare): {runs['pool-fresh']['wall_seconds'] / runs['pool-noshare']['wall_seconds']:.2f}x")
    text = "\n".join(lines)
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = args.out or RESULTS_DIR / f"sensitivity-{dt.date.today():%Y-%m-%d}{'-oat' if args.oat_only else ''}{'-quick' if args.quick else ''}"
    Path(f"{stem}.txt").write_text(text + "\n")
    Path(f"{stem}.json").write_text(json.dumps({"runs": runs, "python": platform.python_version(), "cpus": os.cpu_count(),
                                                 "grid": str(args.grid), "oat_only": args.oat_only, "quick": args.quick}, indent=2) + "\n")
    print(f"wrote {stem}.txt and .json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

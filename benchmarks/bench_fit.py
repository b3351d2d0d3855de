#!/usr/bin/env python
"""Benchmark of the fitting pipeline: end-to-end fit time (cold and warm caches) and sampler
efficiency (ESS per second of the slowest estimand) of our sampler against PyMC's default.

Measured in one run:

1. ``scripts/fit.py --no-progress --model M --out <tmp>`` as a subprocess for each model of
   ``--models`` (default: the group and the hierarchical model, side by side), twice each:
   *cold* (fresh PyTensor compiledir, fresh MPLCONFIGDIR, fresh JAX cache folders) and *warm*
   (a second run with the same cache folders).  Wall time of each, plus the per-phase timings
   and sampler timings the run wrote to its manifest.json.
2. In a fresh interpreter with its own fresh caches, the group model (lognormal, default
   priors) built once and sampled, in this order, by:
     pymc        pm.sample(draws, tune, chains=4, cores=2), cold C compilation;
     pymc-again  the same call again, PyTensor's C modules now cached on disk;
     sample_nuts reanalysis.sampling.sample_nuts (whatever backend it uses; if that is PyMC's,
                 its C modules are cached by the calls before it);
     jax         reanalysis.sampling.CompiledNuts (JAX/NumPyro, when present): first run,
                 including tracing and XLA compilation;
     jax-again   a second run of the same compiled sampler (same seed, so the same draws).
   Same draws/tune/chains for all.  Each call's wall time includes whatever it compiles.
   ESS/s = min over estimands (add_estimands + estimand_table) of bulk and tail ESS, divided
   by the call's wall time.  PyMC also reports its sampling-only time (``sampling_time``).
   PyMC runs first because its workers are forked, which is unsafe once JAX has started.
3. Load average before and after, Python and package versions.

Results: a table on stdout; JSON and the table as text in benchmarks/results/.  Absolute
times depend on the machine and on whatever else runs on it; compare ratios within one run.
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
# the project's modules (versions, estimands) are imported from here, also when the script is
# run by path (make bench)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
RESULTS_DIR = ROOT / "benchmarks" / "results"
FIT_SCRIPT = ROOT / "scripts" / "fit.py"
STUDY = ROOT / "data" / "studies" / "lasemi2018.yaml"
PACKAGES = ("pymc", "pytensor", "arviz", "numpy", "scipy", "jax", "jaxlib", "numpyro", "pandas", "xarray", "matplotlib")

FULL = {"draws": 1000, "tune": 1000}
QUICK = {"draws": 300, "tune": 300}
CHAINS = 4
PYMC_CORES = 2
#: Timing attributes reanalysis.sampling may write into posterior.attrs.
SAMPLER_TIMINGS = ("setup_seconds", "compile_seconds", "sampling_seconds", "postprocess_seconds", "sampling_time")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench_fit.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smaller run: {QUICK['draws']} draws / {QUICK['tune']} tune for the samplers and for fit.py "
        f"(default: {FULL['draws']} / {FULL['tune']}, fit.py with its defaults)",
    )
    p.add_argument("--seed", type=int, default=20180302, help="seed of every sampler (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None, help="JSON file to write (default: benchmarks/results/<date>[-quick].json)")
    p.add_argument("--skip-fit", action="store_true", help="skip the end-to-end fit.py timings")
    p.add_argument(
        "--models",
        default="group,hierarchical",
        help="comma-separated models whose fit.py runs are timed end to end, cold then warm (default: %(default)s)",
    )
    p.add_argument("--skip-ess", action="store_true", help="skip the ESS/s comparison of the samplers")
    p.add_argument(
        "--no-jax-cache",
        action="store_true",
        help="disable JAX's persistent compilation cache (K2_JAX_CACHE empty); by default it is "
        "a fresh folder shared by the cold and warm fit runs",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary cache and result folders")
    p.add_argument("--worker-out", type=Path, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# -- environment ------------------------------------------------------------------------------
def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def versions() -> dict[str, str]:
    from reanalysis.results import package_versions

    return package_versions(PACKAGES)


def machine() -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    try:
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def code_state() -> dict[str, str]:
    """Modification times of the code being measured (others may edit it between runs)."""
    files = [FIT_SCRIPT, *sorted((ROOT / "models").glob("*.py"))]
    return {
        str(f.relative_to(ROOT)): dt.datetime.fromtimestamp(f.stat().st_mtime, dt.timezone.utc).isoformat(timespec="seconds")
        for f in files
    }


def cache_env(cache: Path, jax_cache: bool = True) -> dict[str, str]:
    """The environment with every compilation cache pointed into ``cache`` (fresh if new)."""
    env = dict(os.environ)
    flags = [f for f in env.get("PYTENSOR_FLAGS", "").split(",") if f and not f.startswith("compiledir=")]
    env["PYTENSOR_FLAGS"] = ",".join(flags + [f"compiledir={cache / 'pytensor'}"])
    env["MPLCONFIGDIR"] = str(cache / "matplotlib")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    # the project's own persistent JAX cache (reanalysis.sampling); empty disables it
    env["K2_JAX_CACHE"] = str(cache / "jax") if jax_cache else ""
    env["K2_GRAPH_CACHE"] = str(cache / "graphs")  # the rewritten log-density graphs (reanalysis.sampling)
    return env


# -- 1. end-to-end fit.py ---------------------------------------------------------------------
def run_fit(label: str, out: Path, env: dict[str, str], extra: list[str]) -> dict:
    cmd = [sys.executable, str(FIT_SCRIPT), "--no-progress", "--out", str(out), *extra]
    print(f"  fit.py ({label}) ...", file=sys.stderr, flush=True)
    la = loadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    rec = {"label": label, "command": " ".join(cmd), "exit_code": proc.returncode, "wall_seconds": round(wall, 3), "loadavg_before": la}
    dirs = [d for d in out.iterdir() if d.is_dir() and not d.name.startswith(".")] if out.exists() else []
    if len(dirs) == 1 and (dirs[0] / "manifest.json").exists():
        manifest = json.loads((dirs[0] / "manifest.json").read_text())
        timings = manifest.get("timings_seconds", {})
        sampler = manifest.get("sampler", {})
        rec["timings_seconds"] = timings
        rec["sampler"] = {k: sampler.get(k) for k in ("sampler", "draws", "tune", "chains", *SAMPLER_TIMINGS) if k in sampler}
        rec["diagnostics_ok"] = manifest.get("diagnostics", {}).get("ok")
        if "total" in timings:
            # interpreter start-up before fit.py's clock starts, and exit after its last phase
            rec["outside_script_seconds"] = round(wall - timings["total"], 3)
    else:
        rec["error"] = (proc.stderr or proc.stdout)[-2000:]
    if proc.returncode not in (0, 3):
        rec["stderr_tail"] = proc.stderr[-2000:]
    return rec


def bench_fit(args, settings, tmp: Path) -> dict:
    cache = tmp / "fit-caches"
    cache.mkdir()
    env = cache_env(cache, jax_cache=not args.no_jax_cache)
    extra = ["--draws", str(settings["draws"]), "--tune", str(settings["tune"])] if args.quick else []
    runs = []
    for model in args.models.split(","):
        for state in ("cold", "warm"):
            label = f"{model[:5]}-{state}"
            runs.append(run_fit(label, tmp / f"out-{label}", env, [*extra, "--model", model]))
    caches = {k: env.get(k) for k in ("PYTENSOR_FLAGS", "MPLCONFIGDIR", "K2_JAX_CACHE", "K2_GRAPH_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    return {"caches": caches, "runs": runs}


# -- 2. ESS per second ------------------------------------------------------------------------
def _slowest(idata, study) -> dict:
    from models import estimands

    estimands.add_estimands(idata, study, "lognormal")
    table = estimands.estimand_table(idata, study).dropna(subset=["ess_bulk"])
    bulk = table.loc[table["ess_bulk"].idxmin()]
    tail = table.loc[table["ess_tail"].idxmin()]
    worst, kind = (bulk, "bulk") if bulk["ess_bulk"] <= tail["ess_tail"] else (tail, "tail")
    return {
        "min_ess": float(min(bulk["ess_bulk"], tail["ess_tail"])),
        "min_ess_estimand": f"{worst['estimand']} ({kind})",
        "min_ess_bulk": float(bulk["ess_bulk"]),
        "min_ess_tail": float(tail["ess_tail"]),
        "max_r_hat": float(table["r_hat"].max()),
        "n_estimands": int(len(table)),
        "divergences": int(idata.sample_stats["diverging"].sum()),
    }


def bench_ess(args, settings) -> dict:
    """Runs in the worker process (fresh caches, see :func:`run_ess_worker`)."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    sys.path.insert(0, str(ROOT))
    import pymc as pm
    import pytensor

    from reanalysis import sampling
    from models.group import build_model
    from models.priors import get_priors
    from models.study import load_study

    study = load_study(STUDY)
    t0 = time.perf_counter()
    model = build_model(study, get_priors("group"), "lognormal")
    build_seconds = time.perf_counter() - t0
    draws, tune, seed = settings["draws"], settings["tune"], args.seed
    calls = []

    def timed(name: str, description: str, fn) -> None:
        print(f"  {name} ({draws} draws, {tune} tune, {CHAINS} chains) ...", file=sys.stderr, flush=True)
        la = loadavg()
        t = time.perf_counter()
        idata = fn()
        wall = time.perf_counter() - t
        attrs = idata.posterior.attrs
        rec = {"name": name, "description": description, "sampler": attrs.get("sampler", "pymc"), "wall_seconds": round(wall, 3), "loadavg_before": la}
        rec.update({k: attrs[k] for k in SAMPLER_TIMINGS if k in attrs})
        rec.update(_slowest(idata, study))
        rec["ess_per_second"] = rec["min_ess"] / wall
        calls.append(rec)

    def pymc_sample():
        return pm.sample(draws, tune=tune, chains=CHAINS, cores=PYMC_CORES, model=model, random_seed=seed, progressbar=False)

    timed("pymc", f"pm.sample, cores={PYMC_CORES}, fresh PyTensor compiledir", pymc_sample)
    timed("pymc-again", "pm.sample again, C modules cached", pymc_sample)
    timed(
        "sample_nuts",
        "reanalysis.sampling.sample_nuts",
        lambda: sampling.sample_nuts(model, draws=draws, tune=tune, chains=CHAINS, seed=seed, progressbar=False),
    )
    if hasattr(sampling, "CompiledNuts"):
        nuts = sampling.CompiledNuts(model, draws=draws, tune=tune, chains=CHAINS, progressbar=False)
        timed("jax", "reanalysis.sampling.CompiledNuts, first run (tracing + XLA compilation, fresh cache)", lambda: nuts.run(seed))
        timed("jax-again", "the same CompiledNuts run again (compiled)", lambda: nuts.run(seed))

    base = {c["name"]: c for c in calls}
    for c in calls:
        c["ratio_vs_pymc"] = c["ess_per_second"] / base["pymc"]["ess_per_second"]
        c["ratio_vs_pymc_again"] = c["ess_per_second"] / base["pymc-again"]["ess_per_second"]
    ref = "pymc-again" if str(base["sample_nuts"]["sampler"]).startswith("pymc") else "pymc"
    p = base["pymc"]
    sampling_only = {"pymc_sampling_time": p.get("sampling_time"), "pymc_ess_per_second": p["min_ess"] / p["sampling_time"] if p.get("sampling_time") else None}
    if "jax-again" in base:
        sampling_only["jax_ess_per_second"] = base["jax-again"]["ess_per_second"]
        if sampling_only["pymc_ess_per_second"]:
            sampling_only["ratio_jax_over_pymc"] = sampling_only["jax_ess_per_second"] / sampling_only["pymc_ess_per_second"]
    return {
        "model": "group (lognormal, default priors)",
        "draws": draws,
        "tune": tune,
        "chains": CHAINS,
        "seed": seed,
        "build_seconds": round(build_seconds, 3),
        "pytensor_compiledir": str(pytensor.config.compiledir),
        "k2_jax_cache": os.environ.get("K2_JAX_CACHE"),
        "calls": calls,
        # headline: sample_nuts against pm.sample in the same cache state, both timed with
        # compilation (a PyMC-backed sample_nuts runs with the C modules the pymc calls cached)
        "headline_reference": ref,
        "ratio_sample_nuts_over_pymc": base["sample_nuts"]["ess_per_second"] / base[ref]["ess_per_second"],
        "sampling_only": sampling_only,
    }


def run_ess_worker(argv: list[str], tmp: Path) -> dict:
    """Run :func:`bench_ess` in a fresh interpreter whose PyTensor compiledir and JAX cache are
    new and empty, so every backend's compilation is measured cold."""
    cache = tmp / "ess-caches"
    cache.mkdir()
    out = tmp / "ess.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--skip-fit", "--worker-out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=cache_env(cache))
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"ESS worker failed (exit {proc.returncode})")
    return json.loads(out.read_text())


# -- report -----------------------------------------------------------------------------------
def _f(v, fmt="{:.1f}") -> str:
    return "-" if v is None else fmt.format(v)


def format_table(res: dict) -> str:
    m = res["machine"]
    lines = [
        f"== bench_fit {res['started_utc']} ({'quick' if res['quick'] else 'full'}) ==",
        f"machine: {m.get('cpu_model', m['processor'])}, {m['cpu_count']} cores; {m['platform']}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items()),
        f"load average (1/5/15 min): before {res['loadavg_before']}, after {res['loadavg_after']}",
    ]
    fit = res.get("fit")
    if fit:
        lines += ["", "-- scripts/fit.py end to end (seconds) --"]
        phases = ["imports", "build", "sample", "estimands_and_checks", "informativeness", "write", "figures", "total"]
        lines.append(
            f"{'run':<12}{'wall':>7}{'outside':>9}" + "".join(f"{p[:9]:>10}" for p in phases) + f"{'s.setup':>9}{'s.sampling':>11}{'exit':>5}  sampler"
        )
        for r in fit["runs"]:
            t, s = r.get("timings_seconds", {}), r.get("sampler", {})
            lines.append(
                f"{r['label']:<12}{r['wall_seconds']:>7.1f}{_f(r.get('outside_script_seconds')):>9}"
                + "".join(f"{_f(t.get(p)):>10}" for p in phases)
                + f"{_f(s.get('setup_seconds', s.get('compile_seconds'))):>9}{_f(s.get('sampling_seconds')):>11}{r['exit_code']:>5}  {s.get('sampler', '?')}"
            )
        lines.append("outside = wall - manifest total (interpreter start-up and exit); s.* = sampler timings in the manifest")
        lines.append("caches: " + ", ".join(f"{k}={v}" for k, v in fit["caches"].items()))
    ess = res.get("ess")
    if ess:
        lines += [
            "",
            f"-- ESS/s of the slowest estimand: {ess['model']}, {ess['chains']} chains x ({ess['tune']} tune + {ess['draws']} draws) --",
            f"{'call':<12}{'wall s':>8}{'min ESS':>9}{'ESS/s':>8}{'/pymc':>7}{'/again':>7}{'bulk':>7}{'tail':>7}{'R-hat':>8}{'div':>4}  slowest estimand; sampler",
        ]
        for c in ess["calls"]:
            lines.append(
                f"{c['name']:<12}{c['wall_seconds']:>8.1f}{c['min_ess']:>9.0f}{c['ess_per_second']:>8.1f}{c['ratio_vs_pymc']:>7.2f}"
                f"{c['ratio_vs_pymc_again']:>7.2f}{c['min_ess_bulk']:>7.0f}{c['min_ess_tail']:>7.0f}{c['max_r_hat']:>8.4f}"
                f"{c['divergences']:>4}  {c['min_ess_estimand']}; {c['sampler']}"
            )
        lines.append("/pymc, /again = ESS/s relative to the pymc (cold) and pymc-again (C modules cached) calls")
        state = "C modules cached for both" if ess["headline_reference"] == "pymc-again" else "both compiled from fresh caches"
        lines.append(
            f"headline: ESS/s of sample_nuts / {ess['headline_reference']} (wall incl. compilation, {state}): "
            f"{ess['ratio_sample_nuts_over_pymc']:.2f}"
        )
        so = ess["sampling_only"]
        if so.get("pymc_ess_per_second"):
            text = f"sampling only: pymc {so['pymc_sampling_time']:.2f} s (its sampling_time) = {so['pymc_ess_per_second']:.0f} ESS/s"
            if "ratio_jax_over_pymc" in so:
                text += f"; jax-again {so['jax_ess_per_second']:.0f} ESS/s; ratio jax / pymc {so['ratio_jax_over_pymc']:.2f}"
            lines.append(text)
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.worker_out:
        args.worker_out.write_text(json.dumps(bench_ess(args, settings), default=float))
        return 0
    now = dt.datetime.now(dt.timezone.utc)
    res = {
        "date": now.strftime("%Y-%m-%d"),
        "started_utc": now.isoformat(timespec="seconds"),
        "quick": args.quick,
        "settings": {**settings, "chains": CHAINS, "pymc_cores": PYMC_CORES, "seed": args.seed, "jax_cache": not args.no_jax_cache},
        "machine": machine(),
        "versions": versions(),
        "code_mtimes_utc": code_state(),
        "loadavg_before": loadavg(),
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench_fit_"))
    t0 = time.perf_counter()
    try:
        if not args.skip_fit:
            res["fit"] = bench_fit(args, settings, tmp)
        if not args.skip_ess:
            res["ess"] = run_ess_worker([a for a in argv if a != "--skip-fit"], tmp)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    res["loadavg_after"] = loadavg()
    res["benchmark_seconds"] = round(time.perf_counter() - t0, 1)

    table = format_table(res)
    print(table)
    out = args.out or RESULTS_DIR / f"{res['date']}{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=float) + "\n")
    out.with_suffix(".txt").write_text(table + "\n")
    print(f"\nwritten: {out} and {out.with_suffix('.txt').name} ({res['benchmark_seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A real dask.distributed cluster on loopback: a scheduler and two workers started as
separate processes by the ``dask scheduler`` / ``dask worker`` commands, and a small
sensitivity grid and a small calibration run through it by the scripts' ``--scheduler``
(reanalysis/execution.py).  Slow tier: the workers import the toolkit and compile."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.scriptruns import describe, run_script

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``(address, folder)`` of a scheduler with two single-threaded workers."""
    pytest.importorskip("distributed")
    from reanalysis.loopback_cluster import DASK, LoopbackCluster

    if not DASK.exists():
        pytest.skip(f"no dask command beside {sys.executable}")
    folder = tmp_path_factory.mktemp("cluster")
    with LoopbackCluster(2, folder) as c:
        yield c.address, folder


def _only_result(out: Path) -> Path:
    entries = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1, entries
    return entries[0]


def test_a_grid_runs_on_the_cluster(cluster, tmp_path):
    address, _ = cluster
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({
        "sampling": {"draws": 100, "tune": 100, "chains": 2, "reps": 50, "ppc_draws": 100},
        "scenarios": [{"name": "wide", "priors": "wide"}, {"name": "narrow", "priors": "narrow"}],
    }))
    proc = run_script("sensitivity.py", "--grid", grid, "--scheduler", address, "--out", tmp_path / "out", timeout=1200)
    # short chains: scenarios may fail the diagnostics gate (exit 3), never the run
    assert proc.returncode in (0, 3), describe(proc)
    folder = _only_result(tmp_path / "out")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["execution"]["backend"] == "dask.distributed" and manifest["execution"]["scheduler"] == address
    assert {s["name"] for s in manifest["scenarios"]} == {"default", "wide", "narrow"}


def test_a_calibration_runs_on_the_cluster(cluster, tmp_path):
    address, _ = cluster
    proc = run_script("sbc.py", "--sims", 10, "--draws", 50, "--tune", 50, "--chains", 2, "--chunk", 5, "--max-rhat", 5, "--min-ess", 0,
                "--scheduler", address, "--out", tmp_path / "out", timeout=1200)
    # 10 short fits: the uniformity verdict is not the point (exit 4 allowed), the run is
    assert proc.returncode in (0, 4), describe(proc)
    folder = _only_result(tmp_path / "out")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["sampler"]["execution"] == "dask.distributed" and manifest["sampler"]["scheduler"] == address
    fits = pd.read_csv(folder / "fits.csv")
    assert len(fits) == 10
    # each fit's geometry beside its gate: trajectories of one leapfrog step or more, positive steps
    assert (fits["mean_steps"] >= 1).all() and (fits["smallest_step_size"] > 0).all(), fits[["mean_steps", "smallest_step_size"]]
    # each worker process that ran a chunk compiled its sampler once, and only once
    assert manifest["compiled"]["sampler_programs"] == fits["worker"].nunique(), (manifest["compiled"], fits["worker"].tolist())

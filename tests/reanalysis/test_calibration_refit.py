"""A few studies of a calibration refitted alone (``sbc.py --only``, ``run_sbc(only=...)``):
the same simulated data, true values and seeds as in the whole run, their diagnostics
printed instead of uniformity tests, and an exit code that says whether they pass the gate."""
from __future__ import annotations

import glob

import pandas as pd
import pytest

from tests.scriptruns import describe, run_script


def _fake_tasks(study, priors, family, sims, seed, **kwargs):
    return [{"sim": s, "data": {"x": s}, "truth": {}, "reported": {}} for s in range(sims)], sims


def test_only_keeps_the_chosen_studies_of_the_whole_simulation(monkeypatch):
    """The whole calibration is simulated first and the chosen studies are taken from it, in
    order, into tasks of ``chunk`` studies; progress counts the chosen studies only."""
    import reanalysis.analysis
    import reanalysis.execution
    from reanalysis import calibration

    monkeypatch.setattr(calibration, "_group_tasks", _fake_tasks)
    monkeypatch.setattr(reanalysis.analysis, "precomputed", lambda *a, **k: {})
    sent, counted = [], []

    def run_tasks(fn, chunks, record, **kwargs):
        for setup, tasks in chunks:
            sent.append([t["sim"] for t in tasks])
            record(([{"sim": t["sim"], "parameter": "p"} for t in tasks], [{"sim": t["sim"], "data": t["data"]["x"]} for t in tasks]))

    monkeypatch.setattr(reanalysis.execution, "run_tasks", run_tasks)
    study = type("S", (), {"path": "study.yaml"})()
    res = calibration.run_sbc(study, {}, "lognormal", 20, 1, chunk=2, only=[16, 3, 7, 3], progress=lambda d, n, t: counted.append((d, n)))
    assert sent == [[3, 7], [16]]
    assert res.fits["sim"].tolist() == res.fits["data"].tolist() == [3, 7, 16]
    assert counted == [(2, 3), (3, 3)]
    with pytest.raises(ValueError, match=r"simulated study 20, 25 is not one of the calibration's 20 \(numbered 0-19\)"):
        calibration.run_sbc(study, {}, "lognormal", 20, 1, only=[3, 20, 25])
    with pytest.raises(ValueError, match="no simulated study given"):
        calibration.run_sbc(study, {}, "lognormal", 20, 1, only=[])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--only", "3,x"], "--only: '3,x' is not a comma-separated list of simulated studies (e.g. --only 3,7,16)"),
        (["--only", "3", "--grid", "ms"], "--only refits simulated studies; --grid fits none"),
    ],
)
def test_only_rejects_what_it_cannot_refit(args, message, capsys):
    from reanalysis.cli.sbc import parse_args

    with pytest.raises(SystemExit) as exc:
        parse_args(args)
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert parse_args(["--only", "16,3,3"]).only == [16, 3, 3]


def test_only_outside_the_calibration_is_bad_input_and_writes_nothing(tmp_path, capsys):
    from tests.scriptruns import main_caller

    code, _, stderr = main_caller("sbc", capsys)("--sims", "20", "--only", "3,20,25", "--out", tmp_path / "out")
    assert code == 2
    assert stderr.strip().splitlines() == [
        "error: --only: simulated study 20, 25 is not one of the calibration's 20 (numbered 0-19) (--sims 20)"
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_refitted_study_gives_the_ranks_of_the_whole_run(tmp_path):
    """Two studies of a 10-study calibration refitted alone have the ranks (and so the draws)
    they had in the whole run; the refit prints their diagnostics, writes no uniformity
    table, and exits 3 when a study fails the gate (short chains here, so they do)."""
    short = ["--model", "group", "--sims", 10, "--draws", 60, "--tune", 60, "--chains", 2, "--max-rhat", 5, "--min-ess", 0,
             "--workers", 1, "--no-progress"]
    whole = run_script("sbc.py", *short, "--out", tmp_path / "whole")
    assert whole.returncode in (0, 4), describe(whole)
    refit = run_script("sbc.py", *short, "--only", "7,2", "--out", tmp_path / "refit")
    folder = glob.glob(str(tmp_path / "refit" / "*"))[0]
    fits = pd.read_csv(f"{folder}/fits.csv")
    assert fits["sim"].tolist() == [2, 7]
    assert refit.returncode == (0 if fits["gate_ok"].all() else 3), describe(refit)
    assert "simulated studies 2, 7 of the 10 of seed 1, refitted" in refit.stdout
    assert not glob.glob(f"{folder}/uniformity.csv")
    ranks = pd.read_csv(f"{folder}/ranks.csv")
    before = pd.read_csv(glob.glob(str(tmp_path / "whole" / "*" / "ranks.csv"))[0])
    pd.testing.assert_frame_equal(ranks, before[before["sim"].isin([2, 7])].reset_index(drop=True))


def test_the_library_passes_a_list_of_studies_as_the_command_takes_it(monkeypatch):
    """``reanalysis.run_sbc(only=[7, 2])`` runs ``sbc.py --only 7,2`` and returns the result
    folder also when a refitted study fails the gate (exit 3, ``fits.csv`` says which)."""
    import reanalysis
    import reanalysis.cli.sbc

    seen = []

    def main(argv):
        seen.append(argv)
        print("Results: /tmp/some-result")
        return 3

    monkeypatch.setattr(reanalysis.cli.sbc, "main", main)
    assert str(reanalysis.run_sbc(sims=10, only=[7, 2])) == "/tmp/some-result"
    assert seen[0][seen[0].index("--only") + 1] == "7,2"

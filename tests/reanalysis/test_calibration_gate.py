"""Calibration fits meet the diagnostics gate of a real fit: a fit short of the R-hat or
ESS limits continues its chains, and the fits table says which passed the whole gate."""
from __future__ import annotations

import pandas as pd
import pytest

from reanalysis.calibration import _short_of_gate


def _summary(rhat, bulk, tail):
    return pd.DataFrame({"r_hat": rhat, "ess_bulk": bulk, "ess_tail": tail})


@pytest.mark.parametrize(
    "rhat, bulk, tail, setup, short",
    [
        ([1.001, 1.02], [900, 800], [700, 600], {"max_rhat": 1.01, "min_ess": 400}, True),  # R-hat
        ([1.001, 1.005], [900, 380], [700, 600], {"max_rhat": 1.01, "min_ess": 400}, True),  # bulk ESS
        ([1.001, 1.005], [900, 800], [700, 120], {"max_rhat": 1.01, "min_ess": 400}, True),  # tail ESS
        ([1.001, 1.005], [900, 800], [700, 600], {"max_rhat": 1.01, "min_ess": 400}, False),
        ([1.001, 1.02], [900, 100], [700, 100], {"max_rhat": None, "min_ess": None}, False),  # not checked
    ],
)
def test_a_fit_short_of_the_gate_continues(rhat, bulk, tail, setup, short):
    assert _short_of_gate(_summary(rhat, bulk, tail), setup) is short


def test_only_the_limits_asked_for_are_checked():
    s = _summary([1.001, 1.005], [900, 100], [700, 100])
    assert _short_of_gate(s, {"max_rhat": 1.01}) is False
    assert _short_of_gate(s, {"max_rhat": 1.01, "min_ess": 400}) is True
    assert _short_of_gate(_summary([1.05], [900], [900]), {"min_ess": 400}) is False


def test_sbc_defaults_are_the_gate_of_a_real_fit():
    from reanalysis.cli.sbc import parse_args
    from reanalysis.settings import MAX_RHAT, MIN_ESS

    for model in ("group", "hierarchical"):
        a = parse_args(["--model", model])
        assert (a.max_rhat, a.min_ess, a.max_extensions) == (MAX_RHAT, MIN_ESS, 3)


def test_sbc_chunks_default_to_a_progress_line_per_few_minutes_and_reject_zero(capsys):
    """A covariate-model fit takes minutes: one study per task, so each worker reports each
    fit; the group model's take seconds: ten.  A worker compiles once either way."""
    from reanalysis.cli.sbc import parse_args

    assert parse_args(["--model", "group"]).chunk == 10
    assert parse_args(["--model", "hierarchical"]).chunk == 1
    assert parse_args(["--model", "hierarchical", "--chunk", "4"]).chunk == 4
    with pytest.raises(SystemExit) as exc:
        parse_args(["--chunk", "0"])
    assert exc.value.code == 2 and "--chunk must be >= 1" in capsys.readouterr().err


def test_calibration_on_the_published_claims_keeps_only_studies_that_report_them(monkeypatch, capsys):
    """``--as-published`` keeps the simulated studies whose every claim comes out as the
    study's own (seeded batches of prior draws), says how many it simulated, fails in one
    line when too few do, and is refused for a model whose studies report no claims."""
    import numpy as np
    import pytensor

    import models.hierarchical
    from models.hierarchical import build_model
    from models.priors import get_priors
    from models.study import load_study
    from reanalysis import calibration
    from reanalysis.cli.sbc import parse_args
    from tests.scriptruns import ROOT

    study = load_study(ROOT / "data" / "studies" / "lasemi2018.yaml")
    priors = get_priors("hierarchical")
    # built once, as the tasks build it (the simulation only reads it)
    model = build_model(study, priors, family="normal", seed=1)
    monkeypatch.setattr(models.hierarchical, "build_model", lambda *a, **k: model)
    published = {k: float(np.asarray(model[k].get_value())) for k in model.named_vars if k.startswith("claim_holds_")}
    assert len(published) == 5
    # prior draws on the Python linker: no C module to compile for them (about 30 s cold)
    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        tasks, simulated = calibration._hierarchical_tasks(study, priors, "normal", 3, 1, as_published=True)
        assert len(tasks) == 3 and simulated >= 1000  # one batch at least: about 1 study in 250 reports them
        for t in tasks:
            assert {k: float(t["data"][k]) for k in published} == published
        # the same seed keeps the same studies; without the condition most do not report them
        again, _ = calibration._hierarchical_tasks(study, priors, "normal", 3, 1, as_published=True)
        assert all(np.array_equal(a["truth"]["group_difference"], b["truth"]["group_difference"]) for a, b in zip(tasks, again))
        plain, simulated = calibration._hierarchical_tasks(study, priors, "normal", 10, 1)
        assert sum(all(float(t["data"][k]) == v for k, v in published.items()) for t in plain) < 10 and simulated == 10
        monkeypatch.setattr(calibration, "MAX_SIMULATED", 1000)
        with pytest.raises(ValueError, match=r"lasemi2018.yaml: only \d+ of 1000 simulated studies report the published claims"):
            calibration._hierarchical_tasks(study, priors, "normal", 10, 1, as_published=True)
    with pytest.raises(SystemExit) as exc:
        parse_args(["--model", "group", "--as-published"])
    assert exc.value.code == 2 and "only the hierarchical model's simulated studies report claims" in capsys.readouterr().err
    with pytest.raises(ValueError, match="only the hierarchical model's"):
        calibration.run_sbc(study, {}, "lognormal", 10, 1, model="group", as_published=True)

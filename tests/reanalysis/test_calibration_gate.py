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

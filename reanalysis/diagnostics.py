"""Sampler diagnostics that every result must pass (R-hat, bulk and tail ESS, divergences)."""
from __future__ import annotations

from dataclasses import dataclass, field

import arviz as az
import numpy as np
import pandas as pd

# the gate's thresholds, defined with the toolkit's other settings
from reanalysis.settings import MAX_DIVERGENCES, MAX_RHAT, MIN_ESS, TARGET_ESS  # noqa: F401
from reanalysis.reweighting import PARETO_K_MAX

@dataclass
class Diagnostics:
    """Outcome of the checks; ``problems`` lists each failure in one line."""

    divergences: int
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {
            "divergences": self.divergences,
            "max_rhat": self.max_rhat,
            "min_ess_bulk": self.min_ess_bulk,
            "min_ess_tail": self.min_ess_tail,
            "thresholds": {"max_rhat": MAX_RHAT, "min_ess": MIN_ESS, "max_divergences": MAX_DIVERGENCES},
            "ok": self.ok,
            "problems": self.problems,
        }


def check_diagnostics(idata: az.InferenceData, table: pd.DataFrame) -> Diagnostics:
    """Check divergences and the R-hat / ESS columns of ``table`` (one row per quantity).

    Rows with missing diagnostics (e.g. probabilities) are skipped.  Draws importance-weighted
    from another fit (``posterior.attrs["pareto_k"]``, :mod:`reanalysis.reweighting`) also
    need a Pareto k below :data:`reanalysis.reweighting.PARETO_K_MAX`.
    """
    div = int(idata.sample_stats["diverging"].sum())
    t = table.dropna(subset=["r_hat"])
    if t.empty:
        d = Diagnostics(div, float("nan"), float("nan"), float("nan"))
        d.problems.append("no quantity with diagnostics to check")
        return d
    d = Diagnostics(div, float(t["r_hat"].max()), float(t["ess_bulk"].min()), float(t["ess_tail"].min()))
    if div > MAX_DIVERGENCES:
        d.problems.append(f"{div} divergent transitions (allowed: {MAX_DIVERGENCES})")
    k = idata.posterior.attrs.get("pareto_k")
    if k is not None and not k < PARETO_K_MAX:
        d.problems.append(f"importance weights from {idata.posterior.attrs.get('importance_from', 'another fit')} unreliable: Pareto k {k:.2f} >= {PARETO_K_MAX}")
    for _, row in t.iterrows():
        # the estimand in words, with its key (the row of estimands.csv) in brackets
        key, label = row.get("estimand", row.name), row.get("label")
        name = f"{label} ({key})" if isinstance(label, str) and label else key
        if not np.isfinite(row["r_hat"]) or row["r_hat"] > MAX_RHAT:
            d.problems.append(f"{name}: R-hat {row['r_hat']:.3f} > {MAX_RHAT}")
        for col in ("ess_bulk", "ess_tail"):
            if not row[col] >= MIN_ESS:
                d.problems.append(f"{name}: {col.split('_')[1]} ESS {row[col]:.0f} < {MIN_ESS}")
    return d


def needs_more_draws(d: Diagnostics, target_ess: float = TARGET_ESS) -> bool:
    """Whether more draws of the same chains could bring ``d`` within the gates: an ESS
    below ``target_ess`` or an R-hat above :data:`MAX_RHAT`.  Divergences are no reason
    (more draws do not remove them), and neither are missing diagnostics; a fit that has
    diverged already fails the gate, so it is not continued at all (in a weakly identified
    sensitivity scenario each block of draws took minutes at the tree-depth cap)."""
    if d.divergences > MAX_DIVERGENCES:
        return False
    return bool(d.min_ess_bulk < target_ess or d.min_ess_tail < target_ess or d.max_rhat > MAX_RHAT)

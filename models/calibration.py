"""Simulation-based calibration (Talts et al. 2018; Modrak et al. 2023).

Draw parameters from the model's own prior, simulate the statistics a study with the same
design would publish, fit, and record the rank of each true value among thinned posterior
draws.  If the model, the simulator and the sampler agree, ranks are uniform.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
from scipy import stats as sps

from .families import get_family
from .sampling import CompiledNuts
from .simulate import simulate_reported
from .study import Study

#: Thinned posterior draws each true value is ranked among; ranks take 0..L (L + 1 values).
N_RANK_DRAWS = 99
#: Equal-width bins of the chi-square uniformity test (L + 1 = 100 values, 10 per bin).
N_BINS = 10


@dataclass
class SbcResult:
    ranks: pd.DataFrame  # one row per (simulation, parameter)
    fits: pd.DataFrame  # one row per simulation: diagnostics and timing
    seconds: float


def parameter_names(model: pm.Model) -> list[tuple[str, str, int | None]]:
    """Scalar top-level parameters as (label, variable, index) for every free variable."""
    out = []
    for rv in model.free_RVs:
        dims = model.named_vars_to_dims.get(rv.name, ())
        if dims:
            for i, c in enumerate(model.coords[dims[0]]):
                out.append((f"{rv.name}[{c}]", rv.name, i))
        else:
            out.append((rv.name, rv.name, None))
    return out


def run_sbc(
    model: pm.Model,
    study: Study,
    family: str,
    sims: int,
    seed: int,
    draws: int = 250,
    tune: int = 500,
    chains: int = 4,
    progress=None,
) -> SbcResult:
    """Run ``sims`` calibration fits of the group model, reusing one compiled sampler.

    Parameters
    ----------
    model : pm.Model
        Built by :func:`models.group.build_model` for ``study`` (its prior is the one tested).
    study : Study
        Design of the simulated studies.
    family : str
        Family the data are simulated from (the one the model assumes).
    sims, seed : int
        Number of simulated studies; seed of the whole calibration.
    draws, tune, chains : int
        Sampler settings of each fit; ``draws * chains`` must be at least 99.
    progress : callable, optional
        Called as ``progress(done, total, elapsed_seconds)`` after each fit.
    """
    if draws * chains < N_RANK_DRAWS:
        raise ValueError(f"draws * chains must be >= {N_RANK_DRAWS}")
    fam = get_family(family)
    params = parameter_names(model)
    t0 = time.perf_counter()
    prior = pm.draw([model["log_mean"], model["log_cv"], model["mean"], model["cv"]], draws=sims, random_seed=seed)
    log_mean, log_cv, mean, cv = (np.asarray(a) for a in prior)
    truth_of = {"log_mean": log_mean, "log_cv": log_cv}
    data_names = [f"log_stats_{g}" for g in study.group_ids]
    runner = CompiledNuts(model, data_names, draws=draws, tune=tune, chains=chains, progressbar=False)
    rng = np.random.default_rng(seed)
    rank_rows, fit_rows = [], []
    for s in range(sims):
        truth = {g: (mean[s, i], cv[s, i]) for i, g in enumerate(study.group_ids)}
        reported = simulate_reported(study, fam, truth, rng)
        data = {f"log_stats_{g}": np.log(reported[g]) for g in study.group_ids}
        t = time.perf_counter()
        idata = runner.run(seed=seed + 1 + s, data=data)
        post = idata.posterior
        summ = az.summary(idata, var_names=["log_mean", "log_cv"], kind="diagnostics")
        fit_rows.append(
            {
                "sim": s,
                "seconds": time.perf_counter() - t,
                "divergences": int(idata.sample_stats["diverging"].sum()),
                "max_rhat": float(summ["r_hat"].max()),
                "min_ess_bulk": float(summ["ess_bulk"].min()),
                "min_ess_tail": float(summ["ess_tail"].min()),
                **{f"reported_{g}": " ".join(f"{v:g}" for v in reported[g]) for g in study.group_ids},
            }
        )
        total = post.sizes["chain"] * post.sizes["draw"]
        keep = np.linspace(0, total - 1, N_RANK_DRAWS).round().astype(int)
        for label, var, idx in params:
            x = post[var].values.reshape(total, -1)[:, idx if idx is not None else 0]
            true = truth_of[var][s, idx] if idx is not None else truth_of[var][s]
            lo50, hi50, lo90, hi90 = np.quantile(x, [0.25, 0.75, 0.05, 0.95])
            rank_rows.append(
                {
                    "sim": s,
                    "parameter": label,
                    "truth": float(true),
                    "rank": int(np.sum(x[keep] < true)),
                    "in_50": bool(lo50 <= true <= hi50),
                    "in_90": bool(lo90 <= true <= hi90),
                }
            )
        if progress:
            progress(s + 1, sims, time.perf_counter() - t0)
    return SbcResult(pd.DataFrame(rank_rows), pd.DataFrame(fit_rows), time.perf_counter() - t0)


def ecdf_difference(ranks: np.ndarray, n_draws: int = N_RANK_DRAWS, grid: int = 100):
    """ECDF of fractional ranks minus the uniform CDF on ``grid`` points in (0, 1)."""
    u = (np.asarray(ranks) + 0.5) / (n_draws + 1)
    z = np.linspace(0, 1, grid + 1)[1:-1]
    return z, (u[None, :] <= z[:, None]).mean(axis=1) - z


def ecdf_band(n_sims: int, prob: float = 0.99, n_draws: int = N_RANK_DRAWS, reps: int = 2000, seed: int = 0) -> float:
    """Half-width of a simultaneous ``prob`` band for the ECDF difference of ``n_sims``
    uniform ranks, by simulation (a discrete-rank variant of Säilynoja et al. 2022)."""
    rng = np.random.default_rng(seed)
    sims = rng.integers(0, n_draws + 1, size=(reps, n_sims))
    stat = np.array([np.abs(ecdf_difference(r, n_draws)[1]).max() for r in sims])
    return float(np.quantile(stat, prob))


def uniformity(result: SbcResult, alpha: float = 0.01) -> pd.DataFrame:
    """Per parameter: chi-square test on binned ranks, ECDF maximum deviation and its
    simulated p-value, 50% and 90% interval coverage, and pass/fail at ``alpha`` with a
    Bonferroni correction across parameters (on the chi-square p-value)."""
    ranks = result.ranks
    params = list(dict.fromkeys(ranks["parameter"]))
    level = alpha / len(params)
    n = ranks["sim"].nunique()
    rng = np.random.default_rng(12345)
    null = np.array([np.abs(ecdf_difference(rng.integers(0, N_RANK_DRAWS + 1, n))[1]).max() for _ in range(2000)])
    rows = []
    for p in params:
        r = ranks.loc[ranks["parameter"] == p]
        counts = np.bincount(r["rank"].values * N_BINS // (N_RANK_DRAWS + 1), minlength=N_BINS)
        chi2 = sps.chisquare(counts)
        dev = float(np.abs(ecdf_difference(r["rank"].values)[1]).max())
        rows.append(
            {
                "parameter": p,
                "sims": len(r),
                "chi2": float(chi2.statistic),
                "p_chi2": float(chi2.pvalue),
                "ecdf_max_diff": dev,
                "p_ecdf": float((null >= dev).mean()),
                "coverage_50": float(r["in_50"].mean()),
                "coverage_90": float(r["in_90"].mean()),
                "bonferroni_level": level,
                "uniform": bool(chi2.pvalue >= level),
            }
        )
    return pd.DataFrame(rows)

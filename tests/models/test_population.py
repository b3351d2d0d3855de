"""Exact population functionals of the covariate model (models.population) and their use
in the estimands (models.effects): checked against brute-force simulation, against the
exact double sum, and for using every design cohort."""
import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from models import population as popm
from models.asymptotic import residual_nodes
from models.cohort import build_design
from models.effects import population_contrasts
from models.study import load_study

ROOT = Path(__file__).resolve().parents[2]


def _mixture(rng, D=3, M=40):
    m = rng.normal(0.0, 1.0, size=(D, M))
    m[:, : M // 2] += 2.5  # bimodal, where a few Newton steps are not enough
    s = rng.uniform(0.2, 0.8, size=(D, M))
    return m, s


def test_quantile_is_the_root_of_the_mixture_cdf():
    m, s = _mixture(np.random.default_rng(1))
    p = np.array([0.1, 0.5, 0.9])
    q = popm.mixture_quantile_log(m, s, p)
    assert np.allclose(popm.mixture_cdf_log(q, m, s), p, atol=1e-10)


def test_quantile_and_mean_match_brute_force_simulation():
    rng = np.random.default_rng(2)
    m, s = _mixture(rng, D=2, M=30)
    n = 400_000
    comp = rng.integers(0, m.shape[1], size=(m.shape[0], n))
    y = np.take_along_axis(m, comp, 1) + np.take_along_axis(s, comp, 1) * rng.standard_normal((m.shape[0], n))
    med = popm.mixture_quantile_log(m, s, 0.5)
    # the sample median's SE on the log scale is about 1.25 sd / sqrt(n) < 0.005
    assert np.allclose(med, np.median(y, axis=1), atol=0.01)
    mean = np.exp(popm.mixture_mean_log(m, s))
    sim = np.exp(y).mean(axis=1)
    se = np.exp(y).std(axis=1) / np.sqrt(n)
    assert np.all(np.abs(mean - sim) < 5 * se)


def test_prob_superiority_exact_for_normal_residuals():
    rng = np.random.default_rng(3)
    ma, mb = rng.normal(1.0, 0.5, size=(2, 12)), rng.normal(0.0, 0.5, size=(2, 9))
    sa, sb = np.array([[0.4], [0.7]]), np.array([[0.5], [0.3]])
    got = popm.prob_superiority(ma, sa, mb, sb)
    want = [np.mean(stats.norm.cdf((ma[d][:, None] - mb[d][None, :]) / np.hypot(sa[d, 0], sb[d, 0]))) for d in range(2)]
    assert np.allclose(got, want, atol=1e-14)


def test_prob_superiority_tabulated_within_its_stated_error():
    rng = np.random.default_rng(4)
    nodes = residual_nodes(3.0)
    ma, mb = rng.normal(0.8, 0.6, size=(3, 25)), rng.normal(0.0, 0.6, size=(3, 20))
    sa = np.array([0.3, 0.6, 1.0])[:, None] * np.sqrt(nodes)[None, :]
    sb = np.array([0.5, 0.2, 0.9])[:, None] * np.sqrt(nodes)[None, :]
    got = popm.prob_superiority(ma, sa, mb, sb)
    scale = np.sqrt(sa[:, :, None] ** 2 + sb[:, None, :] ** 2).reshape(3, -1)
    d = ma[:, :, None] - mb[:, None, :]
    exact = stats.norm.cdf(d[..., None] / scale[:, None, None, :]).mean(axis=(1, 2, 3))
    assert np.max(np.abs(got - exact)) < popm.SUPERIORITY_TOL


def test_memory_blocks_do_not_change_the_result(monkeypatch):
    rng = np.random.default_rng(5)
    ma, mb = rng.normal(1.0, 0.5, size=(2, 30)), rng.normal(0.0, 0.5, size=(2, 20))
    sa, sb = np.full((2, 1), 0.5), np.full((2, 1), 0.4)
    whole = popm.prob_superiority(ma, sa, mb, sb)
    monkeypatch.setattr(popm, "BLOCK_VALUES", 50)
    assert np.allclose(popm.prob_superiority(ma, sa, mb, sb), whole, atol=1e-14)


@pytest.fixture(scope="module")
def lasemi():
    study = load_study(ROOT / "data" / "studies" / "lasemi2018.yaml")
    design = build_design(study, 4, 7)
    rng = np.random.default_rng(6)
    D, G, C, L = 5, len(design.groups), len(design.covariates), len(design.levels)
    p = {
        "alpha": np.log(np.array([800.0, 200.0]) / float(study.assumption("reference_level", 1.0)))[None, :] + rng.normal(0, 0.05, size=(D, G)),
        "slope": rng.normal(0, 0.1, size=(D, G, C)) * design.defined[None],
        "sigma": rng.uniform(0.3, 0.6, size=(D, G)),
        "u": rng.normal(0, 0.1, size=(D, L)) if L else None,
    }
    return study, design, p


def test_estimands_use_every_design_cohort(lasemi):
    """Estimands are functionals of the whole mixture: reordering the design's cohorts cannot
    change them (a cap such as "the first k cohorts" would), and dropping one does."""
    study, design, p = lasemi
    base = population_contrasts(p, study, design)
    order = np.arange(design.reps)[::-1]
    flipped = dataclasses.replace(design, x=design.x[order], onehot=design.onehot[order])
    again = population_contrasts(p, study, flipped)
    for k in ("median", "mean", "ratio_of_medians", "prob_superiority"):
        assert np.allclose(base[k], again[k], rtol=1e-9), k
    fewer = dataclasses.replace(design, x=design.x[:-1], onehot=design.onehot[:-1])
    assert not np.allclose(population_contrasts(p, study, fewer)["median"], base["median"], rtol=1e-9)


def test_population_median_matches_a_huge_simulated_cohort(lasemi):
    """Brute force: a million subjects drawn from the design with fresh residuals."""
    from models.cohort import cohort_log_levels

    study, design, p = lasemi
    got = population_contrasts(p, study, design)
    rng = np.random.default_rng(8)
    reps = 2000  # cohorts resampled from the design, fresh residuals each
    pick = rng.integers(0, design.reps, size=reps)
    eps = rng.standard_normal((reps, design.n))
    d = 0
    eta = cohort_log_levels(
        np, p["alpha"][d], p["slope"][d], p["u"][d] if p["u"] is not None else None, p["sigma"][d],
        design.x[pick], design.onehot[pick], eps, design.group_index,
    )
    for k, g in enumerate(design.groups):
        vals = float(study.assumption("reference_level", 1.0)) * np.exp(eta[:, design.slices[g]]).ravel()
        assert abs(np.median(vals) / got["median"][d, k] - 1) < 0.01
        assert abs(vals.mean() / got["mean"][d, k] - 1) < 0.01


def _module_constants(tree) -> set[str]:
    return {
        t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
        if isinstance(t, ast.Name) and t.id.isupper() and isinstance(node.value, ast.Constant) and isinstance(node.value.value, int)
    }


#: Module constants that slice an array, with the reason they cannot exceed its length.
BOUNDED_SLICES = {
    ("hierarchical.py", "TEST_REPS"): lambda: __import__("models.hierarchical", fromlist=["x"]).TEST_REPS
    <= __import__("models.hierarchical", fromlist=["x"]).MIN_REPS,
}


def test_no_integer_constant_silently_caps_a_slice():
    """A constant used as a slice bound (``x[:LIMIT]``) returns fewer elements than it
    promises whenever the array is shorter: each such use must be registered here with the
    check that it cannot be (this is how 40 promised design cohorts became 5)."""
    found = set()
    for path in sorted((ROOT / "models").glob("*.py")):
        tree = ast.parse(path.read_text())
        consts = _module_constants(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Slice):
                for bound in (node.lower, node.upper):
                    if isinstance(bound, ast.Name) and bound.id in consts:
                        found.add((path.name, bound.id))
    unregistered = found - set(BOUNDED_SLICES)
    assert not unregistered, f"constants used as slice bounds without a registered bound check: {sorted(unregistered)}"
    for key, check in BOUNDED_SLICES.items():
        assert check(), key

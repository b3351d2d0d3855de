"""The fit's figures are readable on a page: measured on the rendered artists.

Each figure is built from a small synthetic posterior shaped like a covariate-model fit of
the real study file (no sampling), drawn once, and then measured in display coordinates:
legends against the plotted data, tick labels, font sizes at the width of an A4 page, the
words every text artist shows, and the units of the axes.
"""
from __future__ import annotations

import re
from pathlib import Path

import arviz as az
import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.markers import MarkerStyle  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from models import effects  # noqa: E402
from models import wording as figure_labels  # noqa: E402
from reanalysis.figures import plots, sensitivity as sensitivity_plots  # noqa: E402
from models.cohort import build_design  # noqa: E402
from models.study import load_study  # noqa: E402

STUDY_PATH = Path(__file__).resolve().parents[2] / "data" / "studies" / "lasemi2018.yaml"
#: Text width of an A4 page with 2.5 cm margins (inches) and the smallest readable print size.
PAGE_WIDTH = 6.3
MIN_POINTS = 7.0
#: Identifiers of the study file and the model: a name indexed with brackets
#: (``effect_z[ms, female]``), a word joined by underscores (``age_decades``), the estimand
#: notation of the tables (``P(X_a > X_b)``) and a percentage "per unit" of nothing named.
INTERNAL = [re.compile(r"\w\["), re.compile(r"[A-Za-z0-9]_[A-Za-z0-9]"), re.compile(r"P\(X_"), re.compile(r"% per unit")]
FIGURES = ["ratio_posterior", "group_values", "effects_forest", "percent_effects", "level_vs_covariate", "prior_posterior", "predictive_checks",
           "sensitivity_ratio", "sensitivity_claim", "rank_plots"]
#: Figures whose symbols are explained in their title or axis label instead of a legend.
NO_LEGEND = {"predictive_checks", "sensitivity_ratio", "sensitivity_claim", "rank_plots"}


def _posterior(study, design, rng, chains=2, draws=300):
    """Draws of the covariate model's parameters near the real fit (control levels about
    800 ng/ml, patients 3.8-fold lower, posterior of the first group's level fifty times
    narrower than its prior), with the model's deterministic quantities and estimands."""
    G, C, L = len(design.groups), len(design.covariates), len(design.levels)
    pooled = [c for j, c in enumerate(design.covariates) if design.defined[:, j].all()]
    shape = (chains, draws)

    def normal(mu, sd, extra=()):
        return rng.normal(mu, sd, size=shape + tuple(extra))

    free = {
        "intercept": normal(np.log(800 / 300), 0.05),
        "group_difference": normal(-1.33, 0.05, (G - 1,)),
        "effect": normal(np.array([-0.25, -0.08, -0.18, 0.45]), 0.12, (C,)),
        "effect_spread": np.abs(normal(0.0, 0.08, (len(pooled),))),
        "effect_z": normal(0.0, 1.0, (G, len(pooled))),
        "category_spread": np.abs(normal(0.0, 0.25)),
        "category_z": normal(0.0, 1.0, (L,)),
        "log_sigma": normal(-1.6, 0.2, (G,)),
    }
    prior = {
        "intercept": normal(0.0, 3.0), "group_difference": normal(0.0, 2.0, (G - 1,)), "effect": normal(0.0, 0.5, (C,)),
        "effect_spread": np.abs(normal(0.0, 0.1, (len(pooled),))), "effect_z": normal(0.0, 1.0, (G, len(pooled))),
        "category_spread": np.abs(normal(0.0, 0.3)), "category_z": normal(0.0, 1.0, (L,)), "log_sigma": normal(-1.2, 0.5, (G,)),
    }
    slope = np.broadcast_to(free["effect"][:, :, None, :], shape + (G, C)).copy()
    for k, c in enumerate(pooled):
        j = design.covariates.index(c)
        slope[..., j] += free["effect_spread"][..., k, None] * free["effect_z"][..., k]
    post = {
        **free,
        "alpha": free["intercept"][..., None] + np.concatenate([np.zeros(shape + (1,)), free["group_difference"]], axis=-1),
        "slope": np.where(design.defined, slope, 0.0),
        "u": free["category_spread"][..., None] * free["category_z"],
        "sigma": np.exp(free["log_sigma"]),
    }
    coords = {"group": list(design.groups), "contrast": list(design.groups[1:]), "covariate": list(design.covariates),
              "pooled_covariate": pooled, "level": list(design.levels)}
    dims = {"group_difference": ["contrast"], "effect": ["covariate"], "effect_spread": ["pooled_covariate"],
            "effect_z": ["group", "pooled_covariate"], "category_z": ["level"], "log_sigma": ["group"], "alpha": ["group"],
            "slope": ["group", "covariate"], "u": ["level"], "sigma": ["group"]}
    idata = az.from_dict(posterior=post, prior=prior, coords=coords, dims=dims)
    return effects.add_effects(idata, study, design), list(free)


@pytest.fixture(scope="module")
def study():
    return load_study(STUDY_PATH)


def _sensitivity_table() -> pd.DataFrame:
    """A sensitivity results table (reanalysis.sensitivity.results_table) of four scenarios, one
    failed and one sharing another's posterior, for a ratio and a claim probability."""
    scenarios = [("default", "ok", ""), ("priors=wide", "ok", ""), ("age_distribution={distribution: normal, mean: 35, sd: 14}", "ok", ""),
                 ("group_test=welch_t", "failed", "default")]
    rows = []
    for i, (name, status, shared) in enumerate(scenarios):
        rows.append({"scenario": name, "estimand": "ratio_of_medians[control_vs_ms]", "label": "ratio of population medians (control_vs_ms)",
                     "units": "fold", "median": 3.8 + 0.1 * i, "hdi_low": 3.1 + 0.05 * i, "hdi_high": 4.5 + 0.2 * i, "null": 1.0,
                     "status": status, "same_posterior_as": shared})
        rows.append({"scenario": name, "estimand": "P(effect_percent[female] < 0)", "label": "posterior probability that the female effect is lower, as claimed",
                     "units": "probability", "median": 0.93 - 0.02 * i, "hdi_low": np.nan, "hdi_high": np.nan, "null": np.nan,
                     "status": status, "same_posterior_as": shared})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def figures(study):
    """Every figure of a covariate-model fit, built as scripts/fit.py builds it and drawn."""
    from reanalysis.analysis import model_api

    api = model_api("hierarchical")
    design = build_design(study, 5, 0)
    idata, free = _posterior(study, design, np.random.default_rng(20180302))
    cohorts, assoc = effects.simulate_predictive(idata, study, design, None, n_draws=300, seed=1)
    pstats = api.predictive_statistics({**cohorts, **assoc}, study)
    info = pd.DataFrame({"estimand": ["effect_percent[female]", "slope_percent[ms, age_decades]"],
                         "label": ["prior-data conflict", "from a qualitative claim read through assumed covariate distributions"]})
    built = {
        "ratio_posterior": plots.ratio_figure(idata, study),
        "group_values": plots.group_values_figure(idata, study),
        "effects_forest": plots.effects_forest_figure(idata, study),
        "percent_effects": plots.percent_effects_figure(idata, study, info),
        "level_vs_covariate": plots.covariate_figure(effects.covariate_view(idata, study, design, None, seed=3), study),
        "prior_posterior": plots.prior_posterior_figure(idata, free, api.parameter_scales, study),
        "predictive_checks": plots.predictive_figure(pstats, api.check_table(pstats, study), study),
        "sensitivity_ratio": sensitivity_plots.forest_figure(_sensitivity_table(), "ratio_of_medians[control_vs_ms]", study=study),
        "sensitivity_claim": sensitivity_plots.forest_figure(_sensitivity_table(), "P(effect_percent[female] < 0)", study=study),
        "rank_plots": plots.rank_figure(idata, free, study),
    }
    for fig in built.values():
        fig.canvas.draw()
    yield built
    for fig in built.values():
        plt.close(fig)


# -- measurements -----------------------------------------------------------------------------
def _panels(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def _legends(fig):
    return list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]


def _texts(fig):
    """Every visible text artist with text: titles, labels, tick labels, legend entries."""
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and (t.axes is None or t.axes.get_visible())]


def _inside(region: Bbox, points: np.ndarray) -> bool:
    x, y = np.asarray(points, float).reshape(-1, 2).T
    return bool(np.any((x >= region.x0) & (x <= region.x1) & (y >= region.y0) & (y <= region.y1)))


def _covers(region: Bbox, artist) -> bool:
    """Whether ``artist`` (a line, marker collection or filled patch, in display coordinates)
    reaches into ``region``."""
    if isinstance(artist, PathCollection):
        points = artist.get_offset_transform().transform(artist.get_offsets())
        return _inside(region, points)
    if isinstance(artist, Line2D):
        path = artist.get_transform().transform_path(artist.get_path())
        if artist.get_marker() not in (None, "None", "", " "):
            return _inside(region, path.vertices) or path.intersects_bbox(region, filled=False)
        return path.intersects_bbox(region, filled=False)
    if hasattr(artist, "get_paths"):  # bands (fill_between) and other collections of areas
        return any(artist.get_transform().transform_path(p).intersects_bbox(region, filled=True) for p in artist.get_paths())
    path = artist.get_transform().transform_path(artist.get_path())
    return path.intersects_bbox(region, filled=True)


def _numeric_tick_labels(axis) -> list[str] | None:
    """The labels of the major ticks inside the axis' view; None for an axis that shows no
    numbers: ticks labelled with names (a forest plot's rows) or without labels (an axis
    shared with the panel beside it)."""
    lo, hi = sorted(axis.get_view_interval())
    tol = 1e-9 * abs(hi - lo)
    index = 0 if axis.axis_name == "x" else 1
    labels = [t.get_text() for t in axis.get_majorticklabels() if t.get_visible() and lo - tol <= t.get_position()[index] <= hi + tol]
    # mathtext and exponents of numbers written in powers of ten are not names
    names = [t for t in labels if re.search(r"[A-Za-z]", re.sub(r"\\mathdefault|\\times|\d[eE][+-]?\d", "", t))]
    if names or not any(t.strip() for t in labels):
        return None
    return labels


def _plain_number(text: str) -> bool:
    return re.fullmatch(r"-?\d[\d,]*(\.\d+)?%?", text.replace("\u2212", "-").strip()) is not None


def _marker_key(path) -> tuple:
    return tuple(np.round(path.vertices / max(np.abs(path.vertices).max(), 1e-12), 3).ravel())


# -- tests ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FIGURES)
def test_legends_do_not_cover_data(figures, name):
    """No legend lies over a plotted point, line, bar or band of any panel."""
    fig = figures[name]
    assert _legends(fig) or name in NO_LEGEND, "a figure without a legend leaves its symbols unexplained"
    for legend in _legends(fig):
        box = legend.get_window_extent()
        for ax in _panels(fig):
            region = Bbox.intersection(box, ax.bbox)
            if region is None or region.width <= 0 or region.height <= 0:
                continue
            for artist in [*ax.lines, *ax.collections, *ax.patches]:
                assert not _covers(region, artist), f"{name}: the legend covers {type(artist).__name__} {artist.get_label()!r} in panel {ax.get_title()!r}"


@pytest.mark.parametrize("name", FIGURES)
def test_every_numeric_axis_has_three_readable_ticks(figures, name):
    """Each numeric axis shows at least three tick labels, all plain numbers (a ratio axis
    from 1 to 4.5 labelled '1.00' alone cannot be read)."""
    for ax in _panels(figures[name]):
        for axis in (ax.xaxis, ax.yaxis):
            labels = _numeric_tick_labels(axis)
            if labels is None:
                continue
            readable = [t for t in labels if _plain_number(t)]
            assert len(readable) >= 3, f"{name}: {axis.axis_name} axis of {ax.get_title()!r} / {axis.get_label_text()!r} has tick labels {labels}"


@pytest.mark.parametrize("name", FIGURES)
def test_log_axes_are_labelled_with_plain_numbers(figures, name):
    """A log axis over one or two decades reads 200, 500, 1000, not 2x10^2 or 10^3."""
    log_axes = [axis for ax in _panels(figures[name]) for axis in (ax.xaxis, ax.yaxis) if axis.get_scale() == "log"]
    for axis in log_axes:
        lo, hi = sorted(axis.get_view_interval())
        index = 0 if axis.axis_name == "x" else 1
        ticks = axis.get_majorticklabels() + axis.get_minorticklabels()
        labels = [t.get_text() for t in ticks if t.get_visible() and t.get_text() and lo <= t.get_position()[index] <= hi]
        sci = [t for t in labels if re.search(r"\\times|\^|10\^|e[+-]\d", t)]
        assert not sci, f"{name}: log axis {axis.get_label_text()!r} labels {sci}"


@pytest.mark.parametrize("name", FIGURES)
def test_text_is_at_least_7_points_at_page_width(figures, name):
    """Printed at the width of an A4 page (6.3 inches; a wider figure is shrunk to it), every
    text is at least 7 pt."""
    fig = figures[name]
    shrink = min(1.0, PAGE_WIDTH / fig.get_figwidth())
    small = {t.get_text()[:40]: round(t.get_fontsize() * shrink, 1) for t in _texts(fig) if t.get_fontsize() * shrink < MIN_POINTS - 1e-9}
    assert not small, f"{name} ({fig.get_figwidth():.1f} in wide): text below {MIN_POINTS} pt at page width: {small}"


@pytest.mark.parametrize("name", FIGURES)
def test_text_never_shows_internal_names(figures, name):
    """Titles, labels, ticks and legends use the study file's words, never identifiers such
    as effect_z[ms, female], age_decades or P(X_a > X_b)."""
    bad = [t.get_text() for t in _texts(figures[name]) if any(p.search(t.get_text()) for p in INTERNAL)]
    assert not bad, f"{name}: {bad}"
    # and no word left empty in a template ("MS subtype : effect", ": deviation of ...")
    empty = [t.get_text() for t in _texts(figures[name]) if re.search(r"(^|\s):|\bof \(", t.get_text(), re.M)]
    assert not empty, f"{name}: {empty}"


def test_axes_name_their_units(figures, study):
    """Axes of levels carry the analyte's units, covariate axes the covariate's, ratio axes
    'fold' and percent axes '%' with the contrast in words; no '1/fold' or '% per unit'."""
    units = study.analyte.units
    labels = {name: [ax.get_xlabel() + " " + ax.get_ylabel() for ax in _panels(fig)] for name, fig in figures.items()}
    assert all(units in t for t in labels["group_values"])
    cov = figures["level_vs_covariate"]
    assert units in _panels(cov)[0].get_ylabel() and all("(years)" in ax.get_xlabel() for ax in _panels(cov))
    assert all("fold" in ax.get_xlabel() for ax in _panels(figures["ratio_posterior"]))
    assert "fold" in _panels(figures["effects_forest"])[0].get_xlabel()
    assert "%" in _panels(figures["percent_effects"])[0].get_xlabel()
    everything = [t for ts in labels.values() for t in ts]
    assert not [t for t in everything if "1/fold" in t or "% per unit" in t]
    # every percent-effect row says what one unit of its covariate compares
    rows = [t.get_text() for t in _panels(figures["percent_effects"])[0].get_yticklabels()]
    for c in study.covariates:
        if not study.covariates[c].categorical:
            assert any(r.startswith(figure_labels.effect_contrast(study, c)) for r in rows), (c, rows)


def test_covariate_figure_explains_every_marker(figures):
    """Each marker shape of the simulated subjects has a legend entry (a third cohort's
    squares went unexplained)."""
    fig = figures["level_vs_covariate"]
    shapes = {_marker_key(p) for ax in _panels(fig) for c in ax.collections if isinstance(c, PathCollection) for p in c.get_paths()}
    explained = set()
    for legend in _legends(fig):
        for handle in legend.legend_handles:
            if isinstance(handle, PathCollection):
                explained |= {_marker_key(p) for p in handle.get_paths()}
            elif isinstance(handle, Line2D) and handle.get_marker() not in (None, "None", "", " "):
                m = MarkerStyle(handle.get_marker())
                explained.add(_marker_key(m.get_path().transformed(m.get_transform())))
    assert len(shapes) >= 3 and shapes <= explained, f"{len(shapes - explained)} of {len(shapes)} marker shapes without a legend entry"


def test_prior_is_visible_in_every_prior_posterior_panel(figures):
    """The prior (grey) reaches at least a quarter of each panel's height, even where the
    posterior is fifty times narrower (drawn on one density scale it was a flat line)."""
    fig = figures["prior_posterior"]
    grey = matplotlib.colors.to_rgb("gray")
    for ax in _panels(fig):
        priors = [p for p in ax.patches if np.allclose(p.get_facecolor()[:3], grey, atol=0.02)]
        assert priors, f"no prior drawn in {ax.get_xlabel()!r}"
        height = max(p.get_window_extent().height for p in priors) / ax.bbox.height
        assert height >= 0.25, f"prior {height:.0%} of the panel height in {ax.get_xlabel()!r}"


def test_effect_contrasts_follow_the_study_file(study):
    """Covariate effects are named by what one unit compares, from the study file alone."""
    assert figure_labels.effect_contrast(study, "female") == "female vs male"
    assert figure_labels.effect_contrast(study, "age_decades") == "age, per decade"
    assert figure_labels.effect_contrast(study, "optic_lesion") == "optic nerve lesion, with vs without"
    assert figure_labels.effect_contrast(study, "attacks_per_year") == "attacks per year, per +1"
    assert figure_labels.parameter_label(study, "group_difference", {"contrast": "ms"}) == "MS patients relative to Healthy controls"
    assert figure_labels.estimand_label(study, "prob_superiority[control_vs_ms]") == ("Healthy controls vs MS patients: probability of superiority", "probability")
    assert figure_labels.estimand_label(study, "slope_percent[ms, age_decades]") == ("MS patients: effect of age, per decade", "% change")
    # without the study file the identifiers are at least made readable
    assert figure_labels.parameter_label(None, "effect", {"covariate": "age_decades"}) == "effect of age decades"


def test_predictive_figure_draws_a_test_across_several_groups():
    """The YKL-40 study's Kruskal-Wallis p over three groups gets its own panel."""
    from models.checks import check_table, predictive_statistics
    from models.families import get_family
    from models.simulate import simulate_group, sorted_normals
    from models.study import load_study

    study = load_study(Path(__file__).resolve().parents[2] / "data" / "studies" / "arqneuro2021ykl40.yaml")
    rng = np.random.default_rng(2)
    centres = {"cis": 22.0, "rrms": 25.0, "control": 11.5}
    cohorts = {g: simulate_group(np, get_family("lognormal"), sorted_normals(rng, 200, study.n(g)), centres[g], 0.4) for g in study.group_ids}
    stats = predictive_statistics(cohorts, study)
    checks = check_table(stats, study)
    row = checks.set_index("key").loc["three_groups.p_value"]
    assert row["kind"] == "claim" and row["share_claim_holds"] > 0.5
    fig = plots.predictive_figure(stats, checks, study)
    titles = [ax.get_xlabel() for ax in fig.axes if ax.get_visible()]
    assert any("p-value" in t for t in titles)
    plt.close(fig)

"""A self-contained HTML report of one result folder, for reviewers.

:func:`write_report` reads a result folder written by ``scripts/fit.py`` (manifest, tables,
figures, InferenceData), the study file named in its manifest and the study's reference data,
and writes ``report.html`` into the folder: one file, figures embedded as base64 PNG data
URIs, inline CSS only, no scripts, and a Content-Security-Policy that forbids loading anything
(so a copy mailed to a reviewer shows the same thing offline).  The functions here compute
the content as plain data (sentences, formatted numbers, tables as rows of strings, figures as
base64 PNG); the Jinja2 templates in ``templates/`` draw the markup, and their autoescaping
escapes every value.  The file is written to a temporary name and renamed into place, so a
failed run never leaves a half-written report.

Plotting only: the energy plot is drawn from the stored draws; nothing is sampled here.
Heavy imports (ArviZ, matplotlib) happen only after the folder has been checked, so a bad
folder fails in about a second with one line.
"""
from __future__ import annotations

import base64
import datetime as dt
import io
import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jinja2
import pandas as pd

from reanalysis.informativeness import shown_label
from reanalysis.results import file_sha256
from models.study import STATISTIC_LABELS, Study, StudyError, load_study

ROOT = Path(__file__).resolve().parents[2]
REPORT_NAME = "report.html"
#: Files every result folder must have for a report.
REQUIRED = ("manifest.json", "estimands.csv", "checks.csv", "summary.csv", "idata.nc")
INFO_FILE = "informativeness.csv"
ITEMS_FILE = "published_items.csv"
FAMILIES_FILE = "family_comparison.csv"
_COLUMNS = {
    "estimands.csv": ("estimand", "label", "units", "median", "hdi_low", "hdi_high"),
    INFO_FILE: ("estimand", "contraction", "psens_prior", "psens_likelihood", "label"),
    "checks.csv": ("item", "key", "kind", "units", "published", "predictive_median", "predictive_low", "predictive_high",
                   "p_two_sided", "share_at_or_above", "share_claim_holds", "verdict"),
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

#: Figures fit.py writes: section, alt text, caption (what to look for).
KNOWN_FIGURES = {
    "predictive_checks.png": (
        "checks",
        "Histograms of each published statistic over simulated cohorts, published value as a red line",
        "Posterior predictive checks, one panel per published number: grey, the statistic over cohorts of the "
        "published sizes simulated from the posterior; red, the published value. Look first for red lines far in a tail "
        "(verdict 'not reproduced' in the panel title): the model cannot produce that number together with the others. "
        "Titles give the two-sided predictive p, or for a claim the share of simulated cohorts in which it holds; an exact "
        "published value is drawn as the band of values that print as it.",
    ),
    "group_values.png": (
        "groups",
        "Per group, posterior 95% intervals of the population median and mean on a log axis, with published values as red diamonds",
        "Each group's population median and mean: bar, 95% HDI; circle, posterior median; red diamond, the published "
        "sample value. Look for diamonds far outside their bar; a diamond slightly off-centre is ordinary sampling error.",
    ),
    "ratio_posterior.png": (
        "groups",
        "Posterior densities of the between-group ratio of medians and of means, with published ratios and claimed thresholds marked",
        "Posterior of each between-group ratio of population medians (left) and means (right), 95% HDI shaded. Red: the "
        "ratio of the published sample statistics; dashed: a claimed threshold. Look for a red or dashed line in a tail: "
        "the published ratio or claim is then hard to reconcile with the other numbers.",
    ),
    "effects_forest.png": (
        "effects",
        "Forest plot of the between-group effects with 95% intervals",
        "Every between-group effect on one axis: point, posterior median; thick bar, 50% interval; thin bar, 95% HDI. "
        "Look at where the bars sit relative to the no-difference line (1 for ratios, 0.5 for the probability of superiority).",
    ),
    "percent_effects.png": (
        "effects",
        "Forest plot of the covariate effects in percent, pooled and per group, with each row's informativeness label",
        "Each covariate effect as a percent change per unit of the covariate (as labelled on the axis and rows), pooled "
        "across groups and per group: circle, posterior median; thick bar, 50% interval; "
        "thin bar, 95% HDI; dotted line, no effect. The label in brackets says how much the row is informed by the "
        "published data (see the next section). Look for bars that cross the dotted line: the paper's numbers do not "
        "settle the direction.",
    ),
    "level_vs_covariate.png": (
        "effects",
        "Levels against a covariate by group: subjects of predictive cohorts, posterior regression lines per breakdown level, published medians",
        "Levels against the plotted covariate (log axis), one panel per group: points, subjects of a few cohorts simulated "
        "from the posterior; lines and bands, the posterior typical level per level of the breakdown (median, 90% band); "
        "dashed, the published median. Look for a published median far from where the simulated subjects sit.",
    ),
    "prior_posterior.png": (
        "prior",
        "Prior and posterior densities of each group parameter",
        "Prior (grey) and posterior (blue) of each sampled parameter. A posterior much narrower than its prior is "
        "informed by the published numbers; one that looks like its prior is driven by the prior and assumptions.",
    ),
    "rank_plots.png": (
        "diagnostics",
        "Rank plots of the sampled parameters for each chain",
        "Rank plots per chain (Vehtari et al. 2021), drawn as each chain's count per rank bin minus the uniform count. "
        "Look for small deviations scattered around the dashed line: a chain whose deviations run in one direction over "
        "a stretch of ranks did not explore the same distribution as the others.",
    ),
}


class ReportError(Exception):
    """The result folder (or a file it names) is missing or unusable.  ``str()`` is one line."""


def one_line(text: str) -> str:
    return " ".join(str(text).split())


# -- number formatting (also used by tests to find the numbers in the page) ---------------------
def fmt_number(x) -> str:
    """3 significant figures; whole numbers (with thousands separators) from 100 on;
    scientific below 0.001; an en dash for a missing value."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(x):
        return "–"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) < 1e-3:
        return f"{x:.2e}"
    return f"{x:#.3g}"


def fmt_value(x, units: str = "") -> str:
    """A number as the report shows it: probabilities with three decimals, others by
    :func:`fmt_number`."""
    if str(units).strip().lower() == "probability":
        try:
            x = float(x)
        except (TypeError, ValueError):
            return str(x)
        return f"{x:.3f}" if math.isfinite(x) else "–"
    return fmt_number(x)


# -- inputs ---------------------------------------------------------------------------------
@dataclass
class ResultFolder:
    path: Path
    manifest: dict
    estimands: pd.DataFrame
    checks: pd.DataFrame
    summary: pd.DataFrame
    evidence: pd.DataFrame | None
    informativeness: pd.DataFrame | None
    figures: dict[str, bytes]
    published_items: pd.DataFrame | None
    study: Study
    study_changed: bool
    family_comparison: pd.DataFrame | None = None


def _renamed_check_columns(df: pd.DataFrame) -> pd.DataFrame:
    """A checks table written before the columns were named for what they hold: ``ppp`` was
    the share at or above a number, or the share of cohorts where a claim holds, and
    ``ppp_two_sided`` the two-sided p-value."""
    if "ppp" not in df.columns or "p_two_sided" in df.columns or "kind" not in df.columns:
        return df
    df = df.copy()
    number = df["kind"] == "number"
    df["p_two_sided"] = df["ppp_two_sided"] if "ppp_two_sided" in df.columns else float("nan")
    df["share_at_or_above"] = df["ppp"].where(number)
    df["share_claim_holds"] = df["ppp"].where(~number)
    return df.drop(columns=[c for c in ("ppp", "ppp_two_sided") if c in df.columns])


def _read_csv(path: Path, name: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, index_col=0 if name == "summary.csv" else None)
    except Exception as exc:  # pandas raises several types for unreadable CSV
        raise ReportError(f"{path}: cannot read ({one_line(exc)})") from None
    if name == "checks.csv":
        df = _renamed_check_columns(df)
    missing = [c for c in _COLUMNS.get(name, ()) if c not in df.columns]
    if missing:
        raise ReportError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def _study_path(manifest: dict, result_dir: Path) -> Path:
    try:
        raw = manifest["study"]["path"]
    except (KeyError, TypeError):
        raise ReportError(f"{result_dir / 'manifest.json'}: no study.path") from None
    p = Path(raw)
    if not p.is_absolute() and not p.exists():
        p = ROOT / p
    if not p.is_file():
        raise ReportError(f"study file {raw} (manifest.json study.path) not found")
    return p


def load_result(result_dir: Path) -> ResultFolder:
    """Check and read a result folder; every problem is a one-line :class:`ReportError`."""
    result_dir = Path(result_dir)
    if not result_dir.is_dir():
        raise ReportError(f"{result_dir}: not a folder (give a result folder written by scripts/fit.py)")
    missing = [f for f in REQUIRED if not (result_dir / f).is_file()]
    if missing:
        raise ReportError(f"{result_dir}: missing {', '.join(missing)} (not a complete result folder of scripts/fit.py)")
    try:
        manifest = json.loads((result_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{result_dir / 'manifest.json'}: cannot read ({one_line(exc)})") from None
    if not isinstance(manifest, dict):
        raise ReportError(f"{result_dir / 'manifest.json'}: not a JSON object")
    listed = [f for f in manifest.get("files", []) if not (result_dir / f).is_file()]
    if listed:
        raise ReportError(f"{result_dir}: missing {', '.join(listed)} (listed in manifest.json)")
    figures = {}
    figdir = result_dir / "figures"
    for p in sorted(figdir.glob("*.png")) if figdir.is_dir() else []:
        data = p.read_bytes()
        if not data.startswith(PNG_SIGNATURE):
            raise ReportError(f"{p}: not a PNG file")
        figures[p.name] = data
    spath = _study_path(manifest, result_dir)
    try:
        study = load_study(spath)
    except StudyError as exc:
        raise ReportError(str(exc)) from None
    recorded = (manifest.get("study") or {}).get("sha256")
    return ResultFolder(
        path=result_dir,
        manifest=manifest,
        estimands=_read_csv(result_dir / "estimands.csv", "estimands.csv"),
        checks=_read_csv(result_dir / "checks.csv", "checks.csv"),
        summary=_read_csv(result_dir / "summary.csv", "summary.csv"),
        evidence=_read_csv(result_dir / "evidence.csv", "evidence.csv") if (result_dir / "evidence.csv").is_file() else None,
        informativeness=_read_csv(result_dir / INFO_FILE, INFO_FILE) if (result_dir / INFO_FILE).is_file() else None,
        figures=figures,
        published_items=_read_csv(result_dir / ITEMS_FILE, ITEMS_FILE) if (result_dir / ITEMS_FILE).is_file() else None,
        study=study,
        study_changed=bool(recorded) and recorded != study.sha256,
        family_comparison=_read_csv(result_dir / FAMILIES_FILE, FAMILIES_FILE) if (result_dir / FAMILIES_FILE).is_file() else None,
    )


@dataclass
class Sensitivity:
    path: Path
    kind: str  # "table" or "runs"
    table: pd.DataFrame
    figures: dict[str, bytes] = field(default_factory=dict)
    note: str = ""


def _is_result(p: Path) -> bool:
    return (p / "manifest.json").is_file() and (p / "estimands.csv").is_file()


def load_sensitivity(path: Path, main: ResultFolder) -> Sensitivity:
    """A sensitivity folder is either a table (``sensitivity.csv``, shown as it is, with any
    ``figures/*.png``) or a folder of result folders (or one result folder), compared with the
    main result on the headline estimands."""
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"--sensitivity {path}: not a folder")
    if (path / "sensitivity.csv").is_file():
        table = _read_csv(path / "sensitivity.csv", "sensitivity.csv")
        figs = {}
        for p in sorted((path / "figures").glob("*.png")) if (path / "figures").is_dir() else []:
            data = p.read_bytes()
            if not data.startswith(PNG_SIGNATURE):
                raise ReportError(f"{p}: not a PNG file")
            figs[p.name] = data
        note = ""
        if (path / "README.md").is_file():
            note = (path / "README.md").read_text(encoding="utf-8", errors="replace")[:2000]
        return Sensitivity(path, "table", table, figs, note)
    runs = [path] if _is_result(path) else sorted(p for p in path.iterdir() if p.is_dir() and _is_result(p))
    runs = [r for r in runs if r.resolve() != main.path.resolve()]
    if not runs:
        raise ReportError(
            f"--sensitivity {path}: no sensitivity.csv and no result folders (manifest.json + estimands.csv) in it"
        )
    keys = headline_keys(main.estimands, main.study)
    rows = [_run_row("this result", main.manifest, main.manifest, main.estimands, keys)]
    for r in runs:
        try:
            m = json.loads((r / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ReportError(f"{r / 'manifest.json'}: cannot read ({one_line(exc)})") from None
        rows.append(_run_row(r.name, m, main.manifest, _read_csv(r / "estimands.csv", "estimands.csv"), keys))
    return Sensitivity(path, "runs", pd.DataFrame(rows))


def _setting(m: dict, key: str):
    if key == "study":
        return (m.get("study") or {}).get("sha256", "")[:12]
    if key == "reps":
        return (m.get("likelihood") or {}).get("reps")
    if key == "draws":
        return (m.get("sampler") or {}).get("draws")
    return m.get(key)


def _run_row(name: str, m: dict, base: dict, est: pd.DataFrame, keys: list[str]) -> dict:
    settings = ("model", "family", "prior_set", "study", "reps", "seed", "draws")
    diff = [f"{k}={_setting(m, k)}" for k in settings if _setting(m, k) != _setting(base, k)]
    row = {"run": name, "differs from this result in": ", ".join(diff) if name != "this result" else "(baseline)",
           "diagnostics": "OK" if (m.get("diagnostics") or {}).get("ok") else "FAILED"}
    t = est.set_index("estimand")
    for k in keys:
        if k in t.index:
            r = t.loc[k]
            cell = fmt_value(r["median"], r["units"])
            if pd.notna(r["hdi_low"]):
                cell += f" ({fmt_value(r['hdi_low'], r['units'])} to {fmt_value(r['hdi_high'], r['units'])})"
            row[k] = cell
        else:
            row[k] = "–"
    return row


# -- wording --------------------------------------------------------------------------------
def _split(key: str) -> tuple[str, str]:
    if "[" in key and key.endswith("]") and not key.startswith("P("):
        var, idx = key.split("[", 1)
        return var, idx[:-1]
    return key, ""


def headline_keys(estimands: pd.DataFrame, study: Study) -> list[str]:
    """Comparison-level estimands and claim probabilities, in table order."""
    out = []
    for k in estimands["estimand"]:
        var, idx = _split(k)
        if idx in study.comparisons or k.startswith("P("):
            out.append(k)
    return out


def plain_sentence(row: pd.Series, study: Study) -> str:
    """One estimand in plain language, with its 95% interval."""
    var, idx = _split(row["estimand"])
    u = str(row["units"])
    m = fmt_value(row["median"], u)
    interval = ""
    if pd.notna(row["hdi_low"]):
        interval = f" (95% interval {fmt_value(row['hdi_low'], u)} to {fmt_value(row['hdi_high'], u)})"
    if idx in study.comparisons:
        a, b = (study.groups[g].label for g in study.comparisons[idx].groups)
        if var in ("ratio_of_medians", "ratio_of_means"):
            stat = "median" if var == "ratio_of_medians" else "mean"
            return f"The population {stat} of {a} is {m} times that of {b}{interval}."
        if var == "difference_in_medians":
            return f"The population median of {a} minus that of {b} is {m} {u}{interval}."
        if var == "prob_superiority":
            return (f"A randomly chosen member of {a} has a higher value than a randomly chosen member of {b} "
                    f"with probability {m}{interval}.")
    if idx in study.groups and var in ("median", "mean"):
        return f"{study.groups[idx].label}: population {var} {m} {u}{interval}."
    if idx in study.groups and var == "cv":
        return f"{study.groups[idx].label}: coefficient of variation (SD / mean) {m}{interval}."
    if str(row["estimand"]).startswith("P("):
        return f"{str(row['label'])[0].upper()}{str(row['label'])[1:]}: {m}."
    return f"{row['label']}: {m} {u}{interval}."


# -- blocks: the content of a section as plain data, drawn by templates/macros.html.j2 --------
#: The Jinja2 templates, shipped as package data (pyproject.toml) next to this module.
TEMPLATES = Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    """The template environment: every value is escaped on output (autoescape), and a name
    the templates use but the caller did not pass is an error, not an empty string."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["fail"] = _fail
    return env


def _fail(message: str):
    """Called by the templates on a block they cannot draw, so that content never silently
    drops out of the page."""
    raise ReportError(message)


@dataclass(frozen=True)
class Span:
    """Table-cell text drawn inside ``<span class="cls">`` (a verdict, a flag)."""

    text: str
    cls: str


def _img(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure(data: bytes, alt: str, caption: str, fig_id: str = "") -> dict:
    return {"kind": "figure", "src": _img(data), "alt": alt, "caption": caption, "id": fig_id}


def _cell(value, attrs: dict | None, numeric: bool) -> dict:
    attrs = dict(attrs or {})
    if numeric:
        attrs["class"] = (attrs.get("class", "") + " num").strip()
    if isinstance(value, Span):
        return {"text": value.text, "span": value.cls, "attrs": attrs}
    return {"text": str(value), "span": "", "attrs": attrs}


def _table(header: list[str], rows: list[list], caption: str = "", num_cols: set[int] | None = None,
           cell_attrs: list[list[dict | None]] | None = None) -> dict:
    """A table block; a cell is any value (shown as ``str``) or a :class:`Span`, and
    ``num_cols`` are right-aligned numeric columns."""
    num_cols = num_cols or set()
    cells = [[_cell(c, cell_attrs[i][j] if cell_attrs and cell_attrs[i] else None, j in num_cols)
              for j, c in enumerate(row)] for i, row in enumerate(rows)]
    return {"kind": "table", "header": [str(h) for h in header], "rows": cells, "caption": caption}


def _fig_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    from reanalysis.figures.workers import DPI

    # the result folder's figures' resolution, so that the report's own print alike
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _p(text: str, cls: str = "") -> dict:
    return {"kind": "p", "text": text, "cls": cls}


def _ul(items: list[str], cls: str = "") -> dict:
    return {"kind": "ul", "items": list(items), "cls": cls}


def _h3(text: str) -> dict:
    return {"kind": "h3", "text": text}


def _pre(text: str) -> dict:
    return {"kind": "pre", "text": text}


def render_blocks(blocks: list[dict]) -> str:
    """Blocks (``_p``, ``_ul``, ``_table``, ...) as HTML, escaped by the templates.

    Parameters
    ----------
    blocks : list of dict
        The content of one section, in order.

    Returns
    -------
    str
        The HTML of the blocks, as the report draws them inside a section.
    """
    return _environment().get_template("section.html.j2").render(blocks=blocks)


# -- sections (their order and headings are in templates/report.html.j2) ---------------------
def _source_text(study: Study, key: str | None, where: str | None = None) -> str:
    if not key:
        return ""
    src = study.sources.get(key)
    text = src.citation if src else key
    return f"{text}; {where}" if where else text


def _glance_blocks(r: ResultFolder) -> list[dict]:
    s = r.study
    out = [_p(s.citation)]
    facts = []
    if s.doi:
        facts.append(["DOI", s.doi])
    if s.design:
        facts.append(["Design", s.design])
    an = s.analyte
    facts.append(["Measured", f"{an.name} ({an.units})" + (f", by {an.assay}" if an.assay else "")
                  + (f" [source: {_source_text(s, an.source)}]" if an.source else "")])
    out.append(_table(["Item", "As published"], facts))
    rows = []
    for g in s.group_ids:
        grp = s.groups[g]
        rows.append([grp.label, "n", f"{int(grp.n.value)}", grp.n.status, _source_text(s, grp.n.source, grp.n.where) or grp.n.reason or ""])
        for cname, levels in grp.counts.items():
            for lvl, c in levels.items():
                rows.append([grp.label, f"{cname}: {lvl}", f"{int(c.value)}", c.status, _source_text(s, c.source, c.where) or c.reason or ""])
        for stat, num in grp.statistics.items():
            rows.append([grp.label, f"{STATISTIC_LABELS[stat]} ({an.units})", fmt_number(num.value), num.status,
                         _source_text(s, num.source, num.where) or num.reason or ""])
    out.append(_h3("Published numbers"))
    out.append(_table(["Group", "Quantity", "Value", "Status", "Source (where)"], rows, num_cols={2}))
    claims = []
    for cid, comp in s.comparisons.items():
        a, b = (s.groups[g].label for g in comp.groups)
        for k, c in comp.claims.items():
            shown = c.printed.strip() if c.printed else ("" if c.value is None else f"{c.value:g}")
            if c.low is not None:
                shown = f"{c.low:g} to {c.high:g}"
            stmt = c.text or f"{c.statistic} {c.relation or ''} {shown}".strip()
            claims.append([f"{a} vs {b}", stmt, c.status, _source_text(s, c.source, c.where) or c.reason or ""])
    for tid, gt in s.group_tests.items():
        for k, c in gt.claims.items():
            shown = c.printed.strip() if c.printed else f"{c.value:g}"
            claims.append([" vs ".join(s.groups[g].label for g in gt.groups) + f" ({gt.test})", c.text or f"p {c.relation} {shown}",
                           c.status, _source_text(s, c.source, c.where) or c.reason or ""])
    for k, c in s.associations.items():
        claims.append([f"association with {c.covariate}", c.text or f"{c.direction}", c.status, _source_text(s, c.source, c.where) or c.reason or ""])
    if claims:
        out.append(_h3("Published claims"))
        out.append(_table(["About", "Claim", "Status", "Source (where)"], claims))
    srcs = [[k, v.citation, v.url or "", v.note or ""] for k, v in s.sources.items()]
    out.append(_h3("Sources"))
    out.append(_table(["Key", "Citation", "Address (not a link)", "Note"], srcs))
    out.append(_p(f"Study file: {r.manifest['study'].get('path')} (id {s.id})."))
    return out


def _estimands_blocks(r: ResultFolder) -> list[dict]:
    s, est = r.study, r.estimands
    keys = headline_keys(est, s)
    by = est.set_index("estimand", drop=False)
    out = [_p("Posterior medians with 95% highest-density intervals (HDI), in natural units. Ratios are the first "
              "group of a comparison over the second.")]
    if keys:
        out.append(_ul([plain_sentence(by.loc[k], s) for k in keys], "keypoints"))
    group_rows = [k for k in est["estimand"] if k not in keys]
    if group_rows:
        out.append(_ul([plain_sentence(by.loc[k], s) for k in group_rows]))
    rows, attrs = [], []
    for _, row in est.iterrows():
        u = str(row["units"])
        rows.append([row["label"], fmt_value(row["median"], u),
                     fmt_value(row["hdi_low"], u), fmt_value(row["hdi_high"], u), u,
                     fmt_number(row.get("r_hat")) if "r_hat" in row else "–",
                     fmt_number(row.get("ess_bulk")) if "ess_bulk" in row else "–",
                     fmt_number(row.get("ess_tail")) if "ess_tail" in row else "–"])
        a = {"data-estimand": row["estimand"]}
        attrs.append([None, {**a, "data-stat": "median", "data-value": repr(float(row["median"]))},
                      {**a, "data-stat": "hdi_low", "data-value": repr(float(row["hdi_low"]))},
                      {**a, "data-stat": "hdi_high", "data-value": repr(float(row["hdi_high"]))},
                      None, None, None, None])
    out.append(_table(["Estimand", "Posterior median", "95% HDI low", "95% HDI high", "Units", "R-hat", "ESS bulk", "ESS tail"],
                     rows, "All estimands (estimands.csv)", num_cols={1, 2, 3, 5, 6, 7}, cell_attrs=attrs))
    if r.evidence is not None and len(r.evidence):
        ev = r.evidence
        erows = [[row["comparison"], fmt_number(row["t"]), fmt_number(row["df"]), fmt_number(row["prior_scale_r"]),
                  fmt_number(row["log10_bf10"])] for _, row in ev.iterrows()]
        out.append(_h3("Bayes factor for the group difference"))
        out.append(_p("JZS Bayes factor (as R BayesFactor's ttest.tstat) from the reported means, SDs and sizes, for "
                      "several prior scales r. log10 BF10 = 2 means the data are 100 times more likely under a difference "
                      "than under none; it assumes the reported t-test setting (normal data), not this model."))
        out.append(_table(["Comparison", "t", "df", "prior scale r", "log10 BF10"], erows, num_cols={1, 2, 3, 4}))
    return out


def _fmt_p(p) -> str:
    """A p-value or share with three decimals, as :func:`models.checks.format_p` prints it in
    figure titles (not imported: models.checks pulls in the simulator)."""
    try:
        p = float(p)
    except (TypeError, ValueError):
        return "-"
    return f"{p:.3f}" if math.isfinite(p) else "-"


def _verdict_cell(v: str) -> Span:
    return Span(str(v), "verdict-" + str(v).replace(" ", "-"))


def _checks_blocks(r: ResultFolder) -> list[dict]:
    c = r.checks.copy()
    c["_order"] = [0 if str(k).endswith(".median") else 1 for k in c["key"]]
    c = c.sort_values("_order", kind="stable")
    counts = c["verdict"].value_counts()
    summary = ", ".join(f"{n} {v}" for v, n in counts.items())
    out = [_p("Each published number is recomputed on cohorts of the published sizes simulated from the posterior. "
              "Predictive p (two-sided): twice the smaller of the shares of simulated values at or above and at or below "
              "the published one; small means the model rarely produces the published value. An exact published value "
              "(e.g. p = 0.02) is read as every value its printed digits round to (0.015 to 0.025). Claims (p < 0.001, "
              "more than three-fold, significantly lower) are judged by the share of simulated cohorts in which the claim "
              "holds. Verdict on either: reproduced (≥ 0.05), tension (0.01-0.05), not reproduced (< 0.01). The share of "
              f"simulated cohorts at or above the published value says on which side it lies. Medians first. Summary: {summary}.")]
    bad = c[c["verdict"] != "reproduced"]
    if len(bad):
        out.append(_p("Not reproduced or in tension: " + "; ".join(bad["item"].astype(str)) + ".", "banner"))
    rows = []
    for _, row in c.iterrows():
        u = str(row["units"])
        pub = row["published"]
        try:
            pub_s = fmt_value(float(pub), u)
        except (TypeError, ValueError):
            pub_s = str(pub)
        share = (f"{_fmt_p(row['share_at_or_above'])} at or above" if row["kind"] == "number"
                 else f"{_fmt_p(row['share_claim_holds'])} claim holds")
        rows.append([row["item"], pub_s, fmt_value(row["predictive_median"], u),
                     f"{fmt_value(row['predictive_low'], u)} to {fmt_value(row['predictive_high'], u)}", u,
                     _fmt_p(row["p_two_sided"]), share, _verdict_cell(row["verdict"])])
    out.append(_table(["Published item", "Published", "Simulated median", "Simulated 95% interval", "Units",
                      "Predictive p (two-sided)", "Share of simulated cohorts", "Verdict"],
                     rows, "Checks against the published numbers (checks.csv)", num_cols={1, 2, 5}))
    out.extend(_figures_for(r, "checks"))
    return out


def section_checks(r: ResultFolder) -> str:
    """The checks section's content as HTML, drawn as in the report.

    Parameters
    ----------
    r : ResultFolder
        Anything with the ``checks`` table and the ``figures`` of a result folder.

    Returns
    -------
    str
        The section's paragraphs, table and figures (no heading).
    """
    return render_blocks(_checks_blocks(r))


def _figures_for(r: ResultFolder, section: str) -> list[dict]:
    out = []
    for name, data in r.figures.items():
        sec, alt, cap = KNOWN_FIGURES.get(
            name, ("groups", f"Figure {name} from the result folder",
                   f"Figure {name} from the result folder (no description is registered for it in reanalysis/report/html.py).")
        )
        if sec == section:
            out.append(_figure(data, alt, cap, f"fig-{Path(name).stem}"))
    return out


def _informativeness_blocks(r: ResultFolder) -> list[dict]:
    """The informativeness table of fit.py (contraction, power-scaling sensitivity, label)."""
    info = r.informativeness
    if info is None or not len(info):
        return [_p(f"The result folder has no {INFO_FILE} (or it is empty): informativeness was not computed.", "note")]
    labels = dict(zip(r.estimands["estimand"], r.estimands["label"]))
    out = [_p("How much of each estimand comes from the published numbers rather than from the priors and the "
              "declared assumptions. Contraction: 1 minus the posterior variance over the prior variance (near 1: the "
              "data narrowed it; near 0: it is still its prior). Power-scaling sensitivity: how much the posterior "
              "moves when the top-level priors or the likelihood are raised to a power near 1, with a 90% Monte Carlo "
              "interval; 0.05 or more counts as sensitive, and a label is decided only when the interval lies on one "
              "side of 0.05 (otherwise it says undetermined). A prior-data conflict names the prior term that drives it.")]

    def with_interval(row, name):
        value = fmt_number(row[name])
        lo, hi = row.get(f"{name}_lo"), row.get(f"{name}_hi")
        if lo is None or pd.isna(lo):
            return value
        return f"{value} [{fmt_number(lo)}, {fmt_number(hi)}]"

    rows = [[labels.get(row["estimand"], row["estimand"]), fmt_number(row["contraction"]), with_interval(row, "psens_prior"),
             with_interval(row, "psens_likelihood"), shown_label(row, r.study)] for _, row in info.iterrows()]
    out.append(_table(["Estimand", "Contraction", "psens prior [90% MC]", "psens likelihood [90% MC]", "Label"], rows,
                     f"Informativeness ({INFO_FILE})", num_cols={1, 2, 3}))
    return out


def _figures_blocks(r: ResultFolder, section: str, missing: str) -> list[dict]:
    figs = _figures_for(r, section)
    return figs if figs else [_p(missing, "note")]


def _groups_blocks(r: ResultFolder) -> list[dict]:
    figs = _figures_for(r, "groups")
    if not figs:
        return [_p("The result folder has no group or ratio figures.", "note")]
    return figs


def _diagnostics_blocks(r: ResultFolder, energy_png: bytes | None, bfmi: list[float] | None) -> list[dict]:
    d = r.manifest.get("diagnostics") or {}
    th = d.get("thresholds") or {}
    from reanalysis.settings import MAX_RHAT, MIN_ESS

    max_rhat, min_ess = th.get("max_rhat", MAX_RHAT), th.get("min_ess", MIN_ESS)
    out = []
    if d:
        line = (f"{d.get('divergences')} divergent transitions; worst R-hat {fmt_number(d.get('max_rhat'))} "
                f"(limit {max_rhat}); smallest bulk ESS {fmt_number(d.get('min_ess_bulk'))}, smallest tail ESS "
                f"{fmt_number(d.get('min_ess_tail'))} (limit {min_ess}).")
        if d.get("ok"):
            out.append(_p("Diagnostics OK: " + line, "ok"))
        else:
            out.append(_p("Diagnostics FAILED, do not trust these results: " + line, "banner"))
            if d.get("problems"):
                out.append(_ul([str(p) for p in d["problems"]]))
    else:
        out.append(_p("manifest.json records no diagnostics.", "note"))
    s = r.summary
    rows, attrs = [], []
    for name, row in s.iterrows():
        rhat, eb, et = row.get("r_hat"), row.get("ess_bulk"), row.get("ess_tail")
        flags = []
        if pd.notna(rhat) and rhat > max_rhat:
            flags.append("R-hat high")
        if (pd.notna(eb) and eb < min_ess) or (pd.notna(et) and et < min_ess):
            flags.append("ESS low")
        lo = next((row[c] for c in s.columns if str(c).startswith("hdi_") and float(str(c)[4:-1]) < 50), float("nan"))
        hi = next((row[c] for c in s.columns if str(c).startswith("hdi_") and float(str(c)[4:-1]) > 50), float("nan"))
        rows.append([name, fmt_number(row.get("mean")), fmt_number(row.get("sd")), f"{fmt_number(lo)} to {fmt_number(hi)}",
                     fmt_number(rhat), fmt_number(eb), fmt_number(et),
                     Span(", ".join(flags), "flag") if flags else "ok"])
    out.append(_table(["Variable", "Mean", "SD", "95% HDI", "R-hat", "ESS bulk", "ESS tail", "Status"], rows,
                     "Posterior summary of every variable (summary.csv)", num_cols={1, 2, 4, 5, 6}))
    out.extend(_figures_for(r, "diagnostics"))
    if energy_png is not None:
        b = ", ".join(f"chain {i}: {v:.2f}" for i, v in enumerate(bfmi or []))
        out.append(_figure(
            energy_png,
            "Energy plot: marginal energy distribution and energy transition distribution of the sampler",
            "Energy plot (Betancourt 2016), drawn from the stored draws. Look for the two distributions to overlap: "
            "a transition distribution much narrower than the marginal energy means the sampler explores the tails "
            f"poorly. E-BFMI per chain (values below 0.3 are a warning): {b or 'n/a'}.",
            "fig-energy",
        ))
    else:
        out.append(_p("No energy in sample_stats of idata.nc, so no energy plot.", "note"))
    return out


def _sensitivity_blocks(sens: Sensitivity | None) -> list[dict]:
    if sens is None:
        return [_p("No sensitivity result given (run scripts/report.py with --sensitivity DIR to include one). "
                   "The assumptions below have not been varied in this report.", "note")]
    out = [_p(f"Sensitivity result: {sens.path}.")]
    if sens.kind == "runs":
        out.append(_p("Headline estimands (posterior median and 95% HDI) of this result and of each sensitivity run; "
                      "'differs in' lists the run settings that differ from this result. A conclusion that holds in every "
                      "row does not hinge on the varied setting."))
    if sens.note:
        out.append(_pre(sens.note))
    t = sens.table
    rows = [[fmt_number(v) if isinstance(v, float) else str(v) for v in row] for row in t.itertuples(index=False)]
    out.append(_table([str(c) for c in t.columns], rows, "Sensitivity summary"))
    for name, data in sens.figures.items():
        out.append(_figure(data, f"Sensitivity figure {name}", f"Sensitivity figure {name} from {sens.path.name}.",
                          f"fig-sens-{Path(name).stem}"))
    return out


def _items_blocks(r: ResultFolder) -> list[dict]:
    items = r.published_items
    if items is None:
        return [_p("This result folder has no published_items.csv (written by fits of this version on).", "note")]
    from reanalysis.report.published_items import ROLES

    out = [_p("Every number and claim of the study file, with its role in this fit: "
              + "; ".join(f"{k}: {v}" for k, v in ROLES.items()) + ". Nothing is dropped without a row here.")]
    rows = [[str(x.item), str(x.value), str(x.role), "yes" if str(x.checked) == "True" else "no", str(x.reason)] for x in items.itertuples()]
    out.append(_table(["Item (study file)", "Value", "Role", "Checked", "Reason"], rows, f"Published items ({ITEMS_FILE})"))
    return out


def _families_blocks(r: ResultFolder) -> list[dict]:
    fc = r.family_comparison
    if fc is None:
        return [_p("This fit compared no families (fit.py --compare-families fits the model's other families with the same "
                   "settings and compares them here).", "note")]
    out = [_p(f"The {r.manifest.get('model')} model fitted with each of its population families, same priors, seed and "
              "sampler settings. Numbers and claims: how many of the published ones the family's posterior predictive "
              "cohorts reproduce (the checks' rule). Score: the published numbers' summed continuous ranked probability score "
              "(CRPS) under the posterior predictive, each number on its own scale (lower is better), with its Monte Carlo "
              "standard error; a difference within two of its standard errors does not rank the families.")]
    rows = [[str(x.family), "OK" if str(x.diagnostics_ok) == "True" else "FAILED", str(x.numbers_reproduced), str(x.claims_reproduced),
             f"{fmt_number(x.score)} ± {fmt_number(x.score_se)}",
             "best" if float(x.score_difference) == 0 else f"+{fmt_number(x.score_difference)} ± {fmt_number(x.difference_se)}",
             str(x.not_reproduced) if isinstance(x.not_reproduced, str) else "–"] for x in fc.itertuples()]
    out.append(_table(["Family", "Sampler", "Numbers", "Claims", "Score (CRPS)", "Versus best", "Not reproduced"], rows,
                      f"Families compared ({FAMILIES_FILE})"))
    return out


def _assumptions_blocks(r: ResultFolder) -> list[dict]:
    s, m = r.study, r.manifest
    out = [_p("What the paper does not say and the reanalysis had to assume, as declared in the study file; 'varied' "
              "lists the alternatives a sensitivity run should try.")]
    rows = [[k, json.dumps(a.value) if not isinstance(a.value, str) else a.value, a.reason,
             ", ".join(map(str, a.vary)) if a.vary else "–"] for k, a in s.assumptions.items()]
    if rows:
        out.append(_table(["Assumption", "Value", "Reason", "Varied"], rows, "Declared assumptions (study file)"))
    else:
        out.append(_p("The study file declares no assumptions.", "note"))
    model_rows = [
        ["population family", str(m.get("family")), "chosen with --family; the alternative family is a sensitivity run"],
        ["prior set", str(m.get("prior_set")), "named prior set (models/priors.py): " + json.dumps(m.get("priors"))],
        ["likelihood", json.dumps(m.get("likelihood")), "published statistics are statistics of an unobserved cohort (README, 'The model')"],
    ]
    out.append(_table(["Model choice", "Value", "Reason"], model_rows, "Model choices (manifest.json)"))
    return out


def _plausibility_blocks(r: ResultFolder, audit, plaus_png: bytes | None) -> list[dict]:
    s = r.study
    if audit is None:
        return [_p(f"The study file declares no reference data (add 'reference: <file>' to {s.path.name} to audit the "
                   "absolute levels against external measurements).", "note")]
    ref = audit.reference
    out = [_p(f"Are the reported levels of {s.analyte.name} ({s.analyte.assay or 'assay not stated'}) plausible as absolute "
              f"concentrations? They are compared with the reference values '{ref.title}' ({ref.method}), from "
              f"{Path(ref.path).resolve() if ref.path else ref.id}. Fold-difference = "
              "group value / upper end of the reference value (range: its high end; mean ± SD: mean + 2 SD; peak: the highest "
              "value reported)."),
           _ul(audit.statements(), "keypoints")]
    header = ["Reference value", "Analyte", "Population", "n", "Assay", f"Value ({audit.units})", f"Upper end ({audit.units})"]
    header += [f"{g.label}: fold (95% interval)" for g in audit.groups]
    rows = []
    for mm in ref.measurements:
        row = [mm.id, mm.analyte, mm.population, str(mm.n) if mm.n else "not given", mm.assay, mm.value.describe(),
               f"{fmt_number(mm.value.upper)} ({mm.value.upper_rule})"]
        for g in audit.groups:
            f = audit.fold(g.group, mm.id)
            row.append(f"{fmt_number(f.fold_median)} ({fmt_number(f.fold_low)} to {fmt_number(f.fold_high)})")
        rows.append(row)
    out.append(_table(header, rows, "Group population medians against each reference value",
                     num_cols=set(range(7, 7 + len(audit.groups)))))
    if plaus_png is not None:
        out.append(_figure(
            plaus_png,
            f"Log-scale chart of {s.analyte.name} in each group of this study against the external reference values",
            "Reference values (grey) and this study's population medians (orange, 95% interval; red diamond: published "
            "sample median) on one log axis. Look at the gap between the dashed line (largest upper end of the reference "
            "ranges) and the orange points: each factor of 10 is one grid step.",
            "fig-plausibility",
        ))
    out.append(_h3("Which conclusions depend on absolute levels"))
    out.append(_ul(audit.dependence_statements()))
    d = audit.dependence
    out.append(_table(["Estimand", "Units", "Depends on"], [[row["label"], row["units"],
                     {"absolute": "absolute level", "relative": "ratios only", "unclassified": "not classified"}[row["scale"]]]
                     for _, row in d.iterrows()], "Estimands by their dependence on the measurement scale"))
    if ref.notes:
        out.append(_h3("Method comparisons"))
        out.append(_ul([f"{n.text} [{ref.citation(n.source)}]" for n in ref.notes]))
    out.append(_h3("Reference sources"))
    out.append(_table(["Key", "Citation", "Address (not a link)", "Note"],
                     [[k, v.citation, v.url or "", v.note or ""] for k, v in ref.sources.items()]))
    return out


def _colophon_blocks(r: ResultFolder, audit, sens: Sensitivity | None, command: str) -> list[dict]:
    m = r.manifest
    st = m.get("study") or {}
    rows = [
        ["result folder", r.path.name],
        ["fit command", str(m.get("command"))],
        ["seed", str(m.get("seed"))],
        ["model / family / prior set", f"{m.get('model')} / {m.get('family')} / {m.get('prior_set')}"],
        ["git commit", str(m.get("git_commit"))],
        ["study file", str(st.get("path"))],
        ["study sha256 (at fit time)", str(st.get("sha256"))],
        ["study file now", "unchanged since the fit" if not r.study_changed else f"CHANGED since the fit (now {r.study.sha256})"],
    ]
    if audit is not None and audit.reference.path is not None:
        rows.append(["reference file (read now)", f"{Path(audit.reference.path).resolve()} sha256 {file_sha256(audit.reference.path)}"])
    if sens is not None:
        rows.append(["sensitivity result", str(sens.path)])
    sampler = m.get("sampler") or {}
    if sampler:
        rows.append(["sampler", ", ".join(f"{k}={v}" for k, v in sampler.items())])
    timings = m.get("timings_seconds") or {}
    if timings:
        rows.append(["timings (s)", ", ".join(f"{k} {v}" for k, v in timings.items())])
    rows.append(["report command", command])
    rows.append(["report written (UTC)", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")])
    out = [_table(["Item", "Value"], rows, "Run")]
    pk = m.get("packages") or {}
    if pk:
        out.append(_table(["Package", "Version"], [[k, v] for k, v in pk.items()], "Package versions (manifest.json)"))
    return out


def render_report(result_dir: Path, sensitivity_dir: Path | None = None, command: str | None = None) -> str:
    """The report's HTML text (nothing is written)."""
    r = load_result(result_dir)
    sens = load_sensitivity(sensitivity_dir, r) if sensitivity_dir is not None else None
    from reanalysis.report import plausibility

    try:
        audit = plausibility.declared_audit(r.study, r.estimands)
    except plausibility.PlausibilityError as exc:
        raise ReportError(str(exc)) from None

    # plotting only (nothing is sampled)
    import matplotlib

    matplotlib.use("Agg")
    import arviz as az

    try:
        idata = az.from_netcdf(r.path / "idata.nc")
    except Exception as exc:  # h5netcdf / xarray raise various types on a bad file
        raise ReportError(f"{r.path / 'idata.nc'}: cannot read ({one_line(exc)})") from None
    energy_png, bfmi = None, None
    if "sample_stats" in idata.groups() and "energy" in idata.sample_stats:
        from reanalysis.figures.plots import WIDTH, page_style

        @page_style
        def energy_figure():
            ax = az.plot_energy(idata, figsize=(WIDTH, 3.4), textsize=8.0)
            ax.figure.suptitle("Energy plot: the two distributions should overlap")
            ax.figure.tight_layout()
            return ax.figure

        energy_png = _fig_png(energy_figure())
        bfmi = [float(v) for v in az.bfmi(idata)]
    plaus_png = _fig_png(plausibility.plausibility_figure(audit)) if audit is not None else None

    s, m = r.study, r.manifest
    command = command or " ".join([Path(sys.executable).name] + sys.argv)
    d = m.get("diagnostics") or {}
    body = {
        "glance": _glance_blocks(r),
        "estimands": _estimands_blocks(r),
        "checks": _checks_blocks(r),
        "items": _items_blocks(r),
        "families": _families_blocks(r),
        "groups": _groups_blocks(r),
        "effects": _figures_blocks(r, "effects", "The result folder has no effects forest plot."),
        "prior": _figures_blocks(r, "prior", "The result folder has no prior-versus-posterior figure."),
        "informativeness": _informativeness_blocks(r),
        "diagnostics": _diagnostics_blocks(r, energy_png, bfmi),
        "sensitivity": _sensitivity_blocks(sens),
        "assumptions": _assumptions_blocks(r),
        "plausibility": _plausibility_blocks(r, audit, plaus_png),
        "colophon": _colophon_blocks(r, audit, sens, command),
    }
    # the verdict at the top: plain sentences generated from the result tables
    from reanalysis.report.verdict import verdict

    points = verdict(s, r.estimands, r.checks, idata.posterior, r.informativeness, audit, diagnostics_ok=bool(d.get("ok")))
    if r.study_changed:
        points.append("The study file has changed since this fit (sha256 differs): the study section shows the current file.")

    return _environment().get_template("report.html.j2").render(
        csp=CSP,
        title=f"Bayesian reanalysis of {s.title}",
        subtitle=(f"{s.citation} Result {r.path.name}: {m.get('model')} model, {m.get('family')} family, "
                  f"prior set {m.get('prior_set')}, seed {m.get('seed')}."),
        diagnostics_ok=bool(d.get("ok")),
        verdict=points,
        body=body,
        result_path=str(r.path),
    ) + "\n"


def write_report(result_dir: Path, sensitivity_dir: Path | None = None) -> Path:
    """Write ``result_dir/report.html`` atomically and return its path.

    Raises :class:`ReportError` (one line) when the folder, a file it names, the study file or
    its reference data is missing or invalid; then nothing is written.
    """
    result_dir = Path(result_dir)
    text = render_report(result_dir, Path(sensitivity_dir) if sensitivity_dir is not None else None)
    final = result_dir / REPORT_NAME
    fd, tmp = tempfile.mkstemp(dir=result_dir, prefix=".report-", suffix=".html.tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return final

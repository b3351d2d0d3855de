"""The HTML report (scripts/report.py, reanalysis/report/html.py) and the measurement-plausibility
audit (reanalysis/report/plausibility.py, data/reference/).

The session's short fit (``short_fit_copy`` in conftest.py; it may exit 0 or 3, the report
must work either way) and one run of scripts/report.py as a subprocess (its smoke test) are
shared by every test about the page.  Bad input calls ``main(argv)`` in this process; schema
and audit tests are in-process and fast.

The browser test renders the page in headless Chromium.  It proves: the page renders to a
non-trivial screenshot; every <img> decodes (naturalWidth > 0) in a real browser; and the
page attempts no network request.  For the last two it renders a *copy* of the report with one
inline script added (the report itself has none) and the report's Content-Security-Policy
widened only by ``script-src 'unsafe-inline'``: the script records CSP violations (any attempt
to load anything that is not a data: image or inline style), the Resource Timing entries
(any fetched resource) and broken images, and writes them into the DOM, which Chromium dumps
(``--dump-dom``).  A negative control (a copy with an external and a corrupt image added)
shows the check detects both.  Chromium's own log is also checked for ``net::ERR`` lines.
It skips, saying so, when Chromium is not installed (``make browser`` installs it; ``.ci/run``
calls that first).
"""
from __future__ import annotations

import base64
import copy
import html
import json
import re
import shutil
import struct
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.scriptruns import main_caller

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "scripts" / "report.py"
STUDY = ROOT / "data" / "studies" / "lasemi2018.yaml"
REFERENCE = ROOT / "data" / "reference" / "vitamin_k_chromatography.yaml"
PNG = b"\x89PNG\r\n\x1a\n"


# -- shared fit and report ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def fit_result(short_fit_copy) -> Path:
    """The session's short fit (a copy: the report is written into it)."""
    return short_fit_copy


def run_report(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPORT), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def report(fit_result) -> tuple[subprocess.CompletedProcess, Path, str]:
    """scripts/report.py as a user runs it (its one subprocess test)."""
    t = time.perf_counter()
    proc = run_report(str(fit_result))
    print(f"report: {time.perf_counter() - t:.1f} s")
    path = fit_result / "report.html"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return proc, path, text


@pytest.fixture
def report_main(capsys):
    """``report_main(*args) -> (exit code, stdout, stderr)``: report.py's ``main`` in this
    process; argparse's exit becomes its code."""
    return main_caller("report", capsys)


class Page(HTMLParser):
    """Collects what the structural tests need from an HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: dict[str, int] = {}
        self.imgs: list[dict] = []
        self.tables: list[dict] = []  # {"th": int, "caption": str, "rows": [[cell text]]}
        self.scripts: list[dict] = []
        self.links: list[dict] = []
        self.attrs_all: list[tuple[str, str, str]] = []
        self.figures: list[dict] = []  # {"imgs": int, "figcaption": str}
        self.cells: list[tuple[dict, str]] = []  # (td attrs, text)
        self.styles: list[str] = []
        self.text: list[str] = []
        self._stack: list[str] = []
        self._td: dict | None = None
        self._td_text: list[str] = []
        self._in_style = False
        self._in_caption = False
        self._in_figcaption = False

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for k, v in a.items():
            self.attrs_all.append((tag, k, v))
        if tag not in ("img", "meta", "br", "hr", "input", "link"):
            self._stack.append(tag)
        if tag == "img":
            self.imgs.append(a)
            if self.figures and "figure" in self._stack:
                self.figures[-1]["imgs"] += 1
        elif tag == "script":
            self.scripts.append(a)
        elif tag == "link":
            self.links.append(a)
        elif tag == "table":
            self.tables.append({"th": 0, "caption": "", "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag == "th" and self.tables:
            self.tables[-1]["th"] += 1
        elif tag == "td":
            self._td, self._td_text = a, []
        elif tag == "style":
            self._in_style = True
        elif tag == "caption":
            self._in_caption = True
        elif tag == "figure":
            self.figures.append({"imgs": 0, "figcaption": ""})
        elif tag == "figcaption":
            self._in_figcaption = True

    def handle_endtag(self, tag):
        if tag in self._stack:
            while self._stack and self._stack.pop() != tag:
                pass
        if tag == "td" and self._td is not None:
            txt = "".join(self._td_text).strip()
            self.cells.append((self._td, txt))
            if self.tables and self.tables[-1]["rows"]:
                self.tables[-1]["rows"][-1].append(txt)
            self._td = None
        elif tag == "style":
            self._in_style = False
        elif tag == "caption":
            self._in_caption = False
        elif tag == "figcaption":
            self._in_figcaption = False

    def handle_data(self, data):
        self.text.append(data)
        if self._td is not None:
            self._td_text.append(data)
        if self._in_style:
            self.styles.append(data)
        if self._in_caption and self.tables:
            self.tables[-1]["caption"] += data
        if self._in_figcaption and self.figures:
            self.figures[-1]["figcaption"] += data


def parse(text: str) -> Page:
    p = Page()
    p.feed(text)
    p.close()
    return p


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG), "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# -- the report run ------------------------------------------------------------------------
def test_report_is_written(report, fit_result):
    proc, path, text = report
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert path.is_file() and text.startswith("<!DOCTYPE html>")
    assert proc.stdout.strip() == str(path)
    assert not list(fit_result.glob(".report-*")), "temporary file left behind"


def test_structure(report):
    page = parse(report[2])
    assert page.tags.get("h1") == 1
    assert page.imgs, "no figures"
    for img in page.imgs:
        assert img.get("alt", "").strip(), f"image without alt text: {img.get('src', '')[:40]}"
    assert page.tables
    for t in page.tables:
        assert t["th"] > 0, f"table without <th>: {t['caption']!r}"
    assert all("src" not in s for s in page.scripts), "external script"
    assert not page.scripts, "the report must have no scripts at all"
    assert all("href" not in link for link in page.links), "<link href> loads something"
    for tag, attr, value in page.attrs_all:
        if attr in ("src", "href"):
            assert not re.match(r"\s*(https?:)?//", value, re.I), f"<{tag} {attr}={value[:60]}> points off the page"
            assert value.startswith(("data:image/png;base64,", "#")), f"<{tag} {attr}> is neither data: nor an anchor"
    css = "".join(page.styles)
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//", css, re.I)
    assert "@import" not in css
    for f in page.figures:
        assert f["imgs"] == 1 and f["figcaption"].strip(), f"figure without image or caption: {f}"
    assert len(page.figures) == len(page.imgs), "an image outside <figure>"


def test_images_are_embedded_pngs(report, fit_result):
    page = parse(report[2])
    prefix = "data:image/png;base64,"
    for img in page.imgs:
        assert img["src"].startswith(prefix)
        data = base64.b64decode(img["src"][len(prefix):], validate=True)
        w, h = png_size(data)
        assert w > 50 and h > 50
    # every figure of the result folder is in the page, plus the energy and plausibility plots
    n_result_figs = len(list((fit_result / "figures").glob("*.png")))
    assert len(page.imgs) == n_result_figs + 2


def test_sections_and_placeholders(report):
    text = report[2]
    for sid in ("glance", "estimands", "checks", "groups", "diagnostics", "sensitivity", "assumptions", "plausibility", "colophon"):
        assert f'<section id="{sid}">' in text
    assert "no sensitivity result given" in text.lower()
    page_text = html.unescape(text)
    # published numbers with their sources, assumptions with their reasons
    assert "Wien Klin Wochenschr" in page_text and "vitamink2.org" in page_text
    study = yaml.safe_load(STUDY.read_text(encoding="utf-8"))
    for name, a in study["assumptions"].items():
        assert name in page_text and " ".join(a["reason"].split()) in page_text


def test_numbers_equal_estimands_csv(report, fit_result):
    from reanalysis.report.html import fmt_value

    est = pd.read_csv(fit_result / "estimands.csv")
    page = parse(report[2])
    shown = {(a["data-estimand"], a["data-stat"]): (a["data-value"], txt) for a, txt in page.cells if "data-estimand" in a}
    for _, row in est.iterrows():
        for stat in ("median", "hdi_low", "hdi_high"):
            value, txt = shown[(row["estimand"], stat)]
            if pd.isna(row[stat]):
                assert txt == "–"
                continue
            assert float(value) == pytest.approx(row[stat], rel=1e-12)
            assert txt == fmt_value(row[stat], row["units"])
    r = est.set_index("estimand").loc["ratio_of_medians[control_vs_ms]"]
    sentence = (f"The population median of Healthy controls is {fmt_value(r['median'], 'fold')} times that of MS patients "
                f"(95% interval {fmt_value(r['hdi_low'], 'fold')} to {fmt_value(r['hdi_high'], 'fold')}).")
    assert sentence in html.unescape(report[2])


def test_published_items_table_equals_its_csv(report, fit_result):
    items = pd.read_csv(fit_result / "published_items.csv")
    t = next(t for t in parse(report[2]).tables if t["caption"].startswith("Published items"))
    rows = [r for r in t["rows"] if r]
    assert [r[0] for r in rows] == list(items["item"])
    assert [r[2] for r in rows] == list(items["role"])


def test_report_opens_with_the_verdict(report):
    page = report[2]
    assert page.index('id="verdict"') < page.index('<nav aria-label="Contents">')
    assert "posterior probability that it is higher" in page


def test_informativeness_table_equals_its_csv(report, fit_result):
    """Contraction, power-scaling sensitivity with its Monte Carlo interval, and label of
    every estimand, as fit.py wrote them."""
    from reanalysis.report.html import fmt_number

    def with_interval(row, name):
        return f"{fmt_number(row[name])} [{fmt_number(row[name + '_lo'])}, {fmt_number(row[name + '_hi'])}]"

    info = pd.read_csv(fit_result / "informativeness.csv")
    assert len(info), "the short fit computed no informativeness"
    assert '<section id="informativeness">' in report[2]
    t = next(t for t in parse(report[2]).tables if t["caption"].startswith("Informativeness"))
    rows = [r for r in t["rows"] if r]
    assert len(rows) == len(info)
    for r, (_, row) in zip(rows, info.iterrows()):
        label = f"{row['label']} ({row['driver']})" if row["label"] == "prior-data conflict" else row["label"]
        assert r[1:] == [fmt_number(row["contraction"]), with_interval(row, "psens_prior"), with_interval(row, "psens_likelihood"), label]


def test_covariate_model_figures_have_their_own_captions(tmp_path, fit_result):
    """The covariate model's percent-effects and level-versus-age figures go to the effects
    section with registered captions, not the generic fallback."""
    from reanalysis.report.html import render_report

    res = tmp_path / "result"
    shutil.copytree(fit_result, res)
    png = next((res / "figures").glob("*.png"))
    for name in ("percent_effects.png", "level_vs_covariate.png"):
        shutil.copy(png, res / "figures" / name)
    text = html.unescape(render_report(res))
    effects = text.split('<section id="effects">', 1)[1].split("</section>", 1)[0]
    assert 'id="fig-percent_effects"' in effects and 'id="fig-level_vs_covariate"' in effects
    assert "no description is registered" not in text


def test_family_comparison_section(tmp_path, fit_result, report):
    """Without family_comparison.csv the section says how to get one; with it, a row per
    family with its score and what it does not reproduce."""
    from reanalysis.report.html import render_report

    families = html.unescape(report[2]).split('<section id="families">', 1)[1].split("</section>", 1)[0]
    assert "--compare-families" in families
    res = tmp_path / "result"
    shutil.copytree(fit_result, res)
    pd.DataFrame([
        {"family": "lognormal", "description": "", "diagnostics_ok": True, "max_rhat": 1.001, "min_ess_bulk": 2000, "divergences": 0,
         "numbers_reproduced": "5 of 6", "claims_reproduced": "2 of 2", "not_reproduced": "Healthy controls: mean minus median (skew)",
         "score": 0.31, "score_se": 0.004, "score_difference": 0.0, "difference_se": 0.0, "numbers_scored": 6, "seconds": 30.0},
        {"family": "weibull", "description": "", "diagnostics_ok": False, "max_rhat": 1.2, "min_ess_bulk": 20, "divergences": 3,
         "numbers_reproduced": "6 of 6", "claims_reproduced": "2 of 2", "not_reproduced": float("nan"),
         "score": 0.35, "score_se": 0.005, "score_difference": 0.04, "difference_se": 0.0064, "numbers_scored": 6, "seconds": 31.0},
    ]).to_csv(res / "family_comparison.csv", index=False)
    t = next(t for t in parse(render_report(res)).tables if t["caption"].startswith("Families compared"))
    rows = [r for r in t["rows"] if r]
    assert [r[0] for r in rows] == ["lognormal", "weibull"]
    assert rows[0][5] == "best" and rows[1][1] == "FAILED" and rows[1][6] == "–"
    assert "skew" in rows[0][6]


def test_checks_table_medians_first_with_verdicts(report, fit_result):
    checks = pd.read_csv(fit_result / "checks.csv")
    page = parse(report[2])
    t = next(t for t in page.tables if t["caption"].startswith("Checks against the published numbers"))
    rows = [r for r in t["rows"] if r]
    assert len(rows) == len(checks)
    n_medians = int(checks["key"].str.endswith(".median").sum())
    assert n_medians >= 1
    assert all(": median" in r[0] for r in rows[:n_medians])
    assert all(": median" not in r[0] for r in rows[n_medians:])
    assert {r[-1] for r in rows} <= {"reproduced", "tension", "not reproduced"}
    by_item = dict(zip(checks["item"], checks["verdict"]))
    assert all(by_item[r[0]] == r[-1] for r in rows)


def test_diagnostics_and_colophon(report, fit_result):
    m = json.loads((fit_result / "manifest.json").read_text())
    text = html.unescape(report[2])
    assert ("Diagnostics OK" in text) == bool(m["diagnostics"]["ok"])
    for needle in (str(m["seed"]), m["study"]["sha256"], m["command"], m["packages"]["pymc"]):
        assert needle in text
    assert str(m["git_commit"]) in text
    assert "Energy plot" in text and "E-BFMI" in text


def test_plausibility_in_page(report, fit_result):
    from reanalysis.report.plausibility import audit, fmt
    from models.study import load_study

    a = audit(load_study(STUDY), pd.read_csv(fit_result / "estimands.csv"))
    text = html.unescape(report[2])
    for f in a.headline():
        assert f"{fmt(f.fold_median)} times" in text
    assert "Dunovska" in text and "Ruditser" in text and "Kaneki" in text


# -- bad input ------------------------------------------------------------------------------
def _one_line_error(result) -> str:
    code, _, err = result
    assert code == 2, f"exit {code}: {err[-2000:]}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_bad_result_dir_not_a_folder(tmp_path, report_main):
    missing = tmp_path / "nope"
    line = _one_line_error(report_main(missing))
    assert str(missing) in line and "not a folder" in line


def test_bad_result_dir_missing_file(tmp_path, fit_result, report_main):
    broken = tmp_path / "broken"
    shutil.copytree(fit_result, broken)
    (broken / "estimands.csv").unlink()
    (broken / "report.html").unlink(missing_ok=True)
    line = _one_line_error(report_main(broken))
    assert "estimands.csv" in line
    assert not (broken / "report.html").exists()


def test_bad_sensitivity_dir(tmp_path, fit_result, report_main):
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _one_line_error(report_main(fit_result, "--sensitivity", empty))
    assert "sensitivity" in line and str(empty) in line


# -- in-process: sensitivity and escaping --------------------------------------------------------
def test_sensitivity_runs_compared(tmp_path, fit_result):
    from reanalysis.report.html import render_report

    sens = tmp_path / "sens"
    other = sens / "variant"
    shutil.copytree(fit_result, other)
    m = json.loads((other / "manifest.json").read_text())
    m["family"] = "gamma"
    (other / "manifest.json").write_text(json.dumps(m))
    text = html.unescape(render_report(fit_result, sens))
    assert "no sensitivity result given" not in text.lower()
    assert "family=gamma" in text and "(baseline)" in text


def test_text_is_escaped(tmp_path, fit_result):
    """A hostile label in the study file reaches the page as text, never as markup."""
    from reanalysis.report.html import render_report

    data = yaml.safe_load(STUDY.read_text(encoding="utf-8"))
    evil = '<img src=x onerror="alert(1)"><script>alert(2)</script> & co'
    data["groups"]["control"]["label"] = evil
    data["title"] = "A & B <b>bold</b>"
    (tmp_path / "studies").mkdir()
    (tmp_path / "reference").mkdir()
    shutil.copy(REFERENCE, tmp_path / "reference" / REFERENCE.name)
    spath = tmp_path / "studies" / "evil.yaml"
    spath.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    res = tmp_path / "result"
    shutil.copytree(fit_result, res)
    m = json.loads((res / "manifest.json").read_text())
    m["study"]["path"] = str(spath)
    (res / "manifest.json").write_text(json.dumps(m))
    text = render_report(res)
    assert evil not in text and "<b>bold</b>" not in text
    assert "&lt;script&gt;alert(2)&lt;/script&gt; &amp; co" in text and "A &amp; B &lt;b&gt;" in text
    page = parse(text)
    assert not page.scripts and page.tags.get("h1") == 1 and page.tags.get("b") is None
    assert all(i["src"].startswith("data:image/png;base64,") for i in page.imgs)
    # the label is shown as the text it is, in the glance table and in the verdict's sentences
    shown = [txt for _, txt in page.cells]
    assert evil in shown and evil in "".join(page.text)


def test_blocks_escape_text_and_attributes():
    """Every value a section passes to the templates is escaped, in text and in attributes,
    and a table cell's span class cannot close its attribute."""
    from reanalysis.report.html import render_blocks

    evil = '<script>alert("x")</script> & <b>'
    out = render_blocks([
        {"kind": "p", "text": evil, "cls": 'note" onclick="x'},
        {"kind": "ul", "items": [evil], "cls": ""},
        {"kind": "table", "header": [evil], "caption": evil,
         "rows": [[{"text": evil, "span": "", "attrs": {"data-estimand": evil}},
                   {"text": evil, "span": 'flag"><script>', "attrs": {}}]]},
        {"kind": "figure", "src": "data:image/png;base64,AAAA", "alt": evil, "caption": evil, "id": "fig-x"},
    ])
    page = parse(out)
    assert "<script" not in out and "<b>" not in out and page.tags.get("script") is None
    assert "&lt;script&gt;" in out and "&amp; &lt;b&gt;" in out
    assert "".join(page.text).count(evil) == 7  # p, li, th, caption, both cells, figcaption
    assert ("p", "class", 'note" onclick="x') in page.attrs_all
    assert ("td", "data-estimand", evil) in page.attrs_all
    assert ("img", "alt", evil) in page.attrs_all
    assert ("span", "class", 'flag"><script>') in page.attrs_all



def test_unknown_block_kind_is_an_error():
    """A block the templates cannot draw stops the report instead of vanishing from it."""
    from reanalysis.report.html import ReportError, render_blocks

    with pytest.raises(ReportError, match="unknown report block kind video"):
        render_blocks([{"kind": "video"}])

# -- plausibility: the audit ------------------------------------------------------------------
def test_control_group_fold_over_chromatography_range_exceeds_100(fit_result):
    from reanalysis.report.plausibility import audit
    from models.study import load_study

    a = audit(load_study(STUDY), pd.read_csv(fit_result / "estimands.csv"))
    assert a.top_range is not None and a.top_range.value.kind == "range"
    ctrl = next(f for f in a.headline() if f.group == "control")
    assert ctrl.fold_median > 100 and ctrl.fold_low > 100
    # and over every chromatography range, not only the largest
    for f in a.folds:
        if f.group == "control" and f.measurement.value.kind == "range":
            assert f.fold_low > 100
    assert a.verdict("control") == "implausible as an absolute concentration"


def _estimands(control=800.0, ms=200.0, units="ng/ml") -> pd.DataFrame:
    rows = [
        ("median[control]", "population median (control)", units, control),
        ("median[ms]", "population median (ms)", units, ms),
        ("ratio_of_medians[control_vs_ms]", "ratio of population medians", "fold", control / ms),
        ("difference_in_medians[control_vs_ms]", "difference in population medians", units, control - ms),
        ("prob_superiority[control_vs_ms]", "probability of superiority", "probability", 0.99),
        ("pct_per_decade", "percent change per decade", "%", -10.0),
        ("odd", "something", "furlongs", 1.0),
    ]
    return pd.DataFrame([{"estimand": k, "label": lab, "units": u, "median": v, "hdi_low": v * 0.9, "hdi_high": v * 1.1}
                         for k, lab, u, v in rows])


def test_audit_folds_and_dependence():
    from reanalysis.report.plausibility import audit, load_reference
    from models.study import load_study

    study = load_study(STUDY)
    ref = load_reference(REFERENCE)
    a = audit(study, _estimands(), ref)
    top = max((m for m in ref.measurements if m.value.kind == "range"), key=lambda m: m.value.high)
    f = a.fold("control", top.id)
    assert f.fold_median == pytest.approx(800.0 / top.value.high)
    assert f.fold_low == pytest.approx(720.0 / top.value.high)
    scale = dict(zip(a.dependence["estimand"], a.dependence["scale"]))
    assert scale["median[control]"] == "absolute" and scale["difference_in_medians[control_vs_ms]"] == "absolute"
    assert scale["ratio_of_medians[control_vs_ms]"] == "relative"
    assert scale["prob_superiority[control_vs_ms]"] == "relative" and scale["pct_per_decade"] == "relative"
    assert scale["odd"] == "unclassified"
    text = " ".join(a.dependence_statements())
    assert "difference in population medians" in text and "ratio of population medians" in text


def test_reference_file_matches_design():
    from reanalysis.report.plausibility import load_reference

    ref = load_reference(REFERENCE)
    by = {m.id: m for m in ref.measurements}
    got = {(m.analyte, m.value.describe()) for m in ref.measurements}
    assert ("MK-7", "0.07-0.76") in got and ("MK-4", "0.05-1.6") in got and ("K1", "0.03-1.36") in got
    assert by["dunovska2019_mk7"].n == 191 and by["dunovska2019_mk7"].assay in ("HPLC", "LC-MS/MS")
    assert ("MK-7", "0.37 ± 0.2 (mean ± SD)") in got and ("MK-7", "5.26 ± 6.13 (mean ± SD)") in got
    assert ("MK-7", "up to 57") in got
    assert all(m.units == "ng/ml" for m in ref.measurements)
    assert any("37408980" in ref.citation(n.source) for n in ref.notes)


def test_units_must_match():
    from reanalysis.report.plausibility import PlausibilityError, audit, load_reference
    from models.study import load_study

    study = load_study(STUDY)
    study = study.model_copy(update={"analyte": study.analyte.model_copy(update={"units": "pmol/l"})})
    with pytest.raises(PlausibilityError, match="convert"):
        audit(study, _estimands(units="pmol/l"), load_reference(REFERENCE))


@pytest.mark.parametrize(
    "edit, field, phrase",
    [
        (lambda d: d["measurements"][0]["value"].update({"mean": 1.0}), "measurements.0.value", "exactly one of"),
        (lambda d: d["measurements"][0]["value"].update({"low": 2.0}), "measurements.0.value.low", "exceeds high"),
        (lambda d: d["measurements"][0].update({"colour": "red"}), "measurements.0.colour", "unknown key"),
        (lambda d: d["measurements"][0].update({"source": "nobody"}), "measurements.0.source", "not a key of 'sources'"),
        (lambda d: d["measurements"][0].pop("units"), "measurements.0.units", "required field is missing"),
        (lambda d: d["measurements"][0].update({"n": "191"}), "measurements.0.n", ""),
    ],
)
def test_reference_schema_errors_are_one_line(tmp_path, edit, field, phrase):
    from reanalysis.report.plausibility import PlausibilityError, load_reference

    data = copy.deepcopy(yaml.safe_load(REFERENCE.read_text(encoding="utf-8")))
    edit(data)
    p = tmp_path / "ref.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    with pytest.raises(PlausibilityError) as exc:
        load_reference(p)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"{p}: {field}: ") and phrase in msg, msg


def test_missing_reference_file_is_one_line(tmp_path):
    from reanalysis.report.plausibility import PlausibilityError, load_reference

    with pytest.raises(PlausibilityError, match="reference file not found"):
        load_reference(tmp_path / "none.yaml")


def test_plausibility_figure_returns_a_figure(fit_result):
    import matplotlib.pyplot as plt

    from reanalysis.report.plausibility import audit, plausibility_figure
    from models.study import load_study

    fig = plausibility_figure(audit(load_study(STUDY), pd.read_csv(fit_result / "estimands.csv")))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "ng/ml" in ax.get_xlabel()
    plt.close(fig)


# -- the study file's `reference` field ----------------------------------------------------
def test_study_reference_field(tmp_path, write_study):
    from models.study import StudyError, load_study

    study = load_study(STUDY)
    assert study.reference_path is not None and study.reference_path.resolve() == REFERENCE.resolve()
    data = yaml.safe_load(STUDY.read_text(encoding="utf-8"))
    no_ref = {k: v for k, v in data.items() if k != "reference"}
    assert load_study(write_study(no_ref, "noref.yaml")).reference_path is None
    # a copied study loads even when the reference file is not beside it (read lazily)
    assert load_study(write_study(data, "copy.yaml")).reference == data["reference"]
    for bad, phrase in (("/etc/passwd", "relative to the study file"), ("", "must not be empty"), (3, "must be a string")):
        with pytest.raises(StudyError) as exc:
            load_study(write_study({**data, "reference": bad}, "bad.yaml"))
        assert ": reference: " in str(exc.value) and phrase in str(exc.value), str(exc.value)
    with pytest.raises(StudyError, match="referenc: unknown key"):
        load_study(write_study({**no_ref, "referenc": data["reference"]}, "typo.yaml"))


# -- browser ---------------------------------------------------------------------------------
_CHECK_JS = """<script>
window.__v=[];document.addEventListener('securitypolicyviolation',function(e){window.__v.push(e.blockedURI+' '+e.violatedDirective);});
window.addEventListener('load',function(){var imgs=Array.prototype.slice.call(document.images);
var broken=imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0&&i.naturalHeight>0);}).map(function(i){return i.alt;});
var res=performance.getEntriesByType('resource').map(function(r){return r.name;});
var out=document.createElement('pre');out.id='__check';
out.textContent=JSON.stringify({images:imgs.length,broken:broken,violations:window.__v,resources:res});
document.body.appendChild(out);});
</script>"""
_CSP_RE = re.compile(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">')


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    pytest.skip("Chromium is not installed, so the report is not rendered in a browser: run `make browser` "
                "(apt-get install chromium, as root) and rerun")


def _headless(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def _instrumented(text: str) -> str:
    m = _CSP_RE.search(text)
    assert m and len(_CSP_RE.findall(text)) == 1, "the report must carry exactly one Content-Security-Policy"
    policy = html.unescape(m.group(1))
    widened = html.escape(policy + "; script-src 'unsafe-inline'", quote=True)
    return text[: m.start()] + f'<meta http-equiv="Content-Security-Policy" content="{widened}">' + _CHECK_JS + text[m.end():]


def _dom_check(exe: str, page: Path, profile: Path) -> tuple[dict, str]:
    proc = _headless(exe, profile, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom",
                     page.as_uri())
    m = re.search(r'<pre id="__check">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"no check output from chromium (exit {proc.returncode})\n{proc.stderr[-2000:]}"
    return json.loads(html.unescape(m.group(1))), proc.stderr


def test_browser_renders_without_broken_images_or_requests(report, tmp_path):
    from PIL import Image

    exe = _chromium()
    _, path, text = report
    shot = path.parent / "report_screenshot.png"
    proc = _headless(exe, tmp_path / "profile1", f"--screenshot={shot}", "--window-size=1200,3000", path.as_uri())
    assert shot.is_file(), f"no screenshot (exit {proc.returncode})\n{proc.stderr[-2000:]}"
    with Image.open(shot) as im:
        assert im.size == (1200, 3000)
        colours = im.convert("RGB").getcolors(maxcolors=100_000)
        assert colours is None or len(colours) > 50, "screenshot is (nearly) blank"
    assert shot.stat().st_size > 50_000

    checked = tmp_path / "instrumented.html"
    checked.write_text(_instrumented(text), encoding="utf-8")
    result, log = _dom_check(exe, checked, tmp_path / "profile2")
    assert result["images"] == len(parse(text).imgs) > 0
    assert result["broken"] == [], f"images that did not decode: {result['broken']}"
    assert result["violations"] == [], f"the page tried to load: {result['violations']}"
    assert result["resources"] == [], f"resources fetched: {result['resources']}"
    assert "net::ERR" not in log

    # negative control: the same check flags an external and a corrupt image
    bad = _instrumented(text).replace(
        "<main>", '<main><img alt="external" src="http://127.0.0.1:9/x.png"><img alt="corrupt" src="data:image/png;base64,AAAA">', 1
    )
    control = tmp_path / "control.html"
    control.write_text(bad, encoding="utf-8")
    result, _ = _dom_check(exe, control, tmp_path / "profile3")
    assert set(result["broken"]) == {"external", "corrupt"}
    assert any("127.0.0.1" in v for v in result["violations"])


#: Measures the page in a frame of the width under test (headless Chromium's window is at
#: least 500 px wide, a frame can be narrower) and posts the numbers to the wrapper page.
_LAYOUT_JS = """<script>window.addEventListener('load',function(){
var imgs=Array.prototype.slice.call(document.images).map(function(i){var b=i.parentElement;
return {alt:i.alt,width:i.getBoundingClientRect().width,natural:i.naturalWidth,box:b.clientWidth,box_scroll:b.scrollWidth};});
parent.postMessage(JSON.stringify({inner:window.innerWidth,scroll:document.documentElement.scrollWidth,imgs:imgs}),'*');});
</script>"""
#: Smallest height of a figure's smallest text on screen, in CSS pixels.
MIN_SCREEN_TEXT_PX = 9.0


def _png_dpi(src: str) -> float:
    from PIL import Image
    import io

    with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
        return float(im.info["dpi"][0])


#: Widths the page is measured at: a desktop window and a phone.
LAYOUT_WIDTHS = (1280, 390)


def test_browser_layout_at_desktop_and_phone_width(report, tmp_path):
    """At 1280 and 390 px the page never scrolls sideways (wide tables scroll in their own
    box), and every figure's smallest text (7 pt at page width) is at least 9 CSS px on
    screen: at 1280 px a figure fits its frame whole; on a phone it keeps a readable width
    and scrolls within its frame.  One browser measures both widths, a frame each."""
    from reanalysis.figures.plots import MIN_FONT

    exe = _chromium()
    _, _, text = report
    page = tmp_path / "page.html"
    page.write_text(_instrumented(text).replace(_CHECK_JS, _LAYOUT_JS), encoding="utf-8")
    frames = "".join(f'<iframe src="page.html" style="width:{w}px;height:2400px;border:0"></iframe>' for w in LAYOUT_WIDTHS)
    wrapper = tmp_path / "wrapper.html"
    wrapper.write_text(
        f'<html><body style="margin:0">{frames}<pre id="__layout"></pre><script>var got=[];'
        'window.addEventListener("message",function(e){got.push(JSON.parse(e.data));'
        'document.getElementById("__layout").textContent=JSON.stringify(got);});</script></body></html>', encoding="utf-8")
    proc = _headless(exe, tmp_path / "profile", "--allow-file-access-from-files", "--window-size=1800,2400",
                     "--virtual-time-budget=10000", "--dump-dom", wrapper.as_uri())
    m = re.search(r'<pre id="__layout">(.*?)</pre>', proc.stdout, re.S)
    assert m and m.group(1), f"no layout from chromium (exit {proc.returncode})\n{proc.stderr[-2000:]}"
    layouts = {d["inner"]: d for d in json.loads(html.unescape(m.group(1)))}
    assert set(layouts) == set(LAYOUT_WIDTHS), sorted(layouts)
    srcs = [img["src"] for img in parse(text).imgs]
    dpis = [_png_dpi(src) for src in srcs]
    for width, layout in layouts.items():
        assert layout["scroll"] <= width, f"the page scrolls sideways at {width} px: {layout['scroll']} px wide"
        assert len(layout["imgs"]) == len(srcs) > 0
        small = {}
        for img, dpi in zip(layout["imgs"], dpis):
            text_px = MIN_FONT * dpi / 72 * img["width"] / img["natural"]
            if text_px < MIN_SCREEN_TEXT_PX:
                small[img["alt"][:50]] = round(text_px, 1)
            if width >= 1000:
                assert img["box_scroll"] <= img["box"] + 1, f"{img['alt'][:50]}: cut at {width} px"
        assert not small, f"figure text below {MIN_SCREEN_TEXT_PX} px at {width} px: {small}"

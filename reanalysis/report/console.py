"""The console report of a fit, as lines of text at most :data:`WIDTH` columns wide.

Every function takes the result tables (the DataFrames a result folder holds) and returns
lines, so the layout is tested without a fit; :mod:`reanalysis.cli.fit` only prints them.
Long texts (labels, claims, reasons) wrap inside their column; numbers never wrap, and a
value that does not exist is left out rather than printed as NaN.  The console is a
reading aid: the complete tables are the result folder's CSV files, which the report names.
"""
from __future__ import annotations

import json
import math
import numbers
import textwrap
from dataclasses import dataclass

import pandas as pd

from models.wording import comparison_label, estimand_label
from reanalysis.informativeness import console_table

#: Widest line the console report prints (a terminal split in two, an e-mail, a log viewer).
WIDTH = 100
#: Blank columns between two table columns.
GAP = 2
#: Narrowest a wrapped text column is allowed to become, so a word or two still fits.
MIN_TEXT = 16
#: Indent of a table row's continuation lines in a block layout.
INDENT = 4


@dataclass(frozen=True)
class Column:
    """One column of :func:`table`: its header, alignment (``"<"`` or ``">"``), and whether
    its text may wrap (the one column marked ``flex`` takes the width the others leave)."""

    header: str
    align: str = "<"
    flex: bool = False
    wrap: int | None = None  # wrap this column's text at this many characters


def number(v, digits: int = 4) -> str:
    """``v`` with ``digits`` significant digits (``.4g``), or ``""`` when it is missing."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "" if v is None else str(v)
    return "" if not math.isfinite(x) else f"{x:.{digits}g}"


def share(v) -> str:
    """A share or p-value with 3 decimals (as checks.csv's readers see them), or ``""``."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return ""
    return "" if not math.isfinite(x) else f"{x:.3f}"


def interval(low, high) -> str:
    """``[low, high]``, or ``""`` when the interval is missing."""
    lo, hi = number(low), number(high)
    return f"[{lo}, {hi}]" if lo and hi else ""


def wrap(text: str, width: int, indent: str = "  ") -> list[str]:
    """``text`` wrapped to at most ``width`` columns in as few lines as the plain wrap needs,
    with lines of even length (so no line holds a single stray word)."""
    lines = textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False) or [""]
    for w in range(max(1, math.ceil(len(text) / len(lines))), width):
        even = textwrap.wrap(text, w, subsequent_indent=indent, break_on_hyphens=False)
        if len(even) == len(lines):
            return even
    return lines


def table(columns: list[Column], rows: list[list[str]], width: int = WIDTH) -> list[str]:
    """A header line and one or more lines per row, at most ``width`` columns wide.

    Columns are as wide as their widest cell (or header); the ``flex`` column takes what the
    others leave (at least :data:`MIN_TEXT`) and, like a column with ``wrap``, wraps its text
    onto continuation lines.  Trailing blanks are stripped.
    """
    widths = []
    for j, c in enumerate(columns):
        cells = [len(c.header)] + [len(r[j]) for r in rows]
        widths.append(min(max(cells), c.wrap) if c.wrap else max(cells))
    flex = [j for j, c in enumerate(columns) if c.flex]
    if flex:
        j = flex[0]
        others = sum(w for k, w in enumerate(widths) if k != j) + GAP * (len(columns) - 1)
        widths[j] = min(widths[j], max(MIN_TEXT, width - others))

    def cells(j: int, text: str) -> list[str]:
        return wrap(text, widths[j]) if columns[j].flex or columns[j].wrap else [text]

    def line(parts: list[str]) -> str:
        out = [f"{p:{c.align}{w}}" for p, c, w in zip(parts, columns, widths)]
        return (" " * GAP).join(out).rstrip()

    lines = [line([c.header for c in columns])]
    for r in rows:
        wrapped = [cells(j, text) for j, text in enumerate(r)]
        for k in range(max(len(w) for w in wrapped)):
            lines.append(line([w[k] if k < len(w) else "" for w in wrapped]))
    return lines


def heading(text: str) -> list[str]:
    """A section heading (``== text ==``) after a blank line."""
    return ["", f"== {text} =="]


def note(text: str, width: int = WIDTH) -> list[str]:
    """A sentence under a table, wrapped to ``width``."""
    return textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False)


def estimand_lines(estimands: pd.DataFrame, study_id: str) -> list[str]:
    """The estimands: ``label  median  [95% HDI]  units``, labels wrapped, and one line with
    the worst R-hat and ESS (each estimand's own are in estimands.csv)."""
    rows = [[str(r["label"]), number(r["median"]) or "undefined", interval(r["hdi_low"], r["hdi_high"]), str(r["units"])]
            for _, r in estimands.iterrows()]
    cols = [Column("estimand", flex=True), Column("median", ">"), Column("95% HDI"), Column("units")]
    lines = heading(f"Estimands ({study_id}; posterior median and 95% HDI)") + table(cols, rows)
    rhat, bulk, tail = (pd.to_numeric(estimands[c], errors="coerce").dropna() for c in ("r_hat", "ess_bulk", "ess_tail"))
    if len(rhat):
        lines += note(f"Worst of these estimands: R-hat {rhat.max():.3f}, bulk ESS {bulk.min():.0f}, tail ESS {tail.min():.0f} "
                      "(each one's: estimands.csv)")
    return lines


def evidence_lines(evidence: pd.DataFrame, study=None) -> list[str]:
    """The JZS Bayes factors of the group difference, one row per prior scale, each
    comparison in the words of ``study`` (the study file) when given; a line saying why there
    is none when evidence.csv is empty."""
    if evidence is None:
        return []
    if not len(evidence):
        return ["", "No JZS Bayes factor: it needs the mean and SD of both groups of a comparison (evidence.csv is empty)."]
    comparisons = study.comparisons if study is not None else {}
    rows = [[comparison_label(study, comparisons[r["comparison"]].groups) if r["comparison"] in comparisons else str(r["comparison"]), number(r["t"]), number(r["df"]), number(r["prior_scale_r"]), number(r["log10_bf10"])]
            for _, r in evidence.iterrows()]
    cols = [Column("comparison", flex=True), Column("t", ">"), Column("df", ">"), Column("prior scale r", ">"), Column("log10 BF10", ">")]
    return heading("Bayes factor for the group difference (JZS, from reported means and SDs)") + table(cols, rows)


def _published(v) -> str:
    """A published value: a number compactly (checks.csv read back holds ``866.0``), a
    claim's text as it is."""
    try:
        float(v)
    except (TypeError, ValueError):
        return str(v)
    return number(v)


def check_lines(checks: pd.DataFrame) -> list[str]:
    """The checks as two tables: published numbers (value, predictive median and 95%
    interval, two-sided predictive p, verdict), then claims (claim, its published form, the
    share of simulated cohorts in which it holds, the p of an exact value, verdict)."""
    numbers = checks[checks["kind"] == "number"]
    claims = checks[checks["kind"] == "claim"]
    lines = []
    if len(numbers):
        rows = [[str(r["item"]), _published(r["published"]), number(r["predictive_median"]), interval(r["predictive_low"], r["predictive_high"]),
                 share(r["p_two_sided"]), str(r["verdict"])] for _, r in numbers.iterrows()]
        cols = [Column("published number", flex=True), Column("published", ">"), Column("predicted", ">"), Column("[95% interval]"),
                Column("p", ">"), Column("verdict")]
        lines += heading("Checks against the published numbers (medians first)") + table(cols, rows)
        lines += note("p: two-sided predictive p-value; small = the model rarely produces the published value. "
                      "Predicted: the statistic over simulated cohorts of the published sizes.")
    if len(claims):
        exact = claims["p_two_sided"].notna().any()
        rows = [[str(r["item"]), str(r["published"]), share(r["share_claim_holds"])] + ([share(r["p_two_sided"])] if exact else []) + [str(r["verdict"])]
                for _, r in claims.iterrows()]
        cols = [Column("claim", flex=True), Column("as published", wrap=28), Column("holds", ">")] + ([Column("p", ">")] if exact else []) + [Column("verdict")]
        lines += heading("Checks against the published claims") + table(cols, rows)
        text = "holds: share of simulated cohorts in which the claim holds"
        if exact:
            text += "; p: two-sided predictive p-value of an exact value read at its printed precision (the verdict's basis)"
        lines += note(text + ". Every column of both tables: checks.csv.")
    return lines


def informativeness_lines(info: pd.DataFrame, width: int = WIDTH, names: dict | None = None, study=None) -> list[str]:
    """Where each estimand comes from: per estimand a line ``estimand: label`` (the estimand
    in words from ``names``, estimand key -> label of estimands.csv) and, indented,
    its contraction, power-scaling sensitivity to the prior, precision share of the statistics
    minus the claims and shifts, each with its 90% Monte Carlo interval.  A column with no
    value for any estimand (the group model has no claims block) is left out."""
    if info is None or not len(info):
        return []
    t = console_table(info, study)
    numeric = [c for c in t.columns if c not in ("estimand", "label")]
    numeric = [c for c in numeric if not t[c].str.fullmatch(r"[-\s/]*").all()]
    headers = {"contraction": "contr."}
    rows = [[str(r[c]) for c in numeric] for _, r in t.iterrows()]
    widths = [max([len(headers.get(c, c))] + [len(r[j]) for r in rows]) for j, c in enumerate(numeric)]
    # the numbers of a row are packed onto as few lines as fit the width; a number never wraps
    packs, current, used = [], [], INDENT
    for j, w in enumerate(widths):
        if current and used + GAP + w > width:
            packs.append(current)
            current, used = [], INDENT
        current.append(j)
        used += (GAP if len(current) > 1 else 0) + w

    def packed(cells: list[str]) -> list[str]:
        return [(" " * INDENT + (" " * GAP).join(f"{cells[j]:>{widths[j]}}" for j in pack)).rstrip() for pack in packs + [current]]

    lines = heading("Where each estimand comes from (informativeness.csv; 90% Monte Carlo intervals)")
    lines += ["estimand: source"] + packed([headers.get(c, c) for c in numeric])
    for (_, r), cells in zip(t.iterrows(), rows):
        name = (names or {}).get(r["estimand"]) or (estimand_label(study, r["estimand"])[0] if study is not None else r["estimand"])
        lines += wrap(f"{name}: {r['label']}", width, " " * INDENT)
        lines += packed(cells)
    lines += note("contr.: contraction of the posterior against the prior; psens: power-scaling sensitivity; "
                  "share stats - claims: precision share of the statistics minus the claims; shift: posterior "
                  "shift when the prior / likelihood is scaled. The reasons for each label: informativeness.csv.")
    return lines


def published_items_lines(items: pd.DataFrame, width: int = WIDTH) -> list[str]:
    """Counts of the published items by role, then every item the fit did not use with the
    reason (wrapped)."""
    if items is None:
        return []
    counts = items["role"].value_counts()
    lines = heading("Published items: what this fit did with each number and claim (published_items.csv)")
    lines.append(", ".join(f"{counts.get(r, 0)} {r}" for r in ("likelihood", "check", "unused")) + f" (of {len(items)})")
    for _, r in items[items["role"] == "unused"].iterrows():
        lines += textwrap.wrap(f"unused: {r['item']} ({r['value']}): {r['reason']}", width, initial_indent="  ",
                               subsequent_indent=" " * INDENT, break_on_hyphens=False)
    return lines


def family_lines(comparison: pd.DataFrame | None, width: int = WIDTH) -> list[str]:
    """The family comparison (family_comparison.csv): per family its diagnostics, how many
    published numbers and claims it reproduces, its predictive score with the Monte Carlo
    error and its distance from the best; then what each family does not reproduce."""
    if comparison is None or not len(comparison):
        return []
    rows = [[str(r["family"]), "OK" if r["diagnostics_ok"] else "FAILED", str(r["numbers_reproduced"]), str(r["claims_reproduced"]),
             f"{number(r['score'], 3)} ± {number(r['score_se'], 2)}",
             "best" if r["score_difference"] == 0 else f"+{number(r['score_difference'], 3)} ± {number(r['difference_se'], 2)}"]
            for _, r in comparison.iterrows()]
    cols = [Column("family"), Column("sampler"), Column("numbers", ">"), Column("claims", ">"), Column("score (CRPS)", ">"), Column("vs best", ">")]
    lines = heading("Families compared on the published numbers (family_comparison.csv)") + table(cols, rows, width)
    lines += note("score: the published numbers' summed CRPS under the posterior predictive, relative to each number "
                  "(lower is better; ± one Monte Carlo standard error).", width)
    for _, r in comparison.iterrows():
        if r["not_reproduced"]:
            lines += textwrap.wrap(f"{r['family']} does not reproduce: {r['not_reproduced']}", width, initial_indent="  ",
                                   subsequent_indent=" " * INDENT, break_on_hyphens=False)
    return lines


def diagnostics_line(diag) -> str:
    """The sampler gate in one line (a :class:`reanalysis.diagnostics.Diagnostics`)."""
    return (f"Diagnostics: {diag.divergences} divergences, max R-hat {diag.max_rhat:.4f}, min bulk ESS {diag.min_ess_bulk:.0f}, "
            f"min tail ESS {diag.min_ess_tail:.0f} -> {'OK' if diag.ok else 'FAILED'}")


def results_line(folder) -> str:
    """The result folder, alone on its line: a path is never wrapped, so that it can be
    copied, and the only line that may pass :data:`WIDTH` is a path that long."""
    return f"Results: {folder}"


def timing_line(timings: dict) -> str:
    """The run's total and sampling seconds."""
    return f"Run time: {timings['total']:.1f} s in all, {timings['sample']:.1f} s sampling"


def verdict_lines(sentences: list[str], width: int = WIDTH) -> list[str]:
    """The verdict section: one bullet per sentence, wrapped to ``width``."""
    lines = heading("Verdict")
    for s in sentences:
        lines += textwrap.wrap(s, width, initial_indent="- ", subsequent_indent="  ", break_on_hyphens=False)
    return lines


def report_lines(study_id: str, estimands, checks, evidence, diag, folder, timings=None, info=None, items=None, families=None,
                 study=None) -> list[str]:
    """Every section of the default console report except the verdict, which
    :func:`verdict_lines` prints last.

    Parameters
    ----------
    study_id : str
    estimands, checks, evidence : DataFrame
        The result folder's tables (estimands.csv, checks.csv, evidence.csv).
    diag : reanalysis.diagnostics.Diagnostics
    folder : Path or str
        The result folder.
    timings : dict, optional
        Seconds with keys ``total`` and ``sample``.
    info, items, families : DataFrame, optional
        informativeness.csv, published_items.csv and family_comparison.csv (sections left
        out when None).
    study : models.study.Study, optional
        The study file, for the words of the parameters the informativeness section names.
    """
    lines = estimand_lines(estimands, study_id) + evidence_lines(evidence, study) + check_lines(checks)
    names = dict(zip(estimands["estimand"], estimands["label"])) if estimands is not None and len(estimands) else None
    lines += informativeness_lines(info, names=names, study=study) + published_items_lines(items) + family_lines(families)
    lines += ["", diagnostics_line(diag)] + ([timing_line(timings)] if timings else [])
    return lines + [results_line(folder)]


def quiet_lines(folder, sentences: list[str]) -> list[str]:
    """``--quiet``: the result folder, then the verdict."""
    return [results_line(folder)] + verdict_lines(sentences)


def _value(v):
    """A table cell as JSON: NaN becomes null, numpy scalars plain numbers."""
    if v is None:
        return None
    if isinstance(v, str):
        return v
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(x):
        return None
    return int(x) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else x


def json_report(study_id: str, model: str, family: str, seed: int, folder, diag, estimands: pd.DataFrame,
                checks: pd.DataFrame, sentences: list[str]) -> dict:
    """``--json``: the fit's essentials as one JSON-ready object.

    Returns
    -------
    dict
        ``study``, ``model``, ``family``, ``seed``, ``folder``; ``diagnostics`` (ok,
        divergences, max_rhat, min_ess_bulk, min_ess_tail, problems); ``estimands`` (estimand,
        label, units, median, hdi_low, hdi_high); ``checks`` (item, kind, verdict, and
        ``p_two_sided`` for a number, ``share_claim_holds`` (and an exact value's
        ``p_two_sided``) for a claim); ``verdict`` (the sentences).  Missing values are null.
    """
    est = [{c: _value(r[c]) for c in ("estimand", "label", "units", "median", "hdi_low", "hdi_high")} for _, r in estimands.iterrows()]
    chk = []
    for _, r in checks.iterrows():
        row = {c: _value(r[c]) for c in ("item", "kind", "verdict")}
        if r["kind"] == "claim":
            row["share_claim_holds"] = _value(r["share_claim_holds"])
            if _value(r["p_two_sided"]) is not None:
                row["p_two_sided"] = _value(r["p_two_sided"])
        else:
            row["p_two_sided"] = _value(r["p_two_sided"])
        chk.append(row)
    return {
        "study": study_id,
        "model": model,
        "family": family,
        "seed": int(seed),
        "folder": str(folder),
        "diagnostics": {
            "ok": bool(diag.ok),
            "divergences": int(diag.divergences),
            "max_rhat": _value(diag.max_rhat),
            "min_ess_bulk": _value(diag.min_ess_bulk),
            "min_ess_tail": _value(diag.min_ess_tail),
            "problems": list(diag.problems),
        },
        "estimands": est,
        "checks": chk,
        "verdict": list(sentences),
    }


def json_text(report: dict) -> str:
    """:func:`json_report`'s object as the one JSON document ``--json`` prints."""
    return json.dumps(report, indent=2, allow_nan=False)

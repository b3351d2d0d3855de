"""A result folder's tables for a manuscript, and several result folders side by side.

``reanalysis tables RESULT_DIR`` writes one table of a fit (estimands, checks, published
items or the family comparison) as Markdown, LaTeX (booktabs) or CSV; ``reanalysis compare
DIR DIR ...`` puts the estimands or the checks of two or more fits in one table, a column
per fit, labelled by what differs between them (model, family, prior set, seed).

The tables are read from the result folder's CSV files, never recomputed, so an exported
number is the number the fit wrote; the text columns use the study file's labels.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from reanalysis.report import console

#: Output formats.
FORMATS = ("md", "tex", "csv")
#: Tables of one result folder: name -> (file, caption).
TABLES = {
    "estimands": ("estimands.csv", "Posterior medians and 95% highest-density intervals"),
    "checks": ("checks.csv", "Published numbers and claims against the posterior predictive distribution"),
    "published_items": ("published_items.csv", "What the fit did with each published number and claim"),
    "families": ("family_comparison.csv", "Population families compared on the published numbers"),
}
#: Tables that can be compared across result folders.
COMPARABLE = ("estimands", "checks")
#: Settings of a fit (manifest.json) that name a column when they differ between folders.
SETTINGS = ("model", "family", "prior_set", "seed")


class TablesError(ValueError):
    """A result folder or table that cannot be exported; ``str()`` is one line for users."""


#: Significant digits of a number in a manuscript table.
DIGITS = 3


def number(v, digits: int = DIGITS) -> str:
    """``v`` with three significant digits, or ``""`` when missing (:func:`reanalysis.report.console.number`)."""
    return console.number(v, digits)


def _interval(low, high) -> str:
    lo, hi = number(low), number(high)
    return f"{lo} to {hi}" if lo and hi else ""


def read_table(folder: Path, name: str) -> pd.DataFrame:
    """The CSV behind table ``name`` of result folder ``folder``.

    Raises
    ------
    TablesError
        Not a folder, an unknown table, or a folder without that table's file.
    """
    folder = Path(folder)
    if name not in TABLES:
        raise TablesError(f"unknown table {name!r}; choose one of {', '.join(TABLES)}")
    if not folder.is_dir():
        raise TablesError(f"{folder}: not a result folder (no such folder)")
    path = folder / TABLES[name][0]
    if not path.is_file():
        hint = " (fit with --compare-families to write it)" if name == "families" else ""
        raise TablesError(f"{folder}: no {TABLES[name][0]} in this result folder{hint}")
    try:
        return pd.read_csv(path, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TablesError(f"{path}: unreadable CSV ({type(exc).__name__})") from None


def manuscript_table(folder: Path, name: str) -> pd.DataFrame:
    """Table ``name`` of ``folder`` with the columns a manuscript shows, numbers formatted
    to three significant digits (the CSV export keeps every digit: :func:`full_table`)."""
    df = read_table(folder, name)
    if name == "estimands":
        return pd.DataFrame({"Estimand": df["label"], "Median": df["median"].map(number),
                             "95% HDI": [_interval(a, b) for a, b in zip(df["hdi_low"], df["hdi_high"])], "Units": df["units"]})
    if name == "checks":
        judged = [number(p) if not pd.isna(p) else f"holds in {number(s)}" for p, s in zip(df["p_two_sided"], df["share_claim_holds"])]
        return pd.DataFrame({"Published item": df["item"], "Published": df["published"].map(number), "Predicted median": df["predictive_median"].map(number),
                             "95% predictive interval": [_interval(a, b) for a, b in zip(df["predictive_low"], df["predictive_high"])],
                             "p or share": judged, "Verdict": df["verdict"]})
    if name == "published_items":
        return pd.DataFrame({"Item": df["item"], "Value": df["value"].astype(str), "Role": df["role"], "Reason": df["reason"]})
    return pd.DataFrame({"Family": df["family"], "Sampler": df["diagnostics_ok"].map(lambda ok: "OK" if bool(ok) else "FAILED"),
                         "Numbers reproduced": df["numbers_reproduced"], "Claims reproduced": df["claims_reproduced"],
                         "CRPS score": [f"{number(s)} ± {number(e, 2)}" for s, e in zip(df["score"], df["score_se"])],
                         "Difference from best": [f"{number(s)} ± {number(e, 2)}" for s, e in zip(df["score_difference"], df["difference_se"])]})


def full_table(folder: Path, name: str) -> pd.DataFrame:
    """Table ``name`` of ``folder`` as written, every column and digit (the CSV export)."""
    return read_table(folder, name)


def _settings(folder: Path) -> dict:
    try:
        manifest = json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: manifest.get(k) for k in SETTINGS}


def column_names(folders: list[Path]) -> list[str]:
    """One header per folder: the settings that differ between the folders (from
    manifest.json), else the folder's name; names are made unique."""
    settings = [_settings(f) for f in folders]
    differing = [k for k in SETTINGS if len({json.dumps(s.get(k)) for s in settings}) > 1]
    names = []
    for f, s in zip(folders, settings):
        name = ", ".join(f"{k.replace('_', ' ')} {s.get(k)}" for k in differing) if differing else Path(f).name
        names.append(name if name not in names else f"{name} ({Path(f).name})")
    return names


def side_by_side(folders: list[Path], name: str = "estimands") -> pd.DataFrame:
    """The estimands (median and 95% HDI) or the checks (predicted median, p and verdict) of
    several result folders in one table: a row per estimand or published item, in the first
    folder's order then any the others add, a column per folder."""
    if name not in COMPARABLE:
        raise TablesError(f"only {' and '.join(COMPARABLE)} can be compared, not {name!r}")
    if len(folders) < 2:
        raise TablesError("compare needs at least two result folders")
    key, label = ("estimand", "label") if name == "estimands" else ("key", "item")
    rows: dict[str, dict] = {}
    for col, folder in zip(column_names(folders), folders):
        df = read_table(folder, name)
        for _, r in df.iterrows():
            row = rows.setdefault(str(r[key]), {"Estimand" if name == "estimands" else "Published item": r[label]})
            if name == "estimands":
                row["Units"] = r["units"]
                row[col] = f"{number(r['median'])} ({_interval(r['hdi_low'], r['hdi_high'])})"
            else:
                row["Published"] = number(r["published"])
                judged = f"p {number(r['p_two_sided'])}" if not pd.isna(r["p_two_sided"]) else f"holds in {number(r['share_claim_holds'])}"
                row[col] = f"{number(r['predictive_median'])}; {judged}; {r['verdict']}"
    return pd.DataFrame(list(rows.values())).fillna("")


# -- rendering ------------------------------------------------------------------------------
def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame, caption: str) -> str:
    """A pipe table with a caption line above it (GitHub and pandoc Markdown)."""
    head = "| " + " | ".join(_md_cell(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([f"Table: {caption}", "", head, rule, *body]) + "\n"


#: LaTeX's special characters and how a table cell writes them.
_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "µ": r"$\mu$"}


def tex_escape(text) -> str:
    """``text`` with LaTeX's special characters escaped (one pass, so escapes are not escaped again)."""
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def to_latex(df: pd.DataFrame, caption: str) -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""
    lines = [r"\begin{table}[ht]", r"\centering", f"\\caption{{{tex_escape(caption)}}}", r"\begin{tabular}{" + "l" * len(df.columns) + "}",
             r"\toprule", " & ".join(tex_escape(c) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(tex_escape(v) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def render(df: pd.DataFrame, fmt: str, caption: str) -> str:
    """``df`` as Markdown, LaTeX or CSV text."""
    if fmt == "md":
        return to_markdown(df, caption)
    if fmt == "tex":
        return to_latex(df, caption)
    if fmt == "csv":
        return df.to_csv(index=False)
    raise TablesError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")

"""Write a table of a fit's result folder for a manuscript: Markdown, LaTeX or CSV.

The numbers are those of the result folder's CSV files (Markdown and LaTeX at three
significant digits, CSV with every column and digit); the labels are the study file's.
LaTeX tables use booktabs (\\usepackage{booktabs}).

Exit codes: 0 written; 2 bad input (one line 'error: ...' naming the folder, file or
option; nothing is written); 1 unexpected error.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reanalysis.cli.parser import Parser
from reanalysis.settings import EXIT_INPUT, EXIT_OK

#: Program name in usage lines (``reanalysis tables`` from the console script).
PROG = "tables.py"
#: The tables' names, as reanalysis.report.tables.TABLES has them (kept here so that --help
#: imports no pandas).
TABLE_NAMES = ("estimands", "checks", "published_items", "families")
FORMAT_NAMES = ("md", "tex", "csv")


def parse_args(argv=None) -> argparse.Namespace:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("result_dir", type=Path, metavar="RESULT_DIR", help="a result folder written by scripts/fit.py")
    p.add_argument("--table", choices=TABLE_NAMES, default="estimands",
                   help="which table (default: %(default)s; families: written by fit.py --compare-families)")
    p.add_argument("--format", choices=FORMAT_NAMES, default="md", help="Markdown, LaTeX (booktabs) or CSV (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="write to FILE instead of standard output")
    return p.parse_args(argv)


def write_text(text: str, out: Path | None) -> None:
    """``text`` to standard output, or whole to ``out`` (a temporary file renamed over it,
    so a failed write leaves the old file as it was)."""
    import os
    import tempfile

    if out is None:
        sys.stdout.write(text)
        return
    out = Path(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: folder {out.parent} does not exist")
    with tempfile.NamedTemporaryFile("w", dir=out.parent, suffix=".tmp", delete=False, encoding="utf-8") as fh:
        fh.write(text)
    os.replace(fh.name, out)


def main(argv=None) -> int:
    args = parse_args(argv)
    from reanalysis.report.tables import TABLES, TablesError, full_table, manuscript_table, render

    try:
        df = full_table(args.result_dir, args.table) if args.format == "csv" else manuscript_table(args.result_dir, args.table)
        write_text(render(df, args.format, f"{TABLES[args.table][1]} ({Path(args.result_dir).name})"), args.out)
    except (TablesError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    return EXIT_OK

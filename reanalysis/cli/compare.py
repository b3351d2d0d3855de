"""Put two or more fits side by side: the estimands (median and 95% HDI) or the checks
(predicted median, p or share, verdict) of each result folder in one table, a column per
folder, named by the settings that differ between them (model, family, prior set, seed).

Output as Markdown, LaTeX (booktabs) or CSV; rows follow the first folder, then any rows
only a later folder has (an estimand one model computes and another does not is blank
where it is missing).

Exit codes: 0 written; 2 bad input (one line 'error: ...' naming the folder, file or
option; nothing is written); 1 unexpected error.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reanalysis.cli.parser import Parser
from reanalysis.cli.tables import FORMAT_NAMES, write_text
from reanalysis.settings import EXIT_INPUT, EXIT_OK

#: Program name in usage lines (``reanalysis compare`` from the console script).
PROG = "compare.py"


def parse_args(argv=None) -> argparse.Namespace:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("result_dirs", type=Path, nargs="+", metavar="RESULT_DIR", help="two or more result folders written by scripts/fit.py")
    p.add_argument("--table", choices=("estimands", "checks"), default="estimands", help="what to compare (default: %(default)s)")
    p.add_argument("--format", choices=FORMAT_NAMES, default="md", help="Markdown, LaTeX (booktabs) or CSV (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="write to FILE instead of standard output")
    args = p.parse_args(argv)
    if len(args.result_dirs) < 2:
        p.error("give at least two result folders")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from reanalysis.report.tables import TablesError, render, side_by_side

    try:
        df = side_by_side(args.result_dirs, args.table)
        caption = f"{args.table.capitalize()} of {len(args.result_dirs)} fits side by side"
        write_text(render(df, args.format, caption), args.out)
    except (TablesError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    return EXIT_OK

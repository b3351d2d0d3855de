"""Write a self-contained HTML report (RESULT_DIR/report.html) of a result folder of fit.py.

One file: figures embedded as PNG data URIs, inline CSS, no scripts, nothing loaded from
anywhere.  Sections: the study at a glance, headline estimands, checks against the published
numbers, group values and ratios, sampler diagnostics, sensitivity (with --sensitivity),
assumptions, measurement plausibility, reproducibility.

Exit codes: 0 written; 2 bad input (one line 'error: ...' naming what is missing; nothing
is written); 1 unexpected error.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reanalysis.cli.parser import Parser
from reanalysis.settings import EXIT_INPUT, EXIT_OK

#: Program name in usage lines (``reanalysis report`` from the console script).
PROG = "report.py"


def parse_args(argv=None) -> argparse.Namespace:
    p = Parser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("result_dir", type=Path, metavar="RESULT_DIR", help="a result folder written by scripts/fit.py")
    p.add_argument(
        "--sensitivity",
        type=Path,
        default=None,
        metavar="DIR",
        help="a sensitivity result: a folder with sensitivity.csv, or a folder of result folders to compare",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from reanalysis.report.html import ReportError, write_report

    try:
        path = write_report(args.result_dir, args.sensitivity)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    print(path)
    return EXIT_OK

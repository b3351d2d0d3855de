#!/usr/bin/env python
"""Regenerate the README's results section from a result folder of fit.py.

Replaces the block between the generated-results markers in README.md with the folder's
estimands, checks and diagnostics, and the command, commit and date they came from.  With no
RESULT_DIR, the newest result folder of the default study and model under results/ is used.

Exit codes: 0 written (or, with --check, up to date); 2 bad input (one line naming the file
and the problem; nothing is written); 3 --check found the README out of date.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXIT_OK, EXIT_INPUT, EXIT_STALE = 0, 2, 3


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="readme_results.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("result_dir", type=Path, nargs="?", metavar="RESULT_DIR", help="a result folder written by scripts/fit.py (default: the newest results/lasemi2018-hierarchical-*)")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md", help="README to update (default: %(default)s)")
    p.add_argument("--check", action="store_true", help="only report whether the README's block matches RESULT_DIR (exit 3 if not)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from reanalysis.report.readme_results import ResultsError, replace_block, results_markdown

    folder = args.result_dir
    if folder is None:
        found = sorted((ROOT / "results").glob("lasemi2018-hierarchical-*"))
        if not found:
            print(f"error: {ROOT / 'results'}: no result folder of the default fit; run `make fit` first or name RESULT_DIR", file=sys.stderr)
            return EXIT_INPUT
        folder = found[-1]
    try:
        text = args.readme.read_text(encoding="utf-8")
        new = replace_block(text, results_markdown(folder, readme_dir=args.readme.parent), where=str(args.readme))
    except (ResultsError, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    if args.check:
        if new != text:
            print(f"{args.readme}: results block differs from {folder}", file=sys.stderr)
            return EXIT_STALE
        return EXIT_OK
    args.readme.write_text(new, encoding="utf-8")
    print(f"{args.readme}: results block from {folder}")
    return EXIT_OK


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing
    sys.exit(main())

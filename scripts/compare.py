#!/usr/bin/env python
"""Put two or more result folders side by side (estimands or checks; Markdown, LaTeX, CSV).

The command is :mod:`reanalysis.cli.compare` (also ``reanalysis compare`` once installed);
``--help`` lists the options and exit codes.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from reanalysis.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))

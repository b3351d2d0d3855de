#!/usr/bin/env python
"""Write a self-contained HTML report (RESULT_DIR/report.html) of a result folder of fit.py.

The command is :mod:`reanalysis.cli.report` (also ``reanalysis report`` once installed);
``--help`` lists the options and exit codes.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from reanalysis.cli.report import main, parse_args  # noqa: E402,F401

if __name__ == "__main__":
    from reanalysis.settings import EXIT_INTERRUPTED

    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: no report was written", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)

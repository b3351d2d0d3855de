#!/usr/bin/env python
"""Simulation-based calibration of a model on a study's design.

The command is :mod:`reanalysis.cli.sbc` (also ``reanalysis sbc`` once installed);
``--help`` lists the options and exit codes.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from reanalysis.cli.sbc import main, parse_args  # noqa: E402,F401 (stdlib only until main runs)

if __name__ == "__main__":
    from reanalysis.supervisor import run

    sys.exit(run(main, parse_args))

"""``python -m reanalysis fit|sensitivity|sbc|report|tables|compare ...``: the console script without installing."""
import sys

from reanalysis.cli import main

sys.exit(main())

"""``python -m reanalysis fit|sensitivity|sbc|report ...``: the console script without installing."""
import sys

from reanalysis.cli import main

sys.exit(main())

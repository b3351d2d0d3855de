"""The command line: ``reanalysis fit|sensitivity|sbc|report|tables|compare [options]`` (the console script
of ``pip install -e .``), the same ``main`` functions as ``scripts/*.py``.

Each subcommand's module holds its options (``parse_args``) and its work (``main(argv)``
returning an exit code, :mod:`reanalysis.settings`).  ``fit``, ``sensitivity`` and ``sbc``
run their work in a supervised child process (:func:`reanalysis.supervisor.run`), so that
Ctrl-C stops them and every worker at once and leaves no partial result.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

#: Subcommand -> (module, supervised).
COMMANDS = {
    "fit": ("reanalysis.cli.fit", True),
    "sensitivity": ("reanalysis.cli.sensitivity", True),
    "sbc": ("reanalysis.cli.sbc", True),
    "report": ("reanalysis.cli.report", False),
    "tables": ("reanalysis.cli.tables", False),
    "compare": ("reanalysis.cli.compare", False),
}
USAGE = "usage: reanalysis {" + ",".join(COMMANDS) + "} [options]   (reanalysis COMMAND --help for each command's options)"


def main(argv: list | None = None) -> int:
    """Run subcommand ``argv[0]`` with the options that follow; returns the exit code."""
    from reanalysis.settings import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK

    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return EXIT_OK if argv else EXIT_INPUT
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        from reanalysis.cli.parser import nearest

        print(f"{USAGE}\nreanalysis: error: unknown command {name!r}{nearest(name, COMMANDS)}", file=sys.stderr)
        return EXIT_INPUT
    module_name, supervised = COMMANDS[name]
    module = importlib.import_module(module_name)
    module.PROG = f"reanalysis {name}"
    if supervised:
        from reanalysis.supervisor import run

        # the supervised child runs this command again (python -m reanalysis, or the script)
        launcher = ["-m", "reanalysis"] if Path(sys.argv[0]).name == "__main__.py" else [sys.argv[0]]
        return run(module.main, module.parse_args, rest, command=[sys.executable, *launcher, name])
    try:
        return module.main(rest)
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED

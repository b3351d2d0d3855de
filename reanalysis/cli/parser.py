"""The commands' option parser: argparse's, with the nearest valid option suggested for a
mistyped one (``--prios`` -> ``--priors``), as the study and grid files suggest the nearest
key."""
from __future__ import annotations

import argparse
import difflib
import re


def nearest(word: str, choices) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` to ``word``, else ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Parser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose error for unrecognised options names, for
    each, the nearest option the command has (exit code 2, argparse's)."""

    def error(self, message: str):
        m = re.fullmatch(r"unrecognized arguments: (.*)", message)
        if m:
            options = [o for action in self._actions for o in action.option_strings if o.startswith("--")]
            hints = [f"{word.split('=')[0]}{nearest(word.split('=')[0], options)}" for word in m.group(1).split() if word.startswith("--")]
            hints = [h for h in hints if "did you mean" in h]
            if hints:
                message += "; " + "; ".join(hints)
        super().error(message)

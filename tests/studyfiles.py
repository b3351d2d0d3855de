"""Helpers for tests that write variants of the real study file and check their errors."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from models.study import StudyError, load_study

#: As an edit's value: delete the entry instead of setting it.
MISSING = object()


def edit(data: dict, dotted: str, value=MISSING) -> None:
    """Set (or, with ``MISSING``, delete) the entry at a dotted path like 'groups.ms.n'."""
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is MISSING:
        del node[last]
    else:
        node[last] = copy.deepcopy(value)


def variant(write_study, base: dict, edits: dict, name: str = "variant.yaml") -> Path:
    """Write a copy of the real study with ``edits`` ({dotted path: value or MISSING})."""
    data = copy.deepcopy(base)
    for dotted, value in edits.items():
        edit(data, dotted, value)
    return write_study(data, name)


def assert_study_error(path: Path, field: str | None, phrase: str) -> str:
    """``load_study(path)`` raises a one-line StudyError "<path>: <field>: <phrase ...>"."""
    with pytest.raises(StudyError) as info:
        load_study(path)
    msg = str(info.value)
    assert "\n" not in msg and "\r" not in msg, f"message is not one line: {msg!r}"
    prefix = f"{path}: "
    assert msg.startswith(prefix), f"message does not start with the file path: {msg!r}"
    rest = msg[len(prefix):]
    if field is not None:
        assert rest.startswith(f"{field}: "), f"message does not name field {field!r}: {msg!r}"
        rest = rest[len(field) + 2:]
    assert re.search(phrase, rest), f"message does not say {phrase!r}: {msg!r}"
    return msg

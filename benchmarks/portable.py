"""Paths as the committed benchmark files show them: relative to the project root, or only the folder's
own name for a place outside it (``<outside>/photos``), so results.json and BENCHMARKS.md name no
machine's directories (/work, /tmp, a home folder) and read the same on every clone."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from contract.paths import PROJECT_ROOT

OUTSIDE = "<outside>"


def portable_path(path: str | os.PathLike[str]) -> str:
    """A relative path is kept (the suite runs from the project root); an absolute one inside the
    project becomes relative to it; any other keeps its last component only."""
    p = Path(path).expanduser()
    if not p.is_absolute():
        return str(p)
    resolved = p.resolve()
    if resolved.is_relative_to(PROJECT_ROOT):
        return str(resolved.relative_to(PROJECT_ROOT)) or "."
    return f"{OUTSIDE}/{p.name}" if p.name else OUTSIDE


def portable_arg(arg: str) -> str:
    """One command-line word: a path (``/x``, ``~/x``, ``--flag=/x``) made portable, anything else as is."""
    if arg.startswith(("/", "~")):
        return portable_path(arg)
    flag, eq, value = arg.partition("=")
    if eq and flag.startswith("-") and value.startswith(("/", "~")):
        return f"{flag}={portable_path(value)}"
    return arg


def portable_command(argv: Sequence[str]) -> str:
    return shlex.join(portable_arg(a) for a in argv)

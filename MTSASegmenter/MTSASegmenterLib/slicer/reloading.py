"""Reload for developers: Slicer's Reload re-reads the module file, not the library beside it."""

from __future__ import annotations

import sys


def forget_library(package: str = "MTSASegmenterLib") -> list[str]:
    """Drop ``package`` and its submodules from ``sys.modules``, so that the module file's imports,
    run again by Reload, read every library file from disk. Returns the names dropped."""
    names = sorted(n for n in sys.modules if n == package or n.startswith(package + "."))
    for name in names:
        del sys.modules[name]
    return names

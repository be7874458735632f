"""``_()`` for text shown to users: Slicer's translation function where the application has it.

Slicer's scripted modules wrap their texts in ``_()`` from ``slicer.i18n`` (Slicer >= 5.4), whose
context is the calling file. Outside the application (slicer-core, tests) and in older versions
the text is returned as it is.
"""

from __future__ import annotations

try:
    from slicer.i18n import tr as _
except ImportError:

    def _(text: str) -> str:
        return text


__all__ = ["_"]

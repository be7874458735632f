"""Progress as every long operation reports it: ``progress(fraction, message)`` callbacks, and a
terminal bar that such callbacks drive (commands of the core and of the trainer alike)."""

from __future__ import annotations

import sys
from typing import Callable

Progress = Callable[[float, str], None]
ShouldCancel = Callable[[], bool]


def progress_bar(description: str) -> tuple[Progress, Callable[[], None]]:
    """A terminal bar driven by ``progress(fraction, message)`` callbacks (tqdm when present)."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a runtime dependency
        return (lambda fraction, message: None), (lambda: None)
    bar = tqdm(total=1000, desc=description, unit="", bar_format="{desc} {bar} {percentage:3.0f}% {postfix}", leave=False, file=sys.stderr, disable=None)

    def update(fraction: float, message: str) -> None:
        bar.n = int(1000 * min(max(fraction, 0.0), 1.0))
        bar.set_postfix_str(message, refresh=True)

    return update, bar.close

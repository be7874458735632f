"""One exit-code rule for the training-side commands (train, fit-head, evaluate, ablations, demo,
check-real, cohort check), the same as ``mtsa``'s: a one-line ``error: ...`` and ``EXIT_ERROR`` on
bad input, ``EXIT_INTERRUPTED`` on Ctrl-C, a traceback (1) only for a bug. It holds when a command
runs on its own too (``python -m training.train.cli``, torchrun), not only under ``mtsa``."""

from __future__ import annotations

import sys
from typing import Callable

from MTSASegmenterLib.errors import EXIT_ERROR, EXIT_INTERRUPTED, MTSAError


def run_command(body: Callable[[], int], interrupted: str = "no output was written for the work in progress") -> int:
    """``body()``'s exit status, or the rule's on an ``MTSAError`` or Ctrl-C."""
    try:
        return body()
    except MTSAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"error: interrupted; {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED

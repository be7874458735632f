"""Errors that reach the user as one line: they name the input and what is wrong with it.

Every command (``mtsa`` and its subcommands) exits with ``EXIT_ERROR`` on such an error and with
``EXIT_INTERRUPTED`` on Ctrl-C, so scripts can tell bad input from a crash (a traceback, 1):
``run_command`` applies that rule, also when a training command runs on its own
(``python -m training.train.cli``, torchrun), not only under ``mtsa``.
"""

from __future__ import annotations

import sys
from typing import Callable

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class MTSAError(Exception):
    """Base of the errors the command line prints as ``error: ...`` and exits non-zero on."""


class InputError(MTSAError):
    """An input volume that cannot be predicted (unreadable, wrong dimension, bad values, bad geometry)."""


class CheckpointError(MTSAError):
    """A checkpoint that is not data, is damaged, or does not match this code."""


class OutputError(MTSAError):
    """An output that cannot be written (exists without --overwrite, folder not writable)."""


class Cancelled(MTSAError):
    """The user cancelled a long operation; nothing was written."""


def run_command(body: Callable[[], int], interrupted: str = "no output was written for the work in progress") -> int:
    """``body()``'s exit status, or the rule's on an ``MTSAError`` (its one line) or Ctrl-C."""
    try:
        return body()
    except MTSAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"error: interrupted; {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED

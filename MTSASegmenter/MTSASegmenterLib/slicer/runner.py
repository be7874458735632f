"""The prediction process seen from the Slicer side: start it, read its lines, end it.

``subprocess.Popen`` (what ``slicer.util.launchConsoleProcess`` wraps) with a reader thread, so
that the GUI thread never blocks on the child's output: it only drains what has arrived, from a
timer. The timer is the one part that needs Qt (``QtPollTimer``); anything with ``start(tick)``
and ``stop()`` drives the same code, which is how the tests run it with real processes.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Protocol

#: The folder that holds the MTSASegmenterLib package (the Slicer module's folder).
LIBRARY_PARENT = Path(__file__).resolve().parents[2]


class PollTimer(Protocol):
    """What drives a run: calls ``tick`` repeatedly until it returns False or ``stop`` is called."""

    def start(self, tick: Callable[[], bool]) -> None: ...

    def stop(self) -> None: ...


class QtPollTimer:
    """The poll timer inside Slicer: a ``qt.QTimer`` on the GUI thread (10 ticks a second)."""

    def __init__(self, interval_ms: int = 100) -> None:
        import qt  # only inside the application

        self._timer = qt.QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.connect("timeout()", self._on_timeout)
        self._tick: Callable[[], bool] | None = None

    def start(self, tick: Callable[[], bool]) -> None:
        self._tick = tick
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self._tick = None

    def _on_timeout(self) -> None:
        if self._tick is not None and not self._tick():
            self.stop()


def python_executable() -> str:
    """Slicer's Python launcher (it sets up Slicer's libraries) when found, else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def worker_command(python: str, input_path: Path, out: Path, case: str, model: Path | None,
                   device: str, batch_size: int | None) -> list[str]:
    command = [python, "-m", "MTSASegmenterLib.slicer.worker", "--input", str(input_path), "--out", str(out),
               "--case", case, "--device", device]
    if model is not None:
        command += ["--model", str(model)]
    if batch_size:
        command += ["--batch-size", str(int(batch_size))]
    return command


class ChildProcess:
    """A started child whose merged stdout/stderr lines are queued by a reader thread."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        environment = dict(os.environ if env is None else env)
        environment.update(PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # Windows: no console window pops up
        self._popen = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            encoding="utf-8", errors="replace", bufsize=1, cwd=str(LIBRARY_PARENT), env=environment,
            creationflags=flags,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._eof = False
        self._reader = threading.Thread(target=self._read, name="mtsa-prediction-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._popen.stdout is not None
        for line in self._popen.stdout:
            self._lines.put(line.rstrip("\r\n"))
        self._lines.put(None)

    @property
    def pid(self) -> int:
        return self._popen.pid

    def new_lines(self) -> list[str]:
        """What the child printed since the last call, without waiting."""
        lines = []
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return lines
            if line is None:
                self._eof = True
            else:
                lines.append(line)

    def exit_status(self) -> int | None:
        """The exit status once the child has ended and all its output has been read; else None."""
        if not self._eof:
            return None
        return self._popen.wait()

    def has_exited(self) -> bool:
        return self._popen.poll() is not None

    def kill(self) -> None:
        if self._popen.poll() is None:
            self._popen.kill()
        self._popen.wait()
        self._reader.join(timeout=5)
        if self._popen.stdout is not None:
            self._popen.stdout.close()


def failure_message(status: int, lines: list[str]) -> str:
    """What the user reads when the process failed: its own ``error:`` line, else how it stopped."""
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: "):]
    if status < 0:
        how = f"was stopped by signal {-status}"
    else:
        how = f"stopped unexpectedly (exit status {status})"
    last = next((line for line in reversed(lines) if line.strip()), "")
    return f"The prediction process {how}" + (f": {last.strip()}" if last else "") + ". See the log for details."

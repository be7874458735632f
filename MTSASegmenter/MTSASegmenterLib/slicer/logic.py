"""The module's logic without Qt: predict a volume node in a background process, or in this one.

``SegmenterLogic.start`` writes the volume to a temporary NRRD file, starts the prediction
process (``worker``) and returns at once; a poll timer then reads its progress, and when it has
ended the result is loaded into the scene (``bridge.load_prediction``). The scene changes at that
one moment only, so Cancel, a closed scene or a crash leave it as it was. ``process`` is the
same prediction in this process (self-test, scripting). Only the timer differs between Slicer
(``runner.QtPollTimer``) and the tests (a polling loop), so all of this runs under pytest with
real processes and real MRML.
"""

from __future__ import annotations

import enum
import json
import os
import shutil
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import SimpleITK as sitk

from ..errors import MTSAError
from . import bridge
from .translation import _
from .runner import ChildProcess, PollTimer, failure_message, python_executable, worker_command
from .worker import output_paths, parse_progress

CANCELLED_TEXT = _("Cancelled; nothing was changed.")


class Stage(enum.Enum):
    IDLE = "idle"
    STARTING = "starting"  # checking requirements, writing the volume, launching the process
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = (Stage.STARTING, Stage.RUNNING)


class Busy(RuntimeError):
    """A prediction is already starting or running; the logic runs one at a time."""


@dataclass
class Request:
    volume: Any  # vtkMRMLScalarVolumeNode
    segmentation: Any = None  # vtkMRMLSegmentationNode to write into; None: a new one
    model: Path | None = None  # None: the bundled demo model
    device: str = "auto"
    batch_size: int | None = None  # None: the predictor's default for the device


@dataclass
class Outcome:
    stage: Stage
    message: str
    log: str = ""  # everything the process printed but its progress lines
    segmentation: Any = None
    report: dict | None = None


class SegmenterLogic:
    def __init__(self, scene, timer: PollTimer, python: str | None = None, env: dict[str, str] | None = None) -> None:
        self.scene = scene
        self.stage = Stage.IDLE
        self.outcome: Outcome | None = None
        self._timer, self._python, self._env = timer, python, env
        self._child: ChildProcess | None = None
        self._folder: Path | None = None
        self._request: Request | None = None
        self._log: list[str] = []
        self._cancel_requested = False
        self._on_progress: Callable[[float, str], None] = lambda fraction, message: None
        self._on_end: Callable[[Outcome], None] = lambda outcome: None
        self._observer = scene.AddObserver(scene.StartCloseEvent, lambda *_: self.cancel())
        self._models: dict[tuple, Any] = {}

    def close(self) -> None:
        """Cancel what runs and stop following the scene (the module is being cleaned up)."""
        self.cancel()
        self.scene.RemoveObserver(self._observer)

    # --- the background prediction -----------------------------------------------------------

    def start(self, request: Request, on_progress: Callable[[float, str], None] | None = None,
              on_end: Callable[[Outcome], None] | None = None, prepare: Callable[[], None] | None = None) -> None:
        """Start predicting; every end (result, error, cancel) is reported once through ``on_end``.

        ``prepare`` runs first, while the logic already counts as busy: installing requirements
        there may show dialogs and process GUI events, and a click then cannot start a second run.
        """
        if self.stage in ACTIVE:
            raise Busy("a prediction is already running; cancel it or wait for it to end")
        self.stage, self.outcome, self._request, self._log = Stage.STARTING, None, request, []
        self._cancel_requested = False
        self._on_progress = on_progress or (lambda fraction, message: None)
        self._on_end = on_end or (lambda outcome: None)
        try:
            if prepare is not None:
                prepare()
            if self._cancel_requested:
                self._end(Stage.CANCELLED, CANCELLED_TEXT)
                return
            self._launch(request)
        except MTSAError as error:
            self._end(Stage.FAILED, str(error))
            return
        except Exception as error:  # a bug: say so, with the traceback for the report
            self._end(Stage.FAILED, f"Could not start the prediction: {error}", traceback.format_exc())
            return
        self.stage = Stage.RUNNING
        self._timer.start(self.poll)

    def _launch(self, request: Request) -> None:
        image = bridge.volume_node_to_image(request.volume)  # refuses what mtsa predict refuses
        self._folder = Path(tempfile.mkdtemp(prefix="mtsa-slicer-"))
        volume_path = self._folder / "input.nrrd"
        sitk.WriteImage(image, str(volume_path))  # NRRD keeps the exact geometry
        command = worker_command(self._python or python_executable(), volume_path, self._folder, request.volume.GetName(),
                                 request.model, request.device, request.batch_size)
        self._child = ChildProcess(command, self._env)

    def cancel(self) -> None:
        """Stop at whatever stage: the process is killed, its files removed, the scene untouched."""
        if self.stage is Stage.STARTING:
            self._cancel_requested = True
        elif self.stage is Stage.RUNNING:
            self._end(Stage.CANCELLED, CANCELLED_TEXT)

    def process_has_exited(self) -> bool:
        """Whether the prediction process has ended (its result may not be loaded yet)."""
        return self._child is not None and self._child.has_exited()

    def poll(self) -> bool:
        """One tick of the timer: hand on progress, and load the result once the process has ended."""
        if self.stage is not Stage.RUNNING or self._child is None:
            return False
        for line in self._child.new_lines():
            parsed = parse_progress(line)
            if parsed is None:
                self._log.append(line)
            else:
                self._on_progress(*parsed)  # may cancel, or close the scene
            if self.stage is not Stage.RUNNING:
                return False
        status = self._child.exit_status()
        if status is None:
            return True
        if status != 0:
            self._end(Stage.FAILED, failure_message(status, self._log))
        else:
            self._load_result()
        return False

    def _load_result(self) -> None:
        assert self._folder is not None and self._request is not None
        seg_path, report_path = output_paths(self._folder)
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
            node = bridge.load_prediction(seg_path, report, self._request.volume, self._request.segmentation)
        except (OSError, ValueError, MTSAError) as error:
            self._end(Stage.FAILED, f"The prediction ended but its result could not be loaded: {error}")
            return
        self._end(Stage.FINISHED, "", segmentation=node, report=report)

    def _end(self, stage: Stage, message: str, log: str = "", segmentation=None, report=None) -> None:
        self._timer.stop()
        if self._child is not None:
            self._child.kill()
            self._child = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        self.stage = stage
        self.outcome = Outcome(stage, message, log or "\n".join(self._log), segmentation, report)
        self._on_end(self.outcome)

    # --- in this process (self-test, scripting) ----------------------------------------------

    def load_model(self, path: str | Path | None = None):
        """The checkpoint at ``path`` (the bundled demo model when None), cached while unchanged on disk."""
        from ..model.checkpoint import load_checkpoint
        from ..resources import demo_model_path

        path = str(demo_model_path() if path is None else path)
        try:
            stat = os.stat(path)
        except OSError as error:
            raise MTSAError(f"{path}: model file not found") from error
        key = (os.path.abspath(path), stat.st_mtime_ns, stat.st_size)
        if key not in self._models:
            self._models = {key: load_checkpoint(path, "cpu")}
        return self._models[key]

    def process(self, volume, model=None, segmentation=None, device: str = "auto", progress=None, should_cancel=None):
        """Predict ``volume`` here and now; ``(segmentation node, report)``. Nothing changes on cancel."""
        return bridge.segment_volume_node(volume, model if model is not None else self.load_model(), segmentation_node=segmentation,
                                          device=device, progress=progress, should_cancel=should_cancel)

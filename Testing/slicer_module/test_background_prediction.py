"""The background prediction of the Slicer module with real processes and real MRML (slicer-core).

Only Qt's event loop is replaced: ``PollingLoop`` below is a test double of ``runner.QtPollTimer``
(it calls the logic's tick from a plain loop instead of a QTimer). Everything else is what runs
in Slicer: the NRRD hand-over, ``python -m MTSASegmenterLib.slicer.worker`` in a child process, its
progress lines, kill on cancel, and loading the .seg.nrrd and report into the scene.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("'slicer' is not Slicer's MRML (install slicer-core)", allow_module_level=True)
from mrml_helpers import segment_array, volume_node  # noqa: E402
from MTSASegmenterLib.resources import MODULE_DIR  # noqa: E402
from MTSASegmenterLib.slicer import bridge, worker  # noqa: E402
from MTSASegmenterLib.slicer.logic import Busy, Request, SegmenterLogic, Stage  # noqa: E402
from MTSASegmenterLib.slicer.runner import failure_message  # noqa: E402

PHANTOM = MODULE_DIR / "Resources" / "Testing" / "phantom_case.nrrd"


class PollingLoop:
    """Test double of runner.QtPollTimer: ticks from a loop the test runs, not from Qt's event loop."""

    def __init__(self) -> None:
        self.tick = None

    def start(self, tick) -> None:
        self.tick = tick

    def stop(self) -> None:
        self.tick = None

    def run(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.tick is not None:
            assert time.monotonic() < deadline, "the prediction did not end in time"
            if not self.tick():
                self.tick = None
            time.sleep(0.02)


@pytest.fixture
def scene():
    bridge._slicer()
    return slicer.vtkMRMLScene()


@pytest.fixture
def small_volume(scene):
    from helpers import lesion_volume

    image, _ = lesion_volume(size=(40, 44, 16), spacing=(2.0, 2.0, 3.0))
    return volume_node(scene, image, "small case")


@pytest.fixture
def loop():
    return PollingLoop()


def _snapshot(scene) -> list[str]:
    return sorted(scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes()))


def _temp_folders() -> set[str]:
    import tempfile

    return {p.name for p in Path(tempfile.gettempdir()).glob("mtsa-slicer-*")}


class Recorder:
    def __init__(self) -> None:
        self.progress: list[tuple[float, str]] = []
        self.ends = []

    def on_progress(self, fraction: float, message: str) -> None:
        self.progress.append((fraction, message))

    def on_end(self, outcome) -> None:
        self.ends.append(outcome)


def test_the_bundled_model_in_the_background_equals_the_in_process_path(scene, loop):
    """The demo case through the process: the same GTV and numbers as in-process, Dice >= 0.7 with the truth."""
    volume = volume_node(scene, sitk.ReadImage(str(PHANTOM)), "phantom")
    logic, seen = SegmenterLogic(scene, loop), Recorder()
    folders = _temp_folders()
    logic.start(Request(volume, device="cpu"), seen.on_progress, seen.on_end)
    assert logic.stage is Stage.RUNNING
    loop.run()

    (outcome,) = seen.ends
    assert outcome.stage is Stage.FINISHED, (outcome.message, outcome.log)
    node = outcome.segmentation
    assert node.GetScene() is scene and node.GetName() == "phantom GTV"
    fractions = [f for f, _ in seen.progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    messages = [m for _, m in seen.progress]
    for stage in ("loading the model", "preprocessing", "slice ", "mapping the GTV back", "writing the results"):
        assert any(m.startswith(stage) for m in messages), stage
    assert _temp_folders() == folders  # the hand-over files are gone

    background = segment_array(node, "GTV", volume)
    here, report = logic.process(volume, device="cpu")
    in_process = segment_array(here, "GTV", volume)
    np.testing.assert_array_equal(background, in_process)
    assert outcome.report["egfr"]["probability"] == pytest.approx(report["egfr"]["probability"], abs=1e-6)
    assert outcome.report["case"] == "phantom"
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(PHANTOM.with_name("phantom_case_mask.nrrd")))) > 0
    dice = 2 * np.logical_and(background > 0, truth).sum() / ((background > 0).sum() + truth.sum())
    assert dice >= 0.7, dice


@pytest.mark.parametrize("stage", ["loading the model", "reading the volume", "preprocessing", "slice ",
                                   "mapping the GTV back", "writing the results", "done"])
def test_cancel_at_each_stage_of_the_process_changes_nothing(scene, small_volume, loop, tiny_checkpoint, stage):
    logic, seen = SegmenterLogic(scene, loop), Recorder()
    before, folders = _snapshot(scene), _temp_folders()

    def on_progress(fraction, message):
        seen.on_progress(fraction, message)
        if message.startswith(stage):
            logic.cancel()

    logic.start(Request(small_volume, model=tiny_checkpoint, device="cpu"), on_progress, seen.on_end)
    loop.run()
    assert [o.stage for o in seen.ends] == [Stage.CANCELLED]
    assert seen.progress[-1][1].startswith(stage)  # nothing was handed on after the cancel
    assert _snapshot(scene) == before and _temp_folders() == folders
    assert not logic.process_has_exited()  # the logic let go of the (killed) process


def test_cancel_after_the_process_ended_but_before_its_result_is_loaded(scene, small_volume, loop, tiny_checkpoint):
    logic, seen = SegmenterLogic(scene, loop), Recorder()
    before = _snapshot(scene)
    logic.start(Request(small_volume, model=tiny_checkpoint, device="cpu"), seen.on_progress, seen.on_end)
    deadline = time.monotonic() + 120
    while not logic.process_has_exited():  # the timer has not ticked: the result waits on disk
        assert time.monotonic() < deadline
        time.sleep(0.05)
    logic.cancel()
    loop.run()
    assert [o.stage for o in seen.ends] == [Stage.CANCELLED] and _snapshot(scene) == before


def test_cancel_while_starting_starts_no_process(scene, small_volume, loop, tiny_checkpoint):
    logic, seen = SegmenterLogic(scene, loop), Recorder()
    before = _snapshot(scene)
    logic.start(Request(small_volume, model=tiny_checkpoint), seen.on_progress, seen.on_end, prepare=logic.cancel)
    assert [o.stage for o in seen.ends] == [Stage.CANCELLED] and loop.tick is None
    assert seen.progress == [] and _snapshot(scene) == before


def test_a_second_start_while_starting_or_running_is_refused(scene, small_volume, loop, tiny_checkpoint):
    """The widget's second click arrives while requirements install (GUI events processed) or while running."""
    logic, seen = SegmenterLogic(scene, loop), Recorder()
    request = Request(small_volume, model=tiny_checkpoint, device="cpu")
    refused = []

    def click_again():
        with pytest.raises(Busy):
            logic.start(request)
        refused.append(logic.stage)

    logic.start(request, seen.on_progress, seen.on_end, prepare=click_again)
    click_again()
    loop.run()
    assert refused == [Stage.STARTING, Stage.RUNNING]
    assert [o.stage for o in seen.ends] == [Stage.FINISHED]
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1


def test_the_result_goes_into_the_chosen_segmentation(scene, small_volume, loop, tiny_checkpoint):
    chosen = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "chosen")
    logic, seen = SegmenterLogic(scene, loop), Recorder()
    logic.start(Request(small_volume, chosen, tiny_checkpoint, "cpu"), seen.on_progress, seen.on_end)
    loop.run()
    assert seen.ends[0].segmentation is chosen
    assert chosen.GetSegmentation().GetSegmentIdBySegmentName("GTV")
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1


def test_closing_the_scene_cancels(scene, small_volume, loop, tiny_checkpoint):
    logic, seen = SegmenterLogic(scene, loop), Recorder()

    def on_progress(fraction, message):
        seen.on_progress(fraction, message)
        scene.Clear(0)  # File > Close scene while the network runs

    logic.start(Request(small_volume, model=tiny_checkpoint, device="cpu"), on_progress, seen.on_end)
    loop.run()
    assert [o.stage for o in seen.ends] == [Stage.CANCELLED]
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0
    logic.close()


def test_an_error_of_the_process_is_its_own_line_with_the_log(scene, small_volume, loop, tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    logic, seen = SegmenterLogic(scene, loop), Recorder()
    before = _snapshot(scene)
    logic.start(Request(small_volume, model=broken), seen.on_progress, seen.on_end)
    loop.run()
    (outcome,) = seen.ends
    assert outcome.stage is Stage.FAILED and outcome.message.startswith(f"{broken}:")
    assert f"error: {outcome.message}" in outcome.log.splitlines()
    assert _snapshot(scene) == before


def test_a_killed_process_is_reported_with_how_it_stopped(scene, small_volume, loop, tiny_checkpoint):
    logic, seen = SegmenterLogic(scene, loop), Recorder()
    before = _snapshot(scene)

    def on_progress(fraction, message):
        seen.on_progress(fraction, message)
        if message == "loading the model":
            os.kill(logic._child.pid, signal.SIGKILL)  # a crash from outside (out of memory, a driver)

    logic.start(Request(small_volume, model=tiny_checkpoint, device="cpu"), on_progress, seen.on_end)
    loop.run()
    (outcome,) = seen.ends
    assert outcome.stage is Stage.FAILED
    assert outcome.message.startswith("The prediction process was stopped by signal 9")
    assert _snapshot(scene) == before


def test_a_broken_package_in_the_process_is_named(scene, small_volume, loop, tiny_checkpoint, tmp_path):
    """An installed package that fails to import (here torch) ends in one message naming it."""
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('this torch build is broken', name='torch')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")]))
    logic, seen = SegmenterLogic(scene, loop, env=env), Recorder()
    logic.start(Request(small_volume, model=tiny_checkpoint), seen.on_progress, seen.on_end)
    loop.run()
    (outcome,) = seen.ends
    assert outcome.stage is Stage.FAILED
    assert outcome.message.startswith("torch: cannot be imported in this Python (this torch build is broken)")


def test_a_volume_the_cli_would_refuse_fails_before_any_process(scene, loop):
    blank = volume_node(scene, sitk.Image(20, 20, 20, sitk.sitkInt16), "blank")
    logic, seen = SegmenterLogic(scene, loop), Recorder()
    logic.start(Request(blank), seen.on_progress, seen.on_end)
    assert [(o.stage, o.message) for o in seen.ends] == [(Stage.FAILED, "blank: all voxels have the same value (0); nothing to segment")]
    assert loop.tick is None


def test_worker_progress_lines_and_failure_messages():
    assert worker.parse_progress(worker.progress_line(0.5, "slice 3/9")) == (0.5, "slice 3/9")
    assert worker.parse_progress(worker.progress_line(1.7, "done")) == (1.0, "done")
    assert worker.parse_progress("mtsa-progress x y") is None
    assert worker.parse_progress("Traceback (most recent call last):") is None
    assert failure_message(2, ["x", "error: a.pt: not a checkpoint"]) == "a.pt: not a checkpoint"
    assert failure_message(1, ["Traceback ...", "ZeroDivisionError: division by zero", ""]) == (
        "The prediction process stopped unexpectedly (exit status 1): ZeroDivisionError: division by zero. "
        "See the log for details.")


def test_worker_alone_writes_what_the_cli_writes(tmp_path, tiny_checkpoint):
    """The worker is a command of its own: run it as Slicer does and read its files back."""
    import subprocess

    from helpers import lesion_volume

    image, _ = lesion_volume(size=(40, 44, 16), spacing=(2.0, 2.0, 3.0))
    sitk.WriteImage(image, str(tmp_path / "in.nrrd"))
    done = subprocess.run([sys.executable, "-m", "MTSASegmenterLib.slicer.worker", "--input", str(tmp_path / "in.nrrd"),
                           "--out", str(tmp_path), "--case", "c", "--model", str(tiny_checkpoint), "--device", "cpu"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seg, report = worker.output_paths(tmp_path)
    assert sitk.ReadImage(str(seg)).GetSize() == image.GetSize()
    assert '"case": "c"' in report.read_text()
    assert done.stdout.splitlines()[-1] == worker.progress_line(1.0, "done")

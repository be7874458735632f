"""MTSASegmenter: brain-metastasis GTV and EGFR status from T1-CE MR with MTSA-Net, in 3D Slicer.

Thin glue only. Node <-> image conversion and the prediction-into-a-segmentation path live in
``MTSASegmenterLib.slicer.bridge`` (tested against real MRML outside the application); what the
panel shows is computed by ``MTSASegmenterLib.slicer.report_view`` (pure functions). This file wires
those to Qt widgets, installs dependencies and keeps the GUI alive while the network runs.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import traceback

import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# The core ships beside this file; make ``import MTSASegmenterLib`` work however Slicer found us.
_MODULE_DIR = os.path.dirname(os.path.abspath(__file__))
if _MODULE_DIR not in sys.path:
    sys.path.insert(0, _MODULE_DIR)

from MTSASegmenterLib.errors import Cancelled, MTSAError  # noqa: E402
from MTSASegmenterLib.slicer import bridge as slicer_bridge  # noqa: E402  (needs no torch)
from MTSASegmenterLib.slicer import report_view  # noqa: E402


class RequirementsError(RuntimeError):
    """Python packages the module needs are missing and could not be installed."""


#
# Module
#


class MTSASegmenter(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "MTSA Segmenter"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["MTSASegmenter contributors"]
        self.parent.helpText = """
Segments the gross tumour volume (GTV) of brain metastases and predicts the EGFR mutation status
from a contrast-enhanced T1 MR volume with MTSA-Net, in one click.
The bundled demo model is trained on synthetic phantoms only: it is not for clinical use.
See <a href="https://github.com/mtsa-segmenter/SlicerMTSASegmenter">the extension's documentation</a>.
"""
        self.parent.acknowledgementText = """
MTSA-Net: Zhou et al., "A multi-task deep learning model for EGFR genotyping prediction and GTV
segmentation of brain metastasis", Journal of Translational Medicine, 2023.
"""


#
# Widget
#


class MTSASegmenterWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel. Every decision it displays comes from report_view; it only copies values."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._running = False
        self._cancelRequested = False
        self._report = None
        self._applyText = report_view.apply_text(["GTV", "EGFR"])  # until a model is loaded: the bundled one's tasks
        self._inputVolume = None
        self._plotWidget = None
        self._plotViewNode = None
        self._chartNode = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MTSASegmenter.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = MTSASegmenterLogic()

        self.ui.syntheticWarningLabel.setVisible(False)
        self.ui.progressBar.setVisible(False)
        self.ui.lesionTable.setHorizontalHeaderLabels(list(report_view.LESION_COLUMNS))

        self._plotWidget = slicer.qMRMLPlotWidget()
        self._plotWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.egfrPlotFrame.layout().addWidget(self._plotWidget)

        self.populateDevices()

        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateButtons)
        self.ui.outputSegmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onOutputChanged)
        self.ui.modelSourceComboBox.connect("currentIndexChanged(int)", self.onModelSourceChanged)
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self.onModelChanged)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.lesionTable.connect("cellClicked(int,int)", self.onLesionClicked)
        self.ui.showPlotInLayoutButton.connect("clicked(bool)", self.onShowPlotInLayout)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        if not self.ui.inputVolumeSelector.currentNode():
            volume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if volume:
                self.ui.inputVolumeSelector.setCurrentNode(volume)
        self.onModelSourceChanged(self.ui.modelSourceComboBox.currentIndex)
        self.updateButtons()

    def cleanup(self) -> None:
        self._cancelRequested = True
        self.removeObservers()

    # --- state -----------------------------------------------------------------------------

    def populateDevices(self) -> None:
        """Fill the device combo with what PyTorch finds (CPU only until torch is installed)."""
        combo = self.ui.deviceComboBox
        current = self.selectedDevice() if combo.count else "auto"
        combo.clear()
        for choice in report_view.device_choices(self.logic.availableDevices()):
            combo.addItem(choice.label, choice.value)
            if not choice.enabled:  # item flags of 0 (role UserRole - 1): shown, not selectable
                combo.setItemData(combo.count - 1, 0, qt.Qt.UserRole - 1)
        index = combo.findData(current)
        combo.setCurrentIndex(index if index >= 0 else 0)

    def selectedDevice(self) -> str:
        return self.ui.deviceComboBox.itemData(self.ui.deviceComboBox.currentIndex) or "auto"

    def modelPath(self) -> str | None:
        """None for the bundled demo model, else the chosen checkpoint file."""
        if self.ui.modelSourceComboBox.currentIndex == 0:
            return None
        return self.ui.modelPathLineEdit.currentPath or ""

    def updateButtons(self, *_args) -> None:
        if self._running:
            self.ui.applyButton.text = "Cancel"
            self.ui.applyButton.toolTip = "Stop the prediction; nothing is changed."
            self.ui.applyButton.enabled = True
            return
        self.ui.applyButton.text = self._applyText
        hasInput = self.ui.inputVolumeSelector.currentNode() is not None
        hasModel = self.modelPath() is None or bool(self.modelPath())
        self.ui.applyButton.enabled = hasInput and hasModel
        self.ui.applyButton.toolTip = (
            "Segment the GTV and predict the EGFR mutation status."
            if self.ui.applyButton.enabled
            else "Select an input volume and a model."
        )

    def onModelSourceChanged(self, index: int) -> None:
        self.ui.modelPathLineEdit.enabled = index == 1
        self.onModelChanged()

    def onModelChanged(self, *_args) -> None:
        self.ui.modelInfoLabel.text = ""
        self.ui.syntheticWarningLabel.setVisible(False)
        self.updateButtons()

    def onOutputChanged(self, node) -> None:
        """Show the stored report again when the user selects a segmentation we produced."""
        text = node.GetAttribute(slicer_bridge.REPORT_ATTRIBUTE) if node is not None else None
        if text:
            try:
                self.showResults(json.loads(text))
            except (ValueError, KeyError, TypeError):
                logging.warning("MTSASegmenter: could not read the report stored on %s", node.GetName())

    def onSceneStartClose(self, caller, event) -> None:
        self._cancelRequested = True

    def onSceneEndClose(self, caller, event) -> None:
        self._report = None
        self._inputVolume = None
        self._plotViewNode = None
        self._chartNode = None
        self.clearResults()

    # --- prediction --------------------------------------------------------------------------

    def onApplyButton(self, *_args) -> None:
        if self._running:  # the button reads "Cancel" while running
            self._cancelRequested = True
            self.ui.statusLabel.text = "Cancelling after the current batch..."
            self.ui.applyButton.enabled = False
            return

        volume = self.ui.inputVolumeSelector.currentNode()
        segmentation = self.ui.outputSegmentationSelector.currentNode()
        if volume is None:
            return
        if segmentation is not None and slicer_bridge.segmentation_was_edited(segmentation):
            if not slicer.util.confirmYesNoDisplay(
                f"'{segmentation.GetName()}' has segments that were edited or not made by this module.\n"
                f"Replace its predicted segment with the new prediction? (Other segments are kept.)\n\n"
                "Choose No and select 'Create new segmentation' to keep it unchanged.",
                windowTitle="Replace edited segmentation?",
            ):
                return

        try:
            self.ui.statusLabel.text = "Checking Python packages..."
            slicer.app.processEvents()
            self.logic.setupPythonRequirements()
            self.populateDevices()
            self.ui.statusLabel.text = "Loading model..."
            slicer.app.processEvents()
            model = self.logic.loadModel(self.modelPath())
        except (RequirementsError, MTSAError) as error:
            self.ui.statusLabel.text = str(error)
            slicer.util.errorDisplay(str(error))
            return

        self.showModel(model)
        self.setRunning(True)
        try:
            segmentation, report = self.logic.process(
                volume,
                model,
                outputSegmentation=segmentation,
                device=self.selectedDevice(),
                progress=self.onProgress,
                shouldCancel=lambda: self._cancelRequested,
            )
        except Cancelled:
            self.ui.statusLabel.text = "Cancelled; nothing was changed."
            return
        except MTSAError as error:
            self.ui.statusLabel.text = str(error)
            slicer.util.errorDisplay(str(error))
            return
        except Exception as error:  # show, do not swallow: the user must know the run failed
            self.ui.statusLabel.text = f"Prediction failed: {error}"
            slicer.util.errorDisplay(f"Prediction failed: {error}", detailedText=traceback.format_exc())
            return
        finally:
            self.setRunning(False)

        self._inputVolume = volume
        self.ui.outputSegmentationSelector.setCurrentNode(segmentation)
        slicer.util.setSliceViewerLayers(background=volume, fit=True)
        self.showResults(report)

    def setRunning(self, running: bool) -> None:
        self._running = running
        self._cancelRequested = False
        self.ui.inputsCollapsibleButton.enabled = not running
        self.ui.progressBar.setVisible(running)
        self.ui.progressBar.value = 0
        self.updateButtons()
        slicer.app.processEvents()

    def onProgress(self, fraction: float, message: str) -> None:
        """Progress callback of predict_volume: also lets Qt handle the Cancel click."""
        self.ui.progressBar.value = report_view.progress_percent(fraction)
        if message:
            self.ui.statusLabel.text = message
        slicer.app.processEvents()

    # --- results -----------------------------------------------------------------------------

    def showModel(self, model) -> None:
        self._applyText = report_view.apply_text([task.name for task in model.tasks])  # the checkpoint's tasks
        info = model.info
        self.ui.modelInfoLabel.text = report_view.model_text(info.name, info.version, info.synthetic_only)
        warning = report_view.model_warning(info.synthetic_only)
        self.ui.syntheticWarningLabel.text = warning
        self.ui.syntheticWarningLabel.setVisible(bool(warning))

    def clearResults(self) -> None:
        self.ui.callValueLabel.text = report_view.NOT_AVAILABLE
        self.ui.callValueLabel.styleSheet = ""
        self.ui.probabilityValueLabel.text = report_view.NOT_AVAILABLE
        self.ui.slicesUsedValueLabel.text = report_view.NOT_AVAILABLE
        self.ui.otherHeadsValueLabel.text = ""
        self.ui.gtvVolumeValueLabel.text = report_view.NOT_AVAILABLE
        self.ui.lesionTable.setRowCount(0)
        self.ui.showPlotInLayoutButton.enabled = False

    def showResults(self, report: dict) -> None:
        self._report = report
        head = report_view.primary_head(report)  # the heads come from the model's checkpoint
        self.ui.egfrCollapsibleButton.text = head["name"]
        callText, callColor = report_view.call_text(report)
        self.ui.callValueLabel.text = callText
        self.ui.callValueLabel.styleSheet = f"QLabel {{ color: {callColor}; font-weight: bold; }}"
        self.ui.probabilityLabel.text = report_view.probability_label(report)
        self.ui.probabilityValueLabel.text = report_view.probability_text(report)
        self.ui.slicesUsedValueLabel.text = report_view.slices_used_text(report)
        others = report_view.other_heads_text(report)
        self.ui.otherHeadsValueLabel.text = others
        self.ui.otherHeadsLabel.setVisible(bool(others))
        self.ui.otherHeadsValueLabel.setVisible(bool(others))
        self.ui.gtvVolumeValueLabel.text = report_view.gtv_text(report)
        self.ui.statusLabel.text = report_view.status_text(report)
        synthetic = bool((report.get("model") or {}).get("synthetic_only", False))
        if synthetic:
            self.ui.syntheticWarningLabel.text = report_view.model_warning(True)
            self.ui.syntheticWarningLabel.setVisible(True)

        rows = report_view.lesion_rows(report)
        table = self.ui.lesionTable
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                item = qt.QTableWidgetItem(text)
                item.setTextAlignment(qt.Qt.AlignRight | qt.Qt.AlignVCenter)
                table.setItem(r, c, item)

        xs, ys = report_view.slice_curve(report)
        self._chartNode = slicer_bridge.egfr_plot_chart_node(
            slicer.mrmlScene, xs, ys, head.get("threshold"), chart_node=self._chartNode,
            title=f"{head['name']}: {report_view.probability_label(report).rstrip(':').lower()} per slice",
            probability=head["kind"] != "regression",
        )
        if self._plotViewNode is None or self._plotViewNode.GetScene() is None:
            self._plotViewNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotViewNode", "MTSASegmenter EGFR plot view")
        self._plotViewNode.SetPlotChartNodeID(self._chartNode.GetID())
        self._plotWidget.setMRMLPlotViewNode(self._plotViewNode)
        self.ui.showPlotInLayoutButton.enabled = bool(xs)

    def onLesionClicked(self, row: int, _column: int) -> None:
        if self._report is None:
            return
        ras = report_view.lesion_centroid_ras(self._report, row)
        if ras is not None:
            slicer_bridge.jump_slices_to(slicer.mrmlScene, ras, self._inputVolume)

    def onShowPlotInLayout(self, *_args) -> None:
        if self._chartNode is not None:
            slicer.modules.plots.logic().ShowChartInLayout(self._chartNode)


#
# Logic
#


class MTSASegmenterLogic(ScriptedLoadableModuleLogic):
    """Usable without the widget: ``process(volumeNode) -> (segmentationNode, report)``.

    Installing packages asks the user (Qt dialogs) unless ``askConfirmation=False``.
    """

    MINIMUM_TORCH = ">=2.1"

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._models: dict[tuple, object] = {}

    # --- dependencies ------------------------------------------------------------------------

    @staticmethod
    def _networkAvailable(host: str = "pypi.org", port: int = 443, timeout: float = 3.0) -> bool:
        import socket

        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            return False

    def _pipInstall(self, requirements: list[str]) -> None:
        manual = f'PythonSlicer -m pip install {" ".join(repr(r) for r in requirements)}'
        if not self._networkAvailable():
            raise RequirementsError(
                f"MTSASegmenter needs {', '.join(requirements)}, which cannot be installed: no network "
                f"connection to pypi.org. Connect and retry, or install offline with: {manual}"
            )
        try:
            slicer.util.pip_install(requirements)
        except Exception as error:
            raise RequirementsError(f"Installing {', '.join(requirements)} failed ({error}). Try: {manual}") from error

    def setupPythonRequirements(self, askConfirmation: bool = True) -> None:
        """Make torch (via the PyTorch extension when present) and the other packages importable."""
        missing = report_view.missing_requirements()
        torchMissing = importlib.util.find_spec("torch") is None
        if not torchMissing and not missing:
            return
        if torchMissing:
            try:
                import PyTorchUtils
            except ModuleNotFoundError:
                PyTorchUtils = None
            if PyTorchUtils is not None:
                # The PyTorch extension picks the wheel matching the GPU driver (CUDA) of this computer.
                torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
                    askConfirmation=askConfirmation, torchVersionRequirement=self.MINIMUM_TORCH
                )
                if torch is None:
                    raise RequirementsError(
                        "PyTorch is required and was not installed. Install it with the 'PyTorch Util' module, "
                        "or check the network connection."
                    )
            else:
                if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                    "MTSASegmenter needs PyTorch. For a GPU-matched build, install the 'PyTorch' extension "
                    "from the Extensions Manager and restart. Click OK to install the default PyTorch build "
                    "with pip now (needs network, may take several minutes).",
                    windowTitle="Install PyTorch?",
                ):
                    raise RequirementsError("PyTorch is required; installation was declined.")
                self._pipInstall([report_view.TORCH_REQUIREMENT])
        if missing:
            if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                f"MTSASegmenter needs these Python packages: {', '.join(missing)}. Install them now "
                "(needs network)?",
                windowTitle="Install Python packages?",
            ):
                raise RequirementsError(f"Required packages not installed: {', '.join(missing)}.")
            self._pipInstall(missing)
        importlib.invalidate_caches()

    def availableDevices(self) -> list[str]:
        """Devices PyTorch can use; just CPU until torch is installed (the list is refreshed after)."""
        if importlib.util.find_spec("torch") is None:
            return ["cpu"]
        try:
            from MTSASegmenterLib.inference.predictor import available_devices

            return list(available_devices())
        except Exception as error:  # a broken torch install must not break the panel
            logging.warning("MTSASegmenter: could not query PyTorch devices: %s", error)
            return ["cpu"]

    # --- model and prediction ----------------------------------------------------------------

    def loadModel(self, path: str | None = None):
        """The checkpoint at ``path`` (the bundled demo model when None), cached while unchanged on disk."""
        from MTSASegmenterLib.model.checkpoint import load_checkpoint
        from MTSASegmenterLib.resources import demo_model_path

        path = str(demo_model_path()) if path is None else str(path)
        try:
            stat = os.stat(path)
        except OSError as error:
            raise MTSAError(f"{path}: model file not found") from error
        key = (os.path.abspath(path), stat.st_mtime_ns, stat.st_size)
        if key not in self._models:
            self._models.clear()
            self._models[key] = load_checkpoint(path, "cpu")
        return self._models[key]

    def process(
        self,
        inputVolume,
        model=None,
        outputSegmentation=None,
        device: str = "auto",
        progress=None,
        shouldCancel=None,
    ):
        """Predict ``inputVolume``; returns ``(segmentationNode, report)``. Nothing changes on cancel."""
        if model is None:
            model = self.loadModel()
        segmentation, report = slicer_bridge.segment_volume_node(
            inputVolume,
            model,
            segmentation_node=outputSegmentation,
            device=device,
            progress=progress,
            should_cancel=shouldCancel,
        )
        report.setdefault("model", {})
        if isinstance(report["model"], dict):
            report["model"].setdefault("synthetic_only", bool(model.info.synthetic_only))
        segmentation.SetAttribute(slicer_bridge.REPORT_ATTRIBUTE, json.dumps(report, default=str))
        return segmentation, report


#
# Test
#


class MTSASegmenterTest(ScriptedLoadableModuleTest):
    """Self-test, offline: bridge geometry always; the bundled model on the shipped phantom case."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_bridge_round_trip()
        self.setUp()
        self.test_phantom_case()

    def _testingPath(self, name: str) -> str:
        return os.path.join(_MODULE_DIR, "Resources", "Testing", name)

    def test_bridge_round_trip(self) -> None:
        """An oblique volume node -> image -> mask -> GTV segment on the volume's own grid."""
        import numpy as np
        import SimpleITK as sitk

        self.delayDisplay("Bridge: oblique volume round trip")
        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "oblique")
        array = np.arange(6 * 18 * 20, dtype=np.int16).reshape(6, 18, 20)  # >= one 16 x 16 slice
        slicer.util.updateVolumeFromArray(volume, array)
        ijkToRas = vtk.vtkMatrix4x4()
        transform = vtk.vtkTransform()
        transform.Translate(12.0, -7.0, 30.0)
        transform.RotateWXYZ(25.0, 0.3, 0.2, 0.9)
        transform.Scale(0.8, 1.1, 2.5)
        ijkToRas.DeepCopy(transform.GetMatrix())
        volume.SetIJKToRASMatrix(ijkToRas)

        image = slicer_bridge.volume_node_to_image(volume)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), array)
        mask = sitk.GetImageFromArray((array > 200).astype(np.uint8))
        mask.CopyInformation(image)
        segmentation = slicer_bridge.mask_to_segmentation_node(mask, slicer.mrmlScene, volume)
        segmentId = segmentation.GetSegmentation().GetSegmentIdBySegmentName("GTV")
        self.assertTrue(segmentId)
        back = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentId, volume)
        np.testing.assert_array_equal(back > 0, array > 200)
        self.assertFalse(slicer_bridge.segmentation_was_edited(segmentation))
        self.delayDisplay("Bridge: passed")

    def test_phantom_case(self) -> None:
        """The bundled model finds the phantom's lesion (Dice >= 0.7) and the panel shows the result."""
        import numpy as np
        import SimpleITK as sitk

        imagePath, maskPath = self._testingPath("phantom_case.nrrd"), self._testingPath("phantom_case_mask.nrrd")
        if not (os.path.exists(imagePath) and os.path.exists(maskPath)):
            self.delayDisplay(f"Phantom case: skipped, {imagePath} not shipped")
            return
        logic = MTSASegmenterLogic()
        try:
            logic.setupPythonRequirements(askConfirmation=False)
        except RequirementsError as error:
            self.delayDisplay(f"Phantom case: skipped, {error}")
            return

        volume = slicer.util.loadVolume(imagePath)
        truth = sitk.GetArrayFromImage(sitk.ReadImage(maskPath)) > 0
        self.delayDisplay("Phantom case: predicting with the bundled model")
        model = logic.loadModel()
        fractions = []
        segmentation, report = logic.process(volume, model, device="cpu", progress=lambda f, m: fractions.append(f))
        segmentId = segmentation.GetSegmentation().GetSegmentIdBySegmentName("GTV")
        predicted = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentId, volume) > 0
        self.assertEqual(predicted.shape, truth.shape)
        dice = 2.0 * np.logical_and(predicted, truth).sum() / max(1, predicted.sum() + truth.sum())
        self.assertGreaterEqual(dice, 0.7, f"Dice {dice:.3f} with the known lesion")
        probability = report["egfr"]["probability"]
        self.assertIsNotNone(probability)
        self.assertTrue(0.0 <= probability <= 1.0)
        self.assertTrue(fractions, "no progress was reported")
        self.delayDisplay(f"Phantom case: Dice {dice:.3f}, EGFR p = {probability:.2f}")

        # The panel: a new segmentation, the same numbers, the warning of the demo model.
        slicer.util.selectModule("MTSASegmenter")
        widget = slicer.modules.mtsasegmenter.widgetRepresentation().self()
        widget.ui.inputVolumeSelector.setCurrentNode(volume)
        widget.ui.outputSegmentationSelector.setCurrentNode(None)
        widget.ui.modelSourceComboBox.currentIndex = 0
        widget.ui.deviceComboBox.setCurrentIndex(widget.ui.deviceComboBox.findData("cpu"))
        widget.onApplyButton()
        shown = widget._report
        self.assertIsNotNone(shown)
        self.assertEqual(widget.ui.probabilityValueLabel.text, report_view.format_probability(shown["egfr"]["probability"]))
        self.assertEqual(widget.ui.callValueLabel.text, report_view.call_text(shown)[0])
        self.assertEqual(widget.ui.lesionTable.rowCount, len(shown["gtv"]["lesions"]))
        self.assertEqual(not widget.ui.syntheticWarningLabel.isHidden(), bool(model.info.synthetic_only))
        self.assertEqual(widget.ui.applyButton.text, "Predict GTV + EGFR")
        self.assertIsNot(widget.ui.outputSegmentationSelector.currentNode(), segmentation)
        if widget.ui.lesionTable.rowCount:
            widget.onLesionClicked(0, 0)
        self.delayDisplay("Phantom case: passed")

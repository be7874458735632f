"""The module's panel: the one part that needs the Slicer application (Qt, CTK, slicer.app).

It copies choices between the widgets and the parameter node, starts and cancels the background
prediction of the logic, and copies into its labels, table and plot what ``report_view``
computes. Every decision it shows is made in the tested modules around it; what remains here is
wiring, checked by the module's self-test inside Slicer.
"""

from __future__ import annotations

import json
import logging
import sys

import qt
import slicer
import vtk
from slicer.util import VTKObservationMixin

from . import bridge, dependencies, plot_chart, report_view
from .logic import ACTIVE, Outcome, Stage
from .parameters import request_from_parameters
from .translation import _
from ..errors import MTSAError


def available_devices() -> list[str]:
    """Devices PyTorch can use; CPU alone until torch is installed (refreshed after a run)."""
    if dependencies.installed_version("torch") is None:
        return ["cpu"]
    try:
        from ..inference.predictor import available_devices as torch_devices

        return list(torch_devices())
    except Exception as error:  # a broken torch must not break the panel: the run will say what is wrong
        logging.warning("MTSASegmenter: could not query PyTorch devices: %s", error)
        return ["cpu"]


class SegmenterPanel(VTKObservationMixin):
    def __init__(self, ui_path: str, logic) -> None:
        VTKObservationMixin.__init__(self)
        self.logic = logic
        self.uiWidget = slicer.util.loadUI(ui_path)
        self.ui = slicer.util.childWidgetVariables(self.uiWidget)
        self.uiWidget.setMRMLScene(slicer.mrmlScene)
        self._parameters = None
        self._updatingGUI = False
        self._report = None
        self._chartNode = None
        self._plotViewNode = None
        self._applyText = report_view.apply_text(["GTV", "EGFR"])  # the bundled model's tasks, until a run says

        self.ui.syntheticWarningLabel.setVisible(False)
        self.ui.progressBar.setVisible(False)
        self.ui.lesionTable.setHorizontalHeaderLabels(list(report_view.LESION_COLUMNS))
        self._plotWidget = slicer.qMRMLPlotWidget()
        self._plotWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.egfrPlotFrame.layout().addWidget(self._plotWidget)
        self.populateDevices()

        for widget, signal in ((self.ui.inputVolumeSelector, "currentNodeChanged(vtkMRMLNode*)"),
                               (self.ui.modelSourceComboBox, "currentIndexChanged(int)"),
                               (self.ui.modelPathLineEdit, "currentPathChanged(QString)"),
                               (self.ui.deviceComboBox, "currentIndexChanged(int)"),
                               (self.ui.batchSizeSpinBox, "valueChanged(int)")):
            widget.connect(signal, self.updateParameterNodeFromGUI)
        self.ui.outputSegmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onOutputChanged)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.lesionTable.connect("cellClicked(int,int)", self.onLesionClicked)
        self.ui.showPlotInLayoutButton.connect("clicked(bool)", self.onShowPlotInLayout)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeRemovedEvent, self.onNodeRemoved)
        self.initializeParameterNode()
        problems = dependencies.platform_problems((slicer.app.majorVersion, slicer.app.minorVersion), sys.version_info[:2])
        if problems:
            self.ui.statusLabel.text = "\n".join(problems)

    def cleanup(self) -> None:
        self.logic.cancel()
        self.setParameterNode(None)
        self.removeObservers()

    # --- the parameter node (as in Slicer's scripted-module template) -----------------------

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if self._parameters.inputVolume is None:
            volume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if volume is not None:
                self._parameters.inputVolume = volume

    def setParameterNode(self, parameters) -> None:
        if self._parameters is not None:
            self.removeObserver(self._parameters, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self._parameters = parameters
        if parameters is not None:
            self.addObserver(parameters, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
            self.updateGUIFromParameterNode()

    def updateGUIFromParameterNode(self, *_args) -> None:
        if self._parameters is None or self._updatingGUI:
            return
        self._updatingGUI = True
        try:
            p = self._parameters
            self.ui.inputVolumeSelector.setCurrentNode(p.inputVolume)
            self.ui.outputSegmentationSelector.setCurrentNode(p.outputSegmentation)
            self.ui.modelSourceComboBox.currentIndex = 0 if p.useBundledModel else 1
            self.ui.modelPathLineEdit.currentPath = p.modelPath
            self.ui.modelPathLineEdit.enabled = not p.useBundledModel
            index = self.ui.deviceComboBox.findData(p.device)
            self.ui.deviceComboBox.currentIndex = index if index >= 0 else 0
            self.ui.batchSizeSpinBox.value = p.batchSize
        finally:
            self._updatingGUI = False
        self.updateButtons()

    def updateParameterNodeFromGUI(self, *_args) -> None:
        if self._parameters is None or self._updatingGUI:
            return
        self._updatingGUI = True  # each write modifies the node: the GUI must not be refreshed half-way
        try:
            p = self._parameters
            p.inputVolume = self.ui.inputVolumeSelector.currentNode()
            p.outputSegmentation = self.ui.outputSegmentationSelector.currentNode()
            p.useBundledModel = self.ui.modelSourceComboBox.currentIndex == 0
            p.modelPath = self.ui.modelPathLineEdit.currentPath or ""
            p.device = self.ui.deviceComboBox.itemData(self.ui.deviceComboBox.currentIndex) or "auto"
            p.batchSize = int(self.ui.batchSizeSpinBox.value)
        finally:
            self._updatingGUI = False
        self.updateGUIFromParameterNode()

    def populateDevices(self) -> None:
        combo = self.ui.deviceComboBox
        current = combo.itemData(combo.currentIndex) if combo.count else "auto"
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        for choice in report_view.device_choices(available_devices()):
            combo.addItem(choice.label, choice.value)
            if not choice.enabled:  # item flags of 0 (role UserRole - 1): shown, not selectable
                combo.setItemData(combo.count - 1, 0, qt.Qt.UserRole - 1)
        index = combo.findData(current)
        combo.setCurrentIndex(index if index >= 0 else 0)
        combo.blockSignals(wasBlocked)

    # --- running -------------------------------------------------------------------------------

    def updateButtons(self) -> None:
        running = self.logic.stage in ACTIVE
        self.ui.inputsCollapsibleButton.enabled = not running
        self.ui.progressBar.setVisible(running)
        if running:
            self.ui.applyButton.text = _("Cancel")
            self.ui.applyButton.toolTip = _("Stop the prediction; nothing is changed.")
            self.ui.applyButton.enabled = True
            return
        self.ui.applyButton.text = self._applyText
        ready, reason = False, ""
        if self._parameters is not None:
            try:
                request_from_parameters(self._parameters)
                ready = True
            except MTSAError as error:
                reason = str(error)
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = _("Segment the GTV and predict the EGFR mutation status.") if ready else reason

    def onApplyButton(self, *_args) -> None:
        if self.logic.stage in ACTIVE:  # the button reads "Cancel" (also while requirements install)
            self.ui.statusLabel.text = _("Cancelling...")
            self.logic.cancel()
            return
        try:
            request = request_from_parameters(self._parameters)
        except MTSAError as error:
            self.ui.statusLabel.text = str(error)
            return
        if request.segmentation is not None and bridge.segmentation_was_edited(request.segmentation):
            if not slicer.util.confirmYesNoDisplay(
                _("'{name}' has segments that were edited or not made by this module.\n"
                  "Replace its predicted segment with the new prediction? (Other segments are kept where they are.)\n\n"
                  "Choose No and select 'Create new segmentation' to keep it unchanged.").format(name=request.segmentation.GetName()),
                windowTitle=_("Replace edited segmentation?"),
            ):
                return
        self.ui.progressBar.value = 0
        self.ui.statusLabel.text = _("Checking Python packages...")
        self.logic.start(request, self.onProgress, self.onEnd, prepare=self._prepare)
        self.updateButtons()

    def _prepare(self) -> None:
        self.updateButtons()  # "Cancel" from here on: a second click cancels, it never starts another run
        dependencies.ensure(ask=True)
        self.ui.statusLabel.text = _("Starting the prediction...")

    def onProgress(self, fraction: float, message: str) -> None:
        self.ui.progressBar.value = report_view.progress_percent(fraction)
        self.ui.statusLabel.text = message

    def onEnd(self, outcome: Outcome) -> None:
        self.updateButtons()
        if outcome.stage is Stage.FINISHED:
            if not self._parameters.useBundledModel:
                self.ui.modelPathLineEdit.addCurrentPathToHistory()  # remembered for the next session
            self.populateDevices()
            self._parameters.outputSegmentation = outcome.segmentation
            slicer.util.setSliceViewerLayers(background=self._parameters.inputVolume, fit=True)
            self.showResults(outcome.report)
        elif outcome.stage is Stage.FAILED:
            self.ui.statusLabel.text = outcome.message
            slicer.util.errorDisplay(outcome.message, windowTitle=_("MTSASegmenter"), detailedText=outcome.log or None)
        else:
            self.ui.statusLabel.text = outcome.message

    def onSceneStartClose(self, caller, event) -> None:
        self.logic.cancel()  # the logic follows the scene too; this keeps the panel's order of events plain
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        self._report = self._chartNode = self._plotViewNode = None
        self.clearResults()
        self.initializeParameterNode()

    def onNodeRemoved(self, caller, event) -> None:
        if self._chartNode is not None and self._chartNode.GetScene() is None:  # the user deleted the chart
            self._chartNode = None
            self._plotWidget.setMRMLPlotViewNode(None)
            self.ui.showPlotInLayoutButton.enabled = False

    # --- results -------------------------------------------------------------------------------

    def onOutputChanged(self, node) -> None:
        """Show the report stored on a segmentation this module produced; nothing for any other."""
        self.updateParameterNodeFromGUI()
        text = node.GetAttribute(bridge.REPORT_ATTRIBUTE) if node is not None else None
        if text:
            try:
                self.showResults(json.loads(text))
                return
            except (ValueError, KeyError, TypeError):
                logging.warning("MTSASegmenter: could not read the report stored on %s", node.GetName())
        if self._report is not None:
            self.clearResults()

    def clearResults(self) -> None:
        self._report = None
        for label in (self.ui.callValueLabel, self.ui.probabilityValueLabel, self.ui.slicesUsedValueLabel,
                      self.ui.gtvVolumeValueLabel):
            label.text = report_view.NOT_AVAILABLE
        self.ui.callValueLabel.styleSheet = ""
        self.ui.otherHeadsValueLabel.text = ""
        self.ui.otherHeadsLabel.setVisible(False)
        self.ui.otherHeadsValueLabel.setVisible(False)
        self.ui.modelInfoLabel.text = ""
        self.ui.syntheticWarningLabel.setVisible(False)
        self.ui.lesionTable.setRowCount(0)
        self._plotWidget.setMRMLPlotViewNode(None)
        self.ui.showPlotInLayoutButton.enabled = False

    def showResults(self, report: dict) -> None:
        self._report = report
        model = report.get("model") or {}
        self.ui.modelInfoLabel.text = report_view.model_text(model.get("name", ""), model.get("version", ""),
                                                             bool(model.get("synthetic_only")))
        warning = report_view.warning_text(report)
        self.ui.syntheticWarningLabel.text = warning
        self.ui.syntheticWarningLabel.setVisible(bool(warning))
        self._applyText = report_view.apply_text(report_view.task_names(report))
        self.updateButtons()

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
        self._showLesions(report)
        self._showPlot(report, head)

    def _showLesions(self, report: dict) -> None:
        rows = report_view.lesion_rows(report)
        table = self.ui.lesionTable
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            removed = report_view.removed_row_tooltip(report, r)
            for c, text in enumerate(row):
                item = qt.QTableWidgetItem(text)
                item.setTextAlignment(qt.Qt.AlignRight | qt.Qt.AlignVCenter)
                if removed:  # not in the GTV: greyed, and why it was removed on hover
                    item.setForeground(qt.QBrush(qt.QColor("gray")))
                    item.setToolTip(removed)
                table.setItem(r, c, item)

    def _showPlot(self, report: dict, head: dict) -> None:
        """The per-slice curve in the panel's own plot view, which never follows other modules' charts."""
        xs, ys = report_view.slice_curve(report)
        self._chartNode = plot_chart.egfr_plot_chart_node(
            slicer.mrmlScene, xs, ys, head.get("threshold"), chart_node=self._chartNode,
            title=report_view.plot_title(report),
            probability=head["kind"] != "regression",
        )
        self._plotViewNode = plot_chart.private_plot_view(slicer.mrmlScene, self._plotViewNode)
        self._plotViewNode.SetPlotChartNodeID(self._chartNode.GetID())
        self._plotWidget.setMRMLPlotViewNode(self._plotViewNode)
        self.ui.showPlotInLayoutButton.enabled = bool(xs)

    def onLesionClicked(self, row: int, _column: int) -> None:
        if self._report is None:
            return
        ras = report_view.lesion_centroid_ras(self._report, row)
        if ras is not None:
            bridge.jump_slices_to(slicer.mrmlScene, ras, self._parameters.inputVolume if self._parameters else None)

    def onShowPlotInLayout(self, *_args) -> None:
        if self._chartNode is not None and self._chartNode.GetScene() is not None:
            slicer.modules.plots.logic().ShowChartInLayout(self._chartNode)


"""MTSASegmenter: brain-metastasis GTV and EGFR status from T1-CE MR with MTSA-Net, in 3D Slicer.

A thin module file, as in SlicerNNUnet: the panel is ``MTSASegmenterLib.slicer.widget``, the
logic (prediction in a background process) ``MTSASegmenterLib.slicer.logic``, the parameter node
``MTSASegmenterLib.slicer.parameters``; all but the panel are tested outside Slicer.
"""

import os
import time

import slicer
import vtk
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

from MTSASegmenterLib.slicer import dependencies, reloading, report_view
from MTSASegmenterLib.slicer.logic import ACTIVE, Request, SegmenterLogic, Stage
from MTSASegmenterLib.slicer.parameters import SegmenterParameters
from MTSASegmenterLib.slicer.runner import QtPollTimer
from MTSASegmenterLib.slicer.translation import _

MTSASegmenterParameterNode = parameterNodeWrapper(SegmenterParameters)


class MTSASegmenter(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("MTSA Segmenter")
        self.parent.categories = [_("Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["MTSASegmenter developers"]
        self.parent.helpText = _(
            "Segments the gross tumour volume (GTV) of brain metastases and predicts the EGFR mutation status "
            "from a contrast-enhanced T1 MR volume with MTSA-Net. The prediction runs in a background process; "
            "Cancel stops it without changing the scene. The bundled demo model is trained on synthetic phantoms "
            "only: it is not for clinical use. See the extension's README for details.")
        self.parent.acknowledgementText = _(
            'MTSA-Net: Zhou et al., "A multi-task deep learning model for EGFR genotyping prediction and GTV '
            'segmentation of brain metastasis", Journal of Translational Medicine, 2023.')


class MTSASegmenterWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        from MTSASegmenterLib.slicer.widget import SegmenterPanel  # needs qt: imported in the application only

        self.logic = MTSASegmenterLogic()
        self.panel = SegmenterPanel(self.resourcePath("UI/MTSASegmenter.ui"), self.logic)
        self.layout.addWidget(self.panel.uiWidget)

    def cleanup(self):
        if getattr(self, "panel", None) is not None:
            self.panel.cleanup()
            self.logic.close()
            self.panel = None

    def enter(self):
        self.panel.initializeParameterNode()

    def onReload(self):
        """Reload the library too (Slicer's Reload re-reads only this file)."""
        self.cleanup()
        reloading.forget_library()
        ScriptedLoadableModuleWidget.onReload(self)


class MTSASegmenterLogic(ScriptedLoadableModuleLogic, SegmenterLogic):
    """``start(Request(volume), on_progress, on_end)`` predicts in the background; ``process(volume)`` here."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        SegmenterLogic.__init__(self, slicer.mrmlScene, QtPollTimer())

    def getParameterNode(self):
        return MTSASegmenterParameterNode(super().getParameterNode())


class MTSASegmenterTest(ScriptedLoadableModuleTest):
    """Inside Slicer: the bridge, the parameter node in a saved scene, and the bundled model run in the
    background on the shipped phantom case. Tests never download: without PyTorch the last test is skipped."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        for test in (self.test_bridge_round_trip, self.test_parameter_node_round_trip, self.test_phantom_case):
            self.setUp()
            test()

    def _testingPath(self, name):
        return os.path.join(os.path.dirname(__file__), "Resources", "Testing", name)

    def test_bridge_round_trip(self):
        """An oblique volume node -> image -> mask -> GTV segment on the volume's own grid."""
        import numpy as np
        import SimpleITK as sitk
        from MTSASegmenterLib.slicer import bridge

        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "oblique")
        array = np.arange(6 * 18 * 20, dtype=np.int16).reshape(6, 18, 20)
        slicer.util.updateVolumeFromArray(volume, array)
        transform = vtk.vtkTransform()
        transform.Translate(12.0, -7.0, 30.0)
        transform.RotateWXYZ(25.0, 0.3, 0.2, 0.9)
        transform.Scale(0.8, 1.1, 2.5)
        volume.SetIJKToRASMatrix(transform.GetMatrix())
        image = bridge.volume_node_to_image(volume)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), array)
        mask = sitk.GetImageFromArray((array > 200).astype(np.uint8))
        mask.CopyInformation(image)
        segmentation = bridge.mask_to_segmentation_node(mask, slicer.mrmlScene, volume)
        segmentId = segmentation.GetSegmentation().GetSegmentIdBySegmentName("GTV")
        back = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentId, volume)
        np.testing.assert_array_equal(back > 0, array > 200)
        self.assertFalse(bridge.segmentation_was_edited(segmentation))

    def test_parameter_node_round_trip(self):
        """The parameterNodeWrapper's choices survive saving and loading the scene."""
        import tempfile

        logic = MTSASegmenterLogic()
        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "t1 ce")
        parameters = logic.getParameterNode()
        parameters.inputVolume, parameters.device, parameters.batchSize, parameters.useBundledModel = volume, "cpu", 8, False
        path = os.path.join(tempfile.mkdtemp(), "scene.mrml")
        self.assertTrue(slicer.util.saveScene(path))
        slicer.mrmlScene.Clear()
        slicer.util.loadScene(path)
        restored = MTSASegmenterLogic().getParameterNode()
        self.assertEqual(restored.inputVolume.GetName(), "t1 ce")
        self.assertEqual((restored.device, restored.batchSize, restored.useBundledModel), ("cpu", 8, False))
        logic.close()

    def _waitFor(self, logic, timeout_s=600.0):
        deadline = time.monotonic() + timeout_s
        while logic.stage in ACTIVE:
            self.assertLess(time.monotonic(), deadline, "the background prediction did not end")
            slicer.app.processEvents()
            time.sleep(0.05)

    def test_phantom_case(self):
        """The bundled model in a background process finds the phantom's lesion (Dice >= 0.7); the panel shows it."""
        import numpy as np
        import SimpleITK as sitk

        try:
            dependencies.ensure(ask=False)  # never installs while Slicer runs tests
        except dependencies.DependencyError as error:
            self.skipTest(f"Python requirements not met: {error}")
        volume = slicer.util.loadVolume(self._testingPath("phantom_case.nrrd"))
        truth = sitk.GetArrayFromImage(sitk.ReadImage(self._testingPath("phantom_case_mask.nrrd"))) > 0
        logic, ends = MTSASegmenterLogic(), []
        logic.start(Request(volume, device="cpu"), on_end=ends.append)
        self._waitFor(logic)
        self.assertEqual([o.stage for o in ends], [Stage.FINISHED], ends[0].message + "\n" + ends[0].log if ends else "")
        segmentation = ends[0].segmentation
        predicted = slicer.util.arrayFromSegmentBinaryLabelmap(
            segmentation, segmentation.GetSegmentation().GetSegmentIdBySegmentName("GTV"), volume) > 0
        dice = 2.0 * np.logical_and(predicted, truth).sum() / max(1, predicted.sum() + truth.sum())
        self.assertGreaterEqual(dice, 0.7)
        self.assertTrue(0.0 <= ends[0].report["egfr"]["probability"] <= 1.0)
        logic.close()

        slicer.util.selectModule("MTSASegmenter")
        panel = slicer.modules.mtsasegmenter.widgetRepresentation().self().panel
        panel.ui.inputVolumeSelector.setCurrentNode(volume)
        panel.ui.outputSegmentationSelector.setCurrentNode(None)
        panel.ui.deviceComboBox.setCurrentIndex(panel.ui.deviceComboBox.findData("cpu"))
        panel.onApplyButton()
        self.assertEqual(panel.ui.applyButton.text, _("Cancel"))
        self._waitFor(panel.logic)
        self.assertEqual(panel.logic.stage, Stage.FINISHED, panel.logic.outcome.message)
        self.assertEqual(panel.ui.lesionTable.rowCount, len(report_view.lesion_rows(panel._report)))
        self.assertGreaterEqual(panel.ui.lesionTable.rowCount, len(panel._report["gtv"]["lesions"]))
        self.assertEqual(panel.ui.applyButton.text, "Predict GTV + EGFR")
        panel.ui.outputSegmentationSelector.setCurrentNode(None)  # results of no segmentation: none shown
        self.assertEqual(panel.ui.lesionTable.rowCount, 0)

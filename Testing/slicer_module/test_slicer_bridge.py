"""slicer/bridge.py against Slicer's real MRML (the slicer-core wheel), without the application.

Oblique volume node -> SimpleITK image -> mask -> segmentation node -> .seg.nrrd -> slicerio.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):  # the unrelated PyPI package 'slicer' also imports as slicer
    pytest.skip("'slicer' is not Slicer's MRML (install slicer-core)", allow_module_level=True)
slicerio = pytest.importorskip("slicerio")
vtk = pytest.importorskip("vtk")
from mrml_helpers import volume_node as volume_node_of  # noqa: E402
from MTSASegmenterLib.errors import Cancelled, InputError  # noqa: E402
from MTSASegmenterLib.io import terminology  # noqa: E402
from MTSASegmenterLib.slicer import bridge as slicer_bridge  # noqa: E402
from MTSASegmenterLib.slicer import plot_chart  # noqa: E402
from vtk.util import numpy_support  # noqa: E402


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


# The geometry as ITK (LPS) would state it: an oblique, anisotropic, off-origin grid.
LPS_DIRECTION = _rotation(0.2, -0.15, 0.35)
SPACING = (0.9, 1.1, 3.0)
LPS_ORIGIN = (10.5, -20.25, 30.0)
SHAPE_ZYX = (7, 18, 20)  # at least one 16 x 16 slice, as validate_image requires


def _ijk_to_ras() -> np.ndarray:
    """The same grid as Slicer stores it: IJK-to-RAS = diag(-1,-1,1) @ LPS geometry."""
    flip = np.diag([-1.0, -1.0, 1.0])
    m = np.eye(4)
    m[:3, :3] = flip @ LPS_DIRECTION @ np.diag(SPACING)
    m[:3, 3] = flip @ np.array(LPS_ORIGIN)
    return m


def _vtk_matrix(a: np.ndarray):
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(a[r, c]))
    return m


def _voxels() -> np.ndarray:
    return np.random.default_rng(7).integers(-200, 1200, SHAPE_ZYX).astype(np.int16)


def _lesion_mask() -> np.ndarray:
    z, y, x = np.indices(SHAPE_ZYX)
    mask = ((x - 5) ** 2 + (y - 6) ** 2 <= 9) & (z >= 2) & (z <= 4)
    mask |= (x >= 11) & (x <= 13) & (y >= 1) & (y <= 3) & (z == 5)  # a second, small lesion
    return mask.astype(np.uint8)


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


@pytest.fixture
def volume_node(scene):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "case 1")
    array = _voxels()
    image = vtk.vtkImageData()
    image.SetDimensions(*reversed(array.shape))
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True, array_type=vtk.VTK_SHORT))
    node.SetAndObserveImageData(image)
    node.SetIJKToRASMatrix(_vtk_matrix(_ijk_to_ras()))
    return node


def _mask_image(reference: sitk.Image, array: np.ndarray | None = None) -> sitk.Image:
    mask = sitk.GetImageFromArray(_lesion_mask() if array is None else array)
    mask.CopyInformation(reference)
    return mask


def test_volume_node_to_image_keeps_exact_lps_geometry(volume_node):
    image = slicer_bridge.volume_node_to_image(volume_node)
    np.testing.assert_allclose(image.GetSpacing(), SPACING, atol=1e-9)
    np.testing.assert_allclose(image.GetOrigin(), LPS_ORIGIN, atol=1e-9)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), LPS_DIRECTION, atol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), _voxels())
    assert image.GetPixelID() == sitk.sitkInt16
    # a physical point agrees: voxel (i, j, k) maps to the same place in both conventions
    ijk = (3, 8, 5)
    lps = np.array(image.TransformIndexToPhysicalPoint(ijk))
    ras = _ijk_to_ras() @ np.array([*ijk, 1.0])
    np.testing.assert_allclose(lps, ras[:3] * [-1, -1, 1], atol=1e-9)


def test_volume_node_errors(scene):
    empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(InputError, match="empty"):
        slicer_bridge.volume_node_to_image(empty)
    with pytest.raises(InputError):
        slicer_bridge.volume_node_to_image(scene.AddNewNodeByClass("vtkMRMLModelNode", "model"))


def test_sheared_volume_is_refused(volume_node):
    sheared = _ijk_to_ras()
    sheared[0, 1] += 0.5
    volume_node.SetIJKToRASMatrix(_vtk_matrix(sheared))
    with pytest.raises(InputError, match="sheared"):
        slicer_bridge.volume_node_to_image(volume_node)


def test_mask_to_seg_nrrd_read_back_by_slicerio(scene, volume_node, tmp_path):
    image = slicer_bridge.volume_node_to_image(volume_node)
    node = slicer_bridge.mask_to_segmentation_node(_mask_image(image), scene, reference_volume_node=volume_node)
    assert node.GetSegmentation().GetNumberOfSegments() == 1
    path = slicer_bridge.write_segmentation_node(node, tmp_path / "case1.seg.nrrd")

    seg = slicerio.read_segmentation(str(path))
    (segment,) = seg["segments"]
    assert segment["name"] == terminology.GTV.name
    np.testing.assert_allclose(segment["color"], terminology.GTV.color, atol=1e-6)
    assert segment["nameAutoGenerated"] is False and segment["colorAutoGenerated"] is False
    term = segment["terminology"]
    assert tuple(term["category"]) == terminology.GTV.category
    assert tuple(term["type"]) == terminology.GTV.type
    assert tuple(term["anatomicRegion"]) == terminology.GTV.region

    expected = np.eye(4)
    expected[:3, :3] = LPS_DIRECTION @ np.diag(SPACING)
    expected[:3, 3] = LPS_ORIGIN
    np.testing.assert_allclose(seg["ijkToLPS"], expected, atol=1e-6)
    voxels = seg["voxels"]  # slicerio: [i, j, k]
    assert voxels.shape == tuple(reversed(SHAPE_ZYX))
    np.testing.assert_array_equal(voxels.transpose(2, 1, 0) == segment["labelValue"], _lesion_mask() > 0)


def test_segmentation_reference_geometry_and_update_in_place(scene, volume_node):
    image = slicer_bridge.volume_node_to_image(volume_node)
    node = slicer_bridge.mask_to_segmentation_node(_mask_image(image), scene, reference_volume_node=volume_node)
    reference = node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole())
    assert reference is volume_node
    assert node.GetSegmentation().GetConversionParameter("Reference image geometry")
    segment_id = node.GetSegmentation().GetSegmentIdBySegmentName("GTV")
    assert not slicer_bridge.segmentation_was_edited(node)

    smaller = _lesion_mask()
    smaller[:, :, 10:] = 0
    same = slicer_bridge.mask_to_segmentation_node(_mask_image(image, smaller), scene, volume_node, segmentation_node=node)
    assert same is node
    assert node.GetSegmentation().GetNumberOfSegments() == 1
    assert node.GetSegmentation().GetSegmentIdBySegmentName("GTV") == segment_id
    assert not slicer_bridge.segmentation_was_edited(node)
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1


def test_edited_segmentation_is_detected(scene, volume_node):
    image = slicer_bridge.volume_node_to_image(volume_node)
    node = slicer_bridge.mask_to_segmentation_node(_mask_image(image), scene, reference_volume_node=volume_node)
    # the user paints one more voxel into GTV (as the Segment Editor would, via the labelmap)
    edited = _lesion_mask()
    edited[0, 0, 0] = 1
    labelmap = slicer_bridge._oriented_labelmap(_mask_image(image, edited))
    segment_id = node.GetSegmentation().GetSegmentIdBySegmentName("GTV")
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(labelmap, node, segment_id)
    assert slicer_bridge.segmentation_was_edited(node)

    foreign = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "drawn by hand")
    foreign.GetSegmentation().AddEmptySegment("", "Oedema")
    assert slicer_bridge.segmentation_was_edited(foreign)
    assert not slicer_bridge.segmentation_was_edited(scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "empty"))


def test_empty_mask_gives_empty_gtv(scene, volume_node, tmp_path):
    image = slicer_bridge.volume_node_to_image(volume_node)
    empty = np.zeros(SHAPE_ZYX, np.uint8)
    node = slicer_bridge.mask_to_segmentation_node(_mask_image(image, empty), scene, volume_node)
    assert node.GetSegmentation().GetSegmentIdBySegmentName("GTV")
    assert not slicer_bridge.segmentation_was_edited(node)
    seg = slicerio.read_segmentation(str(slicer_bridge.write_segmentation_node(node, tmp_path / "e.seg.nrrd")))
    assert [s["name"] for s in seg["segments"]] == ["GTV"]
    assert not seg["voxels"].any()


def test_place_beside_puts_segmentation_in_the_volume_study(scene, volume_node):
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "Patient 1")
    study = sh.CreateStudyItem(patient, "MR 2023")
    sh.CreateItem(study, volume_node)  # what the application's subject-hierarchy logic does on load
    image = slicer_bridge.volume_node_to_image(volume_node)
    node = slicer_bridge.mask_to_segmentation_node(_mask_image(image), scene, volume_node)
    slicer_bridge.place_beside(scene, node, volume_node)
    assert sh.GetItemParent(sh.GetItemByDataNode(node)) == study


def test_jump_slices_centres_views_on_a_lesion(scene):
    slice_node = scene.AddNewNodeByClass("vtkMRMLSliceNode", "Red")
    slice_node.SetLayoutName("Red")
    slice_node.SetOrientationToAxial()
    slicer_bridge.jump_slices_to(scene, (12.0, -30.5, 44.0))
    to_ras = slice_node.GetSliceToRAS()
    np.testing.assert_allclose([to_ras.GetElement(r, 3) for r in range(3)], [12.0, -30.5, 44.0], atol=1e-6)


def test_egfr_plot_chart_is_reused(scene):
    chart = plot_chart.egfr_plot_chart_node(scene, [3, 4, 5], [0.2, 0.7, 0.9], 0.5)
    assert chart.GetNumberOfPlotSeriesNodes() == 2
    table = chart.GetNthPlotSeriesNode(0).GetTableNode().GetTable()
    assert table.GetNumberOfRows() == 3 and table.GetValue(1, 1).ToDouble() == pytest.approx(0.7)
    again = plot_chart.egfr_plot_chart_node(scene, [8], [0.1], 0.5, chart_node=chart)
    assert again is chart
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 1
    assert chart.GetNthPlotSeriesNode(0).GetTableNode().GetTable().GetNumberOfRows() == 1
    # a regression head (Ki-67) on the same chart: its title, a free y axis, no threshold
    ki67 = plot_chart.egfr_plot_chart_node(scene, [4, 5], [20.0, 26.9], None, chart_node=chart, title="Ki-67: value per slice",
                                              probability=False)
    assert ki67.GetTitle() == "Ki-67: value per slice" and ki67.GetYAxisRangeAuto()
    assert math.isnan(ki67.GetNthPlotSeriesNode(0).GetTableNode().GetTable().GetValue(0, 2).ToDouble())



def test_a_removed_chart_or_table_is_drawn_anew_not_left_empty(scene):
    chart = plot_chart.egfr_plot_chart_node(scene, [3, 4], [0.2, 0.7], 0.5)
    scene.RemoveNode(chart)
    redrawn = plot_chart.egfr_plot_chart_node(scene, [3, 4, 5], [0.2, 0.7, 0.9], 0.5, chart_node=chart)
    assert redrawn is not chart and redrawn.GetScene() is scene
    assert redrawn.GetNthPlotSeriesNode(0).GetTableNode().GetTable().GetNumberOfRows() == 3
    scene.RemoveNode(redrawn.GetNthPlotSeriesNode(0).GetTableNode())
    again = plot_chart.egfr_plot_chart_node(scene, [7], [0.4], 0.5, chart_node=redrawn)
    assert again is redrawn and again.GetNumberOfPlotSeriesNodes() == 2
    table = again.GetNthPlotSeriesNode(0).GetTableNode()
    assert table.GetScene() is scene and table.GetTable().GetValue(0, 1).ToDouble() == pytest.approx(0.4)


def test_the_panels_plot_view_follows_no_other_chart(scene):
    view = plot_chart.private_plot_view(scene)
    assert not view.GetDoPropagatePlotChartSelection()
    assert not view.GetSaveWithScene()
    assert plot_chart.private_plot_view(scene, view) is view
    scene.RemoveNode(view)
    assert plot_chart.private_plot_view(scene, view) is not view

@dataclass
class _FakeReport:
    """Stand-in for inference.report.Report: only its JSON form, which the bridge stores."""

    data: dict

    def to_dict(self) -> dict:
        return dict(self.data)


@dataclass
class _FakePrediction:
    mask: sitk.Image
    report: _FakeReport
    segment: terminology.SegmentTerminology = terminology.GTV


def test_segment_volume_node_with_injected_predictor(scene, volume_node):
    """The Slicer module's whole logic path, with a stand-in for the network (as SlicerNNUnet tests)."""
    calls = {}

    def predict(image, model, *, device, progress, should_cancel, case):
        calls.update(device=device, model=model)
        progress(1.0, "done")
        report = {"case": case, "egfr": {"probability": 0.8, "call": "mutant"}, "gtv": {"volume_ml": 0.1, "lesions": []}}
        return _FakePrediction(_mask_image(image), _FakeReport(report))

    progressed = []
    node, report = slicer_bridge.segment_volume_node(
        volume_node, "model", device="cpu", progress=lambda f, m: progressed.append(f), predict=predict
    )
    assert calls == {"device": "cpu", "model": "model"}
    assert progressed == [1.0]
    assert report["case"] == "case 1"
    assert json.loads(node.GetAttribute(slicer_bridge.REPORT_ATTRIBUTE))["egfr"]["call"] == "mutant"
    assert node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole()) is volume_node


def test_cancel_leaves_the_scene_unchanged(scene, volume_node):
    def predict(image, model, *, device, progress, should_cancel, case):
        assert should_cancel()
        raise Cancelled("cancelled by the user")

    before = scene.GetNumberOfNodes()
    with pytest.raises(Cancelled):
        slicer_bridge.segment_volume_node(volume_node, None, should_cancel=lambda: True, predict=predict)
    assert scene.GetNumberOfNodes() == before


def test_real_pipeline_on_an_oblique_node(scene, tiny_checkpoint, tmp_path):
    """The real pipeline behind the bridge, with a rule-based net (helpers.BrightnessNet): the GTV
    segment of an oblique volume node lands on the node's own grid, on the known lesion."""
    pytest.importorskip("torch")
    from helpers import BrightnessNet, lesion_volume
    from MTSASegmenterLib.model.checkpoint import load_checkpoint

    image, truth = lesion_volume(size=(48, 52, 24), spacing=(1.5, 1.5, 2.5))
    direction = tuple(_rotation(0.0, 0.0, 0.12).ravel())  # slightly oblique axial acquisition
    for img in (image, truth):
        img.SetDirection(direction)
    node = volume_node_of(scene, image, "oblique phantom")
    model = load_checkpoint(tiny_checkpoint, "cpu")
    model.net = BrightnessNet(context=model.preprocess.context_slices)

    fractions = []
    seg_node, report = slicer_bridge.segment_volume_node(
        node, model, device="cpu", progress=lambda f, m: fractions.append(f)
    )
    assert fractions and fractions[-1] == pytest.approx(1.0)
    assert report["case"] == "oblique phantom"
    assert 0.0 <= report["egfr"]["probability"] <= 1.0
    out = slicerio.read_segmentation(str(slicer_bridge.write_segmentation_node(seg_node, tmp_path / "o.seg.nrrd")))
    expected = np.eye(4)
    expected[:3, :3] = np.reshape(direction, (3, 3)) @ np.diag(image.GetSpacing())
    expected[:3, 3] = image.GetOrigin()
    np.testing.assert_allclose(out["ijkToLPS"], expected, atol=1e-5)
    predicted = out["voxels"].transpose(2, 1, 0) > 0
    known = sitk.GetArrayFromImage(truth) > 0
    dice = 2 * np.logical_and(predicted, known).sum() / (predicted.sum() + known.sum())
    assert dice >= 0.85, dice


def test_demo_model_end_to_end(scene, tmp_path):
    """The real pipeline and bundled demo model behind the bridge."""
    from MTSASegmenterLib.model.checkpoint import load_checkpoint
    from MTSASegmenterLib.resources import MODULE_DIR, demo_model_path

    case = MODULE_DIR / "Resources" / "Testing" / "phantom_case.nrrd"
    image = sitk.ReadImage(str(case))
    node = volume_node_of(scene, image, "phantom")

    seg_node, report = slicer_bridge.segment_volume_node(node, load_checkpoint(demo_model_path(), "cpu"), device="cpu")
    assert 0.0 <= report["egfr"]["probability"] <= 1.0
    out = slicerio.read_segmentation(str(slicer_bridge.write_segmentation_node(seg_node, tmp_path / "p.seg.nrrd")))
    assert out["voxels"].shape == image.GetSize()
    # the same bar as the module's self-test in Slicer (MTSASegmenterTest.test_phantom_case)
    predicted = out["voxels"].transpose(2, 1, 0) > 0
    known = sitk.GetArrayFromImage(sitk.ReadImage(str(case.with_name("phantom_case_mask.nrrd")))) > 0
    dice = 2 * np.logical_and(predicted, known).sum() / max(1, predicted.sum() + known.sum())
    assert dice >= 0.7, dice


def test_a_constant_volume_node_is_refused_like_a_file(scene):
    """The Slicer path applies the same input checks as mtsa predict."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "blank")
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(20, 20, 20)
    image_data.AllocateScalars(vtk.VTK_SHORT, 1)
    image_data.GetPointData().GetScalars().Fill(0)
    node.SetAndObserveImageData(image_data)
    with pytest.raises(InputError, match="blank: all voxels have the same value"):
        slicer_bridge.volume_node_to_image(node)

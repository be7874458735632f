"""The bridge against real MRML (slicer-core): a user's segmentation keeps its frame and segments,
the terminology is the one Slicer itself serialises, and a prediction written by another process
comes back into the scene unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("'slicer' is not Slicer's MRML (install slicer-core)", allow_module_level=True)
slicerio = pytest.importorskip("slicerio")
from mrml_helpers import image_voxels_ras, linear_transform, volume_node, world_voxels  # noqa: E402
from MTSASegmenterLib.errors import InputError  # noqa: E402
from MTSASegmenterLib.io import terminology  # noqa: E402
from MTSASegmenterLib.io.outputs import write_prediction_files  # noqa: E402
from MTSASegmenterLib.slicer import bridge  # noqa: E402


def _grid(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.9, 1.1, 2.5))
    image.SetOrigin((12.0, -30.0, 5.0))
    return image


def _box(z, y, x) -> np.ndarray:
    mask = np.zeros((8, 20, 22), np.uint8)
    mask[z, y, x] = 1
    return mask


@pytest.fixture
def scene():
    bridge._slicer()  # the converter rules the Segmentations module registers in the application
    return slicer.vtkMRMLScene()


def _user_segmentation(scene, volume, transform):
    """A segmentation the user made: one segment 'Other', under their own transform."""
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "user's")
    other = bridge._oriented_labelmap(_grid(_box(slice(1, 3), slice(2, 6), slice(3, 9))))
    segment_id = node.GetSegmentation().AddEmptySegment("", "Other", [0.1, 0.8, 0.1])
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        other, node, segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)
    node.SetAndObserveTransformNodeID(transform.GetID() if transform is not None else None)
    return node


@pytest.mark.parametrize("volume_moved", [False, True])
def test_writing_into_a_user_segmentation_moves_none_of_its_segments(scene, volume_moved):
    volume = volume_node(scene, _grid(np.arange(8 * 20 * 22, dtype=np.int16).reshape(8, 20, 22)), "t1")
    if volume_moved:
        volume.SetAndObserveTransformNodeID(linear_transform(scene, (-7.0, 2.0, 1.0), 12.0, "V").GetID())
    user_transform = linear_transform(scene, (15.0, -4.0, 3.0), 30.0, "user's")
    node = _user_segmentation(scene, volume, user_transform)
    before = world_voxels(node, "Other")

    gtv = _grid(_box(slice(4, 7), slice(10, 14), slice(12, 18)))
    assert bridge.mask_to_segmentation_node(gtv, scene, volume, segmentation_node=node) is node

    assert node.GetTransformNodeID() == user_transform.GetID()
    np.testing.assert_allclose(world_voxels(node, "Other"), before, atol=1e-6)
    # the GTV lands where the volume shows it, resampled onto the user's (rotated) grid
    written, expected = world_voxels(node, "GTV"), image_voxels_ras(gtv, volume)
    np.testing.assert_allclose(written.mean(axis=0), expected.mean(axis=0), atol=0.5)
    assert abs(len(written) - len(expected)) <= 0.2 * len(expected)


def test_a_new_segmentation_follows_the_volume_transform(scene):
    volume = volume_node(scene, _grid(np.ones((8, 20, 22), np.int16)), "t1")
    volume.SetAndObserveTransformNodeID(linear_transform(scene, (5.0, 6.0, -2.0), 20.0).GetID())
    gtv = _grid(_box(slice(2, 4), slice(5, 9), slice(5, 8)))
    node = bridge.mask_to_segmentation_node(gtv, scene, volume)
    assert node.GetTransformNodeID() == volume.GetTransformNodeID()
    np.testing.assert_allclose(world_voxels(node, "GTV"), image_voxels_ras(gtv, volume), atol=1e-4)


@pytest.mark.parametrize("key", sorted(terminology.TERMINOLOGIES))
def test_terminology_is_the_string_slicer_serialises(key):
    """Slicer's own terminology logic parses our entry into the DICOM master list and writes it back identically."""
    segment = terminology.TERMINOLOGIES[key]
    logic = slicer.vtkSlicerTerminologiesModuleLogic
    entry = slicer.vtkSlicerTerminologyEntry()
    assert logic.DeserializeTerminologyEntry(segment.entry(), entry)
    assert entry.GetTerminologyContextName() == "Segmentation category and type - DICOM master list"
    assert entry.GetCategoryObject().GetCodeValue() == "49755003"
    assert entry.GetTypeObject().GetCodeValue() == segment.type[1]
    assert entry.GetTypeObject().GetCodeMeaning() == segment.type[2]
    assert entry.GetRegionObject().GetCodeValue() == segment.region[1]
    assert logic.SerializeTerminologyEntry(entry) == segment.entry()
    assert terminology.SegmentTerminology.from_entry(segment.name, segment.color, segment.entry()) == segment


def test_segment_carries_the_terminology_in_the_scene_and_the_file(scene, tmp_path):
    volume = volume_node(scene, _grid(np.ones((8, 20, 22), np.int16)), "t1")
    liver = terminology.TERMINOLOGIES["liver-tumour"]
    node = bridge.mask_to_segmentation_node(_grid(_box(2, slice(3, 6), slice(3, 6))), scene, volume, segment=liver)
    assert node.GetSegmentation().GetSegment(node.GetSegmentation().GetSegmentIdBySegmentName("Tumour")).GetTerminology() == liver.entry()
    (read,) = slicerio.read_segmentation(str(bridge.write_segmentation_node(node, tmp_path / "t.seg.nrrd")))["segments"]
    assert read["terminology"]["contextName"] == terminology.CATEGORY_CONTEXT
    assert read["terminology"]["anatomicContextName"] == terminology.ANATOMIC_CONTEXT
    assert tuple(read["terminology"]["type"]) == liver.type


def _written_prediction(tmp_path, mask: sitk.Image, segment=terminology.GTV):
    seg, report_path = tmp_path / "case.seg.nrrd", tmp_path / "case.json"
    report = {"case": "case", "egfr": {"probability": 0.7, "call": "mutant"}, "gtv": {"volume_ml": 0.2, "lesions": []}}
    write_prediction_files([seg, report_path], mask, report, segment=segment)
    return seg, report


@pytest.mark.parametrize("key", ["brain-metastasis", "breast-tumour"])
def test_load_prediction_brings_the_file_back_unchanged(scene, tmp_path, key):
    segment = terminology.TERMINOLOGIES[key]
    image = _grid(np.ones((8, 20, 22), np.int16))
    volume = volume_node(scene, image, "t1")
    mask = _grid(_box(slice(3, 6), slice(4, 9), slice(6, 10)))
    seg_path, report = _written_prediction(tmp_path, mask, segment)

    node = bridge.load_prediction(seg_path, report, volume)
    item = node.GetSegmentation().GetSegment(node.GetSegmentation().GetSegmentIdBySegmentName(segment.name))
    assert item.GetTerminology() == segment.entry()
    np.testing.assert_allclose(item.GetColor(), segment.color, atol=1e-4)
    np.testing.assert_allclose(world_voxels(node, segment.name), image_voxels_ras(mask), atol=1e-4)
    assert json.loads(node.GetAttribute(bridge.REPORT_ATTRIBUTE))["egfr"]["call"] == "mutant"
    assert node.GetName() == f"t1 {segment.name}"


def test_load_prediction_into_a_removed_output_makes_a_new_node_and_refuses_a_removed_input(scene, tmp_path):
    volume = volume_node(scene, _grid(np.ones((8, 20, 22), np.int16)), "t1")
    seg_path, report = _written_prediction(tmp_path, _grid(_box(2, slice(3, 6), slice(3, 6))))
    chosen = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "chosen")
    scene.RemoveNode(chosen)
    node = bridge.load_prediction(seg_path, report, volume, segmentation_node=chosen)
    assert node is not chosen and node.GetScene() is scene
    scene.RemoveNode(volume)
    count = scene.GetNumberOfNodes()
    with pytest.raises(InputError, match="t1: the volume node was removed"):
        bridge.load_prediction(seg_path, report, volume)
    assert scene.GetNumberOfNodes() == count

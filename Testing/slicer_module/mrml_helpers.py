"""MRML helpers the Slicer-side tests share (real nodes of slicer-core; nothing here is a double)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from MTSASegmenterLib.slicer import bridge
from vtk.util import numpy_support


def volume_node(scene, image: sitk.Image, name: str):
    """A scalar volume node holding ``image``'s voxels on its exact grid (LPS -> RAS)."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    array = np.ascontiguousarray(sitk.GetArrayFromImage(image))
    vtk_image = vtk.vtkImageData()
    vtk_image.SetDimensions(*reversed(array.shape))
    vtk_image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True))
    node.SetAndObserveImageData(vtk_image)
    node.SetIJKToRASMatrix(bridge._numpy_to_matrix(bridge._ijk_to_ras_of_image(image)))
    return node


def linear_transform(scene, translation=(0.0, 0.0, 0.0), rotate_z_deg: float = 0.0, name: str = "T"):
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
    transform = vtk.vtkTransform()
    transform.Translate(*translation)
    transform.RotateZ(rotate_z_deg)
    node.SetMatrixTransformToParent(transform.GetMatrix())
    return node


def world_voxels(segmentation_node, name: str) -> np.ndarray:
    """World (RAS) positions of the voxels of segment ``name``, sorted; parent transforms applied.

    Segments share labelmap layers, so the segment's voxels are those of its label value.
    """
    segmentation = segmentation_node.GetSegmentation()
    segment_id = segmentation.GetSegmentIdBySegmentName(name)
    assert segment_id, f"no segment {name}"
    labelmap = slicer.vtkOrientedImageData()
    slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(segmentation_node, segment_id, labelmap)
    dims = labelmap.GetDimensions()
    values = numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars()).reshape(dims[::-1])
    k, j, i = np.nonzero(values == segmentation.GetSegment(segment_id).GetLabelValue())
    extent = labelmap.GetExtent()
    matrix = vtk.vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(matrix)
    ijk = np.stack([i + extent[0], j + extent[2], k + extent[4], np.ones_like(i)]).astype(float)
    points = (bridge._matrix_to_numpy(matrix) @ ijk)[:3].T
    return points[np.lexsort(points.T[::-1])]


def image_voxels_ras(mask: sitk.Image, volume=None) -> np.ndarray:
    """World (RAS) positions of a mask's voxels, under ``volume``'s parent transform when given; sorted."""
    k, j, i = np.nonzero(sitk.GetArrayViewFromImage(mask))
    points = np.array([mask.TransformIndexToPhysicalPoint((int(a), int(b), int(c))) for a, b, c in zip(i, j, k)])
    points[:, :2] *= -1  # LPS -> RAS
    transform = volume.GetParentTransformNode() if volume is not None else None
    if transform is not None:
        to_world = vtk.vtkGeneralTransform()
        transform.GetTransformToWorld(to_world)
        points = np.array([to_world.TransformPoint(p) for p in points])
    return points[np.lexsort(points.T[::-1])]


def segment_array(segmentation_node, name: str, reference_volume) -> np.ndarray:
    """The segment as a [z, y, x] 0/1 array on the reference volume's grid (what
    slicer.util.arrayFromSegmentBinaryLabelmap gives in the application, which needs slicer.mrmlScene)."""
    scene = segmentation_node.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__export__")
    try:
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(name))
        assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentation_node, ids, labelmap, reference_volume)
        dims = labelmap.GetImageData().GetDimensions()
        return (numpy_support.vtk_to_numpy(labelmap.GetImageData().GetPointData().GetScalars()).reshape(dims[::-1]) > 0).astype(np.uint8)
    finally:
        scene.RemoveNode(labelmap)

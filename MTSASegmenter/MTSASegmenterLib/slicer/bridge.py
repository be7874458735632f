"""MRML nodes <-> SimpleITK images, and a prediction brought into the scene.

It uses only Slicer's MRML classes (no ``slicer.app``, ``slicer.util``, qt or ctk), so the
``slicer-core`` wheel runs it, and its tests, outside the application. Geometry is taken from
the node's IJK-to-RAS matrix and converted to ITK's LPS, so oblique volumes round-trip
exactly. Coordinates are in the node's own (local) RAS frame; a new output node takes the
volume's parent transform, an existing one keeps its own (the mask is carried into its frame).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import SimpleITK as sitk

from ..errors import InputError, OutputError
from ..io import terminology
from ..io.imageio import validate_image

_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])

#: Node attribute holding a digest of the GTV labelmap as this module last wrote it, so that a
#: later run can tell whether the user has edited the segment since.
DIGEST_ATTRIBUTE = "MTSASegmenter.GTVDigest"
#: Node attribute holding the JSON report of the last prediction (for the panel after reload).
REPORT_ATTRIBUTE = "MTSASegmenter.Report"


def _slicer():
    import slicer  # lazy: only the Slicer module and the bridge tests need it

    if not hasattr(slicer, "vtkMRMLScene"):
        raise ImportError("the imported 'slicer' is not Slicer's MRML (install slicer-core, not the 'slicer' package)")
    _ensure_converter_rules(slicer)
    return slicer


def _ensure_converter_rules(slicer) -> None:
    """Register the labelmap <-> surface rules the Segmentations module registers in the app.

    Outside the application (slicer-core alone) no rule is registered, and a segmentation then
    cannot even construct an empty binary-labelmap representation.
    """
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    rules = factory.GetConverterRules()
    if rules is not None and len(rules) > 0:
        return
    factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
    factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())


def _matrix_to_numpy(matrix) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=float)


def _numpy_to_matrix(array: np.ndarray):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def _ijk_to_ras_of_image(image: sitk.Image) -> np.ndarray:
    """4x4 IJK-to-RAS matrix of a 3D SimpleITK image (LPS -> RAS)."""
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = _LPS_FROM_RAS @ direction @ np.diag(image.GetSpacing())
    ijk_to_ras[:3, 3] = _LPS_FROM_RAS @ np.array(image.GetOrigin(), dtype=float)
    return ijk_to_ras


def volume_node_to_image(volume_node) -> sitk.Image:
    """The node's voxels as a SimpleITK image (LPS) with the exact geometry of its IJK-to-RAS matrix."""
    _slicer()
    from vtk.util import numpy_support

    name = volume_node.GetName() if volume_node is not None else "None"
    if volume_node is None or not volume_node.IsA("vtkMRMLScalarVolumeNode"):
        raise InputError(f"{name}: not a scalar volume node")
    image_data = volume_node.GetImageData()
    if image_data is None or image_data.GetPointData().GetScalars() is None:
        raise InputError(f"{name}: the volume node holds no voxels")
    if image_data.GetNumberOfScalarComponents() != 1:
        raise InputError(f"{name}: {image_data.GetNumberOfScalarComponents()} components per voxel; a grey-scale volume is needed")
    dims = image_data.GetDimensions()  # x, y, z
    array = numpy_support.vtk_to_numpy(image_data.GetPointData().GetScalars()).reshape(dims[::-1]).copy()
    import vtk

    vtk_matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(vtk_matrix)
    m = _matrix_to_numpy(vtk_matrix)
    axes = _LPS_FROM_RAS @ m[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    if np.any(spacing <= 0):
        raise InputError(f"{name}: degenerate IJK-to-RAS matrix (zero spacing)")
    direction = axes / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise InputError(f"{name}: IJK-to-RAS matrix is sheared; only rigid orientations are supported")

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(d) for d in direction.ravel()))
    image.SetOrigin(tuple(float(o) for o in _LPS_FROM_RAS @ m[:3, 3]))
    validate_image(image, name)  # the same refusals as a file given to mtsa predict
    return image


def _oriented_labelmap(mask: sitk.Image):
    """A 0/1 vtkOrientedImageData with the mask's voxels and geometry (image-to-world in RAS)."""
    slicer = _slicer()
    from vtk.util import numpy_support

    if mask.GetDimension() != 3 or mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("mask: a 3D single-component image is needed")
    array = np.ascontiguousarray((sitk.GetArrayViewFromImage(mask) > 0).astype(np.uint8))
    labelmap = slicer.vtkOrientedImageData()
    labelmap.SetDimensions(*reversed(array.shape))
    labelmap.SetImageToWorldMatrix(_numpy_to_matrix(_ijk_to_ras_of_image(mask)))
    scalars = numpy_support.numpy_to_vtk(array.ravel(), deep=True, array_type=numpy_support.get_vtk_array_type(np.uint8))
    labelmap.GetPointData().SetScalars(scalars)
    return labelmap


def _segment_id(segmentation_node, name: str) -> str | None:
    segment_id = segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(name)
    return segment_id or None


def segment_digest(segmentation_node, name: str = terminology.GTV.name) -> str | None:
    """SHA-1 of the named segment's binary labelmap (geometry included); None without it."""
    slicer = _slicer()
    import vtk
    from vtk.util import numpy_support

    segment_id = _segment_id(segmentation_node, name)
    if segment_id is None:
        return None
    labelmap = slicer.vtkOrientedImageData()
    slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(segmentation_node, segment_id, labelmap)
    scalars = labelmap.GetPointData().GetScalars()
    digest = hashlib.sha1()
    matrix = vtk.vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(matrix)
    digest.update(np.round(_matrix_to_numpy(matrix), 6).tobytes())
    digest.update(np.asarray(labelmap.GetExtent(), dtype=np.int64).tobytes())
    if scalars is not None:  # segments share layers: this one's voxels are those of its label value
        label = segmentation_node.GetSegmentation().GetSegment(segment_id).GetLabelValue()
        digest.update((numpy_support.vtk_to_numpy(scalars) == label).tobytes())
    return digest.hexdigest()


def segmentation_was_edited(segmentation_node) -> bool:
    """True when the node holds segments this module did not write, or a GTV edited since it did.

    The widget asks before overwriting such a node: a contour a clinician corrected is work.
    """
    if segmentation_node is None or segmentation_node.GetSegmentation().GetNumberOfSegments() == 0:
        return False
    written = segmentation_node.GetAttribute(DIGEST_ATTRIBUTE)
    if not written:
        return True
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetNumberOfSegments() != 1:
        return True
    return segment_digest(segmentation_node, segmentation.GetNthSegment(0).GetName()) != written


def mask_to_segmentation_node(
    mask: sitk.Image,
    scene,
    reference_volume_node=None,
    segmentation_node=None,
    name: str = "GTV segmentation",
    segment: terminology.SegmentTerminology = terminology.GTV,
):
    """Create (or update in place) the segmentation node whose segment (``GTV`` for MTSA-Net) is ``mask > 0``.

    The segment carries the name, DICOM terminology and colour of ``segment``. A node this call
    creates takes the input volume's parent transform and grid (reference geometry), so Slicer
    edits it on the input's own grid. A node that already holds segments keeps its own transform
    and grid: the mask (in the volume's local frame) is carried into the node's frame instead, so
    the user's other segments stay exactly where they were.
    """
    slicer = _slicer()
    if segmentation_node is None:
        segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        segmentation_node.CreateDefaultDisplayNodes()
    segmentation = segmentation_node.GetSegmentation()
    adopt_frame = reference_volume_node is not None and segmentation.GetNumberOfSegments() == 0
    if adopt_frame:  # nothing of the user's can move
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
        segmentation_node.SetAndObserveTransformNodeID(reference_volume_node.GetTransformNodeID())

    segment_id = _segment_id(segmentation_node, segment.name)
    if segment_id is None:
        segment_id = segmentation.AddEmptySegment("", segment.name, list(segment.color))
    item = segmentation.GetSegment(segment_id)
    item.SetName(segment.name)
    item.SetColor(*segment.color)
    item.SetNameAutoGenerated(False)  # else Slicer may rename/recolour it from the terminology
    item.SetColorAutoGenerated(False)
    item.SetTerminology(segment.entry())  # Slicer >= 5.8; the module needs 5.10 (dependencies.MINIMUM_SLICER)
    labelmap = _oriented_labelmap(mask)
    if reference_volume_node is not None and not adopt_frame:
        labelmap = _onto_grid_of(labelmap, reference_volume_node, segmentation_node, segment_id)
    ok = slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        labelmap, segmentation_node, segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE
    )
    if not ok:
        raise OutputError(f"{segmentation_node.GetName()}: could not write the {segment.name} labelmap into the segmentation")
    segmentation_node.SetAttribute(DIGEST_ATTRIBUTE, segment_digest(segmentation_node, segment.name) or "")
    return segmentation_node


def _onto_grid_of(labelmap, volume_node, segmentation_node, segment_id):
    """The labelmap (in the volume's local frame) resampled onto the grid of the segment's labelmap
    layer, in the segmentation node's frame (through world: the nodes may sit under different
    transforms). Writing a labelmap of another grid would make Slicer resample the whole shared
    layer, and with it the user's other segments."""
    slicer = _slicer()
    import vtk

    to_segmentation = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(
        volume_node.GetParentTransformNode(), segmentation_node.GetParentTransformNode(), to_segmentation
    )
    layer = segmentation_node.GetSegmentation().GetSegment(segment_id).GetRepresentation(
        slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    )
    resampled = slicer.vtkOrientedImageData()
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        labelmap, layer, resampled, False, True, to_segmentation  # nearest neighbour; grown to hold the mask
    )
    return resampled


def place_beside(scene, node, reference_node) -> None:
    """Put ``node`` in the same subject-hierarchy folder (patient/study) as ``reference_node``."""
    slicer = _slicer()
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if sh is None or reference_node is None:
        return
    ref_item = sh.GetItemByDataNode(reference_node)
    if not ref_item:
        return
    parent = sh.GetItemParent(ref_item)
    item = sh.GetItemByDataNode(node)
    if item:
        sh.SetItemParent(item, parent)
    else:  # outside the application no plugin logic has made an item for the new node yet
        sh.CreateItem(parent, node)


def write_segmentation_node(segmentation_node, path: str | Path) -> Path:
    """Write the node as a ``.seg.nrrd`` with Slicer's own writer (full reference extent, not cropped)."""
    slicer = _slicer()
    path = Path(path)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    storage.SetCropToMinimumExtent(False)
    if not storage.WriteData(segmentation_node):
        raise OutputError(f"{path}: could not write the segmentation")
    return path


def jump_slices_to(scene, ras: tuple[float, float, float], reference_node=None) -> None:
    """Centre every slice view on a point given in ``reference_node``'s local RAS (e.g. a lesion centroid)."""
    slicer = _slicer()
    point = [float(v) for v in ras]
    transform = reference_node.GetParentTransformNode() if reference_node is not None else None
    if transform is not None:
        import vtk

        to_world = vtk.vtkGeneralTransform()
        transform.GetTransformToWorld(to_world)
        point = list(to_world.TransformPoint(point))
    slicer.vtkMRMLSliceNode.JumpAllSlices(scene, *point, slicer.vtkMRMLSliceNode.CenteredJumpSlice)


def segment_volume_node(
    volume_node,
    model: Any,
    *,
    segmentation_node=None,
    device: str = "auto",
    progress: Callable[[float, str], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    predict: Callable[..., Any] | None = None,
):
    """Predict one volume node into a segmentation node; returns ``(segmentation_node, report)``.

    The Slicer module's in-process path (self-test, scripting), kept here so that it runs (and
    is tested) against real MRML without the application. ``predict`` defaults to
    ``pipeline.predict_volume``; tests inject a stand-in (dependency injection as in SlicerNNUnet).
    Nothing is added to the scene when prediction fails or is cancelled.
    """
    if predict is None:
        from ..inference.pipeline import predict_volume as predict
    scene = volume_node.GetScene()
    if scene is None:
        raise InputError(f"{volume_node.GetName()}: the volume node is not in a scene")
    image = volume_node_to_image(volume_node)
    prediction = predict(
        image, model, device=device, progress=progress, should_cancel=should_cancel, case=volume_node.GetName()
    )
    report = prediction.report.to_dict()
    node = _store_prediction(volume_node, segmentation_node, prediction.mask, prediction.segment, report)
    return node, report


def load_prediction(seg_path: str | Path, report: dict, volume_node, segmentation_node=None):
    """Bring a prediction that another process wrote (``.seg.nrrd`` and report) into the scene.

    The file's segment keeps the name, colour and terminology it was written with. The
    background prediction of the Slicer module ends here, on the GUI thread, once the process
    has finished: nothing of the scene is touched before.
    """
    _slicer()
    if volume_node.GetScene() is None:
        raise InputError(f"{volume_node.GetName()}: the volume node was removed from the scene")
    try:
        mask = sitk.ReadImage(str(seg_path))
        tags = dict(t.split(":", 1) for t in mask.GetMetaData("Segment0_Tags").split("|") if ":" in t)
        segment = terminology.SegmentTerminology.from_entry(
            mask.GetMetaData("Segment0_Name"), tuple(float(c) for c in mask.GetMetaData("Segment0_Color").split()),
            tags["TerminologyEntry"],
        )
    except (RuntimeError, KeyError, ValueError) as error:
        raise OutputError(f"{seg_path}: not a segmentation written by MTSASegmenter ({error})") from error
    return _store_prediction(volume_node, segmentation_node, mask, segment, dict(report))


def _store_prediction(volume_node, segmentation_node, mask: sitk.Image, segment: terminology.SegmentTerminology,
                      report: dict):
    """Write the mask into the (new or chosen) segmentation node, keep the report on it, file it beside the input."""
    import json

    scene = volume_node.GetScene()
    if segmentation_node is not None and segmentation_node.GetScene() is not scene:
        segmentation_node = None  # removed from the scene meanwhile: the result goes into a new node
    node = mask_to_segmentation_node(
        mask, scene, reference_volume_node=volume_node, segmentation_node=segmentation_node,
        name=f"{volume_node.GetName()} {segment.name}", segment=segment,
    )
    node.SetAttribute(REPORT_ATTRIBUTE, json.dumps(report, default=str))
    place_beside(scene, node, volume_node)
    return node

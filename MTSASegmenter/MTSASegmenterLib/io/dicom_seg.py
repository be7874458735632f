"""The GTV as a binary DICOM Segmentation (``<case>.seg.dcm``), written with highdicom.

A new series in the source patient's study, on the source slices (each frame references the
slice it was drawn on, and the source frame of reference), with the segment's terminology and
the model that drew it as the algorithm (name, version, sha256). PACS and viewers store it
beside the scan; Slicer (QuantitativeReporting) and highdicom read it back.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import highdicom as hd
import numpy as np
import SimpleITK as sitk
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from .. import __version__
from .dicom_common import MANUFACTURER, SEG_SERIES_NUMBER, Algorithm, DicomSource
from .terminology import SegmentTerminology


def code(entry: tuple[str, str, str]) -> hd.sr.CodedConcept:
    scheme, value, meaning = entry
    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def segment_description(segment: SegmentTerminology, algorithm: Algorithm) -> hd.seg.SegmentDescription:
    identification = hd.AlgorithmIdentificationSequence(
        name=algorithm.name, family=codes.cid7162.ArtificialIntelligence, version=algorithm.version,
        source=MANUFACTURER, parameters={"sha256": algorithm.sha256},
    )
    return hd.seg.SegmentDescription(
        segment_number=1, segment_label=segment.name, segmented_property_category=code(segment.category),
        segmented_property_type=code(segment.type), algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=identification, tracking_uid=generate_uid(), tracking_id=segment.name,
        anatomic_regions=[code(segment.region)], display_color=hd.color.CIELabColor(*_rgb_to_lab(segment.color)),
    )


def write_dicom_seg(mask: sitk.Image, source: DicomSource, segment: SegmentTerminology, path: Path) -> None:
    """``mask`` lies on ``source.series.image``'s grid (z in the series' sorted slice order)."""
    series, algorithm = source.series, source.algorithm
    array = sitk.GetArrayViewFromImage(mask) > 0
    if len(series.instances) == 1 and len(series.frames) > 1:  # one multi-frame source: frames in its own frame order
        array = array[np.argsort([f.number for f in series.frames])]
    with warnings.catch_warnings():  # highdicom judges the source's patient name: the source's to fix, not ours
        warnings.filterwarnings("ignore", message=".*intended person name", category=UserWarning)
        seg = hd.seg.Segmentation(
            source_images=series.instances, pixel_array=array.astype(np.uint8),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[segment_description(segment, algorithm)],
            series_instance_uid=generate_uid(), series_number=SEG_SERIES_NUMBER, sop_instance_uid=generate_uid(), instance_number=1,
            manufacturer=MANUFACTURER, manufacturer_model_name=algorithm.name, software_versions=__version__,
            device_serial_number=algorithm.sha256[:16], series_description=f"{segment.name} ({algorithm.name})",
            content_label=segment.name.upper()[:16], content_description=f"{segment.name} by {algorithm.description()}"[:64],
            omit_empty_frames=bool(array.any()),
        )
    seg.save_as(path, enforce_file_format=True)


def _rgb_to_lab(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """sRGB (0-1) to CIE L*a*b* (D65), the colour space DICOM's RecommendedDisplayCIELabValue uses."""
    from skimage.color import rgb2lab

    lab = rgb2lab(np.asarray(rgb, float).reshape(1, 1, 3))[0, 0]
    return float(np.clip(lab[0], 0, 100)), float(np.clip(lab[1], -128, 127)), float(np.clip(lab[2], -128, 127))

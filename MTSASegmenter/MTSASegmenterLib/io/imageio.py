"""Reading an input volume (a file SimpleITK reads, or a DICOM series: dicom_series.py) and refusing bad ones early.

Every refusal is an ``InputError`` whose message names the input and what is wrong, so the
command line can print it as one line and exit before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from .dicom_series import DicomSeries, is_dicom_input, read_dicom

MIN_SPACING_MM = 0.01  # below this a header is broken, not a scanner
MAX_SPACING_MM = 50.0  # above this no slice of a brain MR makes sense
MIN_INPLANE_VOXELS = 16  # one slice must hold at least a 16 x 16 field
NIFTI_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img", ".img.gz")


def read_image(path: str | Path, series_uid: str | None = None) -> sitk.Image:
    """Read a 3D volume from a file or a DICOM series folder; validated before it is returned."""
    return read_input(path, series_uid)[0]


def read_input(path: str | Path, series_uid: str | None = None) -> tuple[sitk.Image, DicomSeries | None]:
    """The volume, and for DICOM input the source series (its slices, what DICOM outputs reference)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    series = None
    if is_dicom_input(path):
        series = read_dicom(path, series_uid)
        image = series.image
    else:
        if series_uid is not None:
            raise InputError(f"{path}: --series picks a series of a DICOM folder; this is not DICOM")
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            reason = _first_line(exc)
            if "spacing" in reason.lower():
                raise InputError(f"{path}: voxel spacing in the header is zero or negative ({reason})") from None
            raise InputError(f"{path}: not an image file that SimpleITK can read") from None
        _refuse_hidden_nonfinite(path)
    validate_image(image, str(path))
    return image, series


def _refuse_hidden_nonfinite(path: Path) -> None:
    """SimpleITK (2.5) reads NaN and infinite NIfTI voxels as 0; the raw payload, read with nibabel, still has them."""
    if not path.name.lower().endswith(NIFTI_SUFFIXES):
        return
    import nibabel

    try:
        raw = nibabel.load(str(path))
        if not np.issubdtype(raw.get_data_dtype(), np.floating):
            return
        bad = int(np.count_nonzero(~np.isfinite(np.asanyarray(raw.dataobj))))
    except (OSError, ValueError, nibabel.filebasedimages.ImageFileError):
        return  # SimpleITK read it; a header nibabel cannot parse holds no floats it could find
    if bad:
        raise InputError(f"{path}: {bad} voxels are NaN or infinite")


def validate_image(image: sitk.Image, name: str) -> None:
    """Refuse what cannot be a 3D scalar MR volume with a sane geometry and finite, varying values."""
    dim = image.GetDimension()
    if dim != 3:
        raise InputError(f"{name}: image is {dim}D ({'x'.join(map(str, image.GetSize()))}); a 3D volume is needed")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{name}: image has {image.GetNumberOfComponentsPerPixel()} components per voxel; a scalar volume is needed")
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    if not np.all(np.isfinite(spacing)) or np.any(spacing < MIN_SPACING_MM) or np.any(spacing > MAX_SPACING_MM):
        raise InputError(
            f"{name}: voxel spacing {tuple(round(float(s), 4) for s in spacing)} mm is outside "
            f"{MIN_SPACING_MM}-{MAX_SPACING_MM} mm"
        )
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    if not np.all(np.isfinite(direction)) or not np.allclose(direction.T @ direction, np.eye(3), atol=1e-3):
        raise InputError(f"{name}: direction cosines are not orthonormal")
    if not np.all(np.isfinite(image.GetOrigin())):
        raise InputError(f"{name}: origin is not finite")
    size = sorted(image.GetSize())
    if size[1] < MIN_INPLANE_VOXELS:
        raise InputError(
            f"{name}: volume of {'x'.join(map(str, image.GetSize()))} voxels is smaller than one "
            f"{MIN_INPLANE_VOXELS}x{MIN_INPLANE_VOXELS} slice"
        )
    values = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(values.dtype, np.floating):
        bad = ~np.isfinite(values)
        if bad.any():
            raise InputError(f"{name}: {int(bad.sum())} voxels are NaN or infinite")
    if values.min() == values.max():
        raise InputError(f"{name}: all voxels have the same value ({values.flat[0]}); nothing to segment")


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__

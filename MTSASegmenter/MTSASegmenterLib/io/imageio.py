"""Reading an input volume (a file SimpleITK reads, or a DICOM series folder) and refusing bad ones early.

Every refusal is an ``InputError`` whose message names the input and what is wrong, so the
command line can print it as one line and exit before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError

MIN_SPACING_MM = 0.01  # below this a header is broken, not a scanner
MAX_SPACING_MM = 50.0  # above this no slice of a brain MR makes sense
MIN_INPLANE_VOXELS = 16  # one slice must hold at least a 16 x 16 field


def read_image(path: str | Path) -> sitk.Image:
    """Read a 3D volume from a file or a DICOM series folder; validated before it is returned."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        image = _read_dicom_series(path)
    else:
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            reason = _first_line(exc)
            if "spacing" in reason.lower():
                raise InputError(f"{path}: voxel spacing in the header is zero or negative ({reason})") from None
            raise InputError(f"{path}: not an image file that SimpleITK can read") from None
    validate_image(image, str(path))
    return image


def _read_dicom_series(folder: Path) -> sitk.Image:
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ()
    if not series:
        raise InputError(f"{folder}: folder holds no DICOM series")
    files_per_series = {sid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid) for sid in series}
    if len(series) > 1:
        listing = ", ".join(f"{sid} ({len(f)} files)" for sid, f in files_per_series.items())
        raise InputError(f"{folder}: folder holds {len(series)} DICOM series ({listing}); give one series per folder")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files_per_series[series[0]])
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"{folder}: DICOM series could not be read ({_first_line(exc)})") from None


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

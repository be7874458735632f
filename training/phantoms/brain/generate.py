"""Synthetic T1-CE cohort with brain metastases and EGFR labels, as docs/PHANTOM.md fixes it.

Per case: draw the label, then the lesion biology (phantom_biology, the one sampler the Bayes-limit
estimate also uses); deform MNI152 anatomy (affine + elastic); render T1-CE anatomy and lesions at
1 mm on the cropped MNI grid (phantom_anatomy, phantom_lesions); resample ONCE with SimpleITK to the
scanner's grid (phantom_geometry), averaging sub-slices for the slice profile; add Rician noise.

The mask is the lesions' partial-volume occupancy (1 at the surface's inside, 0.5 on it),
resampled with the same transform and slice profile as the image, then thresholded at 0.5: the
GTV is where the lesion fills at least half a voxel, consistent with the image's partial volume.
A lesion smaller than half a thick slice can thus be visible but absent from the mask.

Seeds: one case seed spawns independent streams for biology, anatomy and scanner, so the same seed
at another site is the same patient scanned elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..scanner import SITES, Acquisition, bias_field, draw_acquisition, draw_deformation
from .anatomy import load_anatomy, render_background
from .biology import LesionBiology, best_possible_accuracy, draw_biology, draw_egfr
from .lesions import LesionRenderer, place_lesions

__all__ = ["PhantomConfig", "PhantomCase", "generate_case", "best_possible_accuracy", "draw_biology"]


@dataclass(frozen=True)
class PhantomConfig:
    """Knobs of the generator. Defaults follow PHANTOM.md; domain_randomisation is off (0.0).

    domain_randomisation in [0, 1] widens appearance knobs that carry no label (GM and CSF
    contrast, dura and fat brightness, vessel count, an extra point-spread blur) for sim-to-real
    training; it never touches the lesion table or the lesion intensity ranges.
    thick_slice_probability: share of cases scanned with slices of the full range (PHANTOM.md,
    0.9-6.5 mm) whatever the site, so a model trained on one site has seen partial volume.
    large_cyst_probability: share of cases given one extra large cystic metastasis (25-50 mm,
    necrotic, its core fluid as dark as CSF) outside the EGFR table; such cases carry no EGFR label, so the biology stays exact.
    max_matrix caps the in-plane matrix for cheap test cases (the spacing then leaves the site range).
    """

    scale: tuple[float, float] = (0.9, 1.1)
    max_rotation_deg: float = 10.0
    elastic_mm: float = 2.5  # RMS displacement
    elastic_smooth_mm: float = 18.0
    vessels: tuple[int, int] = (90, 150)
    domain_randomisation: float = 0.0
    max_matrix: int | None = None
    sub_slice_mm: float = 1.0  # slice-profile sampling: the anatomy is 1 mm
    skull_strip_probability: float = 0.0  # share of cases delivered skull-stripped, as many public sets are
    thick_slice_probability: float = 0.0
    large_cyst_probability: float = 0.0


@dataclass
class PhantomCase:
    """One synthetic patient: image and GTV mask on the same grid, and the truth that made them."""

    image: sitk.Image
    mask: sitk.Image
    egfr: str
    lesions: list[dict]
    site: str
    wm_intensity: float = 1.0  # nominal WM intensity in image units (before bias and noise)
    acquisition: dict | None = None

    @property
    def labels(self) -> dict[str, str]:
        return {"egfr": self.egfr}


def resample_profile(source: sitk.Image, acq: Acquisition, transform: sitk.Transform, n_sub: int,
                     start: tuple[int, int, int] = (0, 0, 0), size: tuple[int, int, int] | None = None,
                     outside: float = 0.0) -> np.ndarray:
    """Linear resampling onto sub-slices, averaged to the slice profile -> [slice, row, col]."""
    ref = acq.reference(n_sub, start, size)
    out = sitk.GetArrayFromImage(sitk.Resample(source, ref, transform, sitk.sitkLinear, outside, sitk.sitkFloat32))
    return out.reshape(-1, n_sub, *out.shape[1:]).mean(axis=1)


def generate_case(seed: int, site: str = "internal", egfr: str | None = None, config: PhantomConfig | None = None) -> PhantomCase:
    """One case, deterministic in (seed, site, egfr, config)."""
    if site not in SITES:
        raise ValueError(f"site must be one of {sorted(SITES)}, not {site!r}")
    config = config or PhantomConfig()
    # A fourth stream for the randomisation knobs keeps the first three (and old cohorts) unchanged.
    bio_rng, anat_rng, scan_rng, dr_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))
    egfr_drawn = draw_egfr(bio_rng)
    egfr = egfr or egfr_drawn
    biology = draw_biology(bio_rng, egfr)
    thick = dr_rng.uniform() < config.thick_slice_probability
    cyst = -1
    if dr_rng.uniform() < config.large_cyst_probability:
        biology = biology + [large_cyst(dr_rng)]
        cyst = len(biology) - 1
        egfr = ""  # outside the EGFR table: unlabelled for the classifier, still a GTV for segmentation

    anat = load_anatomy()
    dr = config.domain_randomisation
    deformation = draw_deformation(anat, anat_rng, config.scale, config.max_rotation_deg, config.elastic_mm, config.elastic_smooth_mm)
    n_vessels = int(anat_rng.integers(*config.vessels) * anat_rng.uniform(1.0 - 0.5 * dr, 1.0 + dr))
    image = render_background(anat, anat_rng, dr, n_vessels)
    centres = place_lesions(anat, anat_rng, biology)
    renderers = [LesionRenderer(anat, deformation, anat_rng, b, c, fluid=i == cyst) for i, (b, (c, _)) in enumerate(zip(biology, centres))]
    for r in renderers:  # all oedema before any lesion, so no halo darkens a neighbour's rim
        r.apply_oedema(image, anat.wm)
    occupancy = np.zeros(anat.shape, np.float32)
    for r in renderers:
        r.apply_lesion(image, occupancy)
    blur = anat_rng.uniform(0.0, 0.8 * dr)
    if blur > 0.05:
        image = ndimage.gaussian_filter(image, blur)

    if config.skull_strip_probability > 0 and scan_rng.uniform() < config.skull_strip_probability:
        image[anat.outside > scan_rng.uniform(0.0, 2.0)] = 0.0  # strippers keep a varying sliver of dura
    acq = draw_acquisition(scan_rng, site, deformation.approx_to_physical(anat.head_points), config.max_matrix,
                           SITES["external"].thickness_mm if thick else None)
    image *= bias_field(anat.shape, scan_rng, acq.bias)
    n_sub = max(1, int(np.ceil(acq.thickness_mm / config.sub_slice_mm - 1e-6)))
    transform = deformation.transform
    signal = resample_profile(anat.to_sitk(image.astype(np.float32)), acq, transform, n_sub)

    sigma = np.float32(acq.noise)
    n1 = scan_rng.standard_normal(signal.shape, dtype=np.float32)
    n2 = scan_rng.standard_normal(signal.shape, dtype=np.float32)
    signal = np.sqrt((signal + sigma * n1) ** 2 + (sigma * n2) ** 2) * np.float32(acq.wm_value)
    if acq.dtype == "int16":
        top = 4095 if site == "internal" else 32767
        signal = np.clip(np.rint(signal), 0, top).astype(np.int16)

    mask = np.zeros(signal.shape, np.uint8)
    box = _lesion_box(acq, [r.centre_lps for r in renderers], [r.radius * 1.3 + 2.0 for r in renderers])
    if box is not None:
        start, size = box
        occ = resample_profile(anat.to_sitk(occupancy), acq, transform, n_sub, start, size)
        mask[start[2]:start[2] + size[2], start[1]:start[1] + size[1], start[0]:start[0] + size[0]] = occ >= 0.5

    out_image = sitk.GetImageFromArray(signal)
    out_mask = sitk.GetImageFromArray(mask)
    for im in (out_image, out_mask):
        im.SetSpacing(acq.spacing)
        im.SetOrigin(tuple(float(v) for v in acq.origin))
        im.SetDirection(tuple(float(v) for v in acq.direction.ravel()))
    return PhantomCase(
        image=out_image, mask=out_mask, egfr=egfr, site=site, wm_intensity=acq.wm_value,
        lesions=[r.truth(region) for r, (_, region) in zip(renderers, centres)],
        acquisition={"orientation": acq.orientation, "oblique_deg": acq.oblique_deg, "in_plane_mm": acq.in_plane_mm,
                     "thickness_mm": acq.thickness_mm, "matrix": acq.matrix, "dtype": acq.dtype, "bias": acq.bias, "noise": acq.noise},
    )


def large_cyst(rng: np.random.Generator) -> LesionBiology:
    """A large necrotic metastasis like those of public sets (BraTS-METS), which the EGFR table rarely draws."""
    return LesionBiology(diameter_mm=float(rng.uniform(25.0, 50.0)), necrotic=True,
                         oedema_extent=float(rng.uniform(0.3, 1.8)), texture=float(rng.uniform(0.04, 0.18)))


def _lesion_box(acq: Acquisition, centres: list[np.ndarray], radii: list[float]) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
    """Index box (x, y, slice) holding every lesion: the mask is resampled only there."""
    full = np.array([acq.matrix, acq.matrix, acq.n_slices])
    lo, hi = full.copy(), np.zeros(3, int)
    for c, r in zip(centres, radii):
        idx = acq.physical_to_index(c)
        reach = r / np.array(acq.spacing) + 1
        lo = np.minimum(lo, np.floor(idx - reach).astype(int))
        hi = np.maximum(hi, np.ceil(idx + reach).astype(int) + 1)
    lo, hi = np.maximum(lo, 0), np.minimum(hi, full)
    if np.any(hi <= lo):
        return None
    return tuple(int(v) for v in lo), tuple(int(v) for v in hi - lo)

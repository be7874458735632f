"""Synthetic T1-CE cohort with brain metastases and EGFR labels, as docs/PHANTOM.md fixes it.

Per case: draw the label, then the lesion biology (``biology``, the one sampler the Bayes-limit
estimate also uses); deform MNI152 anatomy (``deformation``); draw the case's look
(``appearance``: the textbook T1-CE, or a randomised one for sim-to-real training); render anatomy
and lesions at 1 mm on the cropped MNI grid (``render``, ``lesions``); resample ONCE with
SimpleITK to the scanner's grid (``..scanner``), averaging sub-slices for the slice profile; add
Rician noise.

The mask is the lesions' partial-volume occupancy (1 at the surface's inside, 0.5 on it),
resampled with the same transform and slice profile as the image, then thresholded at 0.5: the
GTV is where the lesion fills at least half a voxel, consistent with the image's partial volume.
A lesion smaller than half a thick slice can thus be visible but absent from the mask.

Seeds: one case seed spawns independent streams for biology, anatomy, scanner, the training
knobs and the appearance, so the same seed at another site is the same patient scanned elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..scanner import Acquisition, SiteSpec, bias_field, draw_acquisition, on_grid, resample_profile, rician, stored
from .anatomy import Anatomy, load_anatomy
from .appearance import Appearance, randomised, textbook
from .biology import LesionBiology, best_possible_accuracy, draw_biology, draw_egfr
from .deformation import Deformation, draw_deformation
from .lesions import LesionRenderer, place_lesions
from .render import render_background

__all__ = ["PhantomConfig", "PhantomCase", "SITES", "generate_case", "best_possible_accuracy", "draw_biology"]

SITES: dict[str, SiteSpec] = {  # PHANTOM.md "Scanner and site variation"
    "internal": SiteSpec(in_plane_mm=(0.9, 1.0), thickness_mm=(1.0, 1.0), matrices=(256,), orientations=("axial",),
                         wm_value=(900.0, 1300.0), bias=(0.9, 1.1), noise=(0.01, 0.02)),
    "external": SiteSpec(in_plane_mm=(0.4, 1.0), thickness_mm=(0.9, 6.5), matrices=(192, 224, 256, 320, 384, 448, 512),
                         orientations=("axial", "axial", "sagittal", "coronal"), max_oblique_deg=15.0, float_probability=0.5,
                         wm_value=(100.0, 8000.0), bias=(0.7, 1.3), noise=(0.01, 0.06)),
}
# Public sets (BraTS) deliver skull-stripped scans resampled to 1 mm in an atlas space (SRI24, 240 x 240 x 155).
ATLAS_SPACE = SiteSpec(in_plane_mm=(1.0, 1.0), thickness_mm=(1.0, 1.0), matrices=(240,), orientations=("axial",),
                       wm_value=(100.0, 8000.0), bias=(0.8, 1.2), noise=(0.005, 0.04))


@dataclass(frozen=True)
class PhantomConfig:
    """Knobs of the generator. Defaults follow PHANTOM.md (the test cohorts); the others shape
    training cohorts and never touch the lesion table.

    domain_randomisation: share of cases whose look is drawn from wide distributions
    (``appearance.randomised``: tissue intensities and orderings, texture, haemorrhage, irregular
    rims, mass effect, more vessels, blur) instead of the textbook T1-CE.
    skull_strip_probability: share of cases delivered skull-stripped, half of them resampled to a
    1 mm atlas space as BraTS does. thick_slice_probability: share of cases scanned with slices of
    the full range (0.9-6.5 mm) whatever the site. fov_cut_probability: share of scans that cover
    only part of the head (60-90% of it, from either end).
    large_cyst_probability: share of cases given one extra large cystic metastasis (25-50 mm, a thin
    rim around fluid as dark as CSF) outside the EGFR table; such cases carry no EGFR label.
    small_lesion_probability: share of cases given 1-3 extra small solid metastases (3-7 mm, little
    oedema) outside the EGFR table, as real scans show and the table rarely draws; such cases carry no
    EGFR label. Drawn from a stream of their own, so the rest of each case stays as without them.
    parasagittal_probability: share of lesions placed beside the midline, against the falx and the
    sagittal sinus (v13 missed lesions there: model card, "v18").
    periventricular_probability: share of lesions placed against the ventricles (the choroid plexus in the
    atria), as BraTS-MET-00110's cyst lies (benchmarks/lesion_placement_probe.py).
    clear_falx: no lesion crosses the falx, as no metastasis does. Off by default, where about one
    lesion in fourteen crosses it, so that the cohorts and models made before it keep their draws.
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
    skull_strip_probability: float = 0.0
    thick_slice_probability: float = 0.0
    fov_cut_probability: float = 0.0
    large_cyst_probability: float = 0.0
    small_lesion_probability: float = 0.0
    parasagittal_probability: float = 0.0
    periventricular_probability: float = 0.0
    clear_falx: bool = False


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


@dataclass
class _Patient:
    """What the scanner sees: the rendered 1 mm image and GTV occupancy, and where the lesions are."""

    anat: Anatomy
    deformation: Deformation
    image: np.ndarray
    occupancy: np.ndarray
    lesions: list[LesionRenderer]
    regions: list[str]


def _render(anat: Anatomy, deformation: Deformation, rng: np.random.Generator, look: Appearance, n_vessels: int,
            biology: list[LesionBiology], cyst: int, config: PhantomConfig) -> _Patient:
    """Anatomy, then (all lesions' mass effect, then all oedema, then all lesions, so no halo darkens a
    neighbour's rim) on the 1 mm crop. The lesions are drawn before the anatomy's vessels, so that one
    patient keeps its lesions whatever its look (a randomised look draws more vessels)."""
    centres = place_lesions(anat, rng, biology, config.parasagittal_probability, config.clear_falx,
                            config.periventricular_probability)
    lesions = [LesionRenderer(anat, deformation, rng, b, c, look, fluid=i == cyst) for i, (b, (c, _)) in enumerate(zip(biology, centres))]
    image = render_background(anat, rng, look, n_vessels)
    for lesion in lesions:
        lesion.apply_mass_effect(image)
    for lesion in lesions:
        lesion.apply_oedema(image, anat.wm)
    occupancy = np.zeros(anat.shape, np.float32)
    for lesion in lesions:
        lesion.apply_lesion(image, occupancy)
    return _Patient(anat, deformation, image, occupancy, lesions, [region for _, region in centres])


def _acquisition(patient: _Patient, rng: np.random.Generator, knobs: np.random.Generator, site: str, config: PhantomConfig,
                 stripped: bool, thick: bool) -> Acquisition:
    """The scanner's grid: the site's, an atlas space for some skull-stripped cases, thick slices or a cut field of view."""
    atlas = stripped and knobs.random() < 0.5
    spec = ATLAS_SPACE if atlas else SITES[site]
    points = patient.deformation.approx_to_physical(patient.anat.head_points)
    acq = draw_acquisition(rng, spec, points, config.max_matrix, SITES["external"].thickness_mm if thick and not atlas else None)
    if knobs.random() < config.fov_cut_probability:
        keep = max(8, int(acq.n_slices * knobs.uniform(0.6, 0.9)))
        skip = int(knobs.integers(0, acq.n_slices - keep + 1))
        acq = replace(acq, n_slices=keep, origin=acq.origin + acq.direction[:, 2] * skip * acq.thickness_mm)
    return acq


def generate_case(seed: int, site: str = "internal", egfr: str | None = None, config: PhantomConfig | None = None,
                  restyle: Callable[[Appearance], Appearance] | None = None) -> PhantomCase:
    """One case, deterministic in (seed, site, egfr, config). ``restyle`` changes the drawn look and nothing
    else (every random draw stays), so probes can render the same patients with lesions of another look."""
    if site not in SITES:
        raise ValueError(f"site must be one of {sorted(SITES)}, not {site!r}")
    config = config or PhantomConfig()
    # a sixth stream leaves the first five (the child seeds are indexed) as they were before it
    bio_rng, anat_rng, scan_rng, knobs, look_rng, extra_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6))
    egfr_drawn = draw_egfr(bio_rng)  # drawn always, so a given label leaves the stream unchanged
    egfr = egfr or egfr_drawn
    biology = draw_biology(bio_rng, egfr)
    thick = knobs.random() < config.thick_slice_probability
    cyst = -1
    if knobs.random() < config.large_cyst_probability:
        biology, cyst = biology + [large_cyst(knobs)], len(biology)
        egfr = ""  # outside the EGFR table: unlabelled for the classifier, still a GTV for segmentation
    if extra_rng.random() < config.small_lesion_probability:  # its own stream: drawing it moves nothing else
        biology, egfr = biology + small_lesions(extra_rng), ""
    wide = look_rng.random() < config.domain_randomisation
    look = randomised(look_rng) if wide else textbook(look_rng)
    look = restyle(look) if restyle else look

    anat = load_anatomy()
    deformation = draw_deformation(anat, anat_rng, config.scale, config.max_rotation_deg, config.elastic_mm, config.elastic_smooth_mm)
    n_vessels = int(anat_rng.integers(*config.vessels) * (look_rng.uniform(0.6, 2.2) if wide else 1.0))
    patient = _render(anat, deformation, anat_rng, look, n_vessels, biology, cyst, config)
    if wide:  # the scanner's point-spread function beyond the slice profile
        patient.image = ndimage.gaussian_filter(patient.image, look_rng.uniform(0.0, 0.9))
    stripped = scan_rng.uniform() < config.skull_strip_probability if config.skull_strip_probability > 0 else False
    if stripped:
        patient.image[anat.outside > scan_rng.uniform(0.0, 2.0)] = 0.0  # strippers keep a varying sliver of dura
    acq = _acquisition(patient, scan_rng, knobs, site, config, stripped, thick)
    image, mask = _scan(patient, acq, scan_rng, config.sub_slice_mm, top=4095 if site == "internal" else 32767)
    return PhantomCase(
        image=image, mask=mask, egfr=egfr, site=site, wm_intensity=acq.wm_value,
        lesions=[lesion.truth(region) for lesion, region in zip(patient.lesions, patient.regions)],
        acquisition={"orientation": acq.orientation, "oblique_deg": acq.oblique_deg, "in_plane_mm": acq.in_plane_mm,
                     "thickness_mm": acq.thickness_mm, "matrix": acq.matrix, "dtype": acq.dtype, "bias": acq.bias, "noise": acq.noise,
                     "appearance": "textbook" if look.textbook else "randomised", "skull_stripped": bool(stripped)},
    )


def _scan(patient: _Patient, acq: Acquisition, rng: np.random.Generator, sub_slice_mm: float, top: int) -> tuple[sitk.Image, sitk.Image]:
    """Bias field, resampling with the slice profile, Rician noise and storage type; the mask is the
    resampled occupancy >= 0.5, computed only in the box that holds the lesions."""
    anat, transform = patient.anat, patient.deformation.transform
    image = patient.image * bias_field(anat.shape, rng, acq.bias)
    n_sub = max(1, int(np.ceil(acq.thickness_mm / sub_slice_mm - 1e-6)))
    signal = stored(rician(resample_profile(anat.to_sitk(image.astype(np.float32)), acq, transform, n_sub), acq.noise, rng), acq, top)
    mask = np.zeros(signal.shape, np.uint8)
    box = _lesion_box(acq, [r.centre_lps for r in patient.lesions], [r.radius * 1.3 + 2.0 for r in patient.lesions])
    if box is not None:
        start, size = box
        occ = resample_profile(anat.to_sitk(patient.occupancy), acq, transform, n_sub, start, size)
        mask[start[2]:start[2] + size[2], start[1]:start[1] + size[1], start[0]:start[0] + size[0]] = occ >= 0.5
    return on_grid(signal, acq), on_grid(mask, acq)


def large_cyst(rng: np.random.Generator) -> LesionBiology:
    """A large necrotic metastasis like those of public sets (BraTS-METS), which the EGFR table rarely draws."""
    return LesionBiology(diameter_mm=float(rng.uniform(25.0, 50.0)), necrotic=True,
                         oedema_extent=float(rng.uniform(0.3, 1.8)), texture=float(rng.uniform(0.04, 0.18)))


def small_lesions(rng: np.random.Generator) -> list[LesionBiology]:
    """One to three small solid metastases: the size where the bundled model misses most (model card)."""
    return [LesionBiology(diameter_mm=float(rng.uniform(3.0, 7.0)), necrotic=False, oedema_extent=float(rng.uniform(0.0, 0.8)),
                          texture=float(rng.uniform(0.04, 0.18))) for _ in range(int(rng.integers(1, 4)))]


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

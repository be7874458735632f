"""MNI152 anatomy for the phantom: the cached, case-independent maps (tissue, distances, regions,
dural folds, skull-base structures, sinus centre-lines) on the cropped 1 mm MNI grid.

Arrays are [z, y, x] on the crop; MNI space is expressed in LPS mm (nilearn's affine is RAS:
LPS = diag(-1, -1, 1) RAS), so the crop is a SimpleITK image with direction diag(-1, -1, 1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property, lru_cache

import numpy as np
import SimpleITK as sitk
from scipy import ndimage


@dataclass(frozen=True)
class Anatomy:
    """Case-independent MNI maps on the crop (brain bounding box plus a head margin)."""

    origin_lps: np.ndarray  # LPS of crop voxel [0, 0, 0]
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray  # brain minus GM and WM (sulci, ventricles)
    brain: np.ndarray  # bool
    depth: np.ndarray  # mm inside the brain mask (0 outside)
    outside: np.ndarray  # mm outside the brain mask (0 inside), for skull and scalp layers
    regions: dict[str, np.ndarray]  # flat indices: junction, cerebellum, parenchyma
    vessel_seeds: np.ndarray  # flat indices of sulcal / surface CSF where vessels start
    choroid: np.ndarray  # flat indices of choroid plexus (ventricular atria)
    falx: np.ndarray  # flat indices of the interhemispheric dural fold
    tentorium: np.ndarray  # flat indices of the dural fold over the cerebellum
    pituitary: np.ndarray  # flat indices of the pituitary gland (enhances in every T1-CE scan)
    cavernous: np.ndarray  # flat indices of the cavernous sinuses beside it
    sinuses: list[tuple[np.ndarray, float]]  # (centre-line points LPS, relative radius)
    head_points: np.ndarray  # LPS points on the scalp surface, to size the field of view

    @property
    def shape(self) -> tuple[int, ...]:
        return self.brain.shape

    @cached_property
    def falx_mm(self) -> np.ndarray:
        """mm from the nearest voxel of the falx, for lesions that must not cross it; made on first use, as only
        cohorts drawn with ``clear_falx`` need it."""
        falx = np.zeros(self.shape, bool)
        falx.flat[self.falx] = True
        return ndimage.distance_transform_edt(~falx).astype(np.float32)

    @cached_property
    def ventricle_mm(self) -> np.ndarray:
        """mm from the nearest voxel of the lateral and third ventricles (deep CSF, as ``_structures`` finds them),
        for lesions placed against them; made on first use."""
        return ndimage.distance_transform_edt(~(self.brain & (self.csf > 0.6) & (self.depth > 10))).astype(np.float32)

    def index_to_lps(self, zyx: np.ndarray) -> np.ndarray:
        zyx = np.asarray(zyx, dtype=float)
        return self.origin_lps + np.stack([-zyx[..., 2], -zyx[..., 1], zyx[..., 0]], axis=-1)

    def lps_to_index(self, lps: np.ndarray) -> np.ndarray:
        d = np.asarray(lps, dtype=float) - self.origin_lps
        return np.stack([d[..., 2], -d[..., 1], -d[..., 0]], axis=-1)

    def to_sitk(self, array: np.ndarray) -> sitk.Image:
        image = sitk.GetImageFromArray(array)
        image.SetOrigin(tuple(float(v) for v in self.origin_lps))
        image.SetDirection((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
        return image


def _ray_exit(brain: np.ndarray, anat_to_index, start: np.ndarray, direction: np.ndarray) -> np.ndarray | None:
    """Last point inside the brain along a ray (LPS), for sinus centre-lines on the brain surface."""
    steps = np.arange(0.0, 130.0, 0.5)[:, None]
    pts = start + steps * direction
    idx = np.rint(anat_to_index(pts)).astype(int)
    ok = np.all((idx >= 0) & (idx < brain.shape), axis=1)
    inside = np.zeros(len(pts), bool)
    inside[ok] = brain[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
    if not inside.any():
        return None
    return pts[np.flatnonzero(inside)[-1]]


def _mni_maps(margin_mm: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(brain mask, GM, WM, LPS origin) of nilearn's MNI152 2009a 1 mm maps, cropped to the brain
    plus a head margin (zero-padded: the brain mask touches the grid's bottom); arrays [z, y, x]."""
    from nilearn import datasets

    def arr(img) -> np.ndarray:  # nilearn [i, j, k] (RAS) -> [z, y, x]
        return np.ascontiguousarray(np.asanyarray(img.dataobj, dtype=np.float32).transpose(2, 1, 0))

    mask_img = datasets.load_mni152_brain_mask(resolution=1)
    brain_full = arr(mask_img) > 0.5
    nz = np.argwhere(brain_full)
    lo, hi = nz.min(0) - margin_mm, nz.max(0) + margin_mm + 1
    shape = tuple(int(v) for v in hi - lo)

    def crop(a: np.ndarray) -> np.ndarray:
        out = np.zeros(shape, a.dtype)
        s_lo, s_hi = np.maximum(lo, 0), np.minimum(hi, a.shape)
        out[tuple(slice(d, d + (e - s)) for d, s, e in zip(s_lo - lo, s_lo, s_hi))] = a[tuple(slice(s, e) for s, e in zip(s_lo, s_hi))]
        return out

    brain = crop(brain_full)
    gm = crop(arr(datasets.load_mni152_gm_template(resolution=1))) * brain
    wm = crop(arr(datasets.load_mni152_wm_template(resolution=1))) * brain
    ras0 = mask_img.affine[:3, :3] @ np.array([lo[2], lo[1], lo[0]], float) + mask_img.affine[:3, 3]
    return brain, gm, wm, ras0 * np.array([-1.0, -1.0, 1.0])


def _structures(brain: np.ndarray, gm: np.ndarray, wm: np.ndarray, csf: np.ndarray, depth: np.ndarray, outside: np.ndarray,
                origin_lps: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean maps of the lesion regions and of the structures that enhance in every T1-CE scan."""
    zz, yy, xx = np.indices(brain.shape, dtype=np.float32)
    x_ras, y_ras, z_ras = -(origin_lps[0] - xx), -(origin_lps[1] - yy), origin_lps[2] + zz
    cerebellum = brain & (y_ras < -40) & (z_ras < -20 - 0.2 * (y_ras + 40)) & ~((np.abs(x_ras) < 9) & (y_ras > -52))
    ventricle = brain & (csf > 0.6) & (depth > 10)
    choroid = np.zeros(brain.shape, bool)
    for side in (-1, 1):
        atrium = ventricle & (side * x_ras > 15) & (side * x_ras < 35) & (y_ras > -50) & (y_ras < -25) & (z_ras > 0) & (z_ras < 25)
        if atrium.any():
            c = np.argwhere(atrium).mean(0)
            choroid |= ventricle & (((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) < 7.0**2)
    # The tentorium: a dural sheet on the cerebellum's upper surface, in the CSF or just outside the brain.
    above = ndimage.binary_dilation(cerebellum, iterations=2) & ~cerebellum & (z_ras > -40 - 0.3 * (y_ras + 40))
    # Pituitary and cavernous sinuses at the skull base (MNI ~ (0, 2, -36) and (+-14, 0, -32)), outside the parenchyma.
    skull_base = ~brain | (csf > 0.5)
    return {
        "cerebellum": cerebellum,
        "junction": brain & (gm > 0.25) & (wm > 0.25) & ~cerebellum & (depth > 3),
        "parenchyma": brain & (gm + wm > 0.6) & (depth > 3),
        "vessel_seeds": brain & (csf > 0.5) & (depth < 25),
        "choroid": choroid,
        "falx": brain & (np.abs(x_ras) < 0.5) & (csf > 0.5) & (z_ras > 10) & (depth < 40),
        "tentorium": above & (y_ras < -35) & ((~brain & (outside < 2.0)) | (csf > 0.3)),
        "pituitary": skull_base & ((x_ras / 6.0) ** 2 + ((y_ras - 2.0) / 5.0) ** 2 + ((z_ras + 36.0) / 4.0) ** 2 <= 1.0),
        "cavernous": skull_base & ((((np.abs(x_ras) - 14.0) / 4.0) ** 2 + (y_ras / 9.0) ** 2 + ((z_ras + 32.0) / 5.0) ** 2) <= 1.0),
    }


def _sinus_lines(anat: "Anatomy") -> list[tuple[np.ndarray, float]]:
    """Sinus centre-lines 2.5 mm outside the brain surface (LPS) with their relative calibre: superior
    sagittal down to the torcular, transverse sinuses around the cerebellum, straight sinus to the vein of Galen."""
    to_index = anat.lps_to_index
    centre = np.array([0.0, 18.0, 10.0])  # LPS of RAS (0, -18, 10)
    sss = []
    for theta in np.radians(np.arange(15.0, 197.0, 2.0)):
        ray = np.array([0.0, -np.cos(theta), np.sin(theta)])
        p = _ray_exit(anat.brain, to_index, centre, ray)
        if p is not None:
            sss.append(p + 2.5 * ray)
    sss = np.array(sss)
    torcular = sss[-1]
    transverse = []
    for side in (-1, 1):
        pts = []
        for phi in np.radians(np.arange(0.0, 80.0, 3.0)):
            ray = np.array([side * np.sin(phi), np.cos(phi), -0.12 * phi])
            ray /= np.linalg.norm(ray)
            p = _ray_exit(anat.brain, to_index, np.array([0.0, 50.0, torcular[2]]), ray)
            if p is not None:
                pts.append(p + 2.5 * ray)
        transverse.append(np.array(pts))
    straight = np.linspace(torcular, np.array([0.0, 45.0, 5.0]), 40)
    return [(sss, 1.0), (transverse[0], 0.9), (transverse[1], 0.9), (straight, 0.6)]


@lru_cache(maxsize=2)
def load_anatomy(margin_mm: int = 18) -> Anatomy:
    """Load nilearn's MNI152 2009a 1 mm maps (offline) and precompute what every case reuses."""
    brain, gm, wm, origin_lps = _mni_maps(margin_mm)
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * brain
    depth = ndimage.distance_transform_edt(brain).astype(np.float32)
    outside = ndimage.distance_transform_edt(~brain).astype(np.float32)
    found = _structures(brain, gm, wm, csf, depth, outside, origin_lps)
    flat = {k: np.flatnonzero(v) for k, v in found.items()}
    anat = Anatomy(
        origin_lps=origin_lps, gm=gm, wm=wm, csf=csf, brain=brain, depth=depth, outside=outside,
        regions={k: flat[k] for k in ("junction", "cerebellum", "parenchyma")},
        vessel_seeds=flat["vessel_seeds"], choroid=flat["choroid"], falx=flat["falx"], tentorium=flat["tentorium"],
        pituitary=flat["pituitary"], cavernous=flat["cavernous"], sinuses=[], head_points=np.empty((0, 3)),
    )
    pts = np.argwhere((outside > margin_mm - 5) & (outside < margin_mm - 4))
    pts = pts[np.random.default_rng(0).choice(len(pts), size=min(4000, len(pts)), replace=False)]
    return replace(anat, sinuses=_sinus_lines(anat), head_points=anat.index_to_lps(pts))

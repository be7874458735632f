"""MNI152 anatomy for the phantom: the cached, case-independent maps (tissue, distances, regions,
sinus centre-lines) and the per-case T1-CE rendering on the cropped 1 mm MNI grid.

Arrays are [z, y, x] on the crop; MNI space is expressed in LPS mm (nilearn's affine is RAS:
LPS = diag(-1, -1, 1) RAS), so the crop is a SimpleITK image with direction diag(-1, -1, 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

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
    sinuses: list[tuple[np.ndarray, float]]  # (centre-line points LPS, relative radius)
    head_points: np.ndarray  # LPS points on the scalp surface, to size the field of view

    @property
    def shape(self) -> tuple[int, ...]:
        return self.brain.shape

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


@lru_cache(maxsize=2)
def load_anatomy(margin_mm: int = 18) -> Anatomy:
    """Load nilearn's MNI152 2009a 1 mm maps (offline) and precompute what every case reuses."""
    from nilearn import datasets

    def arr(img) -> np.ndarray:  # nilearn [i, j, k] (RAS) -> [z, y, x]
        return np.ascontiguousarray(np.asanyarray(img.dataobj, dtype=np.float32).transpose(2, 1, 0))

    mask_img = datasets.load_mni152_brain_mask(resolution=1)
    affine = mask_img.affine
    brain_full = arr(mask_img) > 0.5
    gm_full = arr(datasets.load_mni152_gm_template(resolution=1))
    wm_full = arr(datasets.load_mni152_wm_template(resolution=1))
    nz = np.argwhere(brain_full)
    lo = nz.min(0) - margin_mm
    hi = nz.max(0) + margin_mm + 1
    shape = tuple(int(v) for v in hi - lo)

    def crop(a: np.ndarray) -> np.ndarray:  # zero-padded crop: the brain mask touches the grid bottom
        out = np.zeros(shape, a.dtype)
        s_lo = np.maximum(lo, 0)
        s_hi = np.minimum(hi, a.shape)
        d_lo = s_lo - lo
        out[tuple(slice(d, d + (e - s)) for d, s, e in zip(d_lo, s_lo, s_hi))] = a[tuple(slice(s, e) for s, e in zip(s_lo, s_hi))]
        return out

    brain = crop(brain_full)
    gm = crop(gm_full) * brain
    wm = crop(wm_full) * brain
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * brain
    ras0 = affine[:3, :3] @ np.array([lo[2], lo[1], lo[0]], float) + affine[:3, 3]
    origin_lps = ras0 * np.array([-1.0, -1.0, 1.0])
    depth = ndimage.distance_transform_edt(brain).astype(np.float32)
    outside = ndimage.distance_transform_edt(~brain).astype(np.float32)

    zz, yy, xx = np.indices(shape, dtype=np.float32)
    x_ras = -(origin_lps[0] - xx)
    y_ras = -(origin_lps[1] - yy)
    z_ras = origin_lps[2] + zz
    cerebellum = brain & (y_ras < -40) & (z_ras < -20 - 0.2 * (y_ras + 40)) & ~((np.abs(x_ras) < 9) & (y_ras > -52))
    junction = brain & (gm > 0.25) & (wm > 0.25) & ~cerebellum & (depth > 3)
    parenchyma = brain & (gm + wm > 0.6) & (depth > 3)
    vessel_seeds = brain & (csf > 0.5) & (depth < 25)
    ventricle = brain & (csf > 0.6) & (depth > 10)
    choroid = np.zeros(shape, bool)
    for side in (-1, 1):
        atrium = ventricle & (side * x_ras > 15) & (side * x_ras < 35) & (y_ras > -50) & (y_ras < -25) & (z_ras > 0) & (z_ras < 25)
        if atrium.any():
            c = np.argwhere(atrium).mean(0)
            choroid |= ventricle & (((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) < 7.0**2)
    falx = brain & (np.abs(x_ras) < 0.5) & (csf > 0.5) & (z_ras > 10) & (depth < 40)

    anat = Anatomy(
        origin_lps=origin_lps, gm=gm, wm=wm, csf=csf, brain=brain, depth=depth, outside=outside,
        regions={k: np.flatnonzero(v) for k, v in (("junction", junction), ("cerebellum", cerebellum), ("parenchyma", parenchyma))},
        vessel_seeds=np.flatnonzero(vessel_seeds), choroid=np.flatnonzero(choroid), falx=np.flatnonzero(falx),
        sinuses=[], head_points=np.empty((0, 3)),
    )
    # Sinus centre-lines 2.5 mm outside the brain surface (LPS): superior sagittal down to the
    # torcular, transverse sinuses around the cerebellum, straight sinus to the vein of Galen.
    to_index = anat.lps_to_index
    centre = np.array([0.0, 18.0, 10.0])  # LPS of RAS (0, -18, 10)
    sss = []
    for theta in np.radians(np.arange(15.0, 197.0, 2.0)):
        ray = np.array([0.0, -np.cos(theta), np.sin(theta)])
        p = _ray_exit(brain, to_index, centre, ray)
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
            p = _ray_exit(brain, to_index, np.array([0.0, 50.0, torcular[2]]), ray)
            if p is not None:
                pts.append(p + 2.5 * ray)
        transverse.append(np.array(pts))
    straight = np.linspace(torcular, np.array([0.0, 45.0, 5.0]), 40)
    pts = np.argwhere((outside > margin_mm - 5) & (outside < margin_mm - 4))
    pts = pts[np.random.default_rng(0).choice(len(pts), size=min(4000, len(pts)), replace=False)]
    return Anatomy(**{**anat.__dict__, "sinuses": [(sss, 1.0), (transverse[0], 0.9), (transverse[1], 0.9), (straight, 0.6)],
                      "head_points": anat.index_to_lps(pts)})


def stamp_tubes(shape: tuple[int, ...], points: np.ndarray, radii: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliased tubes from centre-line samples (crop index coords): max weight and weight x level.

    Weight = clip(r + 0.5 - distance, 0, 1): a sub-voxel vessel still leaves a partial-volume trace.
    """
    weight = np.zeros(int(np.prod(shape)), np.float32)
    value = np.zeros_like(weight)
    if len(points) == 0:
        return weight.reshape(shape), value.reshape(shape)
    for reach in np.unique(np.ceil(radii + 0.5).astype(int)):
        sel = np.ceil(radii + 0.5).astype(int) == reach
        offs = np.stack(np.meshgrid(*[np.arange(-reach, reach + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
        base = np.rint(points[sel]).astype(int)
        vox = base[:, None, :] + offs[None]
        dist = np.linalg.norm(vox - points[sel][:, None, :], axis=-1)
        w = np.clip(radii[sel][:, None] + 0.5 - dist, 0.0, 1.0)
        ok = np.all((vox >= 0) & (vox < shape), axis=-1) & (w > 0)
        flat = np.ravel_multi_index(tuple(vox[ok].T), shape)
        np.maximum.at(weight, flat, w[ok])
        np.maximum.at(value, flat, (w * levels[sel][:, None])[ok])
    return weight.reshape(shape), value.reshape(shape)


def vessel_paths(anat: Anatomy, rng: np.random.Generator, n_vessels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth random walks from sulcal CSF: thin bright tubes, the main false-positive source."""
    seeds = anat.vessel_seeds[rng.integers(0, len(anat.vessel_seeds), n_vessels)]
    return tube_walks(rng, anat.outside < 2.0, seeds, (0.35, 1.3), (1.3, 2.2), (40, 200), 0.18)  # 20-100 mm


def tube_walks(rng: np.random.Generator, allowed: np.ndarray, seeds: np.ndarray, radius_mm: tuple[float, float],
               level: tuple[float, float], steps: tuple[float, float], turn: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth random walks of 0.5 mm steps from each seed (flat index) while inside ``allowed``:
    centre-line points (index coords), radii tapering by 40% and one level per tube."""
    pts, radii, levels = [], [], []
    for seed in seeds:
        p = np.array(np.unravel_index(seed, allowed.shape), float)
        d = rng.standard_normal(3)
        d /= np.linalg.norm(d)
        r0 = float(np.exp(rng.uniform(*np.log(radius_mm))))
        value = float(rng.uniform(*level))
        n_steps = int(rng.uniform(*steps))
        for k in range(n_steps):
            d = d + turn * rng.standard_normal(3)
            d /= np.linalg.norm(d)
            p = p + 0.5 * d
            i = np.rint(p).astype(int)
            if np.any(i < 0) or np.any(i >= allowed.shape) or not allowed[tuple(i)]:
                break
            pts.append(p.copy())
            radii.append(r0 * (1.0 - 0.4 * k / n_steps))
            levels.append(value)
    return np.array(pts).reshape(-1, 3), np.array(radii), np.array(levels)


def render_background(anat: Anatomy, rng: np.random.Generator, dr: float, n_vessels: int) -> np.ndarray:
    """T1-CE normal anatomy in units of WM intensity: tissue mix, dura, skull and scalp, enhancing
    dural folds, sinuses, choroid plexus and vessels. dr in [0, 1] widens the contrast knobs."""
    gm_level = rng.uniform(0.58 - 0.13 * dr, 0.72 + 0.08 * dr)
    csf_level = rng.uniform(0.12, 0.25 + 0.15 * dr)
    image = (anat.wm + gm_level * anat.gm + csf_level * anat.csf).astype(np.float32)

    # Layers outside the brain, as a piecewise-linear profile of the distance to the brain mask.
    gap = rng.uniform(0.8, 2.0)
    dura = rng.uniform(1.0, 1.8)
    skull = rng.uniform(4.0, 8.0)
    scalp = rng.uniform(4.0, 7.0)
    dura_level = rng.uniform(1.1, 1.5 + 0.3 * dr)
    diploe = rng.uniform(0.4, 0.75)
    fat = rng.uniform(1.15, 1.6 + 0.2 * dr)
    b = gap + dura
    knots = [0.0, gap, gap + 0.3, b - 0.3, b, b + 0.8, b + 0.35 * skull, b + 0.65 * skull, b + skull - 0.8, b + skull,
             b + skull + 1.0, b + skull + 1.6, b + skull + scalp, b + skull + scalp + 0.6]
    values = [csf_level, csf_level, dura_level, dura_level, 0.05, 0.05, diploe, diploe, 0.05, 0.05, 0.5, fat, fat, 0.0]
    out = ~anat.brain
    image[out] = np.interp(anat.outside[out], knots, values).astype(np.float32)
    image.flat[anat.falx] = 0.8 * dura_level

    choroid_level = rng.uniform(1.3, 1.9)
    image.flat[anat.choroid] = choroid_level * (1.0 + 0.08 * rng.standard_normal(len(anat.choroid))).astype(np.float32)

    sinus_pts, sinus_r, sinus_l = [], [], []
    sinus_radius = rng.uniform(2.5, 4.0)
    sinus_level = rng.uniform(1.6, 2.4)
    for line, rel in anat.sinuses:
        if len(line) < 2:
            continue
        seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        t = np.arange(0.0, s[-1], 0.7)
        dense = np.stack([np.interp(t, s, line[:, i]) for i in range(3)], -1)
        sinus_pts.append(anat.lps_to_index(dense))
        sinus_r.append(np.full(len(t), sinus_radius * rel))
        sinus_l.append(np.full(len(t), sinus_level))
    v_pts, v_r, v_l = vessel_paths(anat, rng, n_vessels)
    w, v = stamp_tubes(anat.shape, np.concatenate(sinus_pts + [v_pts]), np.concatenate(sinus_r + [v_r]), np.concatenate(sinus_l + [v_l]))
    image = image * (1.0 - w) + v
    return image

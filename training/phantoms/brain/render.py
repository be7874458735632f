"""The normal anatomy of one phantom patient as T1-CE signal on the 1 mm MNI crop (x WM intensity).

Geometry (layer thicknesses outside the brain, vessel paths, sinus calibre) is drawn from the
case's anatomy stream; intensities come from its ``Appearance``, so the same patient can be
rendered with the textbook contrast or a randomised one.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..tubes import stamp_tubes, tube_walks
from .anatomy import Anatomy
from .appearance import Appearance


def vessel_paths(anat: Anatomy, rng: np.random.Generator, n_vessels: int, level: tuple[float, float]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth random walks from sulcal CSF: thin bright tubes (cortical veins), the main false-positive source."""
    seeds = anat.vessel_seeds[rng.integers(0, len(anat.vessel_seeds), n_vessels)]
    return tube_walks(rng, anat.outside < 2.0, seeds, (0.35, 1.3), level, (40, 200), 0.18)  # 20-100 mm


def _outside_layers(anat: Anatomy, rng: np.random.Generator, look: Appearance) -> np.ndarray:
    """CSF gap, dura, skull (cortical bone, diploe) and scalp as a profile of the distance to the brain."""
    gap, dura, skull, scalp = rng.uniform(0.8, 2.0), rng.uniform(1.0, 1.8), rng.uniform(4.0, 8.0), rng.uniform(4.0, 7.0)
    b = gap + dura
    knots = [0.0, gap, gap + 0.3, b - 0.3, b, b + 0.8, b + 0.35 * skull, b + 0.65 * skull, b + skull - 0.8, b + skull,
             b + skull + 1.0, b + skull + 1.6, b + skull + scalp, b + skull + scalp + 0.6]
    values = [look.csf, look.csf, look.dura, look.dura, 0.05, 0.05, look.diploe, look.diploe, 0.05, 0.05,
              0.5 * look.fat, look.fat, look.fat, 0.0]
    out = ~anat.brain
    return np.interp(anat.outside[out], knots, values).astype(np.float32)


def _sinuses(anat: Anatomy, rng: np.random.Generator, level: float) -> tuple[list, list, list]:
    """Dense centre-line samples (crop index), radii and levels of the dural venous sinuses."""
    pts, radii, levels = [], [], []
    radius = rng.uniform(2.5, 4.0)
    for line, rel in anat.sinuses:
        if len(line) < 2:
            continue
        s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])
        t = np.arange(0.0, s[-1], 0.7)
        pts.append(anat.lps_to_index(np.stack([np.interp(t, s, line[:, i]) for i in range(3)], -1)))
        radii.append(np.full(len(t), radius * rel))
        levels.append(np.full(len(t), level))
    return pts, radii, levels


def render_background(anat: Anatomy, rng: np.random.Generator, look: Appearance, n_vessels: int) -> np.ndarray:
    """Tissue mix, layers outside the brain, enhancing dural folds (falx, tentorium), skull-base
    structures (pituitary, cavernous sinuses), choroid plexus, sinuses and cortical veins."""
    image = (anat.wm + look.gm * anat.gm + look.csf * anat.csf).astype(np.float32)
    image[~anat.brain] = _outside_layers(anat, rng, look)
    image.flat[anat.falx] = 0.8 * look.dura
    image.flat[anat.tentorium] = 0.8 * look.dura
    image.flat[anat.pituitary] = look.pituitary
    image.flat[anat.cavernous] = look.sinus
    image.flat[anat.choroid] = look.choroid * (1.0 + 0.08 * rng.standard_normal(len(anat.choroid))).astype(np.float32)
    if look.tissue_texture > 0:  # every tissue a narrow mixture around its level, correlated over 1-3 mm as in real scans
        texture_rng = np.random.default_rng(look.texture_seed)  # the look's own: the anatomy's draws stay as without it
        texture = ndimage.gaussian_filter(texture_rng.standard_normal(anat.shape, dtype=np.float32), look.texture_mm)
        image *= 1.0 + np.float32(look.tissue_texture / max(float(texture.std()), 1e-6)) * texture
    sinus_pts, sinus_r, sinus_l = _sinuses(anat, rng, look.sinus)
    v_pts, v_r, v_l = vessel_paths(anat, rng, n_vessels, look.vessel)
    w, v = stamp_tubes(anat.shape, np.concatenate(sinus_pts + [v_pts]), np.concatenate(sinus_r + [v_r]), np.concatenate(sinus_l + [v_l]))
    return image * (1.0 - w) + v

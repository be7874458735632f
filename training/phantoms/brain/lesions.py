"""Lesion placement and rendering on the MNI crop, sized in physical millimetres.

Each lesion is built in the physical frame at its centre (through the local Jacobian of the
patient's deformation), so `diameter_mm` is the size in the scanned patient, not in MNI space.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from .anatomy import Anatomy
from .appearance import Appearance
from .biology import LesionBiology
from .deformation import Deformation

REGION_PROBABILITIES = {"junction": 0.70, "cerebellum": 0.15, "parenchyma": 0.15}
MAX_PERTURBATION = 0.18  # relative amplitude of the low-frequency surface perturbation
SIZE_SLACK = 1.25  # MNI radius bound: 1 / min scale, elastic stretch, perturbation


def _beside_the_midline(anat: Anatomy, flat: np.ndarray, radius: float) -> np.ndarray:
    """The voxels of ``flat`` whose centre is within ``radius`` + 4 mm of the midsagittal plane: a lesion there
    abuts the falx and the sagittal sinus, which enhance as it does."""
    x_ras = -anat.index_to_lps(np.array(np.unravel_index(flat, anat.shape)).T)[:, 0]
    return flat[np.abs(x_ras) <= radius + 4.0]


def _against_the_ventricles(anat: Anatomy, flat: np.ndarray, radius: float) -> np.ndarray:
    """The voxels of ``flat`` whose centre lies ``radius`` to ``radius`` + 4 mm from a ventricle: a lesion there
    abuts the ventricle's CSF and, in the atria, the choroid plexus, which enhances as it does."""
    distance = anat.ventricle_mm.flat[flat]
    return flat[(distance >= radius) & (distance <= radius + 4.0)]


def place_lesions(anat: Anatomy, rng: np.random.Generator, biology: list[LesionBiology],
                  parasagittal: float = 0.0, clear_falx: bool = False, periventricular: float = 0.0) -> list[tuple[np.ndarray, str]]:
    """Centres (crop index) inside the brain, not overlapping; largest first so they fit. A share
    ``parasagittal`` of lesions goes beside the midline, a share ``periventricular`` of the others against the
    ventricles (each drawn only when > 0: other cohorts keep their draws). ``clear_falx``: no lesion crosses the
    falx, as no metastasis does (off, about one lesion in fourteen does)."""
    placed: list[tuple[np.ndarray, float]] = []
    out: dict[int, tuple[np.ndarray, str]] = {}
    names = list(REGION_PROBABILITIES)
    for i in sorted(range(len(biology)), key=lambda k: -biology[k].diameter_mm):
        radius = biology[i].diameter_mm / 2.0 * SIZE_SLACK
        region = names[int(rng.choice(len(names), p=list(REGION_PROBABILITIES.values())))]
        medial = parasagittal > 0 and rng.random() < parasagittal
        ventricular = periventricular > 0 and not medial and rng.random() < periventricular
        for candidates in (anat.regions[region], anat.regions["parenchyma"], np.flatnonzero(anat.brain)):
            feasible = candidates[anat.depth.flat[candidates] >= radius + 1.0]
            if clear_falx:
                feasible = feasible[anat.falx_mm.flat[feasible] >= radius + 1.0]
            if medial:
                feasible = _beside_the_midline(anat, feasible, radius)
            if ventricular:
                near = _against_the_ventricles(anat, feasible, radius)
                feasible = near if len(near) else feasible  # a lesion too large to abut them is placed as usual
            centre = None
            for flat in rng.choice(feasible, size=min(200, len(feasible)), replace=False) if len(feasible) else []:
                c = np.array(np.unravel_index(flat, anat.shape), float)
                if all(np.linalg.norm(c - pc) >= radius + pr + 2.0 for pc, pr in placed):
                    centre = c
                    break
            if centre is not None:
                break
            region = "parenchyma" if region != "parenchyma" else "brain"
        if centre is None:
            raise RuntimeError(f"no room for a {biology[i].diameter_mm:.1f} mm lesion")
        placed.append((centre, radius))
        out[i] = (centre, region)
    return [out[i] for i in range(len(biology))]


def _direction_field(rng: np.random.Generator, n: np.ndarray) -> np.ndarray:
    """Smooth random function of direction in [-1, 1]: a few low-frequency waves on the sphere."""
    omega = rng.standard_normal((4, 3))
    omega *= (rng.uniform(1.5, 3.0, 4) / np.linalg.norm(omega, axis=1))[:, None]
    c = rng.standard_normal(4)
    f = (c[:, None] * np.cos(omega @ n.reshape(-1, 3).T + rng.uniform(0, 2 * np.pi, 4)[:, None])).sum(0)
    return (f / (np.abs(c).sum() + 1e-9)).reshape(n.shape[:-1])


class LesionRenderer:
    """Geometry of one lesion on its crop box: signed distance to the irregular surface (mm)."""

    def __init__(self, anat: Anatomy, deformation: Deformation, rng: np.random.Generator, bio: LesionBiology,
                 centre_index: np.ndarray, look: Appearance, fluid: bool = False):
        """``fluid``: a cystic metastasis with a thin rim around fluid about as dark as CSF, as in the
        large cysts of public sets. Intensities come from the case's ``look``."""
        self.bio = bio
        self.look = look
        self.centre_index = np.asarray(centre_index, float)
        self.radius = bio.diameter_mm / 2.0
        self.axes = self.radius * np.array([1.0, *rng.uniform(0.7, 1.0, 2)])
        self.rim_mm = float(rng.uniform(0.8, 2.0) if fluid else rng.uniform(1.0, 3.0))
        self.enhancement = float(rng.uniform(*look.enhancement))
        self.necrosis_level = float(rng.uniform(*(look.fluid if fluid else look.necrosis)))
        self.oedema_level = float(rng.uniform(*look.oedema))
        self.haemorrhagic = bool(rng.random() < look.haemorrhage)
        self.centre_lps = deformation.to_physical(anat.index_to_lps(centre_index))
        jac = deformation.jacobian_to_physical(self.centre_lps)
        reach = (self.radius * (1 + MAX_PERTURBATION) * (1 + 1.3 * bio.oedema_extent) + 3.0) * SIZE_SLACK
        lo = np.maximum(np.floor(centre_index - reach).astype(int), 0)
        hi = np.minimum(np.ceil(centre_index + reach).astype(int) + 1, anat.shape)
        self.box = tuple(slice(a, b) for a, b in zip(lo, hi))
        zyx = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1) - centre_index
        d_lps = np.stack([-zyx[..., 2], -zyx[..., 1], zyx[..., 0]], -1)
        rot = Rotation.from_quat(rng.standard_normal(4)).as_matrix()  # uniform random rotation
        u = d_lps @ jac.T @ rot  # physical offset in the ellipsoid's frame
        dist = np.linalg.norm(u, axis=-1)
        n = np.where(dist[..., None] > 1e-6, u / np.maximum(dist, 1e-6)[..., None], np.array([1.0, 0.0, 0.0]))
        surface = 1.0 / np.sqrt(((n / self.axes) ** 2).sum(-1))
        self.sd = dist - surface * (1.0 + rng.uniform(0.08, MAX_PERTURBATION) * _direction_field(rng, n))
        self.rim_field = self.rim_mm * (1.0 + look.rim_irregularity * _direction_field(rng, n))
        self.oedema_field = bio.oedema_extent * self.radius * (1.0 + 0.3 * _direction_field(rng, n))
        noise = ndimage.gaussian_filter(rng.standard_normal(self.sd.shape), 0.8)
        self.texture_field = (noise - noise.mean()) / max(float(noise.std()), 1e-9)

    def apply_mass_effect(self, image: np.ndarray) -> None:
        """Push the surrounding tissue outwards (a large lesion displaces its neighbourhood): the
        image around the lesion is resampled from nearer the centre, fading out at the box's edge."""
        strength = self.look.mass_effect * self.radius
        if strength < 0.5:
            return
        zyx = np.stack(np.meshgrid(*[np.arange(s.start, s.stop, dtype=np.float32) for s in self.box], indexing="ij"))
        d = zyx - self.centre_index.astype(np.float32)[:, None, None, None]
        r = np.sqrt((d**2).sum(0)) + 1e-3
        reach = float(min(s.stop - s.start for s in self.box)) / 2.0
        shift = strength * (self.radius / np.maximum(r, self.radius)) ** 2 * np.clip((reach - r) / (0.3 * reach), 0.0, 1.0)
        source = self.centre_index.astype(np.float32)[:, None, None, None] + d * (np.maximum(r - shift, 0.0) / r)
        image[self.box] = ndimage.map_coordinates(image, source, order=1, mode="nearest")

    def apply_oedema(self, image: np.ndarray, wm: np.ndarray) -> None:
        """Darken towards the oedema level (never brighten darker tissue), mostly in white matter."""
        w = np.clip((self.oedema_field - self.sd) / np.maximum(0.35 * self.oedema_field, 1.0), 0.0, 1.0)
        w *= 0.4 + 0.6 * wm[self.box]
        region = image[self.box]
        region += w * (np.minimum(region, self.oedema_level) - region)

    def apply_lesion(self, image: np.ndarray, occupancy: np.ndarray) -> None:
        """Enhancing lesion (rim + necrotic core or solid) with partial-volume occupancy = GTV."""
        occ = np.clip(0.5 - self.sd, 0.0, 1.0)
        blend = np.clip(0.5 - self.sd / self.look.edge_mm, 0.0, 1.0)  # the margin's intensity, blurred when edge_mm > 1
        value = self.enhancement * (1.0 + self.bio.texture * self.texture_field)
        if self.bio.necrotic:
            core = np.clip(0.5 - (self.sd + self.rim_field), 0.0, 1.0)
            value = value * (1.0 - core) + core * self.necrosis_level * (1.0 + 0.05 * self.texture_field)
        if self.look.patchiness > 0:  # a look's own field (texture_seed, lesion centre): the anatomy's draws stay as without it
            field_rng = np.random.default_rng([self.look.texture_seed, *self.centre_index.astype(int)])
            g = ndimage.gaussian_filter(field_rng.standard_normal(self.sd.shape), self.look.patch_mm)
            enhanced = np.clip(0.5 + g / max(float(g.std()), 1e-9), 0.0, 1.0)
            value = self.necrosis_level + (value - self.necrosis_level) * (1.0 - self.look.patchiness * (1.0 - enhanced))
        if self.haemorrhagic:  # blood products: T1-bright blotches whatever the enhancement
            blood = np.clip(2.0 * (self.texture_field - 0.8), 0.0, 1.0) * (self.sd < -1.0)
            value = value * (1.0 - blood) + blood * max(self.enhancement, 1.2)
        region = image[self.box]
        region += blend * (value - region)
        np.maximum(occupancy[self.box], occ, out=occupancy[self.box])

    def truth(self, region: str) -> dict:
        return {"diameter_mm": self.bio.diameter_mm, "necrotic": self.bio.necrotic, "oedema_extent": self.bio.oedema_extent,
                "texture": self.bio.texture, "centre_lps": [float(v) for v in self.centre_lps], "region": region,
                "axes_mm": [float(2 * a) for a in self.axes], "rim_mm": self.rim_mm, "enhancement": self.enhancement,
                "core_level": self.necrosis_level}

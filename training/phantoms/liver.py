"""Synthetic arterial-phase contrast CT of hepatocellular carcinoma with the objective response to
TACE (mRECIST) as the label: the phantom of the ``hcc-tace`` preset (multi-DL, seeds/003).

Biology (label first, then every tumour's features; docs/PHANTOMS.md has the table): responders
have fewer and smaller tumours that enhance more in the arterial phase, more often carry a
complete capsule, and are more homogeneous, as the TACE literature reports. Large tumours get a
necrotic centre whatever the label (a nuisance, not a feature). HU values are those of an
arterial phase; the site draws the contrast timing (a factor on all enhancement), slice
thickness, noise and pixel size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from MTSASegmenterLib.metrics import auc
from scipy import ndimage
from scipy.spatial.transform import Rotation

from .body import (
    BodyCase,
    LesionShape,
    RenderGrid,
    Scene,
    ellipsoid_sdf,
    inside_depth,
    place_centres,
    random_vessels,
    scan,
    smooth_noise,
)
from .distributions import bernoulli_logpmf, count_logpmf, draw_count, draw_lognormal, lognormal_logpdf, uniform_logpdf
from .scanner import SiteSpec

P_RESPONSE = 0.6
MAX_TUMOURS = 5
DIAMETER_BOUNDS = (10.0, 90.0)
LABELS = ("response", "non-response")


@dataclass(frozen=True)
class ResponseBiology:
    extra_tumours_mean: float
    diameter_median_mm: float
    diameter_sigma_log: float
    enhancement_hu: tuple[float, float]  # arterial enhancement over the liver (uniform)
    capsule_probability: float
    heterogeneity_hu: tuple[float, float]  # std of the tumour's texture (uniform)


BIOLOGY = {
    "response": ResponseBiology(extra_tumours_mean=0.3, diameter_median_mm=34.0, diameter_sigma_log=0.45, enhancement_hu=(30.0, 80.0),
                                capsule_probability=0.6, heterogeneity_hu=(8.0, 20.0)),
    "non-response": ResponseBiology(extra_tumours_mean=0.6, diameter_median_mm=42.0, diameter_sigma_log=0.45, enhancement_hu=(20.0, 70.0),
                                    capsule_probability=0.4, heterogeneity_hu=(10.0, 24.0)),
}


@dataclass(frozen=True)
class Tumour:
    diameter_mm: float
    enhancement_hu: float
    capsule: bool
    heterogeneity_hu: float


def draw_response(rng: np.random.Generator) -> str:
    return "response" if rng.random() < P_RESPONSE else "non-response"


def draw_tumours(rng: np.random.Generator, label: str) -> list[Tumour]:
    bio = BIOLOGY[label]
    return [Tumour(draw_lognormal(rng, bio.diameter_median_mm, bio.diameter_sigma_log, DIAMETER_BOUNDS),
                   float(rng.uniform(*bio.enhancement_hu)), bool(rng.random() < bio.capsule_probability),
                   float(rng.uniform(*bio.heterogeneity_hu)))
            for _ in range(draw_count(rng, bio.extra_tumours_mean, MAX_TUMOURS))]


def log_likelihood(tumours: list[Tumour], label: str) -> float:
    bio = BIOLOGY[label]
    logp = count_logpmf(len(tumours), bio.extra_tumours_mean, MAX_TUMOURS)
    for t in tumours:
        logp += (lognormal_logpdf(t.diameter_mm, bio.diameter_median_mm, bio.diameter_sigma_log, DIAMETER_BOUNDS)
                 + uniform_logpdf(t.enhancement_hu, bio.enhancement_hu) + bernoulli_logpmf(t.capsule, bio.capsule_probability)
                 + uniform_logpdf(t.heterogeneity_hu, bio.heterogeneity_hu))
    return logp


def posterior_response(tumours: list[Tumour]) -> float:
    a = math.log(P_RESPONSE) + log_likelihood(tumours, "response")
    b = math.log(1.0 - P_RESPONSE) + log_likelihood(tumours, "non-response")
    if a == b == -math.inf:
        return P_RESPONSE
    return 1.0 / (1.0 + math.exp(min(b - a, 700.0)))


def best_possible(n_patients: int = 20000, seed: int = 0) -> dict[str, dict[str, float]]:
    """The Bayes classifier's accuracy and AUC on patients drawn as the generator draws them."""
    rng = np.random.default_rng(seed)
    y, p = np.zeros(n_patients, bool), np.zeros(n_patients)
    for i in range(n_patients):
        label = draw_response(rng)
        y[i], p[i] = label == "response", posterior_response(draw_tumours(rng, label))
    return {"response": {"accuracy": float(((p > 0.5) == y).mean()), "auc": auc(y.astype(int), p)}}


# --------------------------------------------------------------------------- anatomy and scan

SITES = {  # CT: values in HU (scale 1), no bias field; noise is the HU standard deviation
    "internal": SiteSpec(in_plane_mm=(0.7, 0.85), thickness_mm=(1.0, 1.5), matrices=(512,), orientations=("axial",), noise=(8.0, 12.0)),
    "external": SiteSpec(in_plane_mm=(0.6, 0.98), thickness_mm=(0.6, 5.0), matrices=(512,), orientations=("axial",), noise=(5.0, 25.0)),
}
CONTRAST = {"internal": (0.9, 1.1), "external": (0.7, 1.3)}  # contrast timing: factor on all enhancement


def _ellipse_sd(x, y, cx, cy, ax, ay):
    r = np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2)
    return (r - 1.0) * min(ax, ay)


def _abdomen(rng: np.random.Generator, grid: RenderGrid, contrast: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
    """(image, signed distance to the inside of the abdominal wall, organ texture, body half-axes):
    body wall, fat, spine, aorta, IVC, kidneys, spleen and stomach in HU on the 1 mm grid."""
    x, y, z = grid.coordinates()
    shape = grid.shape
    ax, ay = rng.uniform(140, 175), rng.uniform(95, 125)
    body = np.broadcast_to(_ellipse_sd(x, y, 0.0, 0.0, ax, ay), shape)
    fat_mm, wall_mm = rng.uniform(10, 35), rng.uniform(8, 14)
    img = np.full(shape, -1000.0, np.float32)
    img[body < 0] = -100.0
    img[(body < -fat_mm) & (body >= -fat_mm - wall_mm)] = 50.0  # abdominal wall muscle
    inner = body < -fat_mm - wall_mm
    img[inner] = -90.0  # visceral fat
    enh = lambda hu: np.float32(contrast * hu)  # noqa: E731  enhancement above the unenhanced value

    def put(sd, value):
        region = (sd < 0) & inner
        img[region] = value if np.isscalar(value) else value[region]

    spine_y = ay - fat_mm - wall_mm - 25
    put(np.broadcast_to(_ellipse_sd(x, y, 0, spine_y, 22, 20), shape), 250.0)  # vertebral body
    put(np.broadcast_to(_ellipse_sd(x, y, 0, spine_y, 17, 15), shape), 180.0)
    put(np.broadcast_to(_ellipse_sd(x, y, 12, spine_y - 30, 11, 11), shape), 40 + enh(260))  # aorta
    put(np.broadcast_to(_ellipse_sd(x, y, -25, spine_y - 28, 13, 10), shape), 40 + enh(60))  # IVC
    noise = smooth_noise(rng, shape, 6.0)
    for side in (-1, 1):  # kidneys in the lower part of the scan
        k = ellipsoid_sdf(grid, np.array([side * 70, spine_y - 5, rng.uniform(20, 45)]), np.array([30.0, 25, 50]), np.eye(3))
        put(k, 40 + enh(150) + 15 * noise)
    sc = np.array([rng.uniform(80, 100), rng.uniform(10, 30), rng.uniform(95, 125)])
    put(ellipsoid_sdf(grid, sc, np.array([45.0, 35, 55]), np.eye(3)), 45 + enh(60) + 20 * noise)  # spleen (arterial: mottled)
    st = ellipsoid_sdf(grid, np.array([55.0, -50, 120]), np.array([45.0, 35, 40]) * rng.uniform(0.7, 1.1), np.eye(3))
    put(st, 20.0 + 5 * noise)  # stomach contents
    put(np.maximum(st, 132.0 - z), -950.0)  # air cap on top
    return img, body + fat_mm + wall_mm, noise, (ax, ay)


def render(rng: np.random.Generator, tumours: list[Tumour], contrast: float) -> tuple[Scene, list[dict]]:
    """Upper abdomen on a 1 mm grid (``_abdomen``) and a two-lobed liver with enhancing vessels;
    then the tumours inside the liver."""
    grid = RenderGrid.around(np.array([-185.0, -135.0, 0.0]), np.array([185.0, 135.0, 185.0]))
    img, wall_sd, noise, (ax, ay) = _abdomen(rng, grid, contrast)
    shape = grid.shape
    enh = lambda hu: np.float32(contrast * hu)  # noqa: E731  enhancement above the unenhanced value
    rot = Rotation.from_rotvec(rng.normal(0, 0.08, 3)).as_matrix()
    right = ellipsoid_sdf(grid, np.array([-55.0, -5, 90]) + rng.normal(0, 5, 3), np.array([90.0, 80, 75]) * rng.uniform(0.9, 1.1, 3), rot)
    left = ellipsoid_sdf(grid, np.array([35.0, -45, 105]) + rng.normal(0, 5, 3), np.array([60.0, 32, 40]) * rng.uniform(0.85, 1.15, 3), rot)
    k = 12.0  # smooth union
    h = np.clip(0.5 + 0.5 * (left - right) / k, 0.0, 1.0)
    liver_sd = right * h + left * (1 - h) - k * h * (1 - h) + 8.0 * smooth_noise(rng, shape, 15.0)
    liver_sd = np.maximum(liver_sd, wall_sd + 2.0)  # stays inside the wall
    liver = liver_sd < 0
    liver_hu = np.float32(55 + enh(rng.uniform(12, 25)))
    img[liver] = (liver_hu + 4.0 * noise)[liver]
    w, _ = random_vessels(rng, ndimage.binary_erosion(liver, iterations=3), int(rng.integers(40, 70)), (0.6, 3.5), (1.0, 1.0), (20, 80))
    levels = liver_hu + enh(1.0) * rng.uniform(60, 150)
    img += w * (levels - img) * liver

    depth = inside_depth(liver)
    centres = place_centres(rng, depth, grid, [t.diameter_mm for t in tumours])
    occupancy = np.zeros(shape, np.float32)
    truth = []
    for t, c in zip(tumours, centres):
        les = LesionShape.build(grid, rng, c, t.diameter_mm, irregularity=0.04, margin_mm=3.0)
        value = liver_hu + enh(t.enhancement_hu) + t.heterogeneity_hu * les.texture
        necrotic = t.diameter_mm >= 50 and rng.random() < 0.5
        if necrotic:  # label-free nuisance: necrotic centre of a large tumour
            core = np.clip(-0.5 - les.sd - rng.uniform(0.25, 0.4) * t.diameter_mm / 2, 0.0, 1.0)
            value = value * (1 - core) + core * (25.0 + 5 * les.texture)
        if t.capsule:
            rim = np.clip(1.0 - np.abs(les.sd + 1.0) / 1.0, 0.0, 1.0)
            value = value * (1 - rim) + rim * (liver_hu - 25.0)
        occ = les.occupancy
        region = img[les.box]
        region += occ * (value - region)
        np.maximum(occupancy[les.box], occ, out=occupancy[les.box])
        truth.append({"diameter_mm": t.diameter_mm, "enhancement_hu": t.enhancement_hu, "capsule": t.capsule,
                      "heterogeneity_hu": t.heterogeneity_hu, "necrotic": bool(necrotic), "centre_lps": [float(v) for v in c]})
    extent = np.array([[-ax, -ay, 5.0], [ax, ay, 180.0]])
    return Scene(grid, img, occupancy, extent, -1000.0), truth


def generate_case(seed: int, site: str = "internal", max_matrix: int | None = None) -> BodyCase:
    """One patient, deterministic in (seed, site); the same seed at another site is the same patient."""
    if site not in SITES:
        raise ValueError(f"site must be one of {sorted(SITES)}, not {site!r}")
    bio_rng, anat_rng, scan_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    label = draw_response(bio_rng)
    tumours = draw_tumours(bio_rng, label)
    contrast = float(scan_rng.uniform(*CONTRAST[site]))
    scene, truth = render(anat_rng, tumours, contrast)
    image, mask, acq = scan(scene, scan_rng, SITES[site], max_matrix, ct=True)
    acq["contrast"] = contrast
    return BodyCase(image, mask, {"response": label}, truth, site, acq)

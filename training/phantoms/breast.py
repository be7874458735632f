"""Synthetic single-phase DCE-MRI (fat-saturated T1, early post-contrast) of breast cancer with ER,
PR and HER2 status and the Ki-67 index: the phantom of the ``breast-dce`` preset (seeds/004).

Biology (docs/PHANTOMS.md has the table): receptors first (PR and HER2 depend on ER), Ki-67 from
the subtype (luminal, HER2-enriched, triple negative), then one tumour whose size and
heterogeneity grow with Ki-67, whose margin is spiculated mostly when ER-positive, rim-enhancing
mostly when triple negative, and which enhances more, with a wider peritumoral enhancement, when
HER2-positive. Background parenchymal enhancement, breast density, vessels and the heart are
label-free. The site draws bias field, noise, slice thickness, orientation and intensity scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import numpy as np
from MTSASegmenterLib.metrics import auc

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
from .distributions import draw_lognormal, lognormal_logpdf
from .scanner import SiteSpec

P_ER = 0.72
P_PR = {True: 0.82, False: 0.10}  # given ER
P_HER2 = {True: 0.15, False: 0.35}  # given ER
KI67 = {"luminal": (14.0, 0.6), "her2": (28.0, 0.5), "triple-negative": (45.0, 0.45)}  # log-normal median, sigma
KI67_BOUNDS = (1.0, 95.0)
DIAMETER_BOUNDS = (6.0, 60.0)
DIAMETER_SIGMA = 0.35
SPICULATION = {True: (0.04, 0.22), False: (0.0, 0.16)}  # given ER
RIM_PROBABILITY = {True: 0.6, False: 0.15}  # given triple negative
ENHANCEMENT = {True: (1.8, 2.9), False: (1.6, 2.7)}  # x glandular tissue, given HER2
HALO = {True: (0.05, 0.5), False: (0.0, 0.4)}  # peritumoral enhancement extent x radius, given HER2
HETEROGENEITY = (0.03, 0.09)  # + 0.12 x Ki-67 / 100


def subtype(er: bool, pr: bool, her2: bool) -> str:
    return "her2" if her2 else ("luminal" if er or pr else "triple-negative")


def diameter_median(ki67: float | np.ndarray) -> float | np.ndarray:
    return 14.0 + 0.15 * ki67


@dataclass(frozen=True)
class BreastTumour:
    er: bool
    pr: bool
    her2: bool
    ki67: float
    diameter_mm: float
    spiculation: float
    rim: bool
    enhancement: float
    halo: float
    heterogeneity: float

    @property
    def labels(self) -> dict[str, str]:
        sign = {True: "positive", False: "negative"}
        return {"er": sign[self.er], "pr": sign[self.pr], "her2": sign[self.her2], "ki67": f"{self.ki67:.1f}"}


def draw_tumour(rng: np.random.Generator) -> BreastTumour:
    er = bool(rng.random() < P_ER)
    pr = bool(rng.random() < P_PR[er])
    her2 = bool(rng.random() < P_HER2[er])
    kind = subtype(er, pr, her2)
    ki67 = draw_lognormal(rng, KI67[kind][0], KI67[kind][1], KI67_BOUNDS)
    return BreastTumour(
        er, pr, her2, ki67,
        diameter_mm=draw_lognormal(rng, float(diameter_median(ki67)), DIAMETER_SIGMA, DIAMETER_BOUNDS),
        spiculation=float(rng.uniform(*SPICULATION[er])),
        rim=bool(rng.random() < RIM_PROBABILITY[kind == "triple-negative"]),
        enhancement=float(rng.uniform(*ENHANCEMENT[her2])),
        halo=float(rng.uniform(*HALO[her2])),
        heterogeneity=float(rng.uniform(*HETEROGENEITY) + 0.12 * ki67 / 100.0),
    )


# --------------------------------------------------------------------------- Bayes limits

_KI_GRID = np.arange(KI67_BOUNDS[0], KI67_BOUNDS[1] + 1e-9, 0.1)
_COMBOS = list(product((False, True), repeat=3))  # (er, pr, her2)


def _in(x: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= x <= bounds[1]


def posterior(t: BreastTumour) -> tuple[np.ndarray, np.ndarray]:
    """Joint posterior over (receptor combination, Ki-67 grid) given the true tumour features."""
    logw = np.full((len(_COMBOS), _KI_GRID.size), -np.inf)
    for i, (er, pr, her2) in enumerate(_COMBOS):
        prior = (P_ER if er else 1 - P_ER) * (P_PR[er] if pr else 1 - P_PR[er]) * (P_HER2[er] if her2 else 1 - P_HER2[er])
        kind = subtype(er, pr, her2)
        het = t.heterogeneity - 0.12 * _KI_GRID / 100.0
        if not (_in(t.spiculation, SPICULATION[er]) and _in(t.enhancement, ENHANCEMENT[her2]) and _in(t.halo, HALO[her2])):
            continue
        p_rim = RIM_PROBABILITY[kind == "triple-negative"]
        fixed = math.log(prior) + math.log(p_rim if t.rim else 1 - p_rim)
        fixed -= sum(math.log(b[1] - b[0]) for b in (SPICULATION[er], ENHANCEMENT[her2], HALO[her2], HETEROGENEITY))
        logw[i] = (fixed + lognormal_logpdf(_KI_GRID, KI67[kind][0], KI67[kind][1], KI67_BOUNDS)
                   + lognormal_logpdf(np.full_like(_KI_GRID, t.diameter_mm), diameter_median(_KI_GRID), DIAMETER_SIGMA, DIAMETER_BOUNDS)
                   + np.where((het >= HETEROGENEITY[0]) & (het <= HETEROGENEITY[1]), 0.0, -np.inf))
    w = np.exp(logw - logw.max())
    return w / w.sum(), _KI_GRID


def bayes_answers(t: BreastTumour) -> dict[str, float]:
    """Posterior probabilities of each receptor and the posterior median of Ki-67 (the MAE optimum)."""
    w, grid = posterior(t)
    combo = w.sum(1)
    out = {name: float(sum(c for c, key in zip(combo, _COMBOS) if key[k])) for k, name in enumerate(("er", "pr", "her2"))}
    cdf = np.cumsum(w.sum(0))
    out["ki67"] = float(grid[np.searchsorted(cdf, 0.5)])
    return out


def best_possible(n_patients: int = 5000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Bayes accuracy and AUC per receptor and the Bayes Ki-67 MAE, by simulation."""
    rng = np.random.default_rng(seed)
    tumours = [draw_tumour(rng) for _ in range(n_patients)]
    answers = [bayes_answers(t) for t in tumours]
    out: dict[str, dict[str, float]] = {}
    for name in ("er", "pr", "her2"):
        y = np.array([getattr(t, name) for t in tumours])
        p = np.array([a[name] for a in answers])
        out[name] = {"accuracy": float(((p > 0.5) == y).mean()), "auc": auc(y.astype(int), p)}
    out["ki-67"] = {"mae": float(np.mean([abs(a["ki67"] - t.ki67) for a, t in zip(answers, tumours)]))}
    return out


# --------------------------------------------------------------------------- anatomy and scan

SITES = {  # MR: signal relative to glandular tissue x an arbitrary scale; noise Rician, x reference
    "internal": SiteSpec(in_plane_mm=(0.6, 0.8), thickness_mm=(1.0, 1.5), matrices=(384, 448, 512), orientations=("axial",),
                         wm_value=(500.0, 1500.0), bias=(0.85, 1.15), noise=(0.01, 0.02)),
    "external": SiteSpec(in_plane_mm=(0.5, 1.0), thickness_mm=(0.8, 3.0), matrices=(256, 320, 384, 448, 512),
                         orientations=("axial", "axial", "sagittal"), max_oblique_deg=10.0, float_probability=0.3,
                         wm_value=(100.0, 8000.0), bias=(0.6, 1.4), noise=(0.01, 0.05)),
}
FGT = 0.6  # glandular tissue after contrast; fat-saturated fat is dark


def render(rng: np.random.Generator, t: BreastTumour) -> tuple[Scene, list[dict]]:
    """Prone axial anatomy: two breasts (skin, fat-saturated fat, glandular tissue with background
    enhancement, vessels) in front of the pectoral muscle, lungs and the enhancing heart."""
    grid = RenderGrid.around(np.array([-190.0, -150.0, -90.0]), np.array([190.0, 70.0, 90.0]))
    x, y, z = grid.coordinates()
    shape = grid.shape
    img = np.zeros(shape, np.float32)
    wall = float(rng.uniform(-5.0, 5.0))
    img[np.broadcast_to(y > wall, shape)] = 0.03  # lungs (dark) behind the chest wall
    img[np.broadcast_to((y > wall) & (y < wall + 14) & (np.abs(x) < 170), shape)] = 0.45  # pectoral muscle
    heart = ellipsoid_sdf(grid, np.array([15.0, wall + 75, -10]), np.array([65.0, 50, 60]), np.eye(3))
    img[heart < 0] = float(rng.uniform(1.4, 2.0))
    breast = np.full(shape, 1e3, np.float32)
    size = rng.uniform(0.75, 1.3)
    for side in (-1, 1):
        axes = np.array([65.0, 75, 65]) * size * rng.uniform(0.92, 1.08, 3)
        sd = ellipsoid_sdf(grid, np.array([side * rng.uniform(70, 90), wall, rng.uniform(-10, 10)]), axes, np.eye(3))
        breast = np.minimum(breast, sd)
    breast = np.maximum(breast + 4.0 * smooth_noise(rng, shape, 12.0), y - wall)  # front of the chest wall only
    inside = breast < 0
    img[inside] = 0.12 + 0.03 * smooth_noise(rng, shape, 4.0)[inside]  # fat-saturated fat
    img[(breast < 0) & (breast > -2.0)] = 0.5  # skin
    depth = inside_depth(inside)
    density = rng.uniform(0.15, 0.6)
    field = smooth_noise(rng, shape, 5.0) + 1.2 * np.clip(depth / 25.0, 0, 1)
    gland = inside & (depth > 4) & (field > np.quantile(field[inside], 1 - density))
    bpe = rng.uniform(0.0, 0.5)  # background parenchymal enhancement, label-free
    img[gland] = (FGT * (1 + bpe * np.clip(smooth_noise(rng, shape, 8.0), 0, None)))[gland]
    w, _ = random_vessels(rng, inside & (depth > 3), int(rng.integers(15, 35)), (0.5, 2.0), (1.0, 1.0), (30, 100))
    img += w * (np.float32(FGT * rng.uniform(2.2, 3.2)) - img)

    (centre,) = place_centres(rng, np.where(gland | (depth > 15), depth, 0).astype(np.float32), grid, [t.diameter_mm])
    les = LesionShape.build(grid, rng, centre, t.diameter_mm, irregularity=t.spiculation, margin_mm=t.halo * t.diameter_mm / 2 + 2)
    region = img[les.box]
    radius = t.diameter_mm / 2
    halo = np.clip(1.0 - les.sd / max(t.halo * radius, 0.5), 0.0, 1.0) * (les.sd > 0) * (region > 0.2)
    region += halo * np.float32(0.5 * FGT) * (t.halo > 0)
    value = FGT * t.enhancement * (1.0 + t.heterogeneity * les.texture)
    if t.rim:  # rim enhancement: a less enhancing core inside a 2-4 mm rim
        core = np.clip(-0.5 - les.sd - rng.uniform(2.0, 4.0), 0.0, 1.0)
        value = value * (1 - core) + core * FGT * rng.uniform(0.8, 1.2)
    occ = les.occupancy
    region += occ * (value - region)
    occupancy = np.zeros(shape, np.float32)
    occupancy[les.box] = occ
    extent = np.array([[-185.0, -150.0, -85.0], [185.0, 65.0, 85.0]])
    truth = {"diameter_mm": t.diameter_mm, "spiculation": t.spiculation, "rim": t.rim, "enhancement": t.enhancement,
             "halo": t.halo, "heterogeneity": t.heterogeneity, "centre_lps": [float(v) for v in centre]}
    return Scene(grid, img, occupancy, extent, 0.0), [truth]


def generate_case(seed: int, site: str = "internal", max_matrix: int | None = None) -> BodyCase:
    """One patient, deterministic in (seed, site); the same seed at another site is the same patient."""
    if site not in SITES:
        raise ValueError(f"site must be one of {sorted(SITES)}, not {site!r}")
    bio_rng, anat_rng, scan_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    tumour = draw_tumour(bio_rng)
    scene, truth = render(anat_rng, tumour)
    image, mask, acq = scan(scene, scan_rng, SITES[site], max_matrix, ct=False)
    return BodyCase(image, mask, tumour.labels, truth, site, acq)

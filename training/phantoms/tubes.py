"""Thin bright tubes (vessels, sinuses): smooth random walks and their anti-aliased stamp on a 1 mm
grid. Enhancing vessels are the main source of false positives on real scans, so every phantom
draws them."""

from __future__ import annotations

import numpy as np


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

"""Overlay pictures: the axial slice with the largest GTV, truth in yellow and prediction in green.

Drawn on the model's axial grid, which is in radiological convention (patient's left on the
right of the picture, anterior at the top), the colours of the paper's Fig. 6. OpenCV only, so
the core needs no plotting library.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import SimpleITK as sitk

from ..inference.preprocess import ModelGrid

YELLOW = (0, 220, 255)  # BGR
GREEN = (60, 220, 60)


def largest_area_slice(*masks: np.ndarray) -> int:
    """Index of the axial slice with the most foreground over the given [z, y, x] masks."""
    area = sum(m.reshape(m.shape[0], -1).sum(axis=1) for m in masks)
    return int(np.argmax(area))


def draw_overlay(slice_values: np.ndarray, prediction: np.ndarray, truth: np.ndarray | None = None, scale: int = 3) -> np.ndarray:
    """BGR picture of one normalised slice with contours; ``scale`` enlarges it for reading."""
    grey = np.clip(slice_values / max(float(np.percentile(slice_values, 99.5)), 1e-6), 0, 1)
    picture = cv2.cvtColor((grey * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    picture = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    for mask, colour in ((truth, YELLOW), (prediction, GREEN)):
        if mask is None:
            continue
        big = cv2.resize(mask.astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(picture, contours, -1, colour, 1)
    return picture


def write_overlay(path: Path, grid: ModelGrid, volume: np.ndarray, prediction: sitk.Image, truth: sitk.Image | None = None) -> int:
    """Write the overlay PNG of the slice with the largest GTV; returns that model-slice index.

    ``volume`` is the image on the model grid as the prediction already made it (``Prediction.volume``)."""
    pred = grid.mask_to_grid(prediction)
    true = grid.mask_to_grid(truth) if truth is not None else None
    z = largest_area_slice(pred, *(() if true is None else (true,)))
    picture = draw_overlay(volume[z], pred[z], None if true is None else true[z])
    if not cv2.imwrite(str(path), picture):
        raise OSError(f"could not write {path}")
    return z

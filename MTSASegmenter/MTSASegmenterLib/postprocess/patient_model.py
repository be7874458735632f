"""A patient-level logistic model over named features, stored as plain data in the checkpoint.

Why: the genotype shows across all of a patient's lesions (PHANTOM.md; the paper's Fig. 5 reads
only the slices of largest GTV area). A logistic model over lesion features and the network's
slice probability is small, transparent (its coefficients are the evidence's weights) and is
loaded with ``weights_only=True`` like everything else in a checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CheckpointError


@dataclass(frozen=True)
class LogisticModel:
    """p = sigmoid(intercept + sum(coef * (x - mean) / scale)), features by name."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def __post_init__(self) -> None:
        n = len(self.features)
        if not (n and len(self.mean) == len(self.scale) == len(self.coef) == n):
            raise CheckpointError("patient model: features, mean, scale and coef must have the same non-zero length")
        if any(s <= 0 for s in self.scale):
            raise CheckpointError("patient model: every scale must be positive")

    def contributions(self, values: Mapping[str, float]) -> dict[str, float]:
        """Each feature's term of the logit: the evidence a decision shows its user."""
        missing = [f for f in self.features if f not in values]
        if missing:
            raise ValueError(f"patient model needs feature(s) {', '.join(missing)}")
        return {name: c * (float(values[name]) - m) / s for name, m, s, c in zip(self.features, self.mean, self.scale, self.coef)}

    def logit(self, values: Mapping[str, float]) -> float:
        z = self.intercept
        for term in self.contributions(values).values():
            z += term
        return z

    def probability(self, values: Mapping[str, float]) -> float:
        z = self.logit(values)
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Row-wise probabilities of an (n, features) array whose columns follow ``features``."""
        x = np.asarray(x, dtype=float).reshape(-1, len(self.features))
        z = self.intercept + ((x - np.asarray(self.mean)) / np.asarray(self.scale)) @ np.asarray(self.coef)
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # the sigmoid, without overflow

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "logistic", "features": list(self.features), "mean": list(self.mean), "scale": list(self.scale),
                "coef": list(self.coef), "intercept": self.intercept}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LogisticModel":
        if data.get("kind") != "logistic":
            raise CheckpointError(f"patient model: unknown kind {data.get('kind')!r}")
        try:
            return cls(tuple(data["features"]), tuple(map(float, data["mean"])), tuple(map(float, data["scale"])),
                       tuple(map(float, data["coef"])), float(data["intercept"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"patient model: malformed ({exc})") from None


def fit_logistic(x: np.ndarray, y: np.ndarray, features: Sequence[str], l2: float = 1.0, iterations: int = 100) -> LogisticModel:
    """L2-penalised logistic regression by Newton's method on standardised features (deterministic).

    The penalty (not applied to the intercept) keeps the fit finite when the classes separate.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[1] != len(features):
        raise ValueError(f"x must be patients x {len(features)} features and y one label per patient")
    if len(np.unique(y)) < 2:
        raise ValueError("fitting needs patients of both classes")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    a = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    w = np.zeros(a.shape[1])
    penalty = np.full(a.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -30, 30)))
        gradient = a.T @ (p - y) + penalty * w
        hessian = (a * (p * (1 - p))[:, None]).T @ a + np.diag(penalty) + 1e-9 * np.eye(a.shape[1])
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return LogisticModel(tuple(features), tuple(mean.tolist()), tuple(scale.tolist()), tuple(w[1:].tolist()), float(w[0]))

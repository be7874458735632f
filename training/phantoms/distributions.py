"""The label-dependent distributions the phantoms draw lesions from, each beside its exact
log-density, so that a Bayes limit can be computed from the same definitions that generate cases."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr


def draw_lognormal(rng: np.random.Generator, median: float, sigma: float, bounds: tuple[float, float]) -> float:
    """Log-normal truncated to bounds (rejection), so the density has no point masses."""
    while True:
        x = median * math.exp(sigma * rng.standard_normal())
        if bounds[0] <= x <= bounds[1]:
            return float(x)


def lognormal_logpdf(x, median, sigma: float, bounds: tuple[float, float]):
    """Log-density of ``draw_lognormal``; numpy-vectorised over x and median (-inf outside the bounds)."""
    lo, hi = bounds
    mu = np.log(median)
    mass = ndtr((math.log(hi) - mu) / sigma) - ndtr((math.log(lo) - mu) / sigma)
    x = np.asarray(x, dtype=float)
    z = (np.log(x) - mu) / sigma
    return np.where((x >= lo) & (x <= hi), -0.5 * z * z - np.log(x * sigma * math.sqrt(2.0 * math.pi) * mass), -np.inf)


def draw_count(rng: np.random.Generator, extra_mean: float, most: int) -> int:
    """1 + Poisson(extra_mean), truncated (rejection) at ``most``."""
    while True:
        n = 1 + int(rng.poisson(extra_mean))
        if n <= most:
            return n


def count_logpmf(n: int, extra_mean: float, most: int) -> float:
    if not 1 <= n <= most:
        return -math.inf
    lam = extra_mean
    mass = sum(math.exp(-lam) * lam**k / math.factorial(k) for k in range(most))
    return -lam + (n - 1) * math.log(lam) - math.lgamma(n) - math.log(mass)


def uniform_logpdf(x: float, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return -math.log(hi - lo) if lo <= x <= hi else -math.inf


def bernoulli_logpmf(x: bool, p: float) -> float:
    return math.log(p if x else 1.0 - p)

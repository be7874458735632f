"""The cohort's EGFR "biology" (PHANTOM.md table): one source of truth for drawing lesion features
and for the exact likelihood the Bayes-limit estimate needs, so the two can never disagree."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..distributions import count_logpmf, draw_count, uniform_logpdf

P_MUTANT = 0.55
MAX_LESIONS = 8
NECROSIS_MIN_DIAMETER_MM = 10.0
LABELS = ("mutant", "wild-type")


@dataclass(frozen=True)
class Biology:
    """Label-dependent generative distributions of one EGFR class."""

    extra_lesions_mean: float  # lesion count = 1 + Poisson(mean), truncated at MAX_LESIONS
    diameter_median_mm: float  # log-normal, clipped to diameter_clip_mm
    diameter_sigma_log: float
    diameter_clip_mm: tuple[float, float]
    necrosis_probability: float  # only for diameter >= NECROSIS_MIN_DIAMETER_MM
    oedema_extent: tuple[float, float]  # uniform, x radius beyond the rim
    texture: tuple[float, float]  # uniform, std/mean of the enhancement


BIOLOGY: dict[str, Biology] = {
    "mutant": Biology(extra_lesions_mean=1.4, diameter_median_mm=11.0, diameter_sigma_log=0.45, diameter_clip_mm=(3.0, 35.0),
                      necrosis_probability=0.25, oedema_extent=(0.3, 1.3), texture=(0.04, 0.14)),
    "wild-type": Biology(extra_lesions_mean=0.8, diameter_median_mm=15.0, diameter_sigma_log=0.45, diameter_clip_mm=(3.0, 40.0),
                         necrosis_probability=0.55, oedema_extent=(0.5, 1.8), texture=(0.06, 0.18)),
}


@dataclass(frozen=True)
class LesionBiology:
    """The label-carrying features of one lesion (what the Bayes classifier sees)."""

    diameter_mm: float
    necrotic: bool
    oedema_extent: float
    texture: float


def draw_egfr(rng: np.random.Generator) -> str:
    return "mutant" if rng.random() < P_MUTANT else "wild-type"


def draw_biology(rng: np.random.Generator, egfr: str) -> list[LesionBiology]:
    """Lesion features of one patient given the label; the only sampler of the table."""
    bio = BIOLOGY[egfr]
    count = draw_count(rng, bio.extra_lesions_mean, MAX_LESIONS)  # truncation (rejection), not clipping
    lo, hi = bio.diameter_clip_mm
    lesions = []
    for _ in range(count):
        d = float(np.clip(bio.diameter_median_mm * math.exp(bio.diameter_sigma_log * rng.standard_normal()), lo, hi))
        necrotic_draw = rng.random()  # drawn always so the stream does not depend on the diameter
        lesions.append(LesionBiology(
            diameter_mm=d,
            necrotic=bool(d >= NECROSIS_MIN_DIAMETER_MM and necrotic_draw < bio.necrosis_probability),
            oedema_extent=float(rng.uniform(*bio.oedema_extent)),
            texture=float(rng.uniform(*bio.texture)),
        ))
    return lesions


def _log_norm_cdf(z: float) -> float:
    return math.log(max(0.5 * math.erfc(-z / math.sqrt(2.0)), 1e-300))


def log_likelihood(lesions: list[LesionBiology], egfr: str) -> tuple[int, float]:
    """Exact likelihood of the features under one class as (atoms, log value).

    Clipped diameters are point masses; a point mass outweighs any density, so likelihoods are
    compared first by the number of atoms hit, then by the log value.
    """
    bio = BIOLOGY[egfr]
    logp = count_logpmf(len(lesions), bio.extra_lesions_mean, MAX_LESIONS)
    if logp == -math.inf:
        return 0, -math.inf
    atoms = 0
    lo, hi = bio.diameter_clip_mm
    mu, s = math.log(bio.diameter_median_mm), bio.diameter_sigma_log
    for les in lesions:
        d = les.diameter_mm
        if d == lo:
            atoms += 1
            logp += _log_norm_cdf((math.log(lo) - mu) / s)
        elif d == hi:
            atoms += 1
            logp += _log_norm_cdf(-(math.log(hi) - mu) / s)
        elif lo < d < hi:
            z = (math.log(d) - mu) / s
            logp += -0.5 * z * z - math.log(d * s * math.sqrt(2.0 * math.pi))
        else:
            return 0, -math.inf
        if d >= NECROSIS_MIN_DIAMETER_MM:
            p = bio.necrosis_probability
            logp += math.log(p if les.necrotic else 1.0 - p)
        elif les.necrotic:
            return 0, -math.inf
        logp += uniform_logpdf(les.oedema_extent, bio.oedema_extent)
        logp += uniform_logpdf(les.texture, bio.texture)
    return atoms, logp


def bayes_call(lesions: list[LesionBiology]) -> str:
    """Posterior-maximising label given the true features (posterior(mutant) > 0.5)."""
    am, lm = log_likelihood(lesions, "mutant")
    aw, lw = log_likelihood(lesions, "wild-type")
    if lm == -math.inf or lw == -math.inf or am == aw:
        return "mutant" if math.log(P_MUTANT) + lm > math.log(1.0 - P_MUTANT) + lw else "wild-type"
    return "mutant" if am > aw else "wild-type"


def best_possible_accuracy(n_patients: int = 20000, seed: int = 0) -> float:
    """Monte-Carlo accuracy of the Bayes classifier on patients drawn like generate_case draws them."""
    rng = np.random.default_rng(seed)
    correct = 0
    for _ in range(n_patients):
        egfr = draw_egfr(rng)
        correct += bayes_call(draw_biology(rng, egfr)) == egfr
    return correct / n_patients

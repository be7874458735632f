"""Patient-level EGFR call from per-slice probabilities, as the paper does it (Zhou et al. 2023, Fig. 5).

Slices are ranked by predicted GTV area; the mean mutation probability of the upper 50% of the
slices that show GTV is the patient's probability; mutant if it exceeds the threshold. Without
any predicted GTV there is no tumour to read the genotype from: the call is indeterminate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def aggregate_top_area_half(
    areas_mm2: Mapping[int, float], probabilities: Mapping[int, float], threshold: float = 0.5
) -> dict:
    """Return {"probability", "call", "threshold", "slices_used"} for one patient."""
    with_gtv = sorted((z for z, a in areas_mm2.items() if a > 0 and z in probabilities), key=lambda z: (-areas_mm2[z], z))
    if not with_gtv:
        return {"probability": None, "call": "indeterminate", "threshold": threshold, "slices_used": []}
    used = with_gtv[: math.ceil(len(with_gtv) / 2)]
    probability = float(sum(probabilities[z] for z in used) / len(used))
    return {
        "probability": probability,
        "call": "mutant" if probability > threshold else "wild-type",
        "threshold": threshold,
        "slices_used": sorted(int(z) for z in used),
    }

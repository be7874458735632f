"""The phantom's appearance: textbook draws stay within PHANTOM.md, randomised ones are wide but keep
tumour enhancing, and randomising the look never changes the label-carrying biology."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("nilearn")

from training.phantoms.brain.appearance import ENHANCEMENT, NECROSIS, OEDEMA, randomised, textbook  # noqa: E402
from training.phantoms.brain.generate import PhantomConfig, generate_case  # noqa: E402

CHEAP = PhantomConfig(max_matrix=96)


def test_textbook_is_phantom_md() -> None:
    for seed in range(50):
        look = textbook(np.random.default_rng(seed))
        assert look.textbook and 0.58 <= look.gm <= 0.72 and 0.12 <= look.csf <= 0.25 and look.patchiness == 0.0
        assert (look.enhancement, look.necrosis, look.oedema) == (ENHANCEMENT, NECROSIS, OEDEMA)


def test_randomised_looks_are_wide_and_tumour_always_enhances() -> None:
    looks = [randomised(np.random.default_rng(seed)) for seed in range(400)]
    gm = np.array([look.gm for look in looks])
    assert gm.min() < 0.3 and gm.max() > 1.2  # orderings beyond the textbook: grey matter darker or brighter than white
    low = np.array([look.enhancement[0] for look in looks])
    assert low.min() < 1.3 and max(look.enhancement[1] for look in looks) > 3.0
    peak = np.array([look.enhancement[1] / look.brightest_tissue for look in looks])
    assert (peak < 1.3).mean() > 0.2  # faint lesions like tcga-fg-6692's are common, not a tail
    for look in looks:
        assert look.enhancement[0] > 1.02 * look.brightest_tissue  # brighter than any parenchyma around it
        assert look.necrosis[1] < look.enhancement[0] and not look.textbook


def test_randomising_the_look_keeps_the_biology() -> None:
    plain = generate_case(4, "internal", config=CHEAP)
    wide = generate_case(4, "internal", config=PhantomConfig(max_matrix=96, domain_randomisation=1.0))
    assert wide.acquisition["appearance"] == "randomised" and plain.acquisition["appearance"] == "textbook"
    keys = ("diameter_mm", "necrotic", "oedema_extent", "texture", "region", "centre_lps", "axes_mm", "rim_mm")
    assert plain.egfr == wide.egfr
    assert [{k: les[k] for k in keys} for les in plain.lesions] == [{k: les[k] for k in keys} for les in wide.lesions]


def test_restyling_changes_the_lesions_look_only() -> None:
    """The look probe (benchmarks/lesion_look_probe.py) compares the same patients: restyle must keep every draw."""
    plain = generate_case(4, "internal", config=CHEAP)
    brighter = generate_case(4, "internal", config=CHEAP, restyle=lambda look: dataclasses.replace(look, enhancement=(3.0, 3.0)))
    mask = sitk.GetArrayFromImage(plain.mask) > 0
    assert np.array_equal(mask, sitk.GetArrayFromImage(brighter.mask) > 0) and mask.any()
    assert [les["enhancement"] for les in brighter.lesions] == [3.0] * len(plain.lesions)
    a, b = (sitk.GetArrayFromImage(case.image).astype(float) for case in (plain, brighter))
    assert b[mask].mean() > a[mask].mean() * 1.3  # the lesions changed ...
    assert (a == b).mean() > 0.9  # ... and most of the image did not


def test_patchy_enhancement_leaves_parts_of_the_lesion_at_the_core_level() -> None:
    """Patches (tcga-fg-6692) leave parts of the lesion at its core level; the GTV and the rest of the image stay."""
    def look(patchiness: float):
        return lambda look: dataclasses.replace(look, enhancement=(1.5, 1.5), necrosis=(1.0, 1.0), patchiness=patchiness)

    solid, patchy = (generate_case(4, "internal", config=CHEAP, restyle=look(p)) for p in (0.0, 1.0))
    mask = sitk.GetArrayFromImage(solid.mask) > 0
    assert np.array_equal(mask, sitk.GetArrayFromImage(patchy.mask) > 0)
    a, b = (sitk.GetArrayFromImage(case.image).astype(float) for case in (solid, patchy))
    assert b[mask].mean() < 0.96 * a[mask].mean() and (a == b).mean() > 0.9  # (0.92 on this 96-voxel grid)

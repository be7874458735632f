"""The synthetic cohort (PHANTOM.md): determinism, geometry, appearance, files and biology."""

import csv

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

pytest.importorskip("nilearn")

from training.phantoms.brain.anatomy import load_anatomy  # noqa: E402
from training.phantoms.brain.generate import (  # noqa: E402
    PhantomConfig,
    best_possible_accuracy,
    draw_biology,
    generate_case,
)
from training.phantoms.registry import write_cohort  # noqa: E402
from training.phantoms.brain.generate import SITES  # noqa: E402
from training.phantoms.scanner import draw_acquisition  # noqa: E402

CHEAP = PhantomConfig(max_matrix=128, vessels=(20, 30))


@pytest.fixture(scope="module")
def case():
    return generate_case(3, "internal", egfr="wild-type", config=CHEAP)


def test_same_seed_same_case(case):
    again = generate_case(3, "internal", egfr="wild-type", config=CHEAP)
    assert np.array_equal(sitk.GetArrayFromImage(case.image), sitk.GetArrayFromImage(again.image))
    assert np.array_equal(sitk.GetArrayFromImage(case.mask), sitk.GetArrayFromImage(again.mask))
    assert case.lesions == again.lesions


def test_mask_is_uint8_on_image_grid(case):
    assert case.mask.GetPixelID() == sitk.sitkUInt8
    for attr in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(case.mask, attr)() == pytest.approx(getattr(case.image, attr)())
    assert set(np.unique(sitk.GetArrayFromImage(case.mask))) <= {0, 1}
    assert case.egfr == "wild-type" and case.lesions


def test_lesion_enhances_and_oedema_is_outside_mask(case):
    image = sitk.GetArrayFromImage(case.image).astype(float)
    mask = sitk.GetArrayFromImage(case.mask).astype(bool)
    assert mask.sum() > 20
    assert np.percentile(image[mask], 75) > case.wm_intensity  # enhancing rim / solid part above WM
    shell = ndimage.binary_dilation(mask, iterations=2) & ~mask
    assert np.median(image[shell]) < np.median(image[mask])  # the darker halo stays out of the GTV
    for lesion in case.lesions:
        assert {"diameter_mm", "necrotic", "oedema_extent", "texture", "centre_lps"} <= lesion.keys()


def test_external_geometry_varies_within_ranges():
    points = load_anatomy().head_points
    spec = SITES["external"]
    acqs = [draw_acquisition(np.random.default_rng(s), SITES["external"], points, None) for s in range(60)]
    assert any(not np.allclose(np.abs(a.direction), np.eye(3)) for a in acqs)
    for a in acqs:
        assert spec.in_plane_mm[0] <= a.in_plane_mm <= spec.in_plane_mm[1]
        assert spec.thickness_mm[0] <= a.thickness_mm <= spec.thickness_mm[1]
        assert 192 <= a.matrix <= 512
        assert np.allclose(a.direction.T @ a.direction, np.eye(3))
    internal = draw_acquisition(np.random.default_rng(0), SITES["internal"], points, None)
    assert internal.matrix == 256 and internal.thickness_mm == 1.0 and np.allclose(internal.direction, np.eye(3))


def test_cohort_files(tmp_path):
    path = write_cohort(tmp_path, 1, site="external", seed=1, config=CHEAP)
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["case_id", "image", "mask", "egfr", "site", "acquired"]
    row = rows[0]
    assert row["egfr"] in ("mutant", "wild-type") and row["site"] == "external" and "2018" <= row["acquired"][:4] <= "2022"
    assert sitk.ReadImage(str(tmp_path / row["mask"])).GetSize() == sitk.ReadImage(str(tmp_path / row["image"])).GetSize()
    with pytest.raises(FileExistsError):
        write_cohort(tmp_path, 1, site="external", seed=1, config=CHEAP)


def test_bayes_limit():
    assert 0.85 <= best_possible_accuracy(n_patients=3000, seed=1) <= 0.97


def test_biology_separates_labels():
    rng = np.random.default_rng(0)
    counts = {label: np.mean([len(draw_biology(rng, label)) for _ in range(2000)]) for label in ("mutant", "wild-type")}
    assert counts["mutant"] > counts["wild-type"]
    sizes = [les.diameter_mm for _ in range(500) for les in draw_biology(rng, "mutant")]
    assert 3.0 <= min(sizes) and max(sizes) <= 35.0


def test_training_randomisation_knobs(case):
    """Thick slices and large cysts are drawn from their own stream: with both off, the case is
    unchanged; with both on, the scan is thick-sliced and the unlabelled cyst, its fluid core as
    dark as CSF, is in the mask."""
    off = generate_case(3, "internal", egfr="wild-type", config=CHEAP)
    assert np.array_equal(sitk.GetArrayFromImage(off.image), sitk.GetArrayFromImage(case.image))
    config = PhantomConfig(max_matrix=128, vessels=(20, 30), thick_slice_probability=1.0, large_cyst_probability=1.0)
    on = generate_case(3, "internal", egfr="wild-type", config=config)
    thickness = on.acquisition["thickness_mm"]
    assert SITES["external"].thickness_mm[0] <= thickness <= SITES["external"].thickness_mm[1] and thickness != 1.0
    assert on.egfr == "" and len(on.lesions) == len(case.lesions) + 1
    cyst = max(on.lesions, key=lambda les: les["diameter_mm"])
    assert cyst["diameter_mm"] >= 25.0 and cyst["necrotic"] and cyst["core_level"] <= 0.35
    assert all(les["core_level"] >= 0.3 for les in on.lesions if les is not cyst)  # solid metastases' cores as before
    voxel_ml = np.prod(on.mask.GetSpacing()) / 1000
    assert sitk.GetArrayFromImage(on.mask).sum() * voxel_ml > 0.3 * np.pi / 6 * (cyst["diameter_mm"] / 10) ** 3


def test_small_lesions_are_added_unlabelled_and_leave_the_rest_of_the_case(case):
    """The extra small metastases are solid, 3-7 mm, in the GTV, and take the case out of the EGFR table;
    the table's own lesions keep their sizes and the scan its grid (the extra stream moves nothing else)."""
    on = generate_case(3, "internal", egfr="wild-type", config=PhantomConfig(max_matrix=128, vessels=(20, 30),
                                                                              small_lesion_probability=1.0))
    own, extra = on.lesions[:len(case.lesions)], on.lesions[len(case.lesions):]
    assert [les["diameter_mm"] for les in own] == [les["diameter_mm"] for les in case.lesions]
    assert 1 <= len(extra) <= 3 and all(3.0 <= les["diameter_mm"] <= 7.0 and not les["necrotic"] for les in extra)
    assert on.egfr == "" and on.acquisition == case.acquisition
    assert sitk.GetArrayFromImage(on.mask).sum() > sitk.GetArrayFromImage(case.mask).sum()


def test_parasagittal_lesions_sit_beside_the_midline():
    """With the share at 1 every lesion's centre is within its (slack) radius + 4 mm of the midsagittal
    plane; at 0 nothing is drawn for it, so existing cohorts keep their lesions, which mostly sit further out."""
    from training.phantoms.brain.lesions import SIZE_SLACK, place_lesions

    anat = load_anatomy()
    biology = draw_biology(np.random.default_rng(0), "mutant") * 2
    limits = np.array([b.diameter_mm / 2 * SIZE_SLACK + 4.0 for b in biology])

    def midline_mm(centres):
        return np.abs(anat.index_to_lps(np.array([c for c, _ in centres]))[:, 0])

    assert np.all(midline_mm(place_lesions(anat, np.random.default_rng(1), biology, parasagittal=1.0)) <= limits)
    off_rng, tiny_rng = np.random.default_rng(1), np.random.default_rng(1)
    off = place_lesions(anat, off_rng, biology)
    place_lesions(anat, tiny_rng, biology, parasagittal=1e-12)  # draws for every lesion, never places one medially
    assert off_rng.bit_generator.state != tiny_rng.bit_generator.state  # so at 0 the stream is the one before the knob
    assert np.any(midline_mm(off) > limits)


def test_periventricular_lesions_abut_the_ventricles():
    """With the share at 1 every lesion's centre lies its (slack) radius to radius + 4 mm from a ventricle, so it
    abuts the ventricle without filling it; at 0 nothing is drawn for it, and lesions mostly sit further away."""
    from training.phantoms.brain.lesions import SIZE_SLACK, place_lesions

    anat = load_anatomy()
    biology = draw_biology(np.random.default_rng(0), "mutant") * 2
    radii = np.array([b.diameter_mm / 2 * SIZE_SLACK for b in biology])

    def ventricle_mm(centres):
        return np.array([anat.ventricle_mm[tuple(c.astype(int))] for c, _ in centres])  # centres are voxels

    near = ventricle_mm(place_lesions(anat, np.random.default_rng(1), biology, periventricular=1.0))
    assert np.all((near >= radii) & (near <= radii + 4.0))
    off_rng, tiny_rng = np.random.default_rng(1), np.random.default_rng(1)
    off = place_lesions(anat, off_rng, biology)
    place_lesions(anat, tiny_rng, biology, periventricular=1e-12)
    assert off_rng.bit_generator.state != tiny_rng.bit_generator.state
    assert np.any(ventricle_mm(off) > radii + 4.0)


def test_clear_falx_keeps_every_lesion_off_the_falx():
    """By default about one lesion in fourteen is centred closer to the falx than its radius, so it crosses the
    midline, as no metastasis does; with ``clear_falx`` none comes within its radius + 1 mm, in the cohort too."""
    from training.phantoms.brain.lesions import SIZE_SLACK, place_lesions

    anat = load_anatomy()
    rng = np.random.default_rng(3)
    patients = [draw_biology(rng, "mutant") for _ in range(30)]

    def clearance(clear: bool) -> np.ndarray:  # mm from the falx beyond each lesion's (slack) radius
        return np.concatenate([[anat.falx_mm[tuple(c.astype(int))] - b.diameter_mm / 2 * SIZE_SLACK
                                for (c, _), b in zip(place_lesions(anat, np.random.default_rng(4), bio, clear_falx=clear), bio)]
                               for bio in patients])

    assert np.any(clearance(False) < 0.0)
    assert np.all(clearance(True) >= 1.0)
    crossing, clear = (generate_case(0, "internal", config=PhantomConfig(max_matrix=64, vessels=(20, 30), clear_falx=c)).lesions[0]
                       for c in (False, True))  # a patient whose one lesion crosses the midline by default
    assert abs(crossing["centre_lps"][0]) < crossing["diameter_mm"] / 2 < abs(clear["centre_lps"][0])

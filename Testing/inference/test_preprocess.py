"""Geometry: the model grid is physical, so storage order never changes the answer, and the inverse is exact."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import BrightnessNet, lesion_volume
from MTSASegmenterLib.config import (
    DEFAULT_TASKS,
    ModelInfo,
    NetConfig,
    PreprocessConfig,
)
from MTSASegmenterLib.inference.pipeline import predict_volume
from MTSASegmenterLib.inference.preprocess import (
    IntensityStats,
    ModelGrid,
    normalise,
    stack_context,
)
from MTSASegmenterLib.metrics import dice
from MTSASegmenterLib.model.checkpoint import LoadedModel, load_checkpoint
from MTSASegmenterLib.resources import demo_model_path

PREP = PreprocessConfig(spacing_mm=1.0, input_size=128, min_slice_mm=1.0)


def brightness_model() -> LoadedModel:
    return LoadedModel(
        net=BrightnessNet(), net_config=NetConfig(in_channels=3, input_size=128), preprocess=PREP,
        tasks=list(DEFAULT_TASKS), info=ModelInfo(), sha256="", path=Path("brightness-rule"), extra={},
    )


def rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    a = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def storage_variants(image: sitk.Image) -> dict[str, sitk.Image]:
    """The same physical volume stored in other orientations and axis orders (voxels unchanged)."""
    return {
        "axial LPS": image,
        "sagittal order": sitk.PermuteAxes(image, [2, 0, 1]),
        "coronal order": sitk.PermuteAxes(image, [0, 2, 1]),
        "flipped RAS-like": sitk.Flip(image, [True, True, False]),
        "permuted and flipped": sitk.Flip(sitk.PermuteAxes(image, [1, 2, 0]), [False, True, True]),
    }


def oblique(image: sitk.Image, degrees: float = 15.0) -> sitk.Image:
    """Resampled onto a grid tilted about an oblique axis, as an oblique acquisition would be."""
    ref = sitk.Image([80, 80, 48], sitk.sitkFloat32)
    direction = rotation(np.array([1.0, 0.5, 0.2]), degrees)
    ref.SetDirection(direction.ravel().tolist())
    ref.SetSpacing((1.3, 1.3, 2.2))
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in image.GetSize()]))
    half = direction @ (np.array([79, 79, 47]) * np.array(ref.GetSpacing()) / 2)
    ref.SetOrigin((centre - half).tolist())
    return sitk.Resample(image, ref, sitk.Transform(), sitk.sitkLinear, 0.0)


def on_grid(mask: sitk.Image, reference: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.Resample(mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0))


def test_storage_order_and_orientation_do_not_change_the_mask(tmp_path):
    image, truth = lesion_volume()
    model = brightness_model()
    reference = predict_volume(image, model).mask
    assert dice(on_grid(reference, image), sitk.GetArrayFromImage(truth)) >= 0.9
    for name, variant in storage_variants(image).items():
        # through the files as well: NIfTI stores RAS, NRRD stores LPS
        for suffix in (".nii.gz", ".nrrd"):
            path = tmp_path / f"v{suffix}"
            sitk.WriteImage(variant, str(path))
            mask = predict_volume(sitk.ReadImage(str(path)), model).mask
            assert mask.GetSize() == variant.GetSize(), name
            score = dice(on_grid(mask, image), on_grid(reference, image))
            assert score >= 0.98, f"{name} {suffix}: Dice {score:.3f}"


def test_oblique_acquisition_agrees_in_physical_space():
    image, truth = lesion_volume()
    tilted = oblique(image)
    mask = predict_volume(tilted, brightness_model()).mask
    assert np.allclose(mask.GetDirection(), tilted.GetDirection())
    score = dice(on_grid(mask, image), sitk.GetArrayFromImage(truth))
    assert score >= 0.85, f"oblique Dice with the truth {score:.3f}"


def test_mask_round_trip_through_the_model_grid_is_exact_on_matching_grids():
    image, truth = lesion_volume(spacing=(1.0, 1.0, 2.0))
    grid = ModelGrid.for_image(image, PreprocessConfig(spacing_mm=1.0, input_size=128, min_slice_mm=1.0))
    assert grid.reference.GetSpacing()[2] == 2.0  # an axial scan keeps its own slices
    back = grid.grid_to_image(grid.mask_to_grid(truth).astype(np.float32), image) >= 0.5
    assert dice(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(truth)) == 1.0


def test_grid_is_centred_on_tissue_and_keeps_the_physical_slice_positions():
    image, _ = lesion_volume(spacing=(1.0, 1.0, 2.0))
    grid = ModelGrid.for_image(image, PREP)
    z_native = {round(image.TransformIndexToPhysicalPoint((0, 0, k))[2], 6) for k in range(image.GetSize()[2])}
    assert {round(z, 6) for z in grid.slice_positions_mm} <= z_native
    centre = grid.reference.TransformContinuousIndexToPhysicalPoint([63.5, 63.5, 0])
    assert abs(centre[0]) < 1.0 and abs(centre[1]) < 1.0


def test_normalisation_does_not_depend_on_the_scanner_scale():
    image, _ = lesion_volume(scale=1.0)
    scaled = sitk.Cast(image * 3000.0, sitk.sitkInt16)
    a = ModelGrid.for_image(image, PREP).image_to_grid(image)
    b = ModelGrid.for_image(scaled, PREP).image_to_grid(scaled)
    assert np.abs(a - b).max() < 0.01


def test_thick_slices_set_the_slice_spacing_and_thin_ones_are_capped():
    image, _ = lesion_volume(spacing=(0.9, 0.9, 6.5), size=(96, 110, 14))
    assert ModelGrid.for_image(image, PREP).reference.GetSpacing()[2] == pytest.approx(6.5)
    thin, _ = lesion_volume(spacing=(0.5, 0.5, 0.5), size=(80, 80, 80))
    assert ModelGrid.for_image(thin, PREP).reference.GetSpacing()[2] == pytest.approx(1.0)


def test_slices_thicker_than_max_slice_mm_are_interpolated_and_keep_their_own_positions():
    image, truth = lesion_volume(spacing=(1.0, 1.0, 6.5), size=(96, 110, 14))
    grid = ModelGrid.for_image(image, PreprocessConfig(spacing_mm=1.0, input_size=128, min_slice_mm=1.0, max_slice_mm=3.0))
    assert grid.reference.GetSpacing()[2] == pytest.approx(6.5 / 3) and grid.slice_step == 3  # native / ceil(native / 3)
    z_model = {round(z, 6) for z in grid.slice_positions_mm}
    tissue_slices = np.flatnonzero(sitk.GetArrayViewFromImage(image).max(axis=(1, 2)) > 100)
    assert {round(image.TransformIndexToPhysicalPoint((0, 0, int(k)))[2], 6) for k in tissue_slices} <= z_model
    back = grid.grid_to_image(grid.mask_to_grid(truth).astype(np.float32), image) >= 0.5
    assert dice(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(truth)) == 1.0
    # Through the pipeline: a one-slice rule sees the acquired slices as before, so its GTV comes back unchanged
    # on the input grid, after three times the slices.
    plain, capped = brightness_model(), replace(brightness_model(), preprocess=replace(PREP, max_slice_mm=3.0))
    masks = [sitk.GetArrayFromImage(predict_volume(image, m).mask) for m in (plain, capped)]
    assert masks[0].any() and np.array_equal(masks[0], masks[1])
    assert capped.net.slices_seen > 2 * plain.net.slices_seen
    thin, _ = lesion_volume(spacing=(1.0, 1.0, 2.5))
    thin_grid = ModelGrid.for_image(thin, grid.cfg)
    assert thin_grid.reference.GetSpacing()[2] == pytest.approx(2.5) and thin_grid.slice_step == 1  # under the limit: native
    with pytest.raises(ValueError, match="max_slice_mm"):
        PreprocessConfig(min_slice_mm=2.0, max_slice_mm=1.5)
    assert PreprocessConfig.from_dict({k: v for k, v in grid.cfg.to_dict().items() if k != "max_slice_mm"}).max_slice_mm == 0.0


def test_normalise_clips_and_stack_context_repeats_edges():
    values = normalise(np.array([-5.0, 0.0, 100.0, 1e6]), IntensityStats(scale=100.0), PREP)
    assert values.tolist() == [0.0, 0.0, 1.0, PREP.clip_max]
    volume = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((4, 2, 2), np.float32)
    stack = stack_context(volume, np.array([0, 3]), 1)
    assert stack.shape == (2, 3, 2, 2)
    assert stack[0, :, 0, 0].tolist() == [0, 0, 1] and stack[1, :, 0, 0].tolist() == [2, 3, 3]


def _head_in_air(noise_sigma: float, seed: int = 0) -> sitk.Image:
    """A wide field of view: a ball of tissue (white matter 100, a grey shell 70, a dark core 30: CSF) in Rayleigh-noisy air."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:40, :200, :200]
    r = np.sqrt(((z - 20) * 3.0) ** 2 + (y - 100.0) ** 2 + (x - 100.0) ** 2)
    tissue = np.select([r < 10, r < 35, r < 45], [30.0, 100.0, 70.0], 0.0)
    air = noise_sigma * np.sqrt(rng.standard_normal(r.shape) ** 2 + rng.standard_normal(r.shape) ** 2)
    return sitk.GetImageFromArray(np.where(r < 45, tissue + rng.normal(0, 2, r.shape), air).astype(np.float32))


def test_the_tissue_median_ignores_the_noise_of_a_wide_field_of_view():
    """Air noise up to a tenth of the bright level once counted as tissue: the median fell to the noise, the head saturated."""
    clean = IntensityStats.of(_head_in_air(0.0)).scale  # grey shell and white matter: between 70 and 100
    assert 65.0 < clean < 100.0
    for sigma in (2.0, 8.0, 12.0):
        assert IntensityStats.of(_head_in_air(sigma)).scale == pytest.approx(clean, rel=0.06), sigma
    clean_grid = ModelGrid.for_image(_head_in_air(0.0), PREP).reference
    noisy_grid = ModelGrid.for_image(_head_in_air(6.0), PREP).reference  # boxed around the head, not the noise
    assert noisy_grid.GetSize() == clean_grid.GetSize() == (128, 128, 29)
    assert np.allclose(noisy_grid.GetOrigin(), clean_grid.GetOrigin(), atol=1.0)
    volume = sitk.GetArrayFromImage(_head_in_air(12.0))
    high = float(np.percentile(volume, 99.0))
    naive = float(np.median(volume[volume > 0.1 * high]))  # the rule before: a tenth of the bright level only
    assert naive < 0.5 * clean


def test_ct_window_and_percentile_normalisations():
    """CT: Hounsfield units through a fixed window, air outside the body box; MR by percentiles:
    the same anatomy at another scale normalises the same."""
    image, _ = lesion_volume(scale=1.0)
    hu = sitk.GetArrayFromImage(image)
    hu = np.where(hu > 0, 50.0 + 100.0 * (hu - 1.0), -1000.0).astype(np.float32)  # liver-like tissue, air around
    ct = sitk.GetImageFromArray(hu)
    ct.CopyInformation(image)
    cfg = PreprocessConfig(spacing_mm=2.0, input_size=64, normalisation="ct_window", window=(-100.0, 250.0), clip_max=1.0)
    grid = ModelGrid.for_image(ct, cfg)
    assert (grid.stats.offset, grid.stats.scale) == (-100.0, 350.0)
    volume = grid.image_to_grid(ct)
    assert volume.max() <= 1.0 and np.median(volume[volume > 0.2]) == pytest.approx(150 / 350, abs=0.02)
    mr = PreprocessConfig(spacing_mm=2.0, input_size=64, normalisation="percentile", percentiles=(1.0, 99.0))
    a = ModelGrid.for_image(image, mr)
    shifted = sitk.Cast(image * 7.0, sitk.sitkFloat32)
    b = ModelGrid.for_image(shifted, mr)
    np.testing.assert_allclose(a.image_to_grid(image), b.image_to_grid(shifted), atol=1e-3)
    with pytest.raises(ValueError, match="normalisation"):
        PreprocessConfig(normalisation="zscore")
    with pytest.raises(ValueError, match="gamma_views"):  # a power about 1 means something only for a tissue-median volume
        PreprocessConfig(normalisation="percentile", gamma_views=(1.5,))
    with pytest.raises(ValueError, match="gamma_views"):
        PreprocessConfig(gamma_views=(0.0,))
    assert PreprocessConfig.from_dict(PreprocessConfig(gamma_views=(1.5, 2.0)).to_dict()).gamma_views == (1.5, 2.0)


def _scan_with_csf(seed: int = 0) -> tuple[sitk.Image, sitk.Image]:
    """A skull-stripped-like scan (0 outside): CSF 30, white matter 100, a grey shell 70, a lesion 250, and its mask."""
    image = _head_in_air(0.0, seed)
    values = sitk.GetArrayFromImage(image)
    z, y, x = np.mgrid[: values.shape[0], : values.shape[1], : values.shape[2]]
    lesion = ((z - 20) * 3.0) ** 2 + (y - 100.0) ** 2 + (x - 122.0) ** 2 < 8.0**2
    values[lesion] = 250.0
    return sitk.GetImageFromArray(values), sitk.GetImageFromArray(lesion.astype(np.uint8))


def test_signed_offset_and_z_scored_copies_of_a_scan_are_read_as_the_scan():
    """The tissue median is a ratio to 0: with the background at -1000, scaled to [-1, 1] or z-scored, every lesion
    was lost (brats-met-00110: 0 of 28 mL). The signal-free level is found instead; a plain scan is read as before."""
    image, lesion = _scan_with_csf()
    values = sitk.GetArrayFromImage(image)
    plain = ModelGrid.for_image(image, PREP)
    assert (plain.stats.zero, plain.stats.fill) == (0.0, None)
    inside = values > 0
    z_scored = np.where(inside, (values - values[inside].mean()) / values[inside].std(), 0.0)
    undershoot = ~inside & (np.arange(values.size).reshape(values.shape) % 997 == 0)
    copies = {  # name: (voxels, largest difference allowed on the model grid)
        "background at -1000": (values - 1000.0, 1e-4),
        "background at -1000, a few voxels below it": (np.where(undershoot, -1003.0, values - 1000.0), 0.05),  # -3 beside tissue
        "scaled to [-1, 1]": (values / values.max() * 2.0 - 1.0, 1e-4),
        "z-scored inside its mask, 0 outside": (z_scored, None),  # zero lost: CSF's low tail is read as none
    }
    expected = plain.image_to_grid(image)
    lesion_grid = plain.mask_to_grid(lesion) > 0
    for name, (copy, tolerance) in copies.items():
        other = sitk.GetImageFromArray(copy.astype(np.float32))
        grid = ModelGrid.for_image(other, PREP)
        assert grid.reference.GetSize() == plain.reference.GetSize(), name
        assert np.allclose(grid.reference.GetOrigin(), plain.reference.GetOrigin()), name
        volume = grid.image_to_grid(other)
        if tolerance is not None:
            assert np.abs(volume - expected).max() < tolerance, name
        assert np.median(np.abs(volume - expected)[expected > PREP.tissue_threshold]) < 0.05, name
        assert volume[lesion_grid].min() > 1.8 > np.percentile(volume[~lesion_grid], 99.9), name
    assert ModelGrid.for_image(sitk.GetImageFromArray(z_scored.astype(np.float32)), PREP).stats.fill == 0.0
    noisy = np.where(inside, values, np.random.default_rng(1).normal(0.0, 3.0, values.shape)).astype(np.float32)
    assert IntensityStats.of(sitk.GetImageFromArray(noisy)).zero == 0.0  # Gaussian air about 0: no shift


def test_the_bundled_model_reads_a_real_scan_stored_signed_or_z_scored_as_the_scan(real_data):
    """brats-met-00110 (0 outside its brain mask) with its background at -1000, and z-scored inside the mask:
    the GTV as on the scan itself (before: 0 and 1.8 of 28 mL), and the report says how the scan was read."""
    image = sitk.ReadImage(str(real_data / "brats-met-00110" / "BraTS-MET-00110-000-t1c.nii.gz"), sitk.sitkFloat32)
    values = sitk.GetArrayFromImage(image)
    inside = values > 0
    model = load_checkpoint(demo_model_path())
    plain = predict_volume(image, model, device="cpu")
    assert plain.report.input.cautions() == [] and plain.report.gtv.volume_ml > 20.0
    for copy, outside in ((values - 1000.0, ""), (np.where(inside, (values - values[inside].mean()) / values[inside].std(), 0.0), "0")):
        other = sitk.GetImageFromArray(copy.astype(np.float32))
        other.CopyInformation(image)
        result = predict_volume(other, model, device="cpu")
        assert result.report.gtv.volume_ml == pytest.approx(plain.report.gtv.volume_ml, rel=0.05)
        assert dice(sitk.GetArrayFromImage(result.mask) > 0, sitk.GetArrayFromImage(plain.mask) > 0) > 0.95
        (caution,) = result.report.input.cautions()
        assert caution.startswith("not stored as MR magnitudes (signed, offset or z-scored data)")
        assert (f"{outside} outside its mask" in caution) == bool(outside)

"""cases.csv reading, patient-level splits, the slice cache and the slice Dataset (tiny stand-in volumes)."""

from __future__ import annotations

import csv
import os
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from helpers import read_rows, write_rows, write_tiny_cohort
from MTSASegmenterLib.config import (
    DEFAULT_TASKS,
    PreprocessConfig,
    TaskSpec,
    head_tasks,
)
from MTSASegmenterLib.errors import InputError

from training.data import slices
from training.data.cohort import Case, read_cohort, split_cohort
from training.data.slices import SliceCache, SliceDataset, select_slices

HEADS = head_tasks(DEFAULT_TASKS)
EGFR = HEADS[0]

TINY = PreprocessConfig(input_size=64, spacing_mm=1.0, context_slices=1)


def fake_cases(n: int, sites: tuple[str, ...] = ("internal",)) -> list[Case]:
    """Cases without files, for split logic only."""
    return [
        Case(f"p{i:03d}", Path(f"p{i}.nii.gz"), Path(f"p{i}_seg.nii.gz"), sites[i % len(sites)],
             date(2018, 8, 1) + timedelta(days=7 * i), {"egfr": ("wild-type", "mutant")[int(i % 3 != 0)]})
        for i in range(n)
    ]


def ids(cases) -> set[str]:
    return {c.case_id for c in cases}


def test_read_cohort(tmp_path: Path) -> None:
    folder = write_tiny_cohort(tmp_path / "cohort", n=3)
    cases = read_cohort(folder)
    assert [c.case_id for c in cases] == ["c0", "c1", "c2"]
    assert cases[0].labels["egfr"] == "mutant" and cases[1].labels["egfr"] == "wild-type" and cases[0].acquired == date(2020, 1, 1)
    assert cases[0].image == folder / "c0_img.nii.gz" and cases[0].image.exists()


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("image", "nowhere.nii.gz", "row 3: image file 'nowhere.nii.gz' of case 'c1' not found"),
        ("acquired", "01/02/2021", "row 3: acquired '01/02/2021' of case 'c1' is not an ISO date"),
        ("case_id", "c0", "row 3: duplicate case_id 'c0'"),
    ],
)
def test_read_cohort_errors_name_file_and_row(tmp_path: Path, column: str, value: str, message: str) -> None:
    folder = write_tiny_cohort(tmp_path / "cohort", n=2)
    rows = read_rows(folder / "cases.csv")
    rows[1][column] = value
    write_rows(folder / "cases.csv", rows)
    with pytest.raises(InputError, match="cases.csv: " + message.replace("(", r"\(")) as info:
        read_cohort(folder)
    assert "\n" not in str(info.value)


def test_a_bad_label_is_refused_by_the_head_that_reads_it(tmp_path: Path) -> None:
    """EGFR is a label column like any other: read as text, checked by its head (the split's stratification,
    the training targets), one line naming the case and the column."""
    cases = [replace(c, labels={**c.labels, "egfr": "positive" if c.case_id == "p001" else c.labels["egfr"]}) for c in fake_cases(10)]
    with pytest.raises(InputError, match="case 'p001': column 'egfr': 'positive' is not one of 'wild-type', 'mutant'"):
        split_cohort(cases, "random", stratify=EGFR)
    with pytest.raises(InputError, match="case 'p001': column 'egfr'"):
        cases[1].targets(HEADS)


def test_read_cohort_missing_column(tmp_path: Path) -> None:
    (tmp_path / "cases.csv").write_text("case_id,image,mask\n")
    with pytest.raises(InputError, match="missing column.*site, acquired"):
        read_cohort(tmp_path)
    with pytest.raises(InputError, match="no cases.csv"):
        read_cohort(tmp_path / "absent")


@pytest.mark.parametrize("kind", ["random", "temporal", "site"])
def test_no_patient_in_two_splits(kind: str) -> None:
    cases = fake_cases(188, sites=("internal", "internal", "internal", "linyi", "shanghai"))
    split = split_cohort(cases, kind, seed=3, stratify=EGFR)
    groups = [ids(split.train), ids(split.val), ids(split.test)]
    assert all(g for g in groups)
    assert sum(map(len, groups)) == len(cases) and set().union(*groups) == ids(cases)
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert split_cohort(cases, kind, seed=3, stratify=EGFR) == split  # seeded
    assert {c.labels["egfr"] for c in split.val} == {"wild-type", "mutant"}  # stratified draw keeps both classes
    summary = split.summary()
    assert summary["train"]["cases"] == len(split.train) and summary["kind"] == kind
    counts = [summary[g]["labels"]["egfr"] for g in ("train", "val", "test")]
    assert sum(c["mutant"] for c in counts) == sum(c.labels["egfr"] == "mutant" for c in cases)
    assert [sum(c.values()) for c in counts] == [len(split.train), len(split.val), len(split.test)]


def test_split_summary_counts_the_labels_of_other_heads() -> None:
    cases = [replace(c, labels={"response": ("response", "non-response")[i % 2], "ki67": "" if i == 0 else f"{i}.5", "site": c.site})
             for i, c in enumerate(fake_cases(40))]
    summary = split_cohort(cases, "random", seed=1).summary()
    groups = [summary[g]["labels"] for g in ("train", "val", "test")]
    assert sum(g["response"].get("response", 0) for g in groups) == 20 and sum(g["ki67"]["labelled"] for g in groups) == 39
    assert all(set(g) == {"response", "ki67"} for g in groups)  # site and date are not labels


def test_a_preset_cohort_is_stratified_by_its_own_head() -> None:
    """No EGFR labels; 8 of 40 patients do not respond: validation and test both get some."""
    cases = [replace(c, labels={"response": "non-response" if i % 5 == 0 else "response"}) for i, c in enumerate(fake_cases(40))]
    response = TaskSpec("Response", "binary", ("non-response", "response"))
    for seed in range(5):
        split = split_cohort(cases, "random", seed=seed, val_fraction=0.2, test_fraction=0.25, stratify=response)
        for group, expected in ((split.test, 2), (split.val, 1)):  # 8 x 10/40; 6 x 6/30 rounds to 1
            assert sum(c.labels["response"] == "non-response" for c in group) == expected


def test_temporal_split_like_the_paper() -> None:
    cases = fake_cases(188)
    cutoff = date(2021, 5, 1)
    split = split_cohort(cases, "temporal", seed=0, cutoff=cutoff, val_fraction=10 / 155)
    assert all(c.acquired < cutoff for c in split.train + split.val)
    assert all(c.acquired >= cutoff for c in split.test)
    assert len(split.val) == round(10 / 155 * (len(split.train) + len(split.val)))
    default = split_cohort(cases, "temporal", seed=0, test_fraction=0.2)
    assert max(c.acquired for c in default.train + default.val) < min(c.acquired for c in default.test)
    assert len(default.test) == round(0.2 * 188)


def test_site_split_and_split_errors() -> None:
    cases = fake_cases(20, sites=("internal", "internal", "linyi"))
    split = split_cohort(cases, "site", seed=0)
    assert {c.site for c in split.test} == {"linyi"} and {c.site for c in split.train + split.val} == {"internal"}
    with pytest.raises(InputError, match="no case from site"):
        split_cohort(cases, "site", test_sites=["mars"])
    undated = [Case("x", Path("x"), Path("y"), "s", None)] + cases
    with pytest.raises(InputError, match="without an 'acquired' date: x"):
        split_cohort(undated, "temporal")
    with pytest.raises(ValueError, match="split kind"):
        split_cohort(cases, "by-age")


def test_slice_cache_builds_once_and_tracks_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = read_cohort(write_tiny_cohort(tmp_path / "cohort", n=2))
    cache = SliceCache(tmp_path / "cache", TINY)
    first = cache.get(cases[0])
    volume, labels = np.load(first.image_npy), np.load(first.mask_npy)
    assert volume.dtype == np.float32 and labels.dtype == np.uint8 and volume.shape[1:] == (64, 64)
    assert list(first.tumour_slices) == list(np.flatnonzero(labels.any(axis=(1, 2))))
    assert 3 <= len(first.tumour_slices) <= 6  # radius-3 sphere at 1.5 mm slices
    assert first.free_slices and not set(first.free_slices) & set(first.tumour_slices)

    def no_reading(path):
        raise AssertionError(f"{path} read again")

    monkeypatch.setattr(slices, "read_image", no_reading)
    assert cache.get(cases[0]) == first  # from the cache: no re-reading, no re-resampling
    with pytest.raises(AssertionError, match="read again"):
        SliceCache(tmp_path / "cache", PreprocessConfig(input_size=80)).get(cases[0])  # other config
    with monkeypatch.context() as m, pytest.raises(AssertionError, match="read again"):
        m.setattr(slices, "GRID_VERSION", slices.GRID_VERSION + 1)
        cache.get(cases[0])  # preprocessing code that reads the same file differently
    stat = cases[0].image.stat()
    os.utime(cases[0].image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="read again"):
        cache.get(cases[0])  # file changed


def test_mask_off_the_image_grid_is_refused(tmp_path: Path) -> None:
    cases = read_cohort(write_tiny_cohort(tmp_path / "cohort", n=1))
    mask = sitk.ReadImage(str(cases[0].mask))
    mask.SetSpacing((2.0, 2.0, 2.0))
    sitk.WriteImage(mask, str(cases[0].mask))
    with pytest.raises(InputError, match="c0_seg.nii.gz: mask of case 'c0' is not on its image's grid"):
        SliceCache(tmp_path / "cache", TINY).get(cases[0])


def test_slice_dataset(tmp_path: Path) -> None:
    cases = read_cohort(write_tiny_cohort(tmp_path / "cohort", n=2))
    cache = SliceCache(tmp_path / "cache", TINY)
    cached = [cache.get(c) for c in cases]
    n_tumour = sum(len(c.tumour_slices) for c in cached)
    targets = [c.targets(HEADS) for c in cases]
    paper = SliceDataset(cached, context=1, targets=targets)
    assert len(paper) == n_tumour
    item = paper[0]
    assert item["image"].shape == (3, 64, 64) and item["mask"].shape == (1, 64, 64)
    assert item["mask"].sum() > 0 and item["targets"].tolist() == [1.0]  # c0 is mutant, EGFR's class 1
    volume = np.load(cached[0].image_npy)
    z = item["z"]
    assert torch.equal(item["image"][1], torch.from_numpy(volume[z]))  # centre channel = the slice
    assert torch.equal(item["image"][0], torch.from_numpy(volume[max(z - 1, 0)]))

    mixed = SliceDataset(cached, context=1, free_share=0.5, seed=1, targets=targets)
    free = [i for i, (_, _, tumour) in enumerate(mixed.index) if not tumour]
    assert len(free) == len(mixed) - n_tumour > 0
    assert torch.isnan(mixed[free[0]]["targets"]).all() and mixed[free[0]]["mask"].sum() == 0
    before = list(mixed.index)
    mixed.set_epoch(1)
    assert len(mixed.index) == len(before)  # same length every epoch (DistributedSampler needs it)


def test_select_slices_share() -> None:
    case = slices.CachedCase("a", Path("a"), Path("b"), tuple(range(10, 20)), tuple(range(0, 10)) + tuple(range(20, 60)))
    rng = np.random.default_rng(0)
    assert len(select_slices([case], 0.0, rng)) == 10
    index = select_slices([case], 0.2, rng)
    assert sum(not t for *_, t in index) == round(0.25 * 10)
    with pytest.raises(ValueError):
        select_slices([case], 1.0, rng)


def test_head_labels_come_from_their_columns(tmp_path: Path) -> None:
    """A cohort without an egfr column but with other label columns: each head reads its own,
    empty cells are unknown (NaN), and a bad cell is one error naming the case and column."""
    folder = write_tiny_cohort(tmp_path / "c", n=2)
    rows = list(csv.reader(open(folder / "cases.csv")))
    header = [h for h in rows[0] if h != "egfr"] + ["er", "ki67"]
    body = [[v for h, v in zip(rows[0], r) if h != "egfr"] + extra for r, extra in zip(rows[1:], (["positive", "12.5"], ["", "40"]))]
    with open(folder / "cases.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *body])
    heads = [TaskSpec("ER", "binary", ("negative", "positive")), TaskSpec("Ki-67", "regression", column="ki67", scale=100.0)]
    cases = read_cohort(folder)
    assert "egfr" not in cases[0].labels and cases[0].labels["er"] == "positive"
    np.testing.assert_allclose(cases[0].targets(heads), [1.0, 0.125])
    second = cases[1].targets(heads)
    assert np.isnan(second[0]) and second[1] == pytest.approx(0.4)
    bad = Case("x", Path("i"), Path("m"), "s", None, {"er": "maybe"})
    with pytest.raises(InputError, match="case 'x': column 'er': 'maybe' is not one of 'negative', 'positive'"):
        bad.targets(heads)

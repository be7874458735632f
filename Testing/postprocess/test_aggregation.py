"""Patient-level rules: the upper half of the GTV-bearing slices by area, as in MTSA-Net's paper."""

from MTSASegmenterLib.postprocess.aggregation import PatientProbability, top_area_half_mean


def test_upper_half_by_area_is_averaged():
    areas = {0: 0.0, 1: 10.0, 2: 40.0, 3: 30.0, 4: 20.0}
    probs = {0: 0.99, 1: 0.1, 2: 0.9, 3: 0.7, 4: 0.2}
    result = top_area_half_mean(areas, probs)
    assert result.slices_used == [2, 3]
    assert abs(result.probability - 0.8) < 1e-9


def test_odd_count_rounds_up():
    result = top_area_half_mean({1: 5.0, 2: 3.0, 3: 1.0}, {1: 0.5, 2: 0.5, 3: 0.9})
    assert result.slices_used == [1, 2] and result.probability == 0.5


def test_no_gtv_is_indeterminate():
    assert top_area_half_mean({1: 0.0}, {1: 0.9}) == PatientProbability(None, [])

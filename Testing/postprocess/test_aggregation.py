"""Patient-level EGFR: the upper half of the GTV-bearing slices by area, as in the paper."""

from MTSASegmenterLib.postprocess.aggregation import aggregate_top_area_half


def test_upper_half_by_area_is_averaged():
    areas = {0: 0.0, 1: 10.0, 2: 40.0, 3: 30.0, 4: 20.0}
    probs = {0: 0.99, 1: 0.1, 2: 0.9, 3: 0.7, 4: 0.2}
    result = aggregate_top_area_half(areas, probs)
    assert result["slices_used"] == [2, 3]
    assert abs(result["probability"] - 0.8) < 1e-9 and result["call"] == "mutant"


def test_odd_count_rounds_up_and_threshold_is_strict():
    result = aggregate_top_area_half({1: 5.0, 2: 3.0, 3: 1.0}, {1: 0.5, 2: 0.5, 3: 0.9})
    assert result["slices_used"] == [1, 2] and result["call"] == "wild-type"


def test_no_gtv_is_indeterminate():
    result = aggregate_top_area_half({1: 0.0}, {1: 0.9})
    assert result == {"probability": None, "call": "indeterminate", "threshold": 0.5, "slices_used": []}

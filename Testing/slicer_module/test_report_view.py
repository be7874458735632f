"""report_view.py: what the Slicer panel shows, computed without Qt."""

from __future__ import annotations

import pytest
from MTSASegmenterLib.slicer import report_view as rv

REPORT = {
    "case": "p1",
    "model": {"name": "MTSA-Net", "version": "0.1.0", "sha256": "ab"},
    "egfr": {
        "probability": 0.734,
        "call": "mutant",
        "threshold": 0.5,
        "slices_used": [12, 13, 14, 20],
        "slice_probabilities": {"14": 0.9, "12": 0.6, "13": 0.7, "20": 0.74, "3": 0.1},
    },
    "gtv": {
        "volume_ml": 2.3456,
        "lesions": [
            {"id": 1, "volume_ml": 2.0, "max_diameter_mm": 18.25, "centroid_ras": [10.0, -5.5, 30.0]},
            {"id": 2, "volume_ml": 0.3456, "max_diameter_mm": 7.0, "centroid_ras": [-20.0, 4.0, 12.5]},
        ],
    },
    "device": "cpu",
    "timing": {"total_s": 12.34, "inference_s": 10.0},
}


def test_probability_and_call():
    assert rv.format_probability(0.734) == "0.73"
    assert rv.format_probability(None) == rv.NOT_AVAILABLE
    assert rv.call_text(REPORT)[0] == "EGFR mutant"
    assert rv.call_text({"egfr": {"call": "wild-type"}})[0] == "EGFR wild-type"
    text, colour = rv.call_text({"egfr": {"probability": None, "call": "indeterminate"}})
    assert "Indeterminate" in text and colour != rv.call_text(REPORT)[1]
    assert rv.call_text({})[0].startswith("Indeterminate")


def test_slice_curve_is_ordered_and_accepts_lists():
    assert rv.slice_curve(REPORT) == ([3, 12, 13, 14, 20], [0.1, 0.6, 0.7, 0.9, 0.74])
    assert rv.slice_curve({"egfr": {"slice_probabilities": [0.2, None, 0.4]}}) == ([0, 2], [0.2, 0.4])
    assert rv.slice_curve({}) == ([], [])


def test_slices_used_text():
    assert rv.slices_used_text(REPORT) == "4 slices (12–14, 20)"
    assert rv.slices_used_text({"egfr": {"slices_used": [5]}}) == "1 slice (5)"
    assert rv.slices_used_text({"egfr": {"slices_used": []}}) == rv.NOT_AVAILABLE


def test_lesion_rows_and_centroids():
    assert rv.lesion_rows(REPORT) == [("1", "2.00", "18.2"), ("2", "0.35", "7.0")]
    assert len(rv.LESION_COLUMNS) == len(rv.lesion_rows(REPORT)[0])
    assert rv.lesion_centroid_ras(REPORT, 1) == (-20.0, 4.0, 12.5)
    assert rv.lesion_centroid_ras(REPORT, 2) is None
    assert rv.lesion_centroid_ras(REPORT, -1) is None
    assert rv.lesion_rows({"gtv": {"volume_ml": 0.0, "lesions": []}}) == []
    assert rv.removed_row_tooltip(REPORT, 0) is None and rv.removed_row_tooltip(REPORT, 2) is None


def test_the_filters_highest_rated_removals_follow_the_lesions():
    """A lesion the component filter took for a vessel is listed after the lesions, greyed, with why, and one click
    centres the views on it; only the REMOVED_SHOWN highest rated of many specks are listed."""
    dropped = [{"volume_ml": 0.01 * k, "centroid_ras": [k, 0.0, 0.0], "rating": 0.01 * k, "reasons": {"flatness": -1.5 * k}}
               for k in range(1, 9)]
    report = {**REPORT, "gtv": {**REPORT["gtv"], "postprocessing": {"min_component_probability": 0.1826, "dropped": dropped}}}
    rows = rv.lesion_rows(report)
    assert rows[:2] == rv.lesion_rows(REPORT) and len(rows) == 2 + rv.REMOVED_SHOWN == 7
    assert rows[2] == ("removed (0.08)", "0.08", rv.NOT_AVAILABLE) and rows[-1][0] == "removed (0.04)"
    assert rv.lesion_centroid_ras(report, 2) == (8.0, 0.0, 0.0) and rv.lesion_centroid_ras(report, 7) is None
    tip = rv.removed_row_tooltip(report, 2)
    assert tip.startswith("Removed by the component filter (rated 0.08 < 0.18): flatness -12.00.")
    assert rv.removed_row_tooltip(report, 1) is None


def test_gtv_and_status_text():
    assert rv.gtv_text(REPORT) == "2.35 mL in 2 lesions"
    assert rv.gtv_text({"gtv": {"volume_ml": 0.0, "lesions": []}}) == "0.00 mL in 0 lesions"
    status = rv.status_text(REPORT)
    assert status == "GTV 2.35 mL in 2 lesions; EGFR: mutant (p(mutant) = 0.73); 12.3 s on cpu"
    assert "p(" not in rv.status_text({"gtv": {"volume_ml": 0.0, "lesions": []}, "egfr": {"probability": None}})


BREAST = {
    "heads": ["er", "subtype", "ki-67"],
    "er": {"name": "ER", "kind": "binary", "classes": ["negative", "positive"], "probability": 0.81, "call": "positive",
           "slices_used": [4, 5], "slice_probabilities": {"4": 0.8, "5": 0.82}},
    "subtype": {"name": "Subtype", "kind": "multiclass", "classes": ["luminal A", "luminal B", "HER2", "basal"],
                "probabilities": {"luminal A": 0.2, "luminal B": 0.61, "HER2": 0.1, "basal": 0.09}, "call": "luminal B",
                "slices_used": [4], "slice_probabilities": {"4": [0.2, 0.61, 0.1, 0.09]}},
    "ki-67": {"name": "Ki-67", "kind": "regression", "unit": "%", "value": 23.46, "slices_used": [4, 5],
              "slice_values": {"4": 20.0, "5": 26.9}},
    "gtv": {"volume_ml": 3.0, "lesions": [{"id": 1, "volume_ml": 3.0, "max_diameter_mm": 20.0}]},
}


def test_every_head_of_the_model_is_shown_from_the_report():
    """The panel's texts come from the report's head list (the checkpoint's), not from EGFR."""
    assert rv.call_text(BREAST) == ("ER positive", "#c0392b")
    assert rv.probability_label(BREAST) == "Positive probability:" and rv.probability_text(BREAST) == "0.81"
    assert rv.other_heads_text(BREAST) == "Subtype: luminal B (p = 0.61)\nKi-67: 23.5 %"
    assert rv.status_text(BREAST) == "GTV 3.00 mL in 1 lesion; ER: positive (p(positive) = 0.81); Subtype: luminal B (p = 0.61); Ki-67: 23.5 %"
    ki67_first = {**BREAST, "heads": ["ki-67", "er"]}
    assert rv.call_text(ki67_first)[0] == "Ki-67 23.5 %" and rv.probability_text(ki67_first) == "23.5 %"
    assert rv.slice_curve(ki67_first) == ([4, 5], [20.0, 26.9])
    subtype_first = {**BREAST, "heads": ["subtype"]}
    assert rv.slice_curve(subtype_first) == ([4], [0.61]) and rv.probability_text(subtype_first) == "0.61"
    assert rv.other_heads_text(REPORT) == "" and rv.probability_label(REPORT) == "Mutant probability:"
    assert rv.plot_title(REPORT) == "EGFR: mutant probability per slice" and rv.plot_title(ki67_first) == "Ki-67: value per slice"
    assert rv.apply_text(["GTV", "EGFR"]) == "Predict GTV + EGFR"
    assert rv.apply_text(["Tumour", "ER", "PR", "HER2", "Ki-67"]) == "Predict Tumour + ER, PR, HER2, Ki-67"
    assert rv.apply_text(["GTV"]) == "Predict GTV"
    no_gtv = {"heads": ["ki-67"], "ki-67": {"name": "Ki-67", "kind": "regression", "value": None}}
    assert rv.call_text(no_gtv)[0].startswith("Indeterminate") and rv.probability_text(no_gtv) == rv.NOT_AVAILABLE


@pytest.mark.parametrize(
    "available, labels, enabled",
    [
        (["cpu"], ["Auto (CPU)", "CPU", "GPU (none found)"], [True, True, False]),
        (["cpu", "cuda"], ["Auto (CUDA)", "CPU", "GPU (CUDA)"], [True, True, True]),
        (["cpu", "mps"], ["Auto (Apple MPS)", "CPU", "GPU (Apple MPS)"], [True, True, True]),
    ],
)
def test_device_choices(available, labels, enabled):
    choices = rv.device_choices(available)
    assert [c.label for c in choices] == labels
    assert [c.enabled for c in choices] == enabled
    assert choices[0].value == "auto" and choices[1].value == "cpu"


def test_model_warning_and_progress():
    assert rv.model_warning(True) == rv.SYNTHETIC_WARNING and "synthetic" in rv.SYNTHETIC_WARNING
    assert rv.model_warning(False) == ""
    caution = "6.0 mm slices: lesions under about 12 mm lie in one or two slices"
    assert rv.warning_text({"model": {"synthetic_only": True}, "cautions": [caution]}) == rv.SYNTHETIC_WARNING + "\n" + caution
    assert rv.warning_text({"model": {"synthetic_only": False}}) == ""
    assert rv.model_text("MTSA-Net", "0.1.0", True) == "MTSA-Net 0.1.0 (synthetic demo)"
    assert [rv.progress_percent(f) for f in (-0.1, 0.0, 0.333, 1.0, 1.5)] == [0, 0, 33, 100, 100]


def test_task_names_come_from_the_report():
    assert rv.task_names(REPORT) == ["GTV", "EGFR"]
    multi = {**REPORT, "gtv": {**REPORT["gtv"], "segment": {"name": "Tumour"}}, "heads": ["egfr", "er"],
             "er": {"name": "ER", "kind": "binary", "classes": ["negative", "positive"], "call": "positive", "probability": 0.9}}
    assert rv.task_names(multi) == ["Tumour", "EGFR", "ER"]
    assert rv.apply_text(rv.task_names(multi)) == "Predict Tumour + EGFR, ER"

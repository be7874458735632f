"""What the Slicer panel shows, as pure functions of the report: testable without Qt or Slicer.

The widget (``widget.py``) only copies these strings and numbers into its labels,
table and plot; every decision about wording, rounding, ordering and which choices to offer
lives here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from .translation import _

NOT_AVAILABLE = "–"

LESION_COLUMNS: tuple[str, ...] = (_("Lesion"), _("Volume (mL)"), _("Max diameter (mm)"))
REMOVED_SHOWN = 5  # components the filter removed that the lesion table lists after the lesions

SYNTHETIC_WARNING = _(
    "Demo model trained on synthetic phantoms only: its GTV and other outputs are for trying the "
    "software, not for any clinical or research decision."
)


@dataclass(frozen=True)
class DeviceChoice:
    """One entry of the device combo box."""

    label: str
    value: str  # what predict_volume(device=...) receives
    enabled: bool = True


def device_choices(available: Sequence[str]) -> list[DeviceChoice]:
    """Auto, CPU and GPU entries; the GPU entry names what was found, and is disabled when none was."""
    gpus = [d for d in available if d != "cpu"]
    names = {"cuda": "CUDA", "mps": "Apple MPS"}
    auto_target = names.get(gpus[0], gpus[0]) if gpus else "CPU"
    choices = [DeviceChoice(f"Auto ({auto_target})", "auto"), DeviceChoice("CPU", "cpu")]
    if gpus:
        choices += [DeviceChoice(f"GPU ({names.get(g, g)})", g) for g in gpus]
    else:
        choices.append(DeviceChoice("GPU (none found)", "cuda", enabled=False))
    return choices


def format_probability(probability: float | None) -> str:
    return NOT_AVAILABLE if probability is None else f"{float(probability):.2f}"


def head_keys(report: Mapping[str, Any]) -> list[str]:
    """The report's heads in the checkpoint's order (a report from before multi-head models: EGFR)."""
    keys = report.get("heads")
    if keys is None:
        keys = ["egfr"] if "egfr" in report else []
    return [k for k in keys if isinstance(report.get(k), Mapping)]


def _head(report: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A head's answer, with what reports from before multi-head models left implicit (EGFR's)."""
    head = dict(report.get(key) or {})
    head.setdefault("name", key.upper())
    head.setdefault("kind", "binary")
    head.setdefault("classes", ["wild-type", "mutant"])
    return head


def primary_head(report: Mapping[str, Any]) -> dict[str, Any]:
    """The head the panel details (call, probability, slices, plot): the model's first."""
    keys = head_keys(report)
    return _head(report, keys[0] if keys else "egfr")


def call_text(report: Mapping[str, Any]) -> tuple[str, str]:
    """The first head's call as shown, and a colour for it (CSS), so that 'indeterminate' never looks like a result."""
    head = primary_head(report)
    name, kind = head["name"], head["kind"]
    if kind == "regression":
        value = head.get("value")
        if value is None:
            return _("Indeterminate (no GTV found)"), "#7f7f7f"
        return f"{name} {float(value):.1f} {head.get('unit', '')}".rstrip(), "#000000"
    call = head.get("call") or "indeterminate"
    if call == "indeterminate":
        return _("Indeterminate (no GTV found)"), "#7f7f7f"
    if kind == "binary":
        return f"{name} {call}", "#c0392b" if call == head["classes"][-1] else "#1f6fb2"
    return f"{name} {call}", "#000000"


def probability_label(report: Mapping[str, Any]) -> str:
    """Caption of the probability row: what the number is the probability of."""
    head = primary_head(report)
    if head["kind"] == "regression":
        return _("Value:")
    if head["kind"] == "multiclass":
        return _("Probability of the call:")
    return _("{name} probability:").format(name=str(head["classes"][-1]).capitalize())


def plot_title(report: Mapping[str, Any]) -> str:
    """Title of the per-slice plot of the first head, e.g. 'EGFR: mutant probability per slice'."""
    return f"{primary_head(report)['name']}: {probability_label(report).rstrip(':').lower()} {_('per slice')}"


def probability_text(report: Mapping[str, Any]) -> str:
    head = primary_head(report)
    if head["kind"] == "regression":
        value = head.get("value")
        return NOT_AVAILABLE if value is None else f"{float(value):.1f} {head.get('unit', '')}".rstrip()
    if head["kind"] == "multiclass":
        return format_probability((head.get("probabilities") or {}).get(head.get("call")))
    return format_probability(head.get("probability"))


def describe_head(head: Mapping[str, Any]) -> str:
    """One line for people: 'EGFR: mutant (p(mutant) = 0.83)', 'Subtype: luminal B (p = 0.61)', 'Ki-67: 23.5 %'."""
    name = head.get("name", "")
    if head.get("kind") == "regression":
        value = head.get("value")
        return f"{name}: indeterminate (no GTV)" if value is None else f"{name}: {value:.1f} {head.get('unit', '')}".rstrip()
    call = head.get("call") or "indeterminate"
    if call == "indeterminate":
        return f"{name}: indeterminate (no GTV)"
    if head.get("kind") == "multiclass":
        p, of = (head.get("probabilities") or {}).get(call), ""
    else:
        p, of = head.get("probability"), f"({(head.get('classes') or ['', 'positive'])[-1]})"
    return f"{name}: {call}" + ("" if p is None else f" (p{of} = {p:.2f})")


def other_heads_text(report: Mapping[str, Any]) -> str:
    """Every head after the first, one line each; empty for a single-head model like MTSA-Net."""
    return "\n".join(describe_head(_head(report, k)) for k in head_keys(report)[1:])


def _slice_items(report: Mapping[str, Any]) -> list[tuple[int, float]]:
    head = primary_head(report)
    values = head.get("slice_values") or head.get("slice_probabilities") or {}
    if isinstance(values, Mapping):
        items = [(int(k), v) for k, v in values.items() if v is not None]
    else:  # a list indexed by slice
        items = [(i, v) for i, v in enumerate(values) if v is not None]
    if head["kind"] == "multiclass":  # the probability of the patient's call on each slice
        index = list(head["classes"]).index(head["call"]) if head.get("call") in head["classes"] else 0
        items = [(i, v[index]) for i, v in items]
    return sorted((i, float(v)) for i, v in items)


def slice_curve(report: Mapping[str, Any]) -> tuple[list[int], list[float]]:
    """Per-slice values of the first head as (slice indices, values), ordered by slice."""
    items = _slice_items(report)
    return [i for i, _ in items], [p for _, p in items]


def _ranges(indices: Iterable[int]) -> str:
    values = sorted(set(int(i) for i in indices))
    if not values:
        return ""
    parts, start, prev = [], values[0], values[0]
    for v in values[1:] + [None]:  # type: ignore[list-item]
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(f"{start}" if start == prev else f"{start}–{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)


def slices_used_text(report: Mapping[str, Any]) -> str:
    used = primary_head(report).get("slices_used") or []
    if not used:
        return NOT_AVAILABLE
    n = len(used)
    return f"{n} slice{'s' if n != 1 else ''} ({_ranges(used)})"


def _table_entries(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The lesions, largest first (the report's order), then up to REMOVED_SHOWN of the components the component
    filter removed, highest rated first: a small metastasis it took for a vessel is then one click away."""
    gtv = report.get("gtv") or {}
    dropped = (gtv.get("postprocessing") or {}).get("dropped") or []
    removed = sorted(dropped, key=lambda d: -float(d.get("rating", 0.0)))[:REMOVED_SHOWN]
    return [*(gtv.get("lesions") or []), *({**d, "removed": True} for d in removed)]


def lesion_rows(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Rows of the lesion table (``_table_entries``); a removed component has no diameter in the report."""
    return [
        (_("removed ({rating})").format(rating=f"{float(e['rating']):.2f}"), f"{float(e['volume_ml']):.2f}", NOT_AVAILABLE)
        if e.get("removed") else
        (str(e.get("id", i + 1)), f"{float(e['volume_ml']):.2f}", f"{float(e['max_diameter_mm']):.1f}")
        for i, e in enumerate(_table_entries(report))
    ]


def removed_row_tooltip(report: Mapping[str, Any], row: int) -> str | None:
    """Why the component in ``row`` was removed (its rating against the filter's threshold and the features that
    pulled it down most); None for a lesion's row or no row."""
    entries = _table_entries(report)
    if not 0 <= row < len(entries) or not entries[row].get("removed"):
        return None
    entry = entries[row]
    threshold = ((report.get("gtv") or {}).get("postprocessing") or {}).get("min_component_probability")
    reasons = ", ".join(f"{name} {value:+.2f}" for name, value in (entry.get("reasons") or {}).items())
    below = f" < {float(threshold):.2f}" if threshold is not None else ""
    return _("Removed by the component filter (rated {rating}{below}): {reasons}. Paint it into the GTV if it is a "
             "lesion.").format(rating=f"{float(entry['rating']):.2f}", below=below, reasons=reasons or NOT_AVAILABLE)


def lesion_centroid_ras(report: Mapping[str, Any], row: int) -> tuple[float, float, float] | None:
    """RAS centroid of the lesion or removed component shown in ``row``; None when the row does not exist."""
    entries = _table_entries(report)
    if not 0 <= row < len(entries):
        return None
    c = entries[row].get("centroid_ras")
    return None if c is None else (float(c[0]), float(c[1]), float(c[2]))


def gtv_text(report: Mapping[str, Any]) -> str:
    gtv = report.get("gtv") or {}
    lesions = gtv.get("lesions") or []
    volume = gtv.get("volume_ml")
    if volume is None:
        return NOT_AVAILABLE
    n = len(lesions)
    return f"{float(volume):.2f} mL in {n} lesion{'s' if n != 1 else ''}"


def status_text(report: Mapping[str, Any]) -> str:
    """One-line summary for the status label once a prediction has finished."""
    parts = [f"GTV {gtv_text(report)}"]
    parts += [describe_head(_head(report, k)) for k in head_keys(report)]
    timing = report.get("timing") or {}
    if timing.get("total_s") is not None:
        parts.append(f"{float(timing['total_s']):.1f} s" + (f" on {report['device']}" if report.get("device") else ""))
    return "; ".join(parts)


def task_names(report: Mapping[str, Any]) -> list[str]:
    """What the model that wrote the report predicts: its segment, then its heads ('GTV', 'EGFR')."""
    segment = ((report.get("gtv") or {}).get("segment") or {}).get("name", "GTV")
    return [segment] + [_head(report, k)["name"] for k in head_keys(report)]


def apply_text(task_names: Sequence[str]) -> str:
    """The Apply button names what the loaded model predicts: 'Predict GTV + EGFR' for MTSA-Net."""
    return _("Predict") + " " + " + ".join(task_names[:1] + ([", ".join(task_names[1:])] if len(task_names) > 1 else []))


def model_text(name: str, version: str, synthetic_only: bool) -> str:
    return f"{name} {version}" + (" (synthetic demo)" if synthetic_only else "")


def model_warning(synthetic_only: bool) -> str:
    """Warning shown above the results; empty when the model was trained on real data."""
    return SYNTHETIC_WARNING if synthetic_only else ""


def warning_text(report: Mapping[str, Any]) -> str:
    """Shown above the results: the model's warning and the scan's cautions (thick slices), one per line."""
    model = report.get("model") or {}
    return "\n".join(filter(None, [model_warning(bool(model.get("synthetic_only"))), *(report.get("cautions") or [])]))


def progress_percent(fraction: float) -> int:
    return int(round(100 * min(1.0, max(0.0, float(fraction)))))

"""What the Slicer panel shows, as pure functions of the report: testable without Qt or Slicer.

The widget in ``MTSASegmenter.py`` only copies these strings and numbers into its labels,
table and plot; every decision about wording, rounding, ordering and which choices to offer
lives here.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

NOT_AVAILABLE = "–"

LESION_COLUMNS: tuple[str, ...] = ("Lesion", "Volume (mL)", "Max diameter (mm)")

SYNTHETIC_WARNING = (
    "Demo model trained on synthetic phantoms only: its GTV and EGFR outputs are for trying the "
    "software, not for any clinical or research decision."
)

# Python packages the core needs inside Slicer, beside torch (installed via the PyTorch extension)
# and numpy (part of Slicer). Import name -> pip requirement; kept equal to pyproject.toml.
REQUIREMENTS: dict[str, str] = {
    "SimpleITK": "SimpleITK>=2.3",
    "skimage": "scikit-image>=0.21",
    "cv2": "opencv-python-headless>=4.8",
    "scipy": "scipy>=1.10",
    "tqdm": "tqdm>=4.60",
}
TORCH_REQUIREMENT = "torch>=2.1,<3"


def missing_requirements(
    requirements: Mapping[str, str] = REQUIREMENTS,
    find_spec: Callable[[str], Any] = importlib.util.find_spec,
) -> list[str]:
    """Pip requirements whose module cannot be imported, in a stable order."""
    return [spec for module, spec in requirements.items() if find_spec(module) is None]


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


def call_text(report: Mapping[str, Any]) -> tuple[str, str]:
    """EGFR call as shown, and a colour for it (CSS), so that 'indeterminate' never looks like a result."""
    egfr = report.get("egfr") or {}
    call = egfr.get("call") or "indeterminate"
    if call == "mutant":
        return "EGFR mutant", "#c0392b"
    if call == "wild-type":
        return "EGFR wild-type", "#1f6fb2"
    return "Indeterminate (no GTV found)", "#7f7f7f"


def _slice_items(report: Mapping[str, Any]) -> list[tuple[int, float]]:
    probabilities = (report.get("egfr") or {}).get("slice_probabilities") or {}
    if isinstance(probabilities, Mapping):
        items = [(int(k), float(v)) for k, v in probabilities.items() if v is not None]
    else:  # a list indexed by slice
        items = [(i, float(v)) for i, v in enumerate(probabilities) if v is not None]
    return sorted(items)


def slice_curve(report: Mapping[str, Any]) -> tuple[list[int], list[float]]:
    """Per-slice EGFR probability as (slice indices, probabilities), ordered by slice."""
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
    used = (report.get("egfr") or {}).get("slices_used") or []
    if not used:
        return NOT_AVAILABLE
    n = len(used)
    return f"{n} slice{'s' if n != 1 else ''} ({_ranges(used)})"


def lesion_rows(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Rows of the lesion table, largest lesion first (the order of the report)."""
    lesions = (report.get("gtv") or {}).get("lesions") or []
    return [
        (str(lesion.get("id", i + 1)), f"{float(lesion['volume_ml']):.2f}", f"{float(lesion['max_diameter_mm']):.1f}")
        for i, lesion in enumerate(lesions)
    ]


def lesion_centroid_ras(report: Mapping[str, Any], row: int) -> tuple[float, float, float] | None:
    """RAS centroid of the lesion shown in ``row``; None when the row does not exist."""
    lesions = (report.get("gtv") or {}).get("lesions") or []
    if not 0 <= row < len(lesions):
        return None
    c = lesions[row].get("centroid_ras")
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
    egfr = report.get("egfr") or {}
    call, _ = call_text(report)
    probability = egfr.get("probability")
    text = f"GTV {gtv_text(report)}; {call}"
    if probability is not None:
        text += f" (p = {format_probability(probability)})"
    timing = report.get("timing") or {}
    if timing.get("total_s") is not None:
        text += f"; {float(timing['total_s']):.1f} s"
        if report.get("device"):
            text += f" on {report['device']}"
    return text


def model_text(name: str, version: str, synthetic_only: bool) -> str:
    return f"{name} {version}" + (" (synthetic demo)" if synthetic_only else "")


def model_warning(synthetic_only: bool) -> str:
    """Warning shown above the results; empty when the model was trained on real data."""
    return SYNTHETIC_WARNING if synthetic_only else ""


def progress_percent(fraction: float) -> int:
    return int(round(100 * min(1.0, max(0.0, float(fraction)))))

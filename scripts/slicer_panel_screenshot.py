"""Render Resources/Screenshots/MTSASegmenter-2.png: the module's panel with a real result, beside the slice.

Slicer cannot run here, so the picture is made from the parts that can: the real pipeline (the
bundled model on the shipped phantom case), the texts the panel shows (``report_view``, as
``widget.py`` uses them), and the module's own ``.ui`` file loaded by Qt (PySide6, offscreen) with
stock Qt widgets standing in for the CTK/MRML ones (a group box for ctkCollapsibleButton, a combo
box for qMRMLNodeComboBox, a line edit for ctkPathLineEdit). The slice view is drawn the way
Slicer's red view shows a segment (fill and outline in the segment's colour).

    pip install PySide6-Essentials     # not a dependency of the project; any environment with it
    python scripts/slicer_panel_screenshot.py [--out Resources/Screenshots/MTSASegmenter-2.png]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "MTSASegmenter"))  # run from a checkout, like the tests

from MTSASegmenterLib.inference.pipeline import predict_volume  # noqa: E402
from MTSASegmenterLib.io.overlay import largest_area_slice  # noqa: E402
from MTSASegmenterLib.model.checkpoint import load_checkpoint  # noqa: E402
from MTSASegmenterLib.resources import MODULE_DIR, demo_model_path  # noqa: E402
from MTSASegmenterLib.slicer import report_view as rv  # noqa: E402

STAND_INS = {"ctkCollapsibleButton": "QGroupBox", "qMRMLNodeComboBox": "QComboBox", "ctkPathLineEdit": "QLineEdit",
             "qMRMLWidget": "QWidget"}


def plain_qt_ui(path: Path) -> bytes:
    """The module's .ui with stock Qt classes in place of the CTK/MRML ones (a group box's caption is its title)."""
    text = path.read_text(encoding="utf-8")
    for custom, stock in STAND_INS.items():
        text = text.replace(f'class="{custom}"', f'class="{stock}"')
    text = re.sub(r"<customwidgets>.*?</customwidgets>", "", text, flags=re.S)
    text = re.sub(r'(<widget class="QGroupBox"[^>]*>\s*<property name=")text(")', r"\1title\2", text)
    return text.encode("utf-8")


def predict():
    image = sitk.ReadImage(str(MODULE_DIR / "Resources" / "Testing" / "phantom_case.nrrd"))
    return image, predict_volume(image, load_checkpoint(demo_model_path(), "cpu"), device="cpu", case="phantom_case")


def slice_view(image: sitk.Image, mask: sitk.Image, color: tuple[float, float, float], size: int) -> tuple[np.ndarray, int]:
    """RGB picture of the axial slice with the largest GTV, the segment filled and outlined as Slicer shows it."""
    volume, gtv = sitk.GetArrayFromImage(image).astype(float), sitk.GetArrayFromImage(mask) > 0
    z = largest_area_slice(gtv)
    grey = np.clip(volume[z] / max(np.percentile(volume, 99.5), 1e-6), 0, 1)
    rgb = np.repeat((grey * 255)[..., None], 3, axis=2)
    fill = np.array(color) * 255
    rgb[gtv[z]] = 0.5 * rgb[gtv[z]] + 0.5 * fill
    spacing = image.GetSpacing()
    height = int(round(rgb.shape[0] * spacing[1] / spacing[0] * size / rgb.shape[1]))
    picture = cv2.resize(rgb.astype(np.uint8), (size, height), interpolation=cv2.INTER_LINEAR)
    outline = cv2.resize(gtv[z].astype(np.uint8), (size, height), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(outline, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(picture, contours, -1, tuple(int(c) for c in fill), 2)
    return picture, z


def curve_picture(report: dict, width: int, height: int) -> np.ndarray:
    """The per-slice probability plot as the panel's plot view draws it (points, dashed threshold)."""
    xs, ys = rv.slice_curve(report)
    picture = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 36, width - 10, 22, height - 24
    cv2.rectangle(picture, (left, top), (right, bottom), (180, 180, 180), 1)
    for value in (0.0, 0.5, 1.0):
        y = int(bottom - value * (bottom - top))
        cv2.putText(picture, f"{value:.1f}", (4, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (80, 80, 80), 1, cv2.LINE_AA)
    if xs:
        lo, hi = min(xs), max(max(xs), min(xs) + 1)
        points = [(int(left + (x - lo) / (hi - lo) * (right - left)), int(bottom - y * (bottom - top))) for x, y in zip(xs, ys)]
        for p in points:
            cv2.circle(picture, p, 3, (217, 115, 51), -1, cv2.LINE_AA)
        threshold = rv.primary_head(report).get("threshold")
        if threshold is not None:
            y = int(bottom - threshold * (bottom - top))
            for x in range(left, right, 8):
                cv2.line(picture, (x, y), (min(x + 4, right), y), (150, 150, 150), 1)
        cv2.putText(picture, rv.plot_title(report), (left, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (40, 40, 40), 1, cv2.LINE_AA)
        cv2.putText(picture, "slice", (width // 2 - 12, height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (80, 80, 80), 1, cv2.LINE_AA)
    return picture


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "Resources" / "Screenshots" / "MTSASegmenter-2.png")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtGui, QtUiTools, QtWidgets

    image, result = predict()
    report = result.report.to_dict()
    app = QtWidgets.QApplication([])
    app.setStyle("Fusion")
    buffer = QtCore.QBuffer()
    buffer.setData(plain_qt_ui(MODULE_DIR / "Resources" / "UI" / "MTSASegmenter.ui"))
    panel = QtUiTools.QUiLoader().load(buffer)
    find = lambda name: panel.findChild(QtWidgets.QWidget, name)  # noqa: E731

    find("inputVolumeSelector").addItem("phantom_case")
    find("outputSegmentationSelector").addItem("phantom_case GTV")
    for choice in rv.device_choices(["cpu"]):
        find("deviceComboBox").addItem(choice.label)
    model = report["model"]
    find("modelInfoLabel").setText(rv.model_text(model["name"], model["version"], model["synthetic_only"]))
    find("syntheticWarningLabel").setText(rv.model_warning(model["synthetic_only"]))
    find("syntheticWarningLabel").setVisible(bool(model["synthetic_only"]))
    find("applyButton").setText(rv.apply_text(rv.task_names(report)))
    find("applyButton").setEnabled(True)
    find("progressBar").setVisible(False)
    find("statusLabel").setText(rv.status_text(report))
    head = rv.primary_head(report)
    find("egfrCollapsibleButton").setTitle(head["name"])
    call, color = rv.call_text(report)
    find("callValueLabel").setText(call)
    find("callValueLabel").setStyleSheet(f"QLabel {{ color: {color}; font-weight: bold; }}")
    find("probabilityLabel").setText(rv.probability_label(report))
    find("probabilityValueLabel").setText(rv.probability_text(report))
    find("slicesUsedValueLabel").setText(rv.slices_used_text(report))
    for name in ("otherHeadsLabel", "otherHeadsValueLabel"):
        find(name).setVisible(bool(rv.other_heads_text(report)))
    find("gtvVolumeValueLabel").setText(rv.gtv_text(report))
    table = find("lesionTable")
    rows = rv.lesion_rows(report)
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.setItem(r, c, QtWidgets.QTableWidgetItem(text))
    find("showPlotInLayoutButton").setEnabled(True)

    def pixmap(rgb: np.ndarray) -> QtGui.QPixmap:
        rgb = np.ascontiguousarray(rgb)
        return QtGui.QPixmap.fromImage(QtGui.QImage(rgb.data, rgb.shape[1], rgb.shape[0], 3 * rgb.shape[1],
                                                    QtGui.QImage.Format_RGB888).copy())

    plot = QtWidgets.QLabel()
    plot.setPixmap(pixmap(curve_picture(report, 320, 150)))
    find("egfrPlotFrame").layout().addWidget(plot)
    find("egfrPlotFrame").setFixedHeight(156)
    panel.setFixedWidth(380)
    panel.setFixedHeight(panel.sizeHint().height())

    view, z = slice_view(image, result.mask, result.segment.color, 560)
    header = QtWidgets.QLabel(f"  R   Axial   slice {z}   phantom_case   GTV: {rv.gtv_text(report)}")
    header.setStyleSheet("QLabel { background: #b03a2e; color: white; padding: 3px; }")
    picture = QtWidgets.QLabel()
    picture.setPixmap(pixmap(view))
    right = QtWidgets.QWidget()
    column = QtWidgets.QVBoxLayout(right)
    column.setContentsMargins(0, 0, 0, 0)
    column.setSpacing(0)
    column.addWidget(header)
    column.addWidget(picture)
    column.addStretch(1)
    window = QtWidgets.QWidget()
    row = QtWidgets.QHBoxLayout(window)
    row.addWidget(panel, 0, QtCore.Qt.AlignTop)
    row.addWidget(right, 0, QtCore.Qt.AlignTop)
    window.adjustSize()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(args.out)):
        print(f"error: {args.out}: could not write the picture", file=sys.stderr)
        return 2
    print(f"{args.out}: {call}, {rv.gtv_text(report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

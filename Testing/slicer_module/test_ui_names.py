"""The Qt Designer file and the module's code agree: every ``self.ui.<name>`` exists, with the right kind."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET

import pytest
from helpers import ROOT

MODULE = ROOT / "MTSASegmenter"
UI = MODULE / "Resources" / "UI" / "MTSASegmenter.ui"
SCRIPT = MODULE / "MTSASegmenter.py"
PANEL = MODULE / "MTSASegmenterLib" / "slicer" / "widget.py"


@pytest.fixture(scope="module")
def widgets() -> dict[str, ET.Element]:
    root = ET.parse(UI).getroot()
    found: dict[str, ET.Element] = {}
    for widget in root.iter("widget"):
        name = widget.get("name")
        assert name not in found, f"widget name {name} used twice in the .ui"
        found[name] = widget
    return found


def _property(widget: ET.Element, name: str) -> ET.Element | None:
    for prop in widget.findall("property"):
        if prop.get("name") == name:
            return prop
    return None


def test_every_ui_name_used_in_code_exists(widgets):
    used = set(re.findall(r"\.ui\.([A-Za-z_]\w*)", PANEL.read_text() + SCRIPT.read_text()))
    assert len(used) > 20, "the panel uses hardly any self.ui.<name>?"
    missing = sorted(used - set(widgets))
    assert not missing, f"used in the panel but not in MTSASegmenter.ui: {missing}"


def test_custom_widget_classes_are_declared():
    root = ET.parse(UI).getroot()
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    used = {w.get("class") for w in root.iter("widget")}
    custom = {c for c in used if c.startswith(("ctk", "qMRML", "qSlicer"))}
    assert custom <= declared, f"custom widgets without a <customwidget> entry: {sorted(custom - declared)}"


def test_node_selectors(widgets):
    volume = widgets["inputVolumeSelector"]
    assert volume.get("class") == "qMRMLNodeComboBox"
    assert [s.text for s in _property(volume, "nodeTypes").iter("string")] == ["vtkMRMLScalarVolumeNode"]
    segmentation = widgets["outputSegmentationSelector"]
    assert segmentation.get("class") == "qMRMLNodeComboBox"
    assert [s.text for s in _property(segmentation, "nodeTypes").iter("string")] == ["vtkMRMLSegmentationNode"]
    assert _property(segmentation, "noneEnabled").findtext("bool") == "true"  # "Create new" is the default
    assert "new" in _property(segmentation, "noneDisplay").findtext("string").lower()
    # both selectors follow the scene
    root = ET.parse(UI).getroot()
    receivers = {c.findtext("receiver") for c in root.iter("connection") if c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"}
    assert {"inputVolumeSelector", "outputSegmentationSelector"} <= receivers


def test_panel_parts_have_the_expected_classes(widgets):
    expected = {
        "modelPathLineEdit": "ctkPathLineEdit",
        "deviceComboBox": "QComboBox",
        "applyButton": "QPushButton",
        "progressBar": "QProgressBar",
        "statusLabel": "QLabel",
        "egfrCollapsibleButton": "ctkCollapsibleButton",
        "lesionTable": "QTableWidget",
        "syntheticWarningLabel": "QLabel",
        "egfrPlotFrame": "QFrame",
        "batchSizeSpinBox": "QSpinBox",
        "modelSourceComboBox": "QComboBox",
    }
    for name, cls in expected.items():
        assert widgets[name].get("class") == cls, name
    assert _property(widgets["applyButton"], "text").findtext("string") == "Predict GTV + EGFR"


def test_module_script_is_thin_and_defines_the_four_slicer_classes():
    source = SCRIPT.read_text()
    tree = ast.parse(source)
    bases = {node.name: [ast.unparse(b) for b in node.bases] for node in tree.body if isinstance(node, ast.ClassDef)}
    assert "ScriptedLoadableModule" in bases["MTSASegmenter"]
    assert bases["MTSASegmenterWidget"] == ["ScriptedLoadableModuleWidget"]
    assert bases["MTSASegmenterLogic"] == ["ScriptedLoadableModuleLogic", "SegmenterLogic"]
    assert "ScriptedLoadableModuleTest" in bases["MTSASegmenterTest"]
    widget = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MTSASegmenterWidget")
    assert sum(len(ast.unparse(f).splitlines()) for f in widget.body) < 40, "the panel belongs in MTSASegmenterLib/slicer/widget.py"
    assert "sys.path" not in source  # Slicer puts the module's folder on sys.path itself


def test_self_test_skips_with_a_reason_and_never_installs():
    """A skip must read as a skip (unittest's skipTest), not as a pass; tests never download packages."""
    tree = ast.parse(SCRIPT.read_text())
    test = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MTSASegmenterTest")
    calls = {ast.unparse(c.func) for c in ast.walk(test) if isinstance(c, ast.Call)}
    assert "self.skipTest" in calls
    assert "dependencies.ensure" in calls
    assert not {c for c in calls if "pip_install" in c or "installTorch" in c or "pip_ensure" in c}
    for function in (n for n in ast.walk(test) if isinstance(n, ast.FunctionDef)):
        for statement in function.body:  # no "delayDisplay(...skipped...); return" pattern
            assert not (isinstance(statement, ast.Return) and function.name.startswith("test_")), function.name
    ensure = ast.unparse(next(c for c in ast.walk(test) if isinstance(c, ast.Call) and ast.unparse(c.func) == "dependencies.ensure"))
    assert "ask=False" in ensure


def test_parameter_names_used_by_the_panel_are_fields_of_the_parameter_node():
    from MTSASegmenterLib.slicer.parameters import SegmenterParameters

    used = set(re.findall(r"\bp\.([A-Za-z_]\w*)", PANEL.read_text())) | set(re.findall(r"_parameters\.([A-Za-z_]\w*)", PANEL.read_text()))
    assert used and used <= set(SegmenterParameters.__annotations__), used - set(SegmenterParameters.__annotations__)


def test_core_never_imports_qt_or_slicer_outside_its_slicer_package():
    lib = MODULE / "MTSASegmenterLib"
    for path in sorted(lib.rglob("*.py")):
        if "slicer" in path.relative_to(lib).parts[:-1]:
            continue  # MTSASegmenterLib/slicer/: the one place that faces Slicer and Qt
        tree = ast.parse(path.read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
        name = path.relative_to(lib)
        assert not imported & {"qt", "ctk", "PythonQt", "slicer"}, f"{name} imports Qt or slicer"


def test_no_test_folder_is_named_slicer():
    """slicer-core's ``slicer`` package extends its path over every ``slicer`` folder on sys.path and
    imports all modules there: a Testing/slicer/ folder would be imported as part of ``slicer``."""
    assert not (ROOT / "Testing" / "slicer").exists()

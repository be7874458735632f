"""The parameter node: the user's choices go into the scene file and come back with it (real MRML).

``WrapperDouble`` is a test double of Slicer's ``parameterNodeWrapper`` (part of the application's
Python, not of slicer-core): it stores each field of ``SegmenterParameters`` on a real
``vtkMRMLScriptedModuleNode`` the way the wrapper's serializers do (Slicer's
``parameterNodeWrapper/serializers.py``: a node as a node reference plus an empty parameter of
the same name, a bool as "True"/"False", numbers and text as text).
"""

from __future__ import annotations

import typing

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("'slicer' is not Slicer's MRML (install slicer-core)", allow_module_level=True)
from MTSASegmenterLib.errors import InputError  # noqa: E402
from MTSASegmenterLib.slicer import reloading  # noqa: E402
from MTSASegmenterLib.slicer.parameters import SegmenterParameters, request_from_parameters  # noqa: E402

FIELDS = typing.get_type_hints(SegmenterParameters)


class WrapperDouble:
    """Test double of parameterNodeWrapper(SegmenterParameters) over a real scripted module node."""

    def __init__(self, node) -> None:
        object.__setattr__(self, "node", node)

    def __getattr__(self, name):
        kind, node = FIELDS[name], self.node
        if isinstance(kind, type) and issubclass(kind, slicer.vtkMRMLNode):
            return node.GetNodeReference(name)
        if not node.HasParameter(name):
            return getattr(SegmenterParameters, name)
        text = node.GetParameter(name)
        return text == "True" if kind is bool else kind(text)

    def __setattr__(self, name, value) -> None:
        kind, node = FIELDS[name], self.node
        if isinstance(kind, type) and issubclass(kind, slicer.vtkMRMLNode):
            node.SetParameter(name, "")
            node.SetNodeReferenceID(name, value.GetID() if value is not None else None)
        elif kind is bool:
            node.SetParameter(name, "True" if value else "False")
        else:
            node.SetParameter(name, str(value))


def test_every_field_is_a_type_the_wrapper_serialises():
    for name, kind in FIELDS.items():
        assert kind in (bool, int, float, str) or issubclass(kind, slicer.vtkMRMLNode), name
    assert FIELDS["inputVolume"] is slicer.vtkMRMLScalarVolumeNode
    assert FIELDS["outputSegmentation"] is slicer.vtkMRMLSegmentationNode


def test_choices_are_saved_with_the_scene_and_restored(tmp_path, tiny_checkpoint):
    scene = slicer.vtkMRMLScene()
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "t1 ce")
    scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "another")
    output = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "mine")
    node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
    node.SetAttribute("ModuleName", "MTSASegmenter")
    params = WrapperDouble(node)
    assert (params.useBundledModel, params.device, params.batchSize, params.inputVolume) == (True, "auto", 0, None)
    params.inputVolume, params.outputSegmentation = volume, output
    params.useBundledModel, params.modelPath, params.device, params.batchSize = False, str(tiny_checkpoint), "cpu", 8

    scene.SetURL(str(tmp_path / "scene.mrml"))
    assert scene.Commit()
    reloaded = slicer.vtkMRMLScene()
    reloaded.SetURL(str(tmp_path / "scene.mrml"))
    assert reloaded.Import()
    restored = WrapperDouble(reloaded.GetFirstNodeByClass("vtkMRMLScriptedModuleNode"))
    request = request_from_parameters(restored)
    assert request.volume.GetScene() is reloaded and request.volume.GetName() == "t1 ce"
    assert request.segmentation.GetName() == "mine"
    assert (request.model, request.device, request.batch_size) == (tiny_checkpoint, "cpu", 8)
    assert restored.useBundledModel is False


@pytest.mark.parametrize("change, message", [
    ({"inputVolume": None}, "Select the T1-CE input volume."),
    ({"useBundledModel": False}, "Choose a model file, or select the bundled demo model."),
    ({"useBundledModel": False, "modelPath": "/nowhere/model.pt"}, "/nowhere/model.pt: model file not found"),
    ({"device": "tpu"}, "tpu: unknown device (choose one of auto, cpu, cuda, mps)"),
    ({"batchSize": -1}, "-1: slices per batch must be 0 (automatic) or more"),
])
def test_what_cannot_run_is_refused_with_one_message(change, message):
    scene = slicer.vtkMRMLScene()
    params = WrapperDouble(scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode"))
    params.inputVolume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "v")
    request = request_from_parameters(params)
    assert (request.model, request.segmentation, request.device, request.batch_size) == (None, None, "auto", None)
    for name, value in change.items():
        setattr(params, name, value)
    with pytest.raises(InputError) as raised:
        request_from_parameters(params)
    assert str(raised.value) == message


def test_reload_reads_the_library_from_disk_again(tmp_path, monkeypatch):
    package = tmp_path / "ReloadProbeLib"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "part.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import ReloadProbeLib.part

    assert ReloadProbeLib.part.VALUE == 1
    (package / "part.py").write_text("VALUE = 2  # edited\n")
    assert reloading.forget_library("ReloadProbeLib") == ["ReloadProbeLib", "ReloadProbeLib.part"]
    import importlib

    importlib.invalidate_caches()
    assert importlib.import_module("ReloadProbeLib.part").VALUE == 2

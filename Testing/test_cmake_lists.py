"""The extension's CMake files list exactly the files on disk, so nothing is left out of a Slicer build."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import ROOT

MODULE = ROOT / "MTSASegmenter"
IGNORED_PARTS = {"__pycache__", ".pytest_cache"}


def _cmake_set(text: str, variable: str, module_name: str = "MTSASegmenter") -> list[str]:
    """Items of ``set(VARIABLE ...)`` with ``${MODULE_NAME}`` expanded and comments dropped."""
    match = re.search(rf"set\(\s*{variable}\s+(.*?)\)", text, re.S)
    assert match, f"set({variable} ...) not found"
    body = "\n".join(line.split("#", 1)[0] for line in match.group(1).splitlines())
    return [item.replace("${MODULE_NAME}", module_name) for item in body.split()]


def _files_under(folder: Path, suffix: str | None = None) -> set[str]:
    return {
        p.relative_to(MODULE).as_posix()
        for p in folder.rglob("*")
        if p.is_file()
        and not IGNORED_PARTS.intersection(p.parts)
        and not p.name.startswith(".")
        and p.suffix != ".pyc"
        and (suffix is None or p.suffix == suffix)
    }


@pytest.fixture(scope="module")
def module_cmake() -> str:
    return (MODULE / "CMakeLists.txt").read_text()


def test_scripts_list_every_python_file_of_the_module(module_cmake):
    listed = _cmake_set(module_cmake, "MODULE_PYTHON_SCRIPTS")
    assert len(listed) == len(set(listed)), "a script is listed twice"
    on_disk = {"MTSASegmenter.py"} | _files_under(MODULE / "MTSASegmenterLib", ".py")
    assert not on_disk - set(listed), f"not listed in MTSASegmenter/CMakeLists.txt: {sorted(on_disk - set(listed))}"
    assert not set(listed) - on_disk, f"listed but missing on disk: {sorted(set(listed) - on_disk)}"


def test_resources_list_every_resource_file(module_cmake):
    listed = _cmake_set(module_cmake, "MODULE_PYTHON_RESOURCES")
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    on_disk = _files_under(MODULE / "Resources")
    assert not on_disk - set(listed), f"not listed in MTSASegmenter/CMakeLists.txt: {sorted(on_disk - set(listed))}"
    assert not set(listed) - on_disk, f"listed but missing on disk: {sorted(set(listed) - on_disk)}"


def test_module_build_and_test_registration(module_cmake):
    assert re.search(r"set\(\s*MODULE_NAME\s+MTSASegmenter\s*\)", module_cmake)
    call = re.search(r"slicerMacroBuildScriptedModule\((.*?)\)", module_cmake, re.S)
    assert call, "slicerMacroBuildScriptedModule(...) missing"
    for word in ("NAME ${MODULE_NAME}", "SCRIPTS ${MODULE_PYTHON_SCRIPTS}", "RESOURCES ${MODULE_PYTHON_RESOURCES}", "WITH_GENERIC_TESTS"):
        assert word in " ".join(call.group(1).split()), word
    testing = re.search(r"if\(BUILD_TESTING\)(.*?)endif\(\)", module_cmake, re.S)
    assert testing, "no if(BUILD_TESTING) block"
    subdirs = re.findall(r"add_subdirectory\(\s*([^\s)]+)\s*\)", testing.group(1))
    assert subdirs, "BUILD_TESTING registers no test directory"
    for subdir in subdirs:
        cmake = MODULE / subdir / "CMakeLists.txt"
        assert cmake.is_file(), f"{cmake} missing"
        text = cmake.read_text()
        scripts = re.findall(r"slicer_add_python_unittest\(\s*SCRIPT\s+([^\s)]+)", text)
        assert scripts, f"{cmake}: no slicer_add_python_unittest"
        for script in scripts:
            path = script.replace("${CMAKE_CURRENT_SOURCE_DIR}", str(cmake.parent)).replace("${MODULE_NAME}", "MTSASegmenter")
            assert Path(path).resolve().is_file(), f"{cmake}: test script {script} does not exist"


def test_extension_cmake_fields():
    text = (ROOT / "CMakeLists.txt").read_text()
    fields = dict(re.findall(r'set\((EXTENSION_[A-Z_]+)\s+"?([^")]*)"?\)', text))
    for name in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                 "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert fields.get(name, "").strip(), f"{name} is empty or missing"
    assert fields["EXTENSION_CATEGORY"] == "Segmentation"
    assert "PyTorch" in fields["EXTENSION_DEPENDS"].split()
    assert fields["EXTENSION_HOMEPAGE"].startswith("https://")
    # the icon URL names a file of this repository
    icon = fields["EXTENSION_ICONURL"].split("/main/", 1)[1]
    assert (ROOT / icon).is_file(), f"EXTENSION_ICONURL points at {icon}, not in the repository"
    order = ["find_package(Slicer", "include(${Slicer_USE_FILE})", "add_subdirectory(MTSASegmenter)",
             "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"]
    positions = [text.find(s) for s in order]
    assert all(p >= 0 for p in positions), dict(zip(order, positions))
    assert positions == sorted(positions), "CMake calls out of order"


def test_icons_are_128_pixel_pngs():
    sitk = pytest.importorskip("SimpleITK")
    module_icon = MODULE / "Resources" / "Icons" / "MTSASegmenter.png"
    extension_icon = ROOT / "Resources" / "Icons" / "MTSASegmenter.png"
    for icon in (module_icon, extension_icon):
        assert icon.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", icon
        assert sitk.ReadImage(str(icon)).GetSize()[:2] == (128, 128), icon

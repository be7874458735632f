"""What the Slicer Extensions Index reads: the licence, the metadata in CMakeLists.txt, the pictures it links."""

from __future__ import annotations

import re

from helpers import ROOT


def _cmake_value(name: str) -> str:
    match = re.search(rf'set\({name} "([^"]*)"\)', (ROOT / "CMakeLists.txt").read_text())
    assert match, name
    return match.group(1)


def test_licence_is_the_full_apache_2_text():
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    for section in ("1. Definitions.", "4. Redistribution.", "9. Accepting Warranty or Additional Liability.",
                    "END OF TERMS AND CONDITIONS"):
        assert section in text
    assert len(text.splitlines()) >= 200
    assert "Apache-2.0" in (ROOT / "pyproject.toml").read_text()


def test_contributors_and_category_are_in_the_index_format():
    assert _cmake_value("EXTENSION_CONTRIBUTORS") == "MTSASegmenter developers"
    assert _cmake_value("EXTENSION_CATEGORY") == "Segmentation"
    assert _cmake_value("EXTENSION_DEPENDS") == "PyTorch"


def test_linked_pictures_exist_in_the_repository():
    """The icon and screenshot URLs point into the repository; the files they name must be there."""
    urls = [_cmake_value("EXTENSION_ICONURL"), *_cmake_value("EXTENSION_SCREENSHOTURLS").split()]
    homepage = _cmake_value("EXTENSION_HOMEPAGE")
    raw = homepage.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    for url in urls:
        assert url.startswith(raw), url
        path = ROOT / url[len(raw):]
        assert path.is_file() and path.stat().st_size > 1000, path

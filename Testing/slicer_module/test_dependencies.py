"""dependencies.py: what the module needs in Slicer's Python, the version checks and the messages."""

from __future__ import annotations

import tomllib

import pytest
from helpers import ROOT
from MTSASegmenterLib.slicer import dependencies as deps
from packaging.requirements import Requirement


def _versions(**installed):
    return lambda name: installed.get(name)


def test_the_three_groups_are_exactly_pyprojects_dependencies():
    """What Slicer gets is what pip installs: the requirements file, torch via PyTorchUtils, what Slicer ships."""
    declared = {str(Requirement(d)) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    groups = [*deps.load_requirements(), deps.TORCH, *deps.PROVIDED_BY_SLICER]
    assert sorted(str(r) for r in groups) == sorted(declared)
    assert len(groups) == len(declared)


def test_requirements_file_is_read_as_pip_reads_it(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# comment\n\nscikit-image>=0.21  # inline\n--index-url https://example.invalid\ntqdm>=4.60; python_version>'3'\n")
    assert [str(r) for r in deps.load_requirements(path)] == ["scikit-image>=0.21", 'tqdm>=4.60; python_version > "3"']


@pytest.mark.parametrize("installed, ok", [(None, False), ("1.13.1", False), ("2.0.1", False), ("2.1.0", True),
                                           ("2.5.1+cu121", True), ("2.13.0", True), ("3.0.0", False), ("2.6.0rc1", True),
                                           ("not-a-version", False)])
def test_version_comparison(installed, ok):
    assert deps.satisfied(deps.TORCH, installed) is ok
    assert (deps.unmet([deps.TORCH], _versions(torch=installed)) == []) is ok


def test_unmet_keeps_order_and_skips_other_platforms():
    requirements = [Requirement("b>=2"), Requirement("a>=1"), Requirement("c; sys_platform == 'nowhere'")]
    found = deps.unmet(requirements, _versions(a="0.9"))
    assert [(u.requirement.name, u.installed) for u in found] == [("b", None), ("a", "0.9")]
    assert [u.describe() for u in found] == ["b (not installed; needs >=2)", "a 0.9 (needs >=1)"]


def test_this_python_has_what_slicer_would_provide():
    """Real installed versions (importlib.metadata) of numpy, SimpleITK, SciPy and pydicom pass the same check."""
    assert deps.unmet(deps.PROVIDED_BY_SLICER) == []
    assert deps.installed_version("no-such-distribution-mtsa") is None


def test_platform_problems_name_the_minimum():
    fine = _versions(numpy="2.2.0", SimpleITK="2.5.0", scipy="1.15.0", pydicom="3.0.1")
    assert deps.platform_problems((5, 10), (3, 12), fine) == []
    assert deps.platform_problems((5, 11), (3, 12), fine) == []
    (old,) = deps.platform_problems((5, 8), (3, 9), fine)
    assert old == "MTSASegmenter needs Slicer 5.10 or later (this is Slicer 5.8)."
    (numpy,) = deps.platform_problems((5, 10), (3, 12), _versions(numpy="1.21.0", SimpleITK="2.5.0", scipy="1.15.0", pydicom="3.0.1"))
    assert numpy.startswith("Slicer's numpy 1.21.0 (needs >=1.24)") and "not replaced" in numpy


def test_an_old_torch_from_another_extension_is_refused_with_a_message():
    message = deps.torch_problem("1.13.1")
    assert "PyTorch 1.13.1 is installed" in message and str(deps.TORCH.specifier) in message
    assert "restart Slicer" in message
    assert deps.torch_problem(None) is None and deps.torch_problem("2.4.0+cpu") is None


def test_one_question_lists_everything_that_will_be_installed():
    to_install = deps.unmet([deps.TORCH, *deps.load_requirements()], _versions(tqdm="4.66.0", **{"scikit-image": "0.19.0"}))
    question = deps.install_question(to_install, torch_from_extension=True)
    assert "  - torch (not installed; needs" in question
    assert "  - scikit-image 0.19.0 (needs >=0.21)" in question
    assert "opencv-python-headless" in question and "tqdm" not in question
    assert "picks the build for this computer's GPU" in question
    assert "install the 'PyTorch' extension" in deps.install_question(to_install, torch_from_extension=False)


@pytest.mark.parametrize("detail, reason", [
    ("Collecting scikit-image>=0.21\nWARNING: Retrying (Retry(total=4...)) after connection broken by 'ProxyError'\n"
     "ERROR: Could not find a version that satisfies the requirement scikit-image>=0.21 (from versions: none)\n"
     "ERROR: No matching distribution found for scikit-image>=0.21\n",
     "ERROR: No matching distribution found for scikit-image>=0.21"),
    ("Command '['PythonSlicer', '-m', 'pip']' returned non-zero exit status 1.",
     "Command '['PythonSlicer', '-m', 'pip']' returned non-zero exit status 1."),
    ("", "unknown error"),
])
def test_every_install_failure_ends_in_one_message(detail, reason):
    to_install = deps.unmet(deps.load_requirements(), _versions())
    message = deps.install_failure(to_install, detail)
    assert message.startswith(f"Installing scikit-image, opencv-python-headless, tqdm, highdicom, nibabel failed: {reason}\n")
    assert ('PythonSlicer -m pip install "scikit-image>=0.21" "opencv-python-headless>=4.8" "tqdm>=4.60" "highdicom<1,>=0.25" '
            '"nibabel<6,>=5"') in message
    assert "proxy" in message


def test_failure_detail_prefers_the_output_of_pip():
    import subprocess

    error = subprocess.CalledProcessError(1, ["pip"], output="ERROR: boom")
    assert deps._failure_detail(error) == "ERROR: boom"
    assert deps._failure_detail(OSError("network is unreachable")) == "network is unreachable"


def test_declined_and_still_missing_say_what_is_missing():
    to_install = deps.unmet([deps.TORCH], _versions(torch="1.12.0"))
    assert deps.declined(to_install) == "MTSASegmenter cannot predict without torch; installation was declined."
    assert deps.still_unmet(to_install).startswith("These packages are still missing or outdated after installing: torch 1.12.0")

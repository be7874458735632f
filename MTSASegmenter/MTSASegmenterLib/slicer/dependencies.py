"""What the module needs in Slicer's Python, how it is checked, and what the user reads when it fails.

Three groups, from ``pyproject.toml``'s dependencies: packages the module installs (the
requirements file, through ``slicer.packaging.pip_ensure`` where Slicer has it, else
``slicer.util.pip_install``), PyTorch (the PyTorch extension's ``PyTorchUtils`` picks the build for
the GPU driver), and what Slicer itself ships (numpy, SimpleITK, SciPy, pydicom: checked, never replaced).
Installed versions are compared with the specifiers, so an old torch another extension installed
is refused with a message rather than used. ``ensure`` is the only function that needs the
application; everything it decides and says is computed by the pure functions above it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..errors import MTSAError

try:
    from packaging.requirements import Requirement
    from packaging.version import InvalidVersion, Version
except ImportError:  # Slicer's Python always has pip, which vendors packaging
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.version import InvalidVersion, Version  # type: ignore[no-redef]

REQUIREMENTS_FILE = Path(__file__).resolve().parents[2] / "Resources" / "requirements.txt"
TORCH = Requirement("torch>=2.1,<3")
PROVIDED_BY_SLICER = [Requirement("numpy>=1.24"), Requirement("SimpleITK>=2.3"), Requirement("scipy>=1.10"),
                      Requirement("pydicom>=3.0,<4")]  # Slicer's DICOM module uses pydicom 3 from Slicer 5.10 on
#: The oldest Slicer whose Python (3.12, with numpy 2) runs the core; Slicer 5.8 has Python 3.9.
MINIMUM_SLICER = (5, 10)
MINIMUM_PYTHON = (3, 10)
REQUESTER = "MTSASegmenter"

VersionOf = Callable[[str], "str | None"]


class DependencyError(MTSAError):
    """What the module needs is missing or unusable and was not (or could not be) installed."""


@dataclass(frozen=True)
class Unmet:
    requirement: Requirement
    installed: str | None  # None: not installed

    def describe(self) -> str:
        if self.installed is None:
            return f"{self.requirement.name} (not installed; needs {self.requirement.specifier})"
        return f"{self.requirement.name} {self.installed} (needs {self.requirement.specifier})"


def load_requirements(path: Path = REQUIREMENTS_FILE) -> list[Requirement]:
    """The requirements file as pip reads it: one specifier a line, comments and options skipped."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def satisfied(requirement: Requirement, installed: str | None) -> bool:
    if installed is None:
        return False
    try:  # local labels (2.5.1+cu121) and pre-releases count as what they are
        return requirement.specifier.contains(Version(installed), prereleases=True)
    except InvalidVersion:
        return False


def unmet(requirements: Sequence[Requirement], version_of: VersionOf = installed_version) -> list[Unmet]:
    """The requirements that are missing or installed at a version outside their specifier."""
    found = [(r, version_of(r.name)) for r in requirements if r.marker is None or r.marker.evaluate()]
    return [Unmet(r, v) for r, v in found if not satisfied(r, v)]


def platform_problems(slicer_version: tuple[int, int], python_version: tuple[int, int],
                      version_of: VersionOf = installed_version) -> list[str]:
    """Why this Slicer cannot run the module (too old, or a package Slicer ships is too old); empty if it can."""
    problems = []
    if tuple(slicer_version) < MINIMUM_SLICER:
        problems.append(f"MTSASegmenter needs Slicer {'.'.join(map(str, MINIMUM_SLICER))} or later "
                        f"(this is Slicer {'.'.join(map(str, slicer_version))}).")
    elif tuple(python_version) < MINIMUM_PYTHON:
        problems.append(f"MTSASegmenter needs Python {'.'.join(map(str, MINIMUM_PYTHON))} or later in Slicer "
                        f"(this Slicer has Python {'.'.join(map(str, python_version))}).")
    for item in unmet(PROVIDED_BY_SLICER, version_of):
        problems.append(f"Slicer's {item.describe()}: it ships with Slicer and is not replaced by this module; "
                        "use a newer Slicer.")
    return problems


def pip_command(requirements: Sequence[Requirement | str]) -> str:
    return "PythonSlicer -m pip install " + " ".join(f'"{r}"' for r in requirements)


def torch_problem(installed: str | None) -> str | None:
    """The message for an installed torch the module cannot use (None when it can, or none is installed)."""
    if installed is None or satisfied(TORCH, installed):
        return None
    return (f"PyTorch {installed} is installed in Slicer's Python (perhaps by another extension), but "
            f"MTSASegmenter needs torch{TORCH.specifier}. Update it in the 'PyTorch Util' module (or with: "
            f"{pip_command([TORCH])}), then restart Slicer.")


def install_question(to_install: Sequence[Unmet], torch_from_extension: bool) -> str:
    """The one confirmation the user answers before anything is downloaded."""
    items = "\n".join(f"  - {item.describe()}" for item in to_install)
    torch_note = ""
    if any(item.requirement.name == TORCH.name for item in to_install):
        torch_note = ("\nPyTorch is installed by the PyTorch extension, which picks the build for this computer's GPU."
                      if torch_from_extension else
                      "\nFor a build that matches your GPU, install the 'PyTorch' extension instead and restart.")
    return (f"MTSASegmenter needs these Python packages in Slicer's Python:\n{items}\n{torch_note}\n"
            "Install them now? This downloads from the Python Package Index (through the proxy configured for "
            "pip, if any) and may take several minutes.")


def install_failure(to_install: Sequence[Unmet], detail: str) -> str:
    """One message for every way installing can fail: no network, a proxy, a pip error, a broken package."""
    names = ", ".join(item.requirement.name for item in to_install)
    lines = [line.strip() for line in (detail or "").splitlines() if line.strip()]
    reason = next((line for line in reversed(lines) if line.lower().startswith("error")), lines[-1] if lines else "unknown error")
    return (f"Installing {names} failed: {reason}\nCheck the network connection (and the proxy settings pip uses: "
            f"HTTPS_PROXY or pip.conf), or install them from a terminal with\n  "
            f"{pip_command([item.requirement for item in to_install])}\nthen restart Slicer.")


def declined(to_install: Sequence[Unmet]) -> str:
    return (f"MTSASegmenter cannot predict without {', '.join(item.requirement.name for item in to_install)}; "
            "installation was declined.")


def still_unmet(to_install: Sequence[Unmet]) -> str:
    return ("These packages are still missing or outdated after installing: "
            + "; ".join(item.describe() for item in to_install) + ". Restart Slicer and try again.")


def _failure_detail(error: BaseException) -> str:
    parts = [getattr(error, name, None) for name in ("output", "stderr")]
    return "\n".join(str(p) for p in parts if p) or str(error)


def ensure(ask: bool = True, version_of: VersionOf = installed_version) -> None:  # pragma: no cover - needs Slicer
    """Check everything and install what is missing after one confirmation; raise DependencyError with
    the one message to show otherwise. Nothing is installed while Slicer runs its tests."""
    import slicer

    problems = platform_problems((slicer.app.majorVersion, slicer.app.minorVersion), sys.version_info[:2], version_of)
    problem = torch_problem(version_of(TORCH.name))
    if problems or problem:
        raise DependencyError("\n".join(problems + ([problem] if problem else [])))
    to_install = unmet([TORCH, *load_requirements()], version_of)
    if not to_install:
        return
    if slicer.app.testingEnabled():
        raise DependencyError(f"not installed, and tests never download packages: {', '.join(i.describe() for i in to_install)}")
    try:
        import PyTorchUtils
    except ImportError:
        PyTorchUtils = None
    if ask and not slicer.util.confirmOkCancelDisplay(install_question(to_install, PyTorchUtils is not None),
                                                      windowTitle="MTSASegmenter: install Python packages?"):
        raise DependencyError(declined(to_install))
    try:
        _install(slicer, PyTorchUtils, to_install)
    except DependencyError:
        raise
    except Exception as error:  # no network, proxy, pip's own errors: all end in one message
        raise DependencyError(install_failure(to_install, _failure_detail(error))) from error
    importlib.invalidate_caches()
    left = unmet([item.requirement for item in to_install], version_of)
    if left:
        raise DependencyError(still_unmet(left))


def _install(slicer, PyTorchUtils, to_install: Sequence[Unmet]) -> None:  # pragma: no cover - needs Slicer
    packages = [item.requirement for item in to_install if item.requirement.name != TORCH.name]
    if len(packages) < len(to_install):
        if PyTorchUtils is not None:
            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=str(TORCH.specifier)) is None:
                raise DependencyError(install_failure([Unmet(TORCH, None)], "the PyTorch extension did not install torch"))
        else:
            packages.insert(0, TORCH)
    if not packages:
        return
    packaging = getattr(slicer, "packaging", None)
    if packaging is not None and hasattr(packaging, "pip_ensure"):
        packaging.pip_ensure(packages, prompt_install=False, requester=REQUESTER)
    else:
        slicer.util.pip_install([str(r) for r in packages])


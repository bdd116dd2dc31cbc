"""The Slicer version and the Python packages the engines need, checked on first use; packages are
installed or upgraded only after the user agrees.

Inside Slicer, PyTorch comes through the PyTorch extension's ``PyTorchUtils`` (it picks the build
matching the GPU driver; ``installTorch(askConfirmation, forceComputationBackend,
torchVersionRequirement, ...)`` in SlicerPyTorch's PyTorchUtils.py) and the rest through
``slicer.util.pip_install``. Installed versions are read from package metadata, never by importing
the package, so the check itself loads no PyTorch into Slicer's process.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from typing import Callable

# monai 1.6 needs Python >= 3.10 and torch >= 2.8; Slicer 5.6 and 5.8 bundle Python 3.9, Slicer 5.10
# (released 2025-11) is the first to bundle Python 3.12 (Slicer's top-level CMakeLists.txt,
# Slicer_REQUIRED_PYTHON_VERSION).
MINIMUM_SLICER_VERSION = (5, 10)


@dataclass(frozen=True)
class Requirement:
    module: str  # import name
    distribution: str  # name on PyPI (what importlib.metadata and pip know)
    minimum: str = ""  # lowest version the engines were written for ("" = any)

    @property
    def specifier(self) -> str:
        """What pip installs, e.g. ``monai>=1.6.1``."""
        return f"{self.distribution}>={self.minimum}" if self.minimum else self.distribution


REQUIREMENTS = (
    Requirement("torch", "torch", "2.8"),
    Requirement("monai", "monai", "1.6.1"),
    Requirement("einops", "einops"),
    Requirement("SimpleITK", "SimpleITK"),  # bundled with Slicer
    Requirement("tqdm", "tqdm"),
)


def version_key(version: str) -> tuple[int, ...]:
    """The leading numeric release of a version string: ``2.5.1+cu121`` -> (2, 5, 1)."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def installed_version(requirement: Requirement) -> str | None:
    """The installed version of the requirement's distribution; "" when the module is importable but has no
    package metadata (Slicer builds SimpleITK itself); None when it is not installed."""
    try:
        return importlib.metadata.version(requirement.distribution)
    except importlib.metadata.PackageNotFoundError:
        return "" if importlib.util.find_spec(requirement.module) is not None else None


def is_satisfied(requirement: Requirement, version: str | None) -> bool:
    """Whether ``version`` (None = not installed, "" = version unknown) meets the requirement's minimum."""
    if version is None:
        return False
    return not (requirement.minimum and version) or version_key(version) >= version_key(requirement.minimum)


def unmet_requirements(requirements: tuple[Requirement, ...] = REQUIREMENTS) -> list[tuple[Requirement, str | None]]:
    """The requirements that are missing or too old here, each with the version found (None = missing)."""
    found = [(requirement, installed_version(requirement)) for requirement in requirements]
    return [(requirement, version) for requirement, version in found if not is_satisfied(requirement, version)]


def unmet_requirement_names(requirements: tuple[Requirement, ...] = REQUIREMENTS) -> list[str]:
    """The pip specifiers of the requirements that are missing or too old (empty when all are met)."""
    return [requirement.specifier for requirement, _ in unmet_requirements(requirements)]


def install_question(unmet: list[tuple[Requirement, str | None]]) -> str:
    """The question put to the user before anything is installed or upgraded."""
    items = ", ".join(f"{r.specifier} (installed: {v})" if v else r.specifier for r, v in unmet)
    torch_note = (" PyTorch is installed by the PyTorch extension (the build that suits this computer's GPU"
                  " driver, or the CPU build)." if any(r.module == "torch" for r, _ in unmet) else "")
    return (f"This module needs Python packages that are missing or too old: {items}.{torch_note} "
            "Install them now? This downloads several hundred MB and may take a few minutes. Other extensions "
            "that use the same packages get the new versions too.")


def ensure_requirements(confirm: Callable[[str], bool], install_torch: Callable[[str], bool],
                        pip_install: Callable[[str], None],
                        requirements: tuple[Requirement, ...] = REQUIREMENTS) -> tuple[bool, str]:
    """Check, ask, install. Returns (ready, message); ``ready`` is False when the user declined or it failed.

    ``install_torch`` gets the version requirement (for example ``>=2.8``); ``pip_install`` a specifier.
    """
    unmet = unmet_requirements(requirements)
    if not unmet:
        return True, "all required packages are installed"
    if not confirm(install_question(unmet)):
        return False, f"not installed: {', '.join(r.specifier for r, _ in unmet)}; the module cannot run without them"
    for requirement, _ in unmet:
        if requirement.module == "torch":
            if not install_torch(f">={requirement.minimum}"):
                return False, "PyTorch was not installed (see the PyTorch Utils module)"
        else:
            pip_install(requirement.specifier)
    importlib.invalidate_caches()
    still = unmet_requirements(requirements)
    if still:
        return False, f"installation failed for: {', '.join(r.specifier for r, _ in still)}"
    return True, f"installed {', '.join(r.specifier for r, _ in unmet)}"


def slicer_version_problem(major: int, minor: int) -> str | None:
    """One sentence refusing a Slicer older than :data:`MINIMUM_SLICER_VERSION`, or None when it is new enough."""
    if (major, minor) >= MINIMUM_SLICER_VERSION:
        return None
    needed = ".".join(map(str, MINIMUM_SLICER_VERSION))
    return (f"This extension needs 3D Slicer {needed} or newer (Python 3.12; MONAI 1.6 and PyTorch 2.8 do not run "
            f"on the Python 3.9 of Slicer {major}.{minor}). Install a current Slicer release.")


def running_slicer_problem() -> str | None:
    """:func:`slicer_version_problem` for the running Slicer application."""
    import slicer

    return slicer_version_problem(int(slicer.app.majorVersion), int(slicer.app.minorVersion))


def ensure_requirements_in_slicer() -> bool:
    """The Slicer version, then :func:`ensure_requirements` with Slicer's dialogs, PyTorchUtils and pip
    (inside Slicer only); shows why in an error dialog and returns False when the module cannot run."""
    import slicer

    problem = running_slicer_problem()
    if problem:
        slicer.util.errorDisplay(problem)
        return False

    reasons: list[str] = []  # why PyTorch failed, shown instead of the generic message (one dialog only)

    def install_torch(version_requirement: str) -> bool:
        try:
            import PyTorchUtils
        except ImportError:
            reasons.append("Install the 'PyTorch' extension from the Extensions Manager, restart Slicer, and try again.")
            return False
        logic = PyTorchUtils.PyTorchUtilsLogic()
        try:  # with askConfirmation=False it raises on failure (light-the-torch through _executePythonModule)
            return logic.installTorch(askConfirmation=False, torchVersionRequirement=version_requirement) is not None
        except Exception as error:  # noqa: BLE001 - any installer failure becomes one message
            reasons.append(f"PyTorch could not be installed: {str(error).splitlines()[0] if str(error) else error}")
            return False

    def confirm(question: str) -> bool:
        return slicer.util.confirmOkCancelDisplay(question, "Missing Python packages")

    ready, message = ensure_requirements(confirm, install_torch, slicer.util.pip_install)
    if not ready:
        slicer.util.errorDisplay(reasons[0] if reasons else message)
    return ready

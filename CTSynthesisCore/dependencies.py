"""The Python packages the engines need, checked on first use; installed only after the user agrees.

Inside Slicer, PyTorch comes through the PyTorch extension's ``PyTorchUtils`` (it picks the build
matching the GPU driver) and the rest through ``slicer.util.pip_install``. Nothing is installed
silently: :func:`ensure_requirements` asks first and explains what it will do.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Requirement:
    module: str  # import name
    pip: str  # what pip installs


REQUIREMENTS = (
    Requirement("torch", "torch"),
    Requirement("monai", "monai==1.6.1"),
    Requirement("einops", "einops"),
    Requirement("SimpleITK", "SimpleITK"),
    Requirement("tqdm", "tqdm"),
)


def missing_requirements(requirements: tuple[Requirement, ...] = REQUIREMENTS) -> list[Requirement]:
    """The requirements whose module cannot be imported here."""
    return [r for r in requirements if importlib.util.find_spec(r.module) is None]


def install_question(missing: list[Requirement]) -> str:
    """The question put to the user before anything is installed."""
    names = ", ".join(r.pip for r in missing)
    torch_note = (" PyTorch is installed by the PyTorch extension (the build that suits this computer's GPU"
                  " driver, or the CPU build)." if any(r.module == "torch" for r in missing) else "")
    return (f"This module needs Python packages that are not installed: {names}.{torch_note} "
            "Install them now? This downloads several hundred MB and may take a few minutes.")


def ensure_requirements(confirm: Callable[[str], bool], install_torch: Callable[[], bool],
                        pip_install: Callable[[str], None],
                        requirements: tuple[Requirement, ...] = REQUIREMENTS) -> tuple[bool, str]:
    """Check, ask, install. Returns (ready, message); ``ready`` is False when the user declined or it failed."""
    missing = missing_requirements(requirements)
    if not missing:
        return True, "all required packages are installed"
    if not confirm(install_question(missing)):
        return False, f"not installed: {', '.join(r.pip for r in missing)}; the module cannot run without them"
    for requirement in missing:
        if requirement.module == "torch":
            if not install_torch():
                return False, "PyTorch was not installed (see the PyTorch Utils module)"
        else:
            pip_install(requirement.pip)
    importlib.invalidate_caches()
    still = missing_requirements(requirements)
    if still:
        return False, f"installation failed for: {', '.join(r.pip for r in still)}"
    return True, f"installed {', '.join(r.pip for r in missing)}"


def ensure_requirements_in_slicer() -> bool:
    """:func:`ensure_requirements` with Slicer's dialogs, PyTorchUtils and pip (inside Slicer only);
    shows why in an error dialog and returns False when the module cannot run."""
    import slicer

    def install_torch() -> bool:
        try:
            import PyTorchUtils
        except ImportError:
            slicer.util.errorDisplay("Install the 'PyTorch' extension from the Extensions Manager, restart Slicer, "
                                     "and try again.")
            return False
        return PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is not None

    def confirm(question: str) -> bool:
        return slicer.util.confirmOkCancelDisplay(question, "Missing Python packages")

    ready, message = ensure_requirements(confirm, install_torch, slicer.util.pip_install)
    if not ready:
        slicer.util.errorDisplay(message)
    return ready

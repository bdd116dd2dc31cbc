"""Choice of the compute device, with a sentence that says which and why."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UserInputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class DeviceChoice:
    """The device to run on and the reason it was chosen."""

    device: str
    reason: str


def cuda_status() -> tuple[bool, str]:
    """Return whether CUDA is usable and a sentence explaining it."""
    try:
        import torch
    except ImportError:
        return False, "PyTorch is not installed"
    if torch.version.cuda is None:
        return False, f"this PyTorch build ({torch.__version__}) has no CUDA support"
    if not torch.cuda.is_available():
        return False, "no CUDA GPU is visible to PyTorch (driver missing or no GPU)"
    try:
        torch.zeros(1, device="cuda")
    except RuntimeError as error:
        return False, f"the CUDA GPU is not usable: {str(error).splitlines()[0]}"
    name = torch.cuda.get_device_name(0)
    total_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    return True, f"{name} ({total_gib:.0f} GiB)"


def choose_device(requested: str = "auto") -> DeviceChoice:
    """Resolve ``auto``/``cpu``/``cuda`` to a device; ``cuda`` that cannot run is a user error."""
    requested = (requested or "auto").lower()
    if requested.startswith("cuda:"):
        requested_base = "cuda"
    else:
        requested_base = requested
    if requested_base not in DEVICE_CHOICES:
        raise UserInputError(f"unknown device '{requested}' (choose from {', '.join(DEVICE_CHOICES)})")
    if requested_base == "cpu":
        return DeviceChoice("cpu", "CPU requested")
    usable, why = cuda_status()
    if requested_base == "cuda":
        if not usable:
            raise UserInputError(f"CUDA was requested but {why}")
        return DeviceChoice(requested, f"GPU requested: {why}")
    if usable:
        return DeviceChoice("cuda", f"GPU found: {why}")
    return DeviceChoice("cpu", f"running on CPU because {why}")

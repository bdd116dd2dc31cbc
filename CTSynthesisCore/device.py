"""Choice of the compute device, with a sentence that says which and why."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, TypeVar

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


SIMULATE_OOM_ENV = "CTSYNTHESIS_SIMULATE_OOM_ABOVE"
Result = TypeVar("Result")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is PyTorch running out of (GPU or host) memory."""
    import torch

    return isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower())


def raise_if_simulated_out_of_memory(batch: int) -> None:
    """Fault injection for the reliability tests: with ``CTSYNTHESIS_SIMULATE_OOM_ABOVE=N`` set, a network
    batch larger than N fails the way a GPU out-of-memory error does."""
    limit = os.environ.get(SIMULATE_OOM_ENV)
    if limit and batch > int(limit):
        import torch

        raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (simulated: batch {batch} > {limit})")


def run_with_batch_retry(run: Callable[[int], Result], batch_size: int,
                         on_retry: Callable[[int, int], None] = lambda old, new: None) -> Result:
    """``run(batch_size)``, retried at half the batch after an out-of-memory error, down to 1."""
    while True:
        try:
            return run(batch_size)
        except Exception as error:  # noqa: BLE001 - only out-of-memory is retried
            if not is_out_of_memory(error):
                raise
            if batch_size == 1:
                raise UserInputError("out of memory even with a batch of 1; use the CPU device or a smaller volume") from None
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            on_retry(batch_size, batch_size // 2)
            batch_size //= 2

"""Choice of the compute device, with a sentence that says which and why."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from .errors import UserInputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")
DEFAULT_DEVICE = "auto"
DEVICE_TITLES = {"auto": "Automatic (GPU if available)", "cuda": "GPU", "cpu": "CPU"}  # in the panels


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


def installed_torch_build() -> tuple[str, str | None] | None:
    """(version, CUDA version or None) of the installed PyTorch, read from its files without importing it
    (importing torch and touching CUDA would hold a GPU context in Slicer's own process); None if absent."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        version = importlib.metadata.version("torch")
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text(encoding="utf-8")
    except (importlib.metadata.PackageNotFoundError, OSError):
        return None
    cuda = re.search(r"^cuda(?::\s*[^=]+)?\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    return version, cuda.group(1) if cuda else None


@functools.lru_cache(maxsize=1)
def nvidia_gpus() -> tuple[str, ...]:
    """Names and memory of the NVIDIA GPUs the driver reports (``nvidia-smi``), without PyTorch."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return ()
    try:
        output = subprocess.run([executable, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line.strip() for line in output.splitlines() if line.strip())


def describe_device_request(requested: str) -> str:
    """What a run on ``requested`` (auto/cpu/cuda) is expected to use, said without importing PyTorch.

    The Slicer panel shows this; the worker process makes the real choice (:func:`choose_device`) and
    reports it when the run ends.
    """
    requested = (requested or "auto").lower()
    if requested not in DEVICE_CHOICES:
        return f"unknown device '{requested}' (choose from {', '.join(DEVICE_CHOICES)})"
    if requested == "cpu":
        return "CPU requested."
    build, gpus = installed_torch_build(), nvidia_gpus()
    gpu_text = f"NVIDIA GPU found: {'; '.join(gpus)}" if gpus else "No NVIDIA GPU found by the driver (nvidia-smi)"
    if build is None:
        torch_text = "PyTorch is not installed yet (it is installed, after asking, on the first run)"
    elif build[1] is None:
        torch_text = f"PyTorch {build[0]} is a CPU-only build"
    else:
        torch_text = f"PyTorch {build[0]} is built for CUDA {build[1]}"
    usable = gpu_expected(requested)
    if requested == "cuda":
        verdict = "GPU requested" + ("" if usable else ": the run will stop with an error unless a CUDA GPU is usable")
    else:
        verdict = "Automatic: " + ("the GPU is expected to be used" if usable else "the CPU is expected to be used")
    return f"{verdict}. {gpu_text}; {torch_text}. The device actually used is reported when the run ends."


def gpu_expected(requested: str) -> bool:
    """Whether a run on ``requested`` is expected to use a GPU: the driver reports one and the installed PyTorch
    is a CUDA build (read without importing PyTorch); the worker makes the real choice."""
    if (requested or "auto").lower() == "cpu":
        return False
    build = installed_torch_build()
    return bool(nvidia_gpus()) and build is not None and build[1] is not None


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

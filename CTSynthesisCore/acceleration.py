"""Inference fast paths shared by both engines.

Mixed precision (bf16/fp16 autocast) on the GPU, channels_last memory layout,
``torch.compile`` (``reduce-overhead`` = CUDA graphs) with a fallback to eager
execution when compilation fails, the batch size chosen from free GPU memory, and
CPU threads limited to the cores this process may use.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import Cancelled, UserInputError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
CPU_BATCH_SIZE = 8  # MRItoCT inputs per forward pass on CPU: per-input time is lowest at 4-8 on 2 cores
GPU_MEMORY_FRACTION = 0.8  # of the free memory, the rest left for the sampler's own tensors and fragmentation


@dataclass(frozen=True)
class InferenceOptions:
    """How to run a network at inference: ``precision`` auto = bf16 on a GPU (fp16 where bf16 is missing), fp32
    on CPU; ``compile`` a ``torch.compile`` mode or off."""

    precision: str = "auto"
    channels_last: bool = True
    compile: str = "off"

    def validated(self) -> "InferenceOptions":
        if self.precision not in PRECISIONS:
            raise UserInputError(f"unknown precision '{self.precision}' (choose from {', '.join(PRECISIONS)})")
        if self.compile not in COMPILE_MODES:
            raise UserInputError(f"unknown compile mode '{self.compile}' (choose from {', '.join(COMPILE_MODES)})")
        return self


def autocast_dtype(precision: str, device: str) -> Any:
    """The autocast dtype for ``precision`` on ``device``, or None for full fp32."""
    import torch

    on_gpu = device.startswith("cuda")
    if precision == "auto":
        if not on_gpu:
            return None  # no bf16 arithmetic on most CPUs: autocast there is slower than fp32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    """An autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    import torch

    dtype = autocast_dtype(precision, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=dtype)


def channels_last(tensor: Any) -> Any:
    """A 4D tensor in channels_last layout (other values unchanged)."""
    import torch

    if isinstance(tensor, torch.Tensor) and tensor.dim() == 4:
        return tensor.contiguous(memory_format=torch.channels_last)
    return tensor


class FastNetwork:
    """Calls ``network`` with the fast paths of ``options`` and returns float32.

    With ``compile`` set, the first call compiles; if compiling or running the compiled
    network fails (no C++ compiler, an unsupported operator, ...), ``warn`` gets one line
    and every call from then on runs the network as it is.
    """

    def __init__(self, network: Any, device: str, options: InferenceOptions,
                 warn: Callable[[str], None] = lambda message: None) -> None:
        import torch

        options = options.validated()
        self.network, self.device, self.options, self.warn = network, device, options, warn
        network.to(device)
        if options.channels_last:
            network.to(memory_format=torch.channels_last)
        self.compiled = None
        if options.compile != "off":
            self.compiled = torch.compile(network, mode=None if options.compile == "default" else options.compile)

    def __call__(self, *inputs: Any, **keywords: Any) -> Any:
        if self.options.channels_last:
            inputs = tuple(channels_last(value) for value in inputs)
        with autocast(self.device, self.options.precision):
            if self.compiled is not None:
                try:
                    return self._run_compiled(inputs, keywords)
                except Cancelled:
                    raise
                except Exception as error:  # noqa: BLE001 - any compiler failure falls back to eager
                    from .device import is_out_of_memory

                    if is_out_of_memory(error):
                        raise
                    self.compiled = None
                    self.warn(f"torch.compile failed ({type(error).__name__}: {str(error).strip().splitlines()[0][:160]}); "
                              "running without compilation")
            return self.network(*inputs, **keywords).float()

    def _run_compiled(self, inputs: tuple, keywords: dict) -> Any:
        import torch

        if self.options.compile == "reduce-overhead":  # CUDA graphs reuse their output buffers: copy out
            torch.compiler.cudagraph_mark_step_begin()
            return self.compiled(*inputs, **keywords).float().clone()
        return self.compiled(*inputs, **keywords).float()


def auto_batch_size(device: str, probe: Callable[[int], Any], most: int, cpu_default: int = CPU_BATCH_SIZE) -> int:
    """Items per forward pass: from free GPU memory (measured with ``probe(2)``, a forward pass of two items),
    or ``cpu_default`` on CPU; never more than ``most``."""
    if not device.startswith("cuda"):
        return max(1, min(most, cpu_default))
    import torch

    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    baseline = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    probe(2)
    per_item = max((torch.cuda.max_memory_allocated(device) - baseline) / 2, 1.0)
    return max(1, min(most, int(free * GPU_MEMORY_FRACTION / per_item)))


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """CPUs allowed by a cgroup v2 quota (``cpu.max``), rounded up; None without a quota."""
    try:
        quota, period = (root / "cpu.max").read_text(encoding="utf-8").split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, -(-int(quota) // int(period)))


def configure_cpu_threads() -> int:
    """Limit PyTorch's CPU threads to the cores this process may use (affinity and container quota): in a
    container PyTorch otherwise counts the host's cores and oversubscribes. Returns the thread count."""
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit()
    threads = min(usable, limit) if limit else usable
    if torch.get_num_threads() > threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()

"""How long a synthesis will take, estimated before it starts, without importing torch.

The estimate is the number of network evaluations (slices x Monte-Carlo samples x evaluations per sample)
times the input's size on the model grid, times the model's measured CPU cost per megapixel evaluation
(``cpu_cost`` in its ``metadata.json``, written by ``benchmarks/mritoct_cost.py``). It is a CPU figure from
the machine that measured it; a GPU is not measured here and is said to be faster, not how much.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from .catalog import SAMPLED_KINDS, sampler_info

CONFIRM_ABOVE_SECONDS = 600.0  # the panel asks before a run estimated to take longer


@dataclass(frozen=True)
class VolumeLayout:
    """An input volume as the pipeline sees it: axial slices and their in-plane extent in mm."""

    slices: int
    extent_mm: tuple[float, float]

    def model_pixels(self, spacing_mm: Sequence[float]) -> int:
        """Pixels of one slice on the model's in-plane grid."""
        return math.ceil(self.extent_mm[0] / spacing_mm[0]) * math.ceil(self.extent_mm[1] / spacing_mm[1])


def volume_layout(size: Sequence[int], spacing: Sequence[float], direction: Sequence[float]) -> VolumeLayout:
    """The layout of a volume of ``size`` voxels (i, j, k) with ``spacing`` and a row-major 3x3 ``direction``
    (columns = voxel axes in patient space): the voxel axis closest to head-foot holds the slices."""
    head_foot = [abs(direction[6 + axis]) for axis in range(3)]  # third row: each voxel axis's S (or z) part
    slice_axis = max(range(3), key=lambda axis: head_foot[axis])
    in_plane = [axis for axis in range(3) if axis != slice_axis]
    return VolumeLayout(int(size[slice_axis]), tuple(size[a] * spacing[a] for a in in_plane))


@dataclass(frozen=True)
class RunEstimate:
    """A synthesis's expected cost: evaluations per sample (None for an adaptive solver) and CPU seconds."""

    evaluations: int | None
    mc: int
    slices: int
    cpu_seconds: float | None
    measured_on: str

    def text(self, gpu_expected: bool) -> str:
        """One or two sentences for the panel."""
        if self.evaluations is None:
            return "Estimated time: unknown (the adaptive ODE solver chooses its own number of steps)."
        work = f"{self.evaluations} network evaluations x {self.mc} samples x {self.slices} slices"
        if self.cpu_seconds is None:
            return f"Estimated time: not measured for this model ({work})."
        text = f"Estimated time on a {self.measured_on}: about {duration_text(self.cpu_seconds)} ({work})."
        if gpu_expected:
            text += " This run is expected to use the GPU, which is much faster (not measured here)."
        return text

    def needs_confirmation(self, gpu_expected: bool) -> bool:
        """Whether the panel should ask before starting: a CPU run estimated above the limit."""
        return not gpu_expected and self.cpu_seconds is not None and self.cpu_seconds > CONFIRM_ABOVE_SECONDS


def duration_text(seconds: float) -> str:
    """'40 s', '7 min', '1 h 20 min'."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def estimate_run(metadata: dict[str, Any], layout: VolumeLayout, sampler: str, steps: int | None, mc: int,
                 options: dict[str, Any] | None = None) -> RunEstimate:
    """The cost of synthesizing a volume of ``layout`` with a model (its metadata) and these settings."""
    stochastic = metadata.get("kind", "diffusion") in SAMPLED_KINDS
    evaluations = sampler_info(sampler).network_evaluations(steps, options or {}) if stochastic else 1
    mc = mc if stochastic else 1
    cost = metadata.get("cpu_cost", {})
    per_megapixel = cost.get("seconds_per_megapixel")
    cpu_seconds = None
    if evaluations is not None and isinstance(per_megapixel, (int, float)):
        megapixels = layout.model_pixels(metadata.get("spacing_mm", (2.0, 2.0))) / 1e6
        cpu_seconds = evaluations * mc * layout.slices * megapixels * per_megapixel
    return RunEstimate(evaluations, mc, layout.slices, cpu_seconds, cost.get("measured_on", "CPU"))

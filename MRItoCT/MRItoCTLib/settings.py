"""What a synthesis is asked to do, as typed data: built by the command line from its flags, by the
Slicer Logic from the panel, and carried to the background worker in a job folder
(:mod:`CTSynthesisCore.jobs`). Imports no torch, so the panel can build it before PyTorch is installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from CTSynthesisCore.acceleration import InferenceOptions
from CTSynthesisCore.device import DEFAULT_DEVICE
from CTSynthesisCore.errors import UserInputError

from .catalog import DEFAULT_MC_SAMPLES, DEFAULT_MODEL, DEFAULT_SAMPLER, DEFAULT_SEED, sampler_info


SLICE_NOISE = ("shared", "independent")


@dataclass
class SynthesisSettings:
    """How to sample; ``steps=None`` takes the sampler's default."""

    sampler: str = DEFAULT_SAMPLER
    steps: int | None = None
    mc: int = DEFAULT_MC_SAMPLES
    seed: int = DEFAULT_SEED
    batch_size: int | None = None  # network inputs per forward pass; None = from free memory (GPU) or 8 (CPU)
    keep_samples: bool = False
    sampler_options: dict[str, Any] = field(default_factory=dict)  # keywords of the sampler (catalog.SAMPLERS)
    precision: str = "auto"  # bf16 autocast on a GPU, fp32 on CPU
    channels_last: bool = True
    compile: str = "off"  # a torch.compile mode; "reduce-overhead" uses CUDA graphs
    context_only_edges: int = 0  # slices at each end used only as the neighbours' context (left at -1024 HU)
    slice_noise: str = "shared"  # "shared": a Monte-Carlo sample's slices share their noise (no stripes between
    # slices); "independent": every slice draws its own
    test_time_flips: bool = True  # Monte-Carlo samples drawn in turn on the MRI as is, mirrored left-right and
    # mirrored anterior-posterior, each mirrored back (test-time augmentation)
    test_time_shifts: bool = True  # Monte-Carlo samples drawn in turn on the MRI shifted in-plane by 0, 1/2, 1/4 and
    # 3/4 of the network's size multiple, each shifted back (its strided downsampling is not shift-invariant)

    @property
    def inference(self) -> InferenceOptions:
        return InferenceOptions(self.precision, self.channels_last, self.compile)

    def validated(self) -> "SynthesisSettings":
        """These settings checked, with the sampler's options typed; a one-line error otherwise."""
        info = sampler_info(self.sampler)
        if self.steps is not None and self.steps < 1:
            raise UserInputError(f"steps must be at least 1, got {self.steps}")
        options = info.checked_options(self.sampler_options, self.steps)
        if self.mc < 1:
            raise UserInputError(f"the number of Monte-Carlo samples must be at least 1, got {self.mc}")
        if self.batch_size is not None and self.batch_size < 1:
            raise UserInputError(f"batch size must be at least 1, got {self.batch_size}")
        if self.context_only_edges < 0:
            raise UserInputError(f"context-only edge slices must be 0 or more, got {self.context_only_edges}")
        if self.slice_noise not in SLICE_NOISE:
            raise UserInputError(f"slice noise is one of {', '.join(SLICE_NOISE)}, got '{self.slice_noise}'")
        self.inference.validated()
        return replace(self, sampler_options=options)

    @property
    def mirrors_samples(self) -> bool:
        """Whether Monte-Carlo samples are drawn on mirrored MRIs (test-time flips need more than one sample)."""
        return self.test_time_flips and self.mc > 1

    @property
    def shifts_samples(self) -> bool:
        """Whether Monte-Carlo samples are drawn on shifted MRIs (test-time shifts need more than one sample)."""
        return self.test_time_shifts and self.mc > 1

    @property
    def resolved_steps(self) -> int:
        return self.steps if self.steps is not None else sampler_info(self.sampler).default_steps

    def describe_sampling(self, stochastic: bool) -> str:
        """'DDPM-6, MC 4, flips, shifts' for a sampled model (an adaptive solver without its steps; 'flips' and
        'shifts' with those test-time augmentations), 'one pass' otherwise."""
        if not stochastic:
            return "one pass"
        info = sampler_info(self.sampler)
        steps = f"-{self.resolved_steps}" if info.uses_steps(self.sampler_options) else ""
        flips = ", flips" if self.mirrors_samples else ""
        shifts = ", shifts" if self.shifts_samples else ""
        return f"{info.label}{steps}, MC {self.mc}{flips}{shifts}"


@dataclass
class SynthesisRequest:
    """One synthesis as a worker receives it: the settings, the model (shipped name or folder) and the device."""

    settings: SynthesisSettings = field(default_factory=SynthesisSettings)
    model: str = DEFAULT_MODEL
    device: str = DEFAULT_DEVICE


JOB_KIND = "mritoct-synthesis"  # the kind of job folder a SynthesisRequest travels in (CTSynthesisCore.jobs)

"""What an interpolation is asked to do, as typed data: built by the command line from its flags, by the
Slicer Logic from the panel, and carried to the background worker in a job folder
(:mod:`CTSynthesisCore.jobs`). Imports no torch, so the panel can build it before PyTorch is installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from CTSynthesisCore.acceleration import InferenceOptions
from CTSynthesisCore.device import DEFAULT_DEVICE
from CTSynthesisCore.errors import UserInputError

from .catalog import DEFAULT_METHOD, DEFAULT_MODEL, DEFAULT_SEED, METHODS, NETWORK_METHOD

JOB_KIND = "sliceinterp-upsample"  # the kind of job folder an UpsampleRequest travels in


@dataclass
class UpsampleSettings:
    """How to interpolate: method, model, device, seed and optional test-time adaptation."""

    method: str = DEFAULT_METHOD
    model: str | None = None  # None: the shipped DEFAULT_MODEL
    device: str = DEFAULT_DEVICE
    seed: int = DEFAULT_SEED
    adapt_minutes: float | None = None
    batch_size: int | None = None  # images per network pass; None = from free GPU memory, 16 on CPU
    precision: str = "auto"  # bf16 autocast on a GPU, fp32 on CPU

    def validated(self) -> "UpsampleSettings":
        """These settings checked; for the network, its model found and ``auto`` resolved to a device."""
        if self.method not in METHODS:
            raise UserInputError(f"unknown method '{self.method}' (choose from {', '.join(METHODS)})")
        if self.adapt_minutes is not None and self.method != NETWORK_METHOD:
            raise UserInputError("adaptation (--adapt) needs the crossview method")
        if self.batch_size is not None and self.batch_size < 1:
            raise UserInputError(f"batch size must be at least 1, got {self.batch_size}")
        InferenceOptions(precision=self.precision).validated()
        if self.adapt_minutes is not None and not 0 < self.adapt_minutes <= 120:
            raise UserInputError(f"adaptation minutes must be in (0, 120], got {self.adapt_minutes:g}")
        if self.method != NETWORK_METHOD:
            return self
        from CTSynthesisCore.device import choose_device
        from CTSynthesisCore.weights import resolve_model_folder

        resolve_model_folder(self.model or DEFAULT_MODEL)
        return replace(self, device=choose_device(self.device).device)


@dataclass
class UpsampleRequest:
    """One interpolation as a worker receives it: the settings, the factor or target spacing, and whether to
    hand back the views' disagreement."""

    settings: UpsampleSettings = field(default_factory=UpsampleSettings)
    factor: int | None = None
    spacing: float | None = None
    disagreement: bool = False

    def checked(self) -> "UpsampleRequest":
        if (self.factor is None) == (self.spacing is None):
            raise UserInputError("give either a factor or a target slice spacing")
        if self.disagreement and self.settings.method != NETWORK_METHOD:
            raise UserInputError("the disagreement volume needs the crossview method")
        return self

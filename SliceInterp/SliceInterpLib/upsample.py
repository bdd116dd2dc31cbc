"""One entry point for every SliceInterp method (used by the CLI, the Slicer logic and the evaluation)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import SimpleITK as sitk

from CTSynthesisCore.acceleration import InferenceOptions, configure_cpu_threads
from CTSynthesisCore.device import choose_device, run_with_batch_retry
from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.progress import CancelToken, ProgressCallback, StageProgress, no_progress
from CTSynthesisCore.volume_io import check_memory
from CTSynthesisCore.weights import resolve_model_folder

from .catalog import METHODS
from .classical import INTERPOLATORS, upsample_classical



@dataclass
class UpsampleSettings:
    """How to interpolate: method, model, device, seed and optional test-time adaptation."""

    method: str = "crossview"
    model: str | None = None
    device: str = "auto"
    seed: int = 0
    adapt_minutes: float | None = None
    chunk: int | None = None  # images per network pass; None = from free GPU memory, 16 on CPU
    precision: str = "auto"  # bf16 autocast on a GPU, fp32 on CPU

    def validated(self) -> "UpsampleSettings":
        """These settings checked; for the network, its model found and ``auto`` resolved to a device."""
        if self.method not in METHODS:
            raise UserInputError(f"unknown method '{self.method}' (choose from {', '.join(METHODS)})")
        if self.adapt_minutes is not None and self.method != "crossview":
            raise UserInputError("adaptation (--adapt) needs the crossview method")
        if self.chunk is not None and self.chunk < 1:
            raise UserInputError(f"batch size must be at least 1, got {self.chunk}")
        InferenceOptions(precision=self.precision).validated()
        if self.adapt_minutes is not None and not 0 < self.adapt_minutes <= 120:
            raise UserInputError(f"adaptation minutes must be in (0, 120], got {self.adapt_minutes:g}")
        if self.method != "crossview":
            return self
        from .model import DEFAULT_MODEL

        resolve_model_folder(self.model or DEFAULT_MODEL)
        return replace(self, device=choose_device(self.device).device)


@dataclass
class UpsampleResult:
    """The finer volume, the views' disagreement (cross-view only) and what was run."""

    image: sitk.Image
    uncertainty: sitk.Image | None
    method: str
    device: str
    seconds: float
    adapted: bool = False
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        size = self.image.GetSize()
        adapted = " adapted to this volume," if self.adapted else ""
        return (f"{self.method}{adapted} on {self.device}: {size[2]} slices at {self.image.GetSpacing()[2]:.4g} mm "
                f"in {self.seconds:.1f} s")


def upsample(image: sitk.Image, slice_spacing: float, settings: UpsampleSettings,
             progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> UpsampleResult:
    """Interpolate ``image`` to ``slice_spacing`` mm along its slice axis with the chosen method."""
    settings = settings.validated()
    started = time.monotonic()
    size = image.GetSize()
    output_slices = int((size[2] - 1) * image.GetSpacing()[2] / slice_spacing) + 1
    # the network keeps the volume, three views and the disagreement in float32 (about 6 copies)
    check_memory(size[0] * size[1] * output_slices, 4 * (6 if settings.method == "crossview" else 2),
                 f"interpolating to {output_slices} slices of {size[0]} x {size[1]}")
    if settings.method in INTERPOLATORS:
        progress(0, 1, settings.method)
        result = upsample_classical(image, slice_spacing, settings.method)
        progress(1, 1, settings.method)
        return UpsampleResult(result, None, settings.method, "cpu", time.monotonic() - started)

    from .crossview import automatic_chunk, upsample_crossview
    from .model import DEFAULT_MODEL, load_crossview
    from .selfsupervised import adapt

    device = settings.device
    network, _ = load_crossview(settings.model or DEFAULT_MODEL)
    inference_progress = progress
    if settings.adapt_minutes is not None:
        network = adapt(network, image, settings.adapt_minutes, settings.seed, StageProgress(progress, 0.0, 0.8), cancel,
                        device=device)
        inference_progress = StageProgress(progress, 0.8, 1.0)
    retries: list[str] = []
    configure_cpu_threads()
    crossview = run_with_batch_retry(
        lambda chunk: upsample_crossview(image, slice_spacing, network, device, chunk, inference_progress, cancel,
                                         settings.precision),
        settings.chunk or automatic_chunk(network, image, device, settings.precision),
        lambda old, new: retries.append(f"out of memory with {old} images per pass; retried with {new}"))
    return UpsampleResult(crossview.image, crossview.uncertainty, "crossview", device, time.monotonic() - started,
                          adapted=settings.adapt_minutes is not None, warnings=retries)

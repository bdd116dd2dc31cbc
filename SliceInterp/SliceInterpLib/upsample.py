"""One entry point for every SliceInterp method (used by the CLI, the Slicer logic and the evaluation)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import SimpleITK as sitk

from CTSynthesisCore.acceleration import configure_cpu_threads
from CTSynthesisCore.device import run_with_batch_retry
from CTSynthesisCore.progress import CancelToken, ProgressCallback, StageProgress, no_progress
from CTSynthesisCore.volume_io import check_memory

from .catalog import DEFAULT_MODEL
from .classical import INTERPOLATORS, upsample_classical
from .settings import UpsampleSettings


@dataclass
class UpsampleResult:
    """The finer volume, the views' disagreement (cross-view only) and what was run."""

    image: sitk.Image
    disagreement: sitk.Image | None
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

    from .crossview import automatic_batch_size, upsample_crossview
    from .model import load_crossview
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
        lambda batch_size: upsample_crossview(image, slice_spacing, network, device, batch_size, inference_progress, cancel,
                                         settings.precision),
        settings.batch_size or automatic_batch_size(network, image, device, settings.precision),
        lambda old, new: retries.append(f"out of memory with {old} images per pass; retried with {new}"))
    return UpsampleResult(crossview.image, crossview.disagreement, "crossview", device, time.monotonic() - started,
                          adapted=settings.adapt_minutes is not None, warnings=retries)

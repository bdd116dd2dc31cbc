"""One interpolation from files to files: the command line's ``upsample`` and the Slicer panel's background
worker, ``python -m SliceInterpLib.jobs FOLDER --worker`` on a job folder (:mod:`CTSynthesisCore.jobs`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import SimpleITK as sitk

from CTSynthesisCore.hounsfield import spread_text
from CTSynthesisCore.jobs import INPUT_FILE, JobResult, run_worker
from CTSynthesisCore.progress import ProgressCallback
from CTSynthesisCore.volume_io import check_scalar_volume, read_volume, write_volume

from .settings import JOB_KIND, UpsampleRequest, UpsampleSettings

OUTPUT_FILE, DISAGREEMENT_FILE = "output.mha", "disagreement.mha"


def read_ct(source: str | Path, factor: int | None, spacing: float | None) -> tuple[sitk.Image, float]:
    """One input CT, checked, and the slice spacing a factor or a target spacing asks for."""
    from .classical import resolve_factor

    image = read_volume(source)
    check_scalar_volume(image, "input CT", min_slices=3)
    return image, resolve_factor(image, factor, spacing)[0]


def upsample_file(image: sitk.Image, spacing: float, output: Path, disagreement: str | Path | None,
                  settings: UpsampleSettings, progress: ProgressCallback):
    """Interpolate one CT to ``spacing``, print warnings and write the outputs; returns the engine's result."""
    from .upsample import upsample

    result = upsample(image, spacing, settings, progress=progress)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    write_volume(result.image, output)
    if disagreement:
        write_volume(result.disagreement, disagreement)
    return result


def closing_summary(image: sitk.Image, result) -> str:
    """The one line that ends an interpolation: slices before and after, method, device, time."""
    return f"{image.GetSize()[2]} -> {result.summary()}"


def result_facts(image: sitk.Image, result) -> dict[str, str]:
    """What to check after a run, label -> value: method, slices before and after, time, disagreement."""
    after = result.image
    facts = {"Method": result.method + (" (adapted to this volume)" if result.adapted else ""),
             "Slices": f"{image.GetSize()[2]} at {image.GetSpacing()[2]:.4g} mm → {after.GetSize()[2]} at "
                       f"{after.GetSpacing()[2]:.4g} mm",
             "Time": f"{result.seconds:.0f} s on {result.device}"}
    if result.disagreement is not None:
        facts["Disagreement"] = spread_text(sitk.GetArrayViewFromImage(after),
                                            sitk.GetArrayViewFromImage(result.disagreement))
    return facts


def run_job(request: UpsampleRequest, folder: Path, progress: ProgressCallback) -> JobResult:
    """The worker's run: ``input.mha`` of the job folder in, the finer volume (and disagreement) beside it."""
    request = request.checked()
    image, spacing = read_ct(folder / INPUT_FILE, request.factor, request.spacing)
    disagreement = folder / DISAGREEMENT_FILE if request.disagreement else None
    result = upsample_file(image, spacing, folder / OUTPUT_FILE, disagreement, request.settings.validated(), progress)
    outputs = {"output": [OUTPUT_FILE], "disagreement": [DISAGREEMENT_FILE] if disagreement else []}
    return JobResult(outputs, closing_summary(image, result), result.warnings, result.seconds, result.device,
                     result_facts(image, result))


def main(argv: Sequence[str] | None = None) -> int:
    return run_worker(argv, JOB_KIND, UpsampleRequest, run_job)


if __name__ == "__main__":
    sys.exit(main())

"""One synthesis from files to files: the command line's ``synthesize`` and the Slicer panel's background
worker, ``python -m MRItoCTLib.jobs FOLDER --worker`` on a job folder (:mod:`CTSynthesisCore.jobs`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from CTSynthesisCore.jobs import INPUT_FILE, JobResult, run_worker
from CTSynthesisCore.progress import ProgressCallback
from CTSynthesisCore.volume_io import read_volume, write_volume

from .settings import JOB_KIND, SynthesisRequest, SynthesisSettings

CT_FILE, UNCERTAINTY_FILE, SAMPLES_FOLDER = "ct.mha", "uncertainty.mha", "samples"


def synthesize_file(mri, output: Path, uncertainty: str | Path | None, samples_dir: str | Path | None, model,
                    settings: SynthesisSettings, device: str, progress: ProgressCallback):
    """Synthesize from one MRI, print warnings and write the CT (file or DICOM series), uncertainty and samples."""
    from .dicom_series import write_ct_series
    from .pipeline import synthesize

    result = synthesize(mri, model, settings, device=device, progress=progress)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if output.suffix == "" or output.is_dir():
        write_ct_series(result.ct, output, source=mri)
    else:
        write_volume(result.ct, output)
    if uncertainty:
        write_volume(result.uncertainty, uncertainty)
    if samples_dir:
        folder = Path(samples_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for index, sample in enumerate(result.samples):
            write_volume(sample, folder / f"sample_{index:03d}.nii.gz")
    return result


def closing_summary(result, settings: SynthesisSettings) -> str:
    """The one line that ends a synthesis: device and why, sampler, NFE, time, Monte-Carlo samples."""
    return f"{result.summary()} ({result.device_reason}); MC samples {settings.mc}"


def run_job(request: SynthesisRequest, folder: Path, progress: ProgressCallback) -> JobResult:
    """The worker's run: ``input.mha`` of the job folder in, CT, uncertainty (and samples) beside it."""
    from .model import load_model

    settings = request.settings.validated()
    samples = folder / SAMPLES_FOLDER if settings.keep_samples else None
    result = synthesize_file(read_volume(folder / INPUT_FILE), folder / CT_FILE, folder / UNCERTAINTY_FILE, samples,
                             load_model(request.model), settings, request.device, progress)
    outputs = {"ct": [CT_FILE], "uncertainty": [UNCERTAINTY_FILE],
               "samples": [p.relative_to(folder).as_posix() for p in sorted(samples.glob("*.nii.gz"))] if samples else []}
    return JobResult(outputs, closing_summary(result, settings), result.warnings, result.seconds, result.device)


def main(argv: Sequence[str] | None = None) -> int:
    return run_worker(argv, JOB_KIND, SynthesisRequest, run_job)


if __name__ == "__main__":
    sys.exit(main())

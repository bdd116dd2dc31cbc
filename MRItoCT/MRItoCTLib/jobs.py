"""One synthesis from files to files: the command line's ``synthesize`` and the Slicer panel's background
worker, ``python -m MRItoCTLib.jobs FOLDER --worker`` on a job folder (:mod:`CTSynthesisCore.jobs`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.hounsfield import BODY_ABOVE_HU, spread_text
from CTSynthesisCore.jobs import INPUT_FILE, JobResult, run_worker
from CTSynthesisCore.progress import ProgressCallback
from CTSynthesisCore.volume_io import read_volume, write_volume

from .catalog import SAMPLERS
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


BONE_ABOVE_HU = 300.0


def augmentation_text(settings: SynthesisSettings) -> str:
    """How the Monte-Carlo samples were drawn, in words (empty without test-time augmentation)."""
    parts = []
    if settings.mirrors_samples:
        parts.append("on the MRI as is, mirrored left-right and mirrored anterior-posterior")
    if settings.shifts_samples:
        parts.append("at shifts of the network's grid")
    return f" (drawn in turn {', and '.join(parts)})" if parts else ""


def result_facts(result, settings: SynthesisSettings, model) -> dict[str, str]:
    """What a physicist checks first after a run, label -> value: model, sampling, time, the HU range and bone share
    inside the body, and the uncertainty's median and 95th percentile there."""
    ct = sitk.GetArrayViewFromImage(result.ct)
    body = ct > BODY_ABOVE_HU
    inside = ct[body] if body.any() else np.full(1, BODY_ABOVE_HU)
    sampling = (f"{SAMPLERS[result.sampler].title}, {result.nfe} network evaluations per sample, "
                f"{settings.mc} Monte-Carlo samples{augmentation_text(settings)}"
                if model.kind.stochastic
                else f"one pass of the {result.sampler} network (deterministic)")
    low, high = np.percentile(inside, [1, 99])
    facts = {"Model": model.metadata["name"], "Sampling": sampling,
             "Time": f"{result.seconds:.0f} s on {result.device}",
             f"HU inside the body (sCT > {BODY_ABOVE_HU:.0f} HU), 1st-99th percentile": f"{low:.0f} to {high:.0f} HU",
             f"Voxels above {BONE_ABOVE_HU:.0f} HU inside the body": f"{100 * np.mean(inside > BONE_ABOVE_HU):.1f} %"}
    facts["Uncertainty"] = spread_text(ct, sitk.GetArrayViewFromImage(result.uncertainty))
    return facts


def run_job(request: SynthesisRequest, folder: Path, progress: ProgressCallback) -> JobResult:
    """The worker's run: ``input.mha`` of the job folder in, CT, uncertainty (and samples) beside it."""
    from .model import load_model

    settings = request.settings.validated()
    samples = folder / SAMPLES_FOLDER if settings.keep_samples else None
    model = load_model(request.model)
    result = synthesize_file(read_volume(folder / INPUT_FILE), folder / CT_FILE, folder / UNCERTAINTY_FILE, samples,
                             model, settings, request.device, progress)
    outputs = {"ct": [CT_FILE], "uncertainty": [UNCERTAINTY_FILE],
               "samples": [p.relative_to(folder).as_posix() for p in sorted(samples.glob("*.nii.gz"))] if samples else []}
    return JobResult(outputs, closing_summary(result, settings), result.warnings, result.seconds, result.device,
                     result_facts(result, settings, model))


def main(argv: Sequence[str] | None = None) -> int:
    return run_worker(argv, JOB_KIND, SynthesisRequest, run_job)


if __name__ == "__main__":
    sys.exit(main())

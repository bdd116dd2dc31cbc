"""``mritoct evaluate``: the SynthRAD metrics for each model and sampler on held-out cases.

Each diffusion sampler gives two rows: one Monte-Carlo sample ("DDPM") and the mean
of ``mc`` samples ("DDPM-M", whose standard deviation is the uncertainty); baselines give one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.progress import ProgressCallback, no_progress
from CTSynthesisCore.tables import write_csv
from CTSynthesisCore.volume_io import read_volume

from .dataset import cases_in_split
from .figures import method_panel, uncertainty_panel
from .metrics import image_metrics, uncertainty_metrics
from ..model import load_model
from ..pipeline import synthesize
from ..settings import SynthesisSettings
from ..catalog import SAMPLERS

COLUMNS = ["mae", "me", "psnr", "ssim", "mae_bone", "mae_soft", "spearman", "ause", "nfe", "seconds_per_slice"]


@dataclass
class EvaluationPlan:
    models: list[str]
    samplers: list[str]
    steps: dict[str, int] = field(default_factory=dict)
    sampler_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    mc: int = 10
    max_cases: int | None = None
    max_slices: int | None = None
    split: str = "test"
    seed: int = 0
    device: str = "auto"
    batch_size: int = 16


def central_slices(image: sitk.Image, count: int | None, margin: int = 1) -> tuple[sitk.Image, slice]:
    """The ``count`` central slices plus ``margin`` neighbours each side (the 2.5D context), and which to score."""
    size = image.GetSize()[2]
    if count is None or count + 2 * margin >= size:
        return image, slice(0, size)
    start = (size - count) // 2 - margin
    return image[:, :, start:start + count + 2 * margin], slice(margin, margin + count)


def evaluate(data: str | Path, output: str | Path, plan: EvaluationPlan,
             progress: ProgressCallback = no_progress) -> list[dict[str, Any]]:
    """Run every model/sampler on the split's cases; write metrics.csv, metrics.md and figures."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    unknown = [s for s in plan.samplers if s not in SAMPLERS]
    if unknown:
        raise UserInputError(f"unknown sampler(s) {', '.join(unknown)} (choose from {', '.join(SAMPLERS)})")
    cases = cases_in_split(data, plan.split)[: plan.max_cases]
    if not cases:
        raise UserInputError(f"no cases in the {plan.split} split of {data}")
    models = [load_model(name) for name in plan.models]
    runs = [(m, s) for m in models for s in (plan.samplers if m.kind.stochastic else [None])]
    rows: list[dict[str, Any]] = []
    figure_predictions: dict[str, np.ndarray] = {}
    figure_uncertainty: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    done = 0
    for case_index, folder in enumerate(cases):
        mri, scored = central_slices(read_volume(folder / "mr.nii.gz"), plan.max_slices)
        reference = sitk.Resample(read_volume(folder / "ct.nii.gz"), mri, sitk.Transform(), sitk.sitkLinear, -1024.0,
                                  sitk.sitkFloat32)
        mask_path = folder / "mask.nii.gz"
        mask_image = read_volume(mask_path) if mask_path.is_file() else reference > -500
        mask = sitk.GetArrayFromImage(sitk.Resample(mask_image, mri, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                                    sitk.sitkUInt8)).astype(bool)
        mask[: scored.start] = False  # context-only slices are not scored
        mask[scored.stop:] = False
        true_hu = sitk.GetArrayFromImage(reference)
        processed = scored.stop - scored.start  # synthesized slices (context-only neighbours are not)
        middle = (scored.start + scored.stop) // 2
        for model, sampler in runs:
            settings = SynthesisSettings(sampler=sampler or "ddim", steps=plan.steps.get(sampler or "", None),
                                         mc=plan.mc if sampler else 1, seed=plan.seed, batch_size=plan.batch_size,
                                         keep_samples=bool(sampler), context_only_edges=scored.start,
                                         sampler_options=plan.sampler_options.get(sampler or "", {}))
            started = time.monotonic()
            result = synthesize(mri, model, settings, device=plan.device)
            seconds = time.monotonic() - started
            name = SAMPLERS[sampler].label if sampler else str(model.metadata.get("method", model.metadata["name"])).upper()
            mean_hu = sitk.GetArrayFromImage(result.ct)
            outputs = [(name + "-M", mean_hu, seconds / processed)] if sampler else []
            single = sitk.GetArrayFromImage(result.samples[0]) if sampler else mean_hu
            outputs.insert(0, (name, single, seconds / processed / settings.mc))
            for label, prediction, per_slice in outputs:
                row = {"case": folder.name, "method": label, **image_metrics(prediction, true_hu, mask),
                       "nfe": result.nfe, "seconds_per_slice": per_slice, "spearman": float("nan"), "ause": float("nan")}
                if label.endswith("-M"):
                    row.update(uncertainty_metrics(sitk.GetArrayFromImage(result.uncertainty), prediction, true_hu, mask))
                rows.append(row)
                if case_index == 0:
                    figure_predictions[label] = prediction[middle]
            if case_index == 0 and sampler:
                figure_uncertainty[name + "-M"] = (sitk.GetArrayFromImage(result.uncertainty)[middle],
                                                   np.abs(mean_hu - true_hu)[middle])
            done += 1
            progress(done, len(cases) * len(runs), f"{folder.name} {name}")
        if case_index == 0:
            mri_slice = sitk.GetArrayFromImage(mri)[middle]
            method_panel(mri_slice, true_hu[middle], figure_predictions, output / "example_slice.png")
            if figure_uncertainty:
                uncertainty_panel(figure_uncertainty, output / "uncertainty_vs_error.png")
    write_tables(rows, output, plan, [c.name for c in cases])
    return rows


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean of each column over cases, per method, in first-seen method order."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    return [{"method": m, **{c: float(np.nanmean([r[c] for r in rows if r["method"] == m]))
                             if any(np.isfinite(r[c]) for r in rows if r["method"] == m) else float("nan")
                             for c in COLUMNS}} for m in methods]


def _steps_text(plan: EvaluationPlan, sampler: str) -> str:
    options = plan.sampler_options.get(sampler, {})
    if not SAMPLERS[sampler].uses_steps(options):
        return f"{sampler} adaptive RK45 (tolerance {options.get('tolerance')})"
    return f"{sampler} {plan.steps.get(sampler, SAMPLERS[sampler].default_steps)}"


def write_tables(rows: list[dict[str, Any]], output: Path, plan: EvaluationPlan, case_names: list[str]) -> None:
    write_csv(output / "metrics.csv", rows, ["case", "method", *COLUMNS])
    lines = [f"Cases ({plan.split} split): {', '.join(case_names)}; central slices per case: "
             f"{plan.max_slices or 'all'}; Monte-Carlo samples: {plan.mc}; steps: "
             + ", ".join(_steps_text(plan, s) for s in plan.samplers) + ".",
             "", "| method | MAE (HU) | ME (HU) | PSNR (dB) | SSIM | MAE bone | MAE soft | Spearman(unc, err) | AUSE | NFE | s/slice |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in summarize(rows):
        def fmt(value: float, digits: int) -> str:
            return "–" if not np.isfinite(value) else f"{value:.{digits}f}"
        lines.append(f"| {row['method']} | {fmt(row['mae'], 1)} | {fmt(row['me'], 1)} | {fmt(row['psnr'], 2)} | "
                     f"{fmt(row['ssim'], 3)} | {fmt(row['mae_bone'], 1)} | {fmt(row['mae_soft'], 1)} | "
                     f"{fmt(row['spearman'], 2)} | {fmt(row['ause'], 3)} | {row['nfe']:.0f} | {fmt(row['seconds_per_slice'], 2)} |")
    (output / "metrics.md").write_text("\n".join(lines) + "\n", encoding="utf-8")

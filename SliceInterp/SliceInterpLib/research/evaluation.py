"""``sliceinterp evaluate``: keep every K-th slice of a thin CT, reconstruct, score only the removed slices.

Protocol (as in SAINT / Fang et al.): PSNR of HU + 1024 clipped to [0, 4000] with
data range 4000, SSIM on the same values (Gaussian window, per slice), MAE in HU;
observed slices are excluded from every score (including them inflates PSNR).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.metrics import psnr, ssim_map
from CTSynthesisCore.tables import write_csv
from CTSynthesisCore.progress import CancelToken, ProgressCallback, no_progress
from CTSynthesisCore.volume_io import check_scalar_volume

from CTSynthesisCore.plotting import pyplot

from ..classical import INTERPOLATORS
from ..upsample import upsample
from ..settings import UpsampleSettings

METHODS = (*INTERPOLATORS, "crossview", "crossview-adapt")
DATA_RANGE = 4000.0


@dataclass
class EvaluationPlan:
    """What to compare and how."""

    factor: int = 2
    methods: Sequence[str] = ("linear", "cubic", "sinc", "crossview", "crossview-adapt")
    model: str | None = None
    adapt_minutes: float = 2.0
    device: str = "cpu"
    seed: int = 0


def thick_from_thin(thin: sitk.Image, factor: int) -> tuple[sitk.Image, sitk.Image]:
    """The thin volume cut to a whole number of gaps, and its every ``factor``-th slice."""
    count = (thin.GetSize()[2] - 1) // factor * factor + 1
    if count < 3 * factor:
        raise UserInputError(f"the thin CT needs at least {3 * factor - 2} slices for factor {factor}")
    kept = thin[:, :, :count]
    return kept, kept[:, :, ::factor]


def protocol_values(hu: np.ndarray) -> np.ndarray:
    """HU + 1024 clipped to [0, 4000]: the values every score of this protocol is computed on."""
    return np.clip(np.asarray(hu, dtype=np.float64) + 1024.0, 0, DATA_RANGE)


def psnr_hu(prediction: np.ndarray, reference: np.ndarray) -> float:
    """PSNR of two HU arrays under this protocol (data range 4000)."""
    return psnr(protocol_values(prediction), protocol_values(reference), DATA_RANGE)


def removed_slices(count: int, factor: int) -> np.ndarray:
    """Which of ``count`` thin slices the protocol removed: every index not divisible by ``factor``."""
    return np.arange(count) % factor != 0


def removed_slice_scores(prediction: np.ndarray, reference: np.ndarray, factor: int) -> dict[str, float]:
    """PSNR, SSIM and MAE over the slices that were removed (``removed_slices``)."""
    removed = removed_slices(reference.shape[0], factor)
    predicted, true = protocol_values(prediction[removed]), protocol_values(reference[removed])
    return {"psnr": psnr(predicted, true, DATA_RANGE),
            "ssim": float(ssim_map(predicted, true, DATA_RANGE).mean()),
            "mae": float(np.abs(predicted - true).mean())}


def method_settings(plan: EvaluationPlan) -> dict[str, UpsampleSettings]:
    """The :func:`upsample` settings of each compared method (``crossview-adapt`` = crossview with adaptation)."""
    unknown = [m for m in plan.methods if m not in METHODS]
    if unknown:
        raise UserInputError(f"unknown method(s) {', '.join(unknown)} (choose from {', '.join(METHODS)})")
    return {method: UpsampleSettings(method="crossview" if method.startswith("crossview") else method,
                                     model=plan.model, device=plan.device, seed=plan.seed,
                                     adapt_minutes=plan.adapt_minutes if method == "crossview-adapt" else None)
            for method in plan.methods}


def evaluate(thin: sitk.Image, output: str | Path, plan: EvaluationPlan, progress: ProgressCallback = no_progress,
             cancel: CancelToken | None = None, name: str = "thin CT") -> list[dict]:
    """Score every method on the removed slices; writes metrics.csv, metrics.md and figures into ``output``."""
    check_scalar_volume(thin, "thin CT", min_slices=3)
    reference, thick = thick_from_thin(thin, plan.factor)
    truth = sitk.GetArrayFromImage(reference)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    rows, reconstructions, disagreement = [], {}, None
    methods = method_settings(plan)
    for index, (method, settings) in enumerate(methods.items()):
        progress(index, len(methods), method)
        started = time.monotonic()
        outcome = upsample(thick, reference.GetSpacing()[2], settings, cancel=cancel)
        seconds = time.monotonic() - started
        values = sitk.GetArrayFromImage(outcome.image)
        if method == "crossview" and outcome.disagreement is not None:
            disagreement = sitk.GetArrayFromImage(outcome.disagreement)
        if values.shape != truth.shape:
            raise RuntimeError(f"{method} returned {values.shape}, expected {truth.shape}")
        reconstructions[method] = values
        rows.append({"method": method, "factor": plan.factor, **removed_slice_scores(values, truth, plan.factor),
                     "seconds": seconds})
        if cancel is not None:
            cancel.raise_if_set()
    progress(len(methods), len(methods), "figures")
    _write_tables(rows, output, name, thin, plan.factor)
    _write_figure(reconstructions, truth, reference.GetSpacing(), plan.factor, output / f"views_x{plan.factor}.png",
                  disagreement)
    return rows


def evaluation_record(rows: list[dict], name: str, factor: int, model_folder: Path, command: str) -> dict:
    """The table of one evaluation for a model's metadata and card; says whether the volume was a training one."""
    from CTSynthesisCore.weights import read_metadata

    volumes = read_metadata(model_folder).get("training", {}).get("volumes", [])
    trained = any(Path(volume).name == name for volume in volumes)
    return {"title": f"Restoring removed slices of {name} at x{factor} (removed slices only)",
            "columns": ["method", "PSNR (dB)", "SSIM", "MAE (HU)", "seconds"],
            "rows": [[r["method"], f"{r['psnr']:.2f}", f"{r['ssim']:.4f}", f"{r['mae']:.1f}", f"{r['seconds']:.1f}"]
                     for r in rows],
            "note": f"{name} was {'a training volume: not a held-out result' if trained else 'not a training volume'}. "
                    "PSNR of HU + 1024 clipped to [0, 4000] (data range 4000).",
            "command": command}


def _write_tables(rows: list[dict], output: Path, name: str, thin: sitk.Image, factor: int) -> None:
    write_csv(output / "metrics.csv", rows)
    size, spacing = thin.GetSize(), thin.GetSpacing()
    lines = [f"Removed slices of {name} ({size[0]}x{size[1]}x{size[2]}, {spacing[2]:g} mm slices), "
             f"x{factor}: the input keeps one slice in {factor} ({spacing[2] * factor:g} mm).", "",
             "| method | PSNR dB | SSIM | MAE HU | seconds |", "|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['mae']:.1f} | {r['seconds']:.1f} |" for r in rows]
    (output / "metrics.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_figure(reconstructions: dict[str, np.ndarray], truth: np.ndarray, spacing: Sequence[float], factor: int,
                  path: Path, disagreement: np.ndarray | None = None) -> None:
    """Coronal and sagittal views per method with their absolute-error maps (window W1500/L-100; errors 0-300 HU);
    beside the reference, the cross-view disagreement (0-100 HU) where there is one."""
    plt = pyplot()
    row, column = truth.shape[1] // 2, truth.shape[2] // 2
    panels = {"reference": truth, **reconstructions}
    aspect_coronal, aspect_sagittal = spacing[2] / spacing[0], spacing[2] / spacing[1]
    figure, axes = plt.subplots(len(panels), 4, figsize=(12, 2.6 * len(panels)), squeeze=False)
    limits = {"gray": (-850, 650), "magma": (0, 300), "viridis": (0, 100)}
    shown = {}
    def planes(volume: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        return (None, None) if volume is None else (volume[:, row, :], volume[:, :, column])

    truth_planes = planes(truth)
    for axis_row, (method, volume) in zip(axes, panels.items()):
        coronal, sagittal = planes(volume)
        if method == "reference":
            (coronal_2, sagittal_2), colours, label = planes(disagreement), "viridis", "crossview: disagreement"
        else:  # the error only where it is shown, not over the whole volume
            coronal_2, sagittal_2 = (np.abs(shown_plane - true_plane)
                                     for shown_plane, true_plane in zip((coronal, sagittal), truth_planes))
            colours, label = "magma", f"{method}: |error|"
        images = [(coronal, aspect_coronal, "gray", f"{method}: coronal"),
                  (coronal_2, aspect_coronal, colours, f"{label} coronal"),
                  (sagittal, aspect_sagittal, "gray", f"{method}: sagittal"),
                  (sagittal_2, aspect_sagittal, colours, f"{label} sagittal")]
        for axis, (image, aspect, cmap, title) in zip(axis_row, images):
            axis.axis("off")
            if image is None:
                continue
            shown[cmap] = axis.imshow(image.astype(np.float32), cmap=cmap, vmin=limits[cmap][0], vmax=limits[cmap][1],
                                      aspect=aspect, origin="lower", interpolation="nearest")
            axis.set_title(title, fontsize=8)
    figure.suptitle(f"x{factor}: one slice in {factor} kept; errors 0-300 HU (only removed slices can differ)", fontsize=9)
    figure.tight_layout(rect=(0, 0.09, 1, 1))
    bars = [(cmap, label) for cmap, label in (("gray", "HU"), ("magma", "|error| (HU)"),
                                              ("viridis", "disagreement of the views (HU)")) if cmap in shown]
    width = 0.9 / len(bars)
    for index, (cmap, label) in enumerate(bars):
        figure.colorbar(shown[cmap], cax=figure.add_axes((0.05 + index * width, 0.05, width - 0.05, 0.012)),
                        orientation="horizontal", label=label)
    figure.savefig(path, dpi=90)
    plt.close(figure)


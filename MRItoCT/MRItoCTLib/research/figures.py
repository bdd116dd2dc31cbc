"""PNG figures: the demo montage and the evaluation panels (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.plotting import pyplot


def orthogonal_views(image: sitk.Image) -> list[tuple[np.ndarray, float]]:
    """Central axial, coronal and sagittal planes in radiological display, each with its pixel aspect ratio."""
    canonical = sitk.DICOMOrient(image, "LPS")
    array = sitk.GetArrayFromImage(canonical)
    sx, sy, sz = canonical.GetSpacing()
    z, y, x = (n // 2 for n in array.shape)
    return [(array[z], sy / sx), (array[::-1, y, :], sz / sx), (array[::-1, :, x], sz / sy)]


def montage(mri: sitk.Image, ct: sitk.Image, uncertainty: sitk.Image, path: str | Path, title: str = "") -> Path:
    """MRI | synthetic CT | uncertainty in three orientations."""
    plt = pyplot()
    columns = [("T2 MRI", orthogonal_views(mri), dict(cmap="gray")),
               ("synthetic CT (HU)", orthogonal_views(ct), dict(cmap="gray", vmin=-400, vmax=1200)),
               ("uncertainty: MC std (HU)", orthogonal_views(uncertainty), dict(cmap="inferno", vmin=0))]
    figure, axes = plt.subplots(3, 3, figsize=(11, 10))
    for column, (name, views, style) in enumerate(columns):
        if name == "T2 MRI":
            style = dict(style, vmin=0, vmax=float(np.percentile(sitk.GetArrayViewFromImage(mri), 99.5)))
        if "uncertainty" in name:
            style = dict(style, vmax=max(1.0, float(np.percentile(sitk.GetArrayViewFromImage(uncertainty), 99.5))))
        for row, (plane, aspect) in enumerate(views):
            shown = axes[row, column].imshow(plane, aspect=aspect, **style)
            axes[row, column].axis("off")
            if row == 0:
                axes[row, column].set_title(name)
        figure.colorbar(shown, ax=axes[:, column].tolist(), shrink=0.6, location="bottom")
    if title:
        figure.suptitle(title)
    figure.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(figure)
    return Path(path)


def method_panel(mri_slice: np.ndarray, reference: np.ndarray, predictions: dict[str, np.ndarray], path: Path) -> Path:
    """One slice: MRI, reference CT, then each method's CT above its absolute error."""
    plt = pyplot()
    count = 2 + len(predictions)
    figure, axes = plt.subplots(2, count, figsize=(2.4 * count, 5))
    axes[0, 0].imshow(mri_slice, cmap="gray")
    axes[0, 0].set_title("T2 MRI")
    axes[0, 1].imshow(reference, cmap="gray", vmin=-400, vmax=1200)
    axes[0, 1].set_title("reference CT")
    for column, (name, prediction) in enumerate(predictions.items(), start=2):
        axes[0, column].imshow(prediction, cmap="gray", vmin=-400, vmax=1200)
        axes[0, column].set_title(name)
        shown = axes[1, column].imshow(np.abs(prediction - reference), cmap="magma", vmin=0, vmax=300)
    for axis in axes.ravel():
        axis.axis("off")
    figure.colorbar(shown, ax=axes[1, :].tolist(), shrink=0.7, location="bottom", label="|error| (HU)")
    figure.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(figure)
    return path


def uncertainty_panel(rows: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """Per sampler: MC standard deviation next to the absolute error of the MC mean (same slice, HU)."""
    plt = pyplot()
    figure, axes = plt.subplots(len(rows), 2, figsize=(6, 2.8 * len(rows)), squeeze=False)
    for row, (name, (uncertainty, error)) in enumerate(rows.items()):
        axes[row, 0].imshow(uncertainty, cmap="inferno", vmin=0, vmax=max(1.0, float(np.percentile(uncertainty, 99))))
        axes[row, 0].set_title(f"{name}: uncertainty")
        axes[row, 1].imshow(error, cmap="magma", vmin=0, vmax=300)
        axes[row, 1].set_title(f"{name}: |error|")
    for axis in axes.ravel():
        axis.axis("off")
    figure.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(figure)
    return path

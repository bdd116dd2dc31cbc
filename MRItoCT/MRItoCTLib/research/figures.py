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


PANELS_PER_ROW = 4
CT_WINDOW = dict(cmap="gray", vmin=-400, vmax=1200)
ERROR_SCALE = dict(cmap="magma", vmin=0, vmax=300)


def image_grid(plt, images: dict[str, np.ndarray], style: dict, label: str, own: dict[str, dict] | None = None):
    """One figure of titled images, PANELS_PER_ROW a row, in ``style`` with one labelled colour bar; the images
    named in ``own`` (an MRI, say) keep their own style and are not on that colour bar."""
    own = own or {}
    rows = -(-len(images) // PANELS_PER_ROW)
    figure, axes = plt.subplots(rows, PANELS_PER_ROW, figsize=(3 * PANELS_PER_ROW, 2.9 * rows), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    shared = None
    for axis, (title, image) in zip(axes.ravel(), images.items()):
        shown = axis.imshow(image, **own.get(title, style))
        shared = shared if title in own else shown
        axis.set_title(title)
    figure.colorbar(shared, ax=axes.ravel().tolist(), shrink=0.8, label=label)
    return figure


def method_panel(mri_slice: np.ndarray, reference: np.ndarray, predictions: dict[str, np.ndarray], path: Path) -> Path:
    """One slice: the MRI, the reference CT and each method's CT at a CT window, then each method's absolute
    error, in grids of at most four a row with their colour bars (two figures: ``path`` and its ``_error``)."""
    plt = pyplot()
    cts = image_grid(plt, {"T2 MRI": mri_slice, "reference CT": reference, **predictions}, CT_WINDOW, "HU",
                     own={"T2 MRI": dict(cmap="gray")})
    cts.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(cts)
    errors = image_grid(plt, {name: np.abs(prediction - reference) for name, prediction in predictions.items()},
                        ERROR_SCALE, "|error| (HU)")
    errors.savefig(error_path(path), dpi=80, bbox_inches="tight")
    plt.close(errors)
    return path


def error_path(path: Path) -> Path:
    """Where :func:`method_panel` writes its error figure, beside ``path``."""
    return Path(path).with_name(f"{Path(path).stem}_error{Path(path).suffix}")


def uncertainty_panel(rows: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """Per sampler: MC standard deviation next to the absolute error of the MC mean (same slice, HU), each with
    its colour bar (the uncertainty's scale is per sampler, the error's is fixed at 0-300 HU)."""
    plt = pyplot()
    figure, axes = plt.subplots(len(rows), 2, figsize=(7, 2.8 * len(rows)), squeeze=False)
    for row, (name, (uncertainty, error)) in enumerate(rows.items()):
        top = max(1.0, float(np.percentile(uncertainty, 99)))
        for column, (image, style, title) in enumerate(((uncertainty, dict(cmap="inferno", vmin=0, vmax=top),
                                                         f"{name}: uncertainty"),
                                                        (error, ERROR_SCALE, f"{name}: |error|"))):
            shown = axes[row, column].imshow(image, **style)
            axes[row, column].set_title(title)
            axes[row, column].axis("off")
            figure.colorbar(shown, ax=axes[row, column], fraction=0.046, pad=0.02, label="HU")
    figure.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(figure)
    return path

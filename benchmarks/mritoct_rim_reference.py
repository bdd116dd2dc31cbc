"""What a real CT reads where `mritoct_roi.py` reads the femoral-head cortex and marrow: the femoral heads of a
pelvis CT at its own pixels and after the round trip through the model's grid, the best any model can do.

`mritoct_roi.py` reads the cortex on the femoral head's rim (the femoral necks lie outside the ProstateX T2's
field), against the range of cortical bone (above 700 HU). The femoral head's rim is thin subchondral bone, not a
neck's cortex. For each head given (slice, row and column of its centre in the CT's array, radius in mm) this prints
the spread, over 72 directions, of the highest HU across the rim (0.8 to 1.15 radii from the centre) and the median
HU of the marrow (a disc of a third of the radius at the centre): at the CT's own pixels, and after the CT is
resampled in-plane to the model's spacing and back, as the training targets and the synthetic CT are
(`pipeline.model_grid`, linear). The heads default to Pelvic-Reference-Data 005's (1 x 1 x 3 mm; not shipped).

    python benchmarks/mritoct_rim_reference.py --ct pelvicref005_pelvis_ct_3mm.nii.gz [--spacing 2 2] [--figure F]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.plotting import pyplot
from CTSynthesisCore.tables import markdown_table
from CTSynthesisCore.volume_io import read_volume
from MRItoCTLib.pipeline import model_grid

DIRECTIONS = 72
RIM = (0.8, 1.15)  # radii of the head searched for the rim's highest HU


@dataclass(frozen=True)
class Head:
    """A femoral head on one axial slice: its centre in the CT's array (slice, row, column) and its radius."""

    name: str
    slice: int
    row: float
    column: float
    radius_mm: float


PELVIC_REF_005_GRID = ((512, 512, 137), (1.0, 1.0, 3.0))  # the CT the default heads were placed on: size, spacing
PELVIC_REF_005_HEADS = (  # axial slices through the heads' equators; centres and radii fitted to the rim's ridge
    Head("right head, slice 46", 46, 260, 198, 24),
    Head("right head, slice 48", 48, 260, 197, 24),
    Head("left head, slice 46", 46, 254, 372, 23),
    Head("left head, slice 48", 48, 254, 372, 24),
)


def bilinear(image: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``image`` read at fractional (row, column) positions inside it (:func:`check_heads` keeps them there)."""
    row0 = np.clip(np.floor(rows).astype(int), 0, image.shape[0] - 2)
    column0 = np.clip(np.floor(columns).astype(int), 0, image.shape[1] - 2)
    fr, fc = rows - row0, columns - column0
    return (image[row0, column0] * (1 - fr) * (1 - fc) + image[row0 + 1, column0] * fr * (1 - fc)
            + image[row0, column0 + 1] * (1 - fr) * fc + image[row0 + 1, column0 + 1] * fr * fc)


def rim_maxima(plane: np.ndarray, head: Head, pixel_mm: tuple[float, float]) -> np.ndarray:
    """The highest HU across the rim along each of ``DIRECTIONS`` rays from the head's centre (``pixel_mm``: the
    column and row spacing)."""
    radii_mm = np.arange(RIM[0] * head.radius_mm, RIM[1] * head.radius_mm, 0.25 * min(pixel_mm))
    angles = np.linspace(0, 2 * np.pi, DIRECTIONS, endpoint=False)
    return np.array([bilinear(plane, head.row + radii_mm * np.sin(a) / pixel_mm[1],
                              head.column + radii_mm * np.cos(a) / pixel_mm[0]).max() for a in angles])


def marrow_median(plane: np.ndarray, head: Head, pixel_mm: tuple[float, float]) -> float:
    """Median HU in a disc of a third of the head's radius at its centre."""
    rows, columns = np.ogrid[:plane.shape[0], :plane.shape[1]]
    distance_mm = np.hypot((rows - head.row) * pixel_mm[1], (columns - head.column) * pixel_mm[0])
    return float(np.median(plane[distance_mm <= head.radius_mm / 3]))


def through_model_grid(ct: sitk.Image, spacing_xy: tuple[float, float]) -> sitk.Image:
    """The CT resampled in-plane to the model's spacing and back to its own grid (linear both ways)."""
    return sitk.Resample(model_grid(ct, spacing_xy), ct, sitk.Transform(), sitk.sitkLinear, -1024.0, sitk.sitkFloat32)


def head_readings(plane: np.ndarray, head: Head, pixel_mm: tuple[float, float]) -> list[float]:
    """Rim maxima at the 10th, 50th and 90th percentile over directions, their share above 700 HU, the marrow."""
    maxima = rim_maxima(plane, head, pixel_mm)
    return [*map(float, np.percentile(maxima, [10, 50, 90])), float(np.mean(maxima > 700)),
            marrow_median(plane, head, pixel_mm)]


def parse_head(text: str) -> Head:
    """``SLICE,ROW,COLUMN,RADIUS_MM`` of ``--heads``."""
    try:
        index, row, column, radius = (float(value) for value in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not SLICE,ROW,COLUMN,RADIUS_MM (four numbers)") from None
    if radius <= 0 or index != int(index):
        raise argparse.ArgumentTypeError(f"'{text}': the slice must be a whole number and the radius positive")
    return Head(f"head at slice {int(index)}, row {row:g}, column {column:g}", int(index), row, column, radius)


def check_heads(ct: sitk.Image, heads: tuple[Head, ...]) -> str | None:
    """Why the heads cannot be read on this CT (a slice missing, a rim beyond the image), or None."""
    columns, rows, slices = ct.GetSize()
    for head in heads:
        reach = [RIM[1] * head.radius_mm / spacing + 1 for spacing in ct.GetSpacing()[:2]]
        if not 0 <= head.slice < slices or not (reach[1] <= head.row < rows - reach[1] - 1
                                                and reach[0] <= head.column < columns - reach[0] - 1):
            return f"{head.name}: the head's rim is not inside the CT ({columns} x {rows} x {slices} voxels)"
    return None


def heads_figure(ct_array: np.ndarray, heads: tuple[Head, ...], pixel_mm: tuple[float, float], path: str) -> None:
    """Each head's slice around it, with the rim's searched band drawn."""
    plt = pyplot()
    from matplotlib.patches import Ellipse

    figure, axes = plt.subplots(1, len(heads), figsize=(4 * len(heads), 4))
    for axis, head in zip(np.atleast_1d(axes), heads):
        width, height = (2 * head.radius_mm / spacing for spacing in pixel_mm)  # the diameter in columns and rows
        axis.imshow(ct_array[head.slice], cmap="gray", vmin=-200, vmax=1000, aspect=pixel_mm[1] / pixel_mm[0])
        for factor in RIM:
            axis.add_patch(Ellipse((head.column, head.row), factor * width, factor * height, fill=False, color="red",
                                   lw=0.8))
        axis.set_xlim(head.column - width, head.column + width)
        axis.set_ylim(head.row + height, head.row - height)
        axis.set_title(head.name, fontsize=9)
        axis.axis("off")
    figure.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", required=True, help="a pelvis CT (NIfTI or DICOM folder)")
    parser.add_argument("--heads", nargs="+", type=parse_head, metavar="SLICE,ROW,COLUMN,RADIUS_MM",
                        help="femoral-head centres in the CT's array and radii (default: Pelvic-Ref-005's)")
    parser.add_argument("--spacing", type=float, nargs=2, default=(2.0, 2.0), metavar=("X", "Y"),
                        help="the model's in-plane spacing in mm (default 2 2)")
    parser.add_argument("--figure", default="mritoct_rim_reference.png")
    args = parser.parse_args()
    if min(args.spacing) <= 0:
        parser.error("--spacing must be positive")
    try:
        ct = read_volume(args.ct)
    except UserInputError as error:
        parser.error(str(error))
    grid = (ct.GetSize(), tuple(round(s, 3) for s in ct.GetSpacing()))
    if not args.heads and grid != PELVIC_REF_005_GRID:
        parser.error("the default heads are Pelvic-Ref-005's (512 x 512 x 137 voxels of 1 x 1 x 3 mm): give --heads "
                     "for this CT")
    heads = tuple(args.heads) if args.heads else PELVIC_REF_005_HEADS
    problem = check_heads(ct, heads)
    if problem:
        parser.error(problem)
    pixel_mm = ct.GetSpacing()[:2]
    ct_array = sitk.GetArrayFromImage(ct).astype(np.float32)
    round_trip = sitk.GetArrayFromImage(through_model_grid(ct, tuple(args.spacing)))
    heads_figure(ct_array, heads, pixel_mm, args.figure)
    rows = []
    for head in heads:
        for label, volume in (("CT's own pixels", ct_array), (f"through {args.spacing[0]:g} mm", round_trip)):
            p10, p50, p90, above, marrow = head_readings(volume[head.slice], head, pixel_mm)
            rows.append([head.name, label, f"{p10:.0f} / {p50:.0f} / {p90:.0f}", f"{100 * above:.0f} %", f"{marrow:.0f}"])
    print(f"\nFemoral heads of {args.ct} ({' x '.join(f'{s:g}' for s in ct.GetSpacing())} mm; heads in {args.figure})\n")
    print(markdown_table(["head", "pixels", "rim maximum over directions: p10 / median / p90 (HU)",
                          "directions above 700 HU", "marrow median (HU)"], rows))


if __name__ == "__main__":
    main()

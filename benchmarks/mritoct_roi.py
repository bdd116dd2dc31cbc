"""Median synthetic-CT HU in regions of interest placed on the bundled real T2 (ProstateX-0000), against
published CT ranges.

The T2 has no paired CT, so this reads the synthetic CT where the anatomy is known. Each region is a
disc on one slice of the T2's own voxel grid (slice, row, column of the NIfTI array; radius in voxels of
0.5 mm). In this image the array's rows run from posterior (row 0) to anterior. A figure shows the discs.

Two regions one would read on a CT are placed differently or not at all: the femoral necks lie outside this
T2's 19 cm field, so the cortex is read on the femoral head's rim (what a real CT reads there:
`mritoct_rim_reference.py`); and no rectal gas can be identified: the rectum is collapsed on every slice, and its
one dark lumen (slice 18, row 57, column 194) is as dark as muscle (median 24-31 against 30 in the rectus, scanner
units), so gas cannot be told from tissue there and no region is placed.

    python benchmarks/mritoct_roi.py [--models mritoct-ddpm mritoct-cnn mritoct-gan] [--mc 4] [--figure rois.png]

A second table gives the median uncertainty in each region, to read beside the first: where the synthetic CT misses
its range, does the uncertainty rise?

``--grid-shifts 0 2 4 6`` synthesizes the T2 once per shift, moved by that many model pixels along x and y (the
image mirrored before its first row and column), and reads the regions on the T2's own grid again: a network whose
strided downsampling is not shift-invariant reads the same anatomy differently at another phase of its grid.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.model_cards import record_evaluation
from CTSynthesisCore.plotting import pyplot
from CTSynthesisCore.sample_data import sample_path
from CTSynthesisCore.tables import markdown_table, write_csv
from MRItoCTLib.cli import add_test_time_options, test_time_settings
from MRItoCTLib.model import load_model
from MRItoCTLib.pipeline import synthesize
from MRItoCTLib.research.model_card import model_card
from MRItoCTLib.settings import SynthesisSettings


@dataclass(frozen=True)
class Region:
    name: str
    slice: int
    row: int
    column: int
    radius: int  # voxels (0.5 mm)
    low_hu: float  # published CT range of the tissue
    high_hu: float


REGIONS = (
    Region("subcutaneous fat (anterior)", 13, 364, 192, 6, -120, -80),
    Region("rectus abdominis muscle", 13, 322, 215, 6, 35, 55),
    Region("obturator internus muscle", 9, 180, 104, 4, 35, 55),
    Region("bladder urine", 13, 270, 192, 10, 0, 20),
    Region("prostate", 9, 196, 192, 10, 30, 50),
    Region("femoral head marrow (right)", 11, 215, 352, 10, 150, 400),
    Region("femoral head marrow (left)", 13, 208, 30, 8, 150, 400),
    Region("femoral head cortex (right)", 11, 224, 319, 2, 700, 3000),  # the dark rim beside the marrow
)


def disc(shape: tuple[int, ...], region: Region) -> np.ndarray:
    """The region's voxels in a (slices, rows, columns) array."""
    rows, columns = np.ogrid[:shape[1], :shape[2]]
    mask = np.zeros(shape, bool)
    mask[region.slice] = (rows - region.row) ** 2 + (columns - region.column) ** 2 <= region.radius**2
    return mask


def region_medians(volume: sitk.Image) -> dict[str, float]:
    """Median HU in each region of a volume on the T2's grid (the synthetic CT or its uncertainty)."""
    hu = sitk.GetArrayFromImage(volume)
    return {region.name: float(np.median(hu[disc(hu.shape, region)])) for region in REGIONS}


def regions_figure(t2: sitk.Image, path: str) -> None:
    """The slices holding regions, with each region drawn and numbered."""
    plt = pyplot()
    array = sitk.GetArrayFromImage(t2)
    slices = sorted({region.slice for region in REGIONS})
    figure, axes = plt.subplots(1, len(slices), figsize=(6 * len(slices), 6))
    for axis, index in zip(np.atleast_1d(axes), slices):
        axis.imshow(array[index], cmap="gray", vmax=float(np.percentile(array, 99.5)))
        for number, region in enumerate(REGIONS, start=1):
            if region.slice == index:
                axis.add_patch(plt.Circle((region.column, region.row), max(region.radius, 3), fill=False, color="red"))
                axis.text(region.column + region.radius + 3, region.row, str(number), color="yellow", fontsize=11)
        axis.set_title(f"slice {index} (rows: posterior at the top, anterior at the bottom)", fontsize=9)
        axis.axis("off")
    figure.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(figure)


def moved_on_model_grid(image: sitk.Image, pixels: int, model_spacing_mm: tuple[float, float]) -> sitk.Image:
    """``image`` mirrored before its first row and column, ``pixels`` model pixels wide: the same anatomy at another
    phase of the model's grid (the model grid starts at the image's first voxel), and no band of air where the field
    of view cuts the body."""
    widths = [pixels * target / source for target, source in zip(model_spacing_mm, image.GetSpacing()[:2])]
    if any(abs(width - round(width)) > 1e-6 for width in widths):
        raise SystemExit(f"error: the model's spacing {model_spacing_mm} mm is not a whole number of the T2's pixels")
    return sitk.MirrorPad(image, [round(width) for width in widths] + [0], [0, 0, 0])


def model_label(name_or_path: str, metadata: dict) -> str:
    """A shipped model by its name; a model folder by its name and folder (trained runs share shipped names)."""
    return metadata["name"] if name_or_path == metadata["name"] else f"{metadata['name']} ({name_or_path})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mritoct-residual", "mritoct-ddpm", "mritoct-cnn", "mritoct-gan"])
    parser.add_argument("--mc", type=int, default=4)
    parser.add_argument("--steps", type=int, help="sampler steps (default: the sampler's)")
    add_test_time_options(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", default="mritoct_rois.png")
    parser.add_argument("--csv", default="mritoct_roi.csv")
    parser.add_argument("--record", action="store_true", help="store each model's medians in its metadata and card")
    parser.add_argument("--grid-shifts", type=int, nargs="+", default=[0], metavar="PIXELS",
                        help="synthesize the T2 moved by each of these model pixels along x and y (default 0)")
    args = parser.parse_args()
    if args.record and args.grid_shifts != [0]:
        parser.error("--record stores the medians of the image as it is: leave out --grid-shifts")
    t2 = sitk.ReadImage(str(sample_path("t2_pelvis")))
    regions_figure(t2, args.figure)
    rows = []
    for name in args.models:
        model = load_model(name)
        settings = SynthesisSettings(steps=args.steps, mc=args.mc, seed=args.seed, **test_time_settings(args))
        for shift in args.grid_shifts:
            moved = moved_on_model_grid(t2, shift, model.spacing_mm)
            result = synthesize(moved, model, settings, device="cpu")
            medians = region_medians(sitk.Resample(result.ct, t2))
            spreads = region_medians(sitk.Resample(result.uncertainty, t2))
            label = model_label(name, model.metadata) + (f", moved {shift} px" if args.grid_shifts != [0] else "")
            rows.append({"model": label, **medians, **{uncertainty_key(key): value for key, value in spreads.items()}})
            print(rows[-1], flush=True)
        if args.record:
            sampling = settings.describe_sampling(model.kind.stochastic)
            record_evaluation(model.metadata["folder"], "roi_prostatex_t2", evaluation_record(medians, sampling),
                              model_card)
    write_csv(args.csv, rows)
    print(f"\nMedian synthetic-CT HU per region on ProstateX-0000 T2 (regions drawn in {args.figure})\n")
    print("| # | region | CT range (HU) | " + " | ".join(row["model"] for row in rows) + " |")
    print("|---|---|---|" + "---|" * len(rows))
    for number, region in enumerate(REGIONS, start=1):
        cells = [median_cell(region, row[region.name]) for row in rows]
        print(f"| {number} | {region.name} | {region.low_hu:g} to {region.high_hu:g} | " + " | ".join(cells) + " |")
    inside = [regions_in_range(row) for row in rows]
    print("| | regions in range | | " + " | ".join(f"{count}/{len(REGIONS)}" for count in inside) + " |")
    print("\nMedian uncertainty per region (HU; the Monte-Carlo samples' standard deviation, 0 for one sample or a "
          "deterministic model)\n")
    print(markdown_table(["#", "region", *(row["model"] for row in rows)],
                         [[number, region.name, *(f"{row[uncertainty_key(region.name)]:.0f}" for row in rows)]
                          for number, region in enumerate(REGIONS, start=1)]))


def uncertainty_key(region_name: str) -> str:
    """The CSV column of a region's median uncertainty."""
    return f"{region_name}: uncertainty"


def median_cell(region: Region, value: float) -> str:
    """'-96', or '-996 (low)' outside the region's published CT range; one decimal where a whole number would
    land on the range's edge ('34.6 (low)', not '35 (low)')."""
    mark = "" if region.low_hu <= value <= region.high_hu else (" (low)" if value < region.low_hu else " (high)")
    whole = round(value)
    return f"{value:.1f}{mark}" if mark and region.low_hu <= whole <= region.high_hu else f"{whole:.0f}{mark}"


def regions_in_range(medians: dict[str, float]) -> int:
    return sum(region.low_hu <= medians[region.name] <= region.high_hu for region in REGIONS)


def evaluation_record(medians: dict[str, float], sampling: str) -> dict:
    """One model's medians with the published ranges, for its metadata and model card."""
    return {"title": f"Regions of interest on the real ProstateX-0000 T2 (median synthetic-CT HU, {sampling})",
            "columns": ["region", "CT range (HU)", "median sCT (HU)"],
            "rows": [[region.name, f"{region.low_hu:g} to {region.high_hu:g}", median_cell(region, medians[region.name])]
                     for region in REGIONS],
            "note": f"{regions_in_range(medians)}/{len(REGIONS)} regions in range.",
            "command": "python benchmarks/mritoct_roi.py " + " ".join(sys.argv[1:])}


if __name__ == "__main__":
    main()

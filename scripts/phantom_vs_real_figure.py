"""Side-by-side figure: the real ProstateX T2 sample next to a phantom T2 and its CT, and a CT-derived pair.

Usage: python scripts/phantom_vs_real_figure.py --ct CT.nii.gz --output docs/phantom_vs_real.png
"""

from __future__ import annotations

import argparse

import matplotlib
import numpy as np
import SimpleITK as sitk

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from CTSynthesisCore.sample_data import sample_path  # noqa: E402
from MRItoCTLib.research.ct_pairs import pair_from_ct  # noqa: E402
from MRItoCTLib.research.phantom import make_phantom_case  # noqa: E402


def axial(image: sitk.Image, fraction: float = 0.5) -> np.ndarray:
    array = sitk.GetArrayFromImage(sitk.DICOMOrient(image, "LPS"))
    return array[int(fraction * (array.shape[0] - 1))]


def centre_crop(plane: np.ndarray, spacing_mm: float, width_mm: float = 190.0) -> np.ndarray:
    """The central ``width_mm`` square: a prostate MRI's field of view (ProstateX: 19 cm)."""
    half = int(width_mm / spacing_mm / 2)
    rows, cols = plane.shape[0] // 2, plane.shape[1] // 2
    return plane[max(0, rows - half):rows + half, max(0, cols - half):cols + half]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ct", required=True, help="a real CT volume for the CT-derived pair")
    parser.add_argument("--output", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    real = sitk.ReadImage(str(sample_path("t2_pelvis")))
    mri, ct, _ = make_phantom_case(np.random.default_rng([args.seed, 0]))
    source = sitk.ReadImage(args.ct)
    derived_mri, derived_ct, _ = pair_from_ct(source, np.random.default_rng(args.seed))
    panels = [("real T2 (ProstateX-0000)", axial(real, 0.6), "gray", None),
              ("phantom T2", axial(mri, 0.55), "gray", None),
              ("phantom CT", axial(ct, 0.55), "gray", (-400, 1200)),
              ("phantom T2, 19 cm field", centre_crop(axial(mri, 0.55), mri.GetSpacing()[0]), "gray", None),
              ("CT-derived T2", axial(derived_mri, 0.22), "gray", None),
              ("its real CT", axial(derived_ct, 0.22), "gray", (-400, 1200))]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
    for axis, (title, plane, cmap, window) in zip(axes, panels):
        low, high = window or (0, np.percentile(plane, 99.5))
        axis.imshow(plane, cmap=cmap, vmin=low, vmax=high)
        axis.set_title(title)
        axis.axis("off")
    figure.savefig(args.output, dpi=70, bbox_inches="tight")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

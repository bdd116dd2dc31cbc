"""How much any fusion of the views could add on a thin CT: upper bounds that look at the answer.

For each factor, one slice in FACTOR is kept and the removed ones are restored (the protocol of ``sliceinterp
evaluate``) by linear interpolation and by each view of the model alone. Then, scored on the removed slices, PSNR of:

* the mean of the coronal and sagittal views (the shipped fusion);
* the best global blend: the weights (and offset) of linear and the three views fitted by least squares on the
  reference itself, the most any fixed weighting can give;
* the per-voxel oracle: at every voxel the coronal or sagittal value nearest to the reference (and of all four), a
  loose ceiling for a fusion learnt per voxel.

    python benchmarks/sliceinterp_fusion_bounds.py THIN_CT [--factors 2 4] [--model M]
"""

from __future__ import annotations

import argparse
import datetime
from dataclasses import replace

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.metrics import psnr
from CTSynthesisCore.tables import markdown_table
from CTSynthesisCore.volume_io import read_volume
from SliceInterpLib.classical import upsample_classical
from SliceInterpLib.crossview import upsample_crossview
from SliceInterpLib.model import load_crossview
from SliceInterpLib.networks import CrossViewNet
from SliceInterpLib.research.evaluation import DATA_RANGE, protocol_values, removed_slices, thick_from_thin

VIEW_ALONE = {"axial": (1.0, 0.0, 0.0), "coronal": (0.0, 1.0, 0.0), "sagittal": (0.0, 0.0, 1.0)}  # view weights


def single_view(network: CrossViewNet, view: str) -> CrossViewNet:
    """``network`` running only ``view`` (axial, coronal or sagittal)."""
    network.config = replace(network.config, view_weights=VIEW_ALONE[view])
    return network


def removed_slice_predictions(image: sitk.Image, factor: int, network: CrossViewNet) -> tuple[np.ndarray, dict]:
    """The reference's removed slices and each method's prediction of them, as protocol values (HU + 1024, clipped)."""
    reference, thick = thick_from_thin(image, factor)
    spacing = reference.GetSpacing()[2]
    removed = removed_slices(reference.GetSize()[2], factor)
    restored = {"linear": upsample_classical(thick, spacing, "linear")}
    for view in VIEW_ALONE:
        restored[view] = upsample_crossview(thick, spacing, single_view(network, view)).image
    values = {name: protocol_values(sitk.GetArrayFromImage(volume).astype(np.float64)[removed])
              for name, volume in restored.items()}
    return protocol_values(sitk.GetArrayFromImage(reference).astype(np.float64)[removed]), values


def best_global_blend(truth: np.ndarray, predictions: list[np.ndarray]) -> np.ndarray:
    """The least-squares blend of ``predictions`` (weights and an offset) fitted on ``truth``."""
    design = np.stack([p.ravel() for p in predictions] + [np.ones(truth.size)], axis=1)
    weights, *_ = np.linalg.lstsq(design, truth.ravel(), rcond=None)
    return (design @ weights).reshape(truth.shape)


def per_voxel_oracle(truth: np.ndarray, predictions: list[np.ndarray]) -> np.ndarray:
    """At every voxel, the prediction nearest to ``truth``."""
    stack = np.stack(predictions)
    return np.take_along_axis(stack, np.abs(stack - truth).argmin(axis=0)[None], axis=0)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("thin", help="a held-out thin CT (file or DICOM folder)")
    parser.add_argument("--factors", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--model", default="sliceinterp-crossview")
    args = parser.parse_args()
    network, _ = load_crossview(args.model)
    image = read_volume(args.thin)
    rows = []
    for factor in args.factors:
        truth, p = removed_slice_predictions(image, factor, network)
        planar = [p["coronal"], p["sagittal"]]
        candidates = {**{f"{name} alone": value for name, value in p.items()},
                      "coronal and sagittal mean (shipped)": (p["coronal"] + p["sagittal"]) / 2,
                      "best global blend of all four (fitted on the reference)": best_global_blend(truth, list(p.values())),
                      "per-voxel oracle, coronal or sagittal": per_voxel_oracle(truth, planar),
                      "per-voxel oracle, any of the four": per_voxel_oracle(truth, list(p.values()))}
        linear = psnr(p["linear"], truth, DATA_RANGE)
        for name, value in candidates.items():
            score = psnr(value, truth, DATA_RANGE)
            rows.append([f"x{factor}", name, f"{score:.2f}", f"{score - linear:+.2f}"])
    print(f"Fusion bounds of {args.model} on {args.thin}, {datetime.date.today()}; PSNR dB on removed slices\n")
    print(markdown_table(["factor", "method", "PSNR dB", "over linear dB"], rows))


if __name__ == "__main__":
    main()

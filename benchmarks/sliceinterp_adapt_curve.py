"""Gain of test-time adaptation against its time budget on a thin CT; prints a markdown table, writes CSV.

Every other (or every FACTOR-th) slice of the thin CT is kept; the cross-view network restores the others
after adapting to the kept slices for each budget (each budget from the same start), scored on the removed
slices only (the protocol of ``sliceinterp evaluate``). Linear interpolation is the first row. With ``--fresh C...``
the adaptation starts from an untrained network of those channels (the model's other settings and view weights)
instead of the model's weights: the coronal/sagittal network learns from this volume's own axial slices alone
(SMORE on the volume itself), which bounds what adaptation can reach at that size. ``--planar-context C`` gives
the coronal/sagittal network C parallel planes on each side (2.5D): a fresh network of that context, or the model
widened into one that starts as it.

    python benchmarks/sliceinterp_adapt_curve.py THIN_CT [--factor 2] [--minutes 0 1 2 4] [--model M]
        [--fresh C C C C] [--planar-context C] [--csv FILE]
"""

from __future__ import annotations

import argparse
import datetime
import time
from dataclasses import replace

import SimpleITK as sitk
import torch

from CTSynthesisCore.cli import non_negative_int
from CTSynthesisCore.tables import write_csv
from CTSynthesisCore.volume_io import read_volume
from SliceInterpLib.classical import upsample_classical
from SliceInterpLib.crossview import upsample_crossview
from SliceInterpLib.model import load_crossview
from SliceInterpLib.networks import CrossViewNet, widened
from SliceInterpLib.research.evaluation import removed_slice_scores, thick_from_thin
from SliceInterpLib.selfsupervised import adapt


def fresh_network(model: CrossViewNet, channels: list[int], planar_context: int) -> CrossViewNet:
    """An untrained network of ``channels`` (a x2 stride between levels) and ``planar_context`` with the model's
    other settings."""
    return CrossViewNet(replace(model.config.with_channels(channels), planar_context=planar_context)).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("thin_ct", help="thin-slice CT file or DICOM folder (the reference)")
    parser.add_argument("--factor", type=int, default=2)
    parser.add_argument("--minutes", type=float, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--model", default="sliceinterp-crossview")
    parser.add_argument("--fresh", type=int, nargs="+", help="start from an untrained network of these channels")
    parser.add_argument("--planar-context", type=non_negative_int, default=0, help="parallel planes on each side (2.5D)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", default="sliceinterp_adapt_curve.csv")
    args = parser.parse_args()
    reference, thick = thick_from_thin(read_volume(args.thin_ct), args.factor)
    truth, spacing = sitk.GetArrayFromImage(reference), reference.GetSpacing()[2]
    network, _ = load_crossview(args.model)
    if args.fresh:
        torch.manual_seed(args.seed)
        network = fresh_network(network, args.fresh, args.planar_context)
    elif args.planar_context:
        network = widened(network, args.planar_context).eval()
    linear = removed_slice_scores(sitk.GetArrayFromImage(upsample_classical(thick, spacing, "linear")), truth, args.factor)
    rows = [{"method": "linear", "adapt_minutes": 0.0, **linear, "seconds": 0.0}]
    for minutes in sorted({0.0, *args.minutes}):  # no adaptation first: the gains are over it
        started = time.perf_counter()
        adapted = adapt(network, thick, minutes, args.seed) if minutes > 0 else network
        values = sitk.GetArrayFromImage(upsample_crossview(thick, spacing, adapted).image)
        rows.append({"method": "crossview", "adapt_minutes": minutes, **removed_slice_scores(values, truth, args.factor),
                     "seconds": round(time.perf_counter() - started, 1)})
    start = rows[1]["psnr"]
    start_from = f"an untrained network of channels {args.fresh} with the settings of" if args.fresh else "model"
    print(f"Test-time adaptation on {args.thin_ct} at x{args.factor} (removed slices only), {start_from} {args.model} "
          f"({sum(p.numel() for p in network.planar.parameters()) / 1e6:.2f} M coronal/sagittal parameters, "
          f"{network.config.planar_context} parallel plane(s) on each side), "
          f"{datetime.date.today()}\n")
    print("| method | adaptation minutes | PSNR dB | gain over no adaptation dB | SSIM | MAE HU | seconds |\n"
          "|---|---|---|---|---|---|---|")
    for row in rows:
        gain = f"{row['psnr'] - start:+.2f}" if row["method"] == "crossview" else "-"
        print(f"| {row['method']} | {row['adapt_minutes']:g} | {row['psnr']:.2f} | {gain} | {row['ssim']:.4f} | "
              f"{row['mae']:.1f} | {row['seconds']:.1f} |")
    write_csv(args.csv, rows)


if __name__ == "__main__":
    main()

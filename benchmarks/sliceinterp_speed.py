"""Seconds for x2 and x4 of a 512x512x70 CT per SliceInterp method; prints a markdown table, writes CSV.

The volume is the bundled 3 mm CT resampled to a 512 x 512 in-plane grid with 70 slices
(real anatomy at the size of a clinical thick-slice CT).

    python benchmarks/sliceinterp_speed.py [--device auto|cpu|cuda] [--methods ...] [--size X Y Z] [--csv FILE]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

import SimpleITK as sitk
import torch

from CTSynthesisCore.device import choose_device
from CTSynthesisCore.sample_data import sample_path
from CTSynthesisCore.tables import write_csv
from SliceInterpLib.upsample import upsample
from SliceInterpLib.settings import UpsampleSettings


def clinical_size_volume(size: tuple[int, int, int] = (512, 512, 70)) -> sitk.Image:
    """The bundled CT resampled onto a ``size`` grid covering the same field of view."""
    image = sitk.ReadImage(str(sample_path("ct_abdomen_pelvis_3mm")))
    extent = [n * s for n, s in zip(image.GetSize(), image.GetSpacing())]
    spacing = [e / n for e, n in zip(extent, size)]
    return sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), spacing,
                         image.GetDirection(), -1024, image.GetPixelID())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--methods", nargs="+", default=["linear", "cubic", "crossview"])
    parser.add_argument("--factors", nargs="+", type=int, default=[2, 4])
    parser.add_argument("--size", type=int, nargs=3, default=[512, 512, 70], metavar=("X", "Y", "Z"))
    parser.add_argument("--csv", default="sliceinterp_speed.csv")
    args = parser.parse_args()
    device = choose_device(args.device)
    volume = clinical_size_volume(tuple(args.size))
    rows = []
    for factor in args.factors:
        for method in args.methods:
            settings = UpsampleSettings(method=method, device=device.device)
            if method == "crossview":  # warm-up (weights loading, first-call allocations) outside the timing
                upsample(volume[:, :, :5], volume.GetSpacing()[2] / 2, settings)
            started = time.perf_counter()
            result = upsample(volume, volume.GetSpacing()[2] / factor, settings)
            if device.device == "cuda":
                torch.cuda.synchronize()
            rows.append({"method": method, "factor": factor, "output_slices": result.image.GetSize()[2],
                         "seconds": round(time.perf_counter() - started, 2),
                         "device": result.device if method == "crossview" else "cpu"})
    cpu = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"SliceInterp speed, {'x'.join(map(str, args.size))} input, {datetime.date.today()}, {device.reason}; "
          f"CPU: {cpu}\n")
    print("| method | factor | output slices | seconds | device |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['method']} | x{row['factor']} | {row['output_slices']} | {row['seconds']:.2f} | {row['device']} |")
    write_csv(args.csv, rows)


if __name__ == "__main__":
    main()

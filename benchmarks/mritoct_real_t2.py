"""How CT-like each model's output is on the bundled real T2 (ProstateX-0000), which has no paired CT.

Without a true CT there is no MAE; this prints what a physicist would check first, inside the
body (voxels above -1000 HU): the HU percentiles, the share of fat-like (< -30 HU) and bone-like
(> 300 HU) voxels, and the median HU where the T2 is bright (its top quartile in the body: mostly
fat, a CT should give about -100 HU) and where it is dark (bottom quartile: muscle, cortical bone,
gas; about 40 HU for muscle).

    python benchmarks/mritoct_real_t2.py [--models mritoct-ddpm mritoct-cnn mritoct-gan] [--mc 4] [--csv FILE]
"""

from __future__ import annotations

import argparse

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.sample_data import sample_path
from CTSynthesisCore.tables import write_csv
from MRItoCTLib.model import load_model
from MRItoCTLib.pipeline import synthesize
from MRItoCTLib.settings import SynthesisSettings
from MRItoCTLib.catalog import DEFAULT_SAMPLER


def ct_likeness(mri: sitk.Image, ct: sitk.Image) -> dict[str, float]:
    """HU statistics of a synthetic CT inside the body, overall and in bright / dark T2 voxels."""
    hu = sitk.GetArrayFromImage(ct)
    t2 = sitk.GetArrayFromImage(sitk.Resample(mri, ct, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    body = hu > -1000
    inside, signal = hu[body], t2[body]
    low, high = np.percentile(signal, [25, 75])
    p5, median, p95 = np.percentile(inside, [5, 50, 95])
    return {"median_hu": median, "p5_hu": p5, "p95_hu": p95, "fat_like_pct": 100 * float((inside < -30).mean()),
            "bone_like_pct": 100 * float((inside > 300).mean()),
            "bright_t2_median_hu": float(np.median(inside[signal >= high])),
            "dark_t2_median_hu": float(np.median(inside[signal <= low]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mritoct-residual", "mritoct-ddpm", "mritoct-cnn", "mritoct-gan"])
    parser.add_argument("--sampler", default=DEFAULT_SAMPLER)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--mc", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--csv", help="also write the rows here")
    args = parser.parse_args()
    mri = sitk.ReadImage(str(sample_path("t2_pelvis")))
    rows = []
    for name in args.models:
        model = load_model(name)
        settings = SynthesisSettings(sampler=args.sampler, steps=args.steps, mc=args.mc, seed=args.seed)
        result = synthesize(mri, model, settings, device=args.device)
        label = f"{model.metadata['name']} ({result.sampler}, MC {settings.mc})" if model.kind.stochastic \
            else model.metadata["name"]
        rows.append({"model": label, **ct_likeness(mri, result.ct)})
    print("| model | median HU | 5th–95th pct HU | < -30 HU | > 300 HU | bright-T2 median | dark-T2 median |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {row['median_hu']:.0f} | {row['p5_hu']:.0f} to {row['p95_hu']:.0f} | "
              f"{row['fat_like_pct']:.1f} % | {row['bone_like_pct']:.1f} % | {row['bright_t2_median_hu']:.0f} | "
              f"{row['dark_t2_median_hu']:.0f} |")
    if args.csv:
        write_csv(args.csv, rows)


if __name__ == "__main__":
    main()

"""What each self-supervised loss term adds: fine-tune one start model with each recipe for the same number of
steps, score held-out thin CTs; prints a markdown table, writes CSV.

Recipes (all from ``--model``, a model without position input widened as ``sliceinterp train --init`` does):
restoration + distillation (the paper's losses), + in-plane restoration (random scale and slice profile),
in-plane only (the coronal/sagittal network), and the start model itself. Each thin CT is scored at every
factor on its removed slices (the protocol of ``sliceinterp evaluate``), with linear interpolation first.

    python benchmarks/sliceinterp_ablation.py --data CT... --thin THIN_CT... [--steps 300] [--factors 2 3 4]
"""

from __future__ import annotations

import argparse
import datetime
from dataclasses import replace
from pathlib import Path

import SimpleITK as sitk
import torch

from CTSynthesisCore.tables import write_csv
from CTSynthesisCore.volume_io import read_volume
from SliceInterpLib.classical import upsample_classical
from SliceInterpLib.crossview import upsample_crossview
from SliceInterpLib.research.evaluation import removed_slice_scores, thick_from_thin
from SliceInterpLib.research.training import find_volumes, initial_network, load_training_volumes
from SliceInterpLib.selfsupervised import TrainConfig, optimise

RECIPES = {
    "start model": None,
    "restoration + distillation": TrainConfig(distill_from=0.0),
    "+ in-plane (random scale, profile)": TrainConfig(distill_from=0.0, inplane_weight=1.0, inplane_scale="random",
                                                      inplane_profile="random"),
    "in-plane only": TrainConfig(restoration_weight=0.0, distill_weight=0.0, inplane_weight=1.0, inplane_images=16,
                                 inplane_scale="random", inplane_profile="random"),
}


def scores(network, thin_cts: list[Path], factors: list[int], method: str) -> dict[str, float]:
    """PSNR on the removed slices of every thin CT at every factor (``method``: crossview or a classical one)."""
    result = {}
    for path in thin_cts:
        for factor in factors:
            reference, thick = thick_from_thin(read_volume(path), factor)
            spacing = reference.GetSpacing()[2]
            image = (upsample_crossview(thick, spacing, network).image if method == "crossview"
                     else upsample_classical(thick, spacing, method))
            score = removed_slice_scores(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(reference), factor)
            result[f"{path.name.split('.')[0]} x{factor}"] = round(score["psnr"], 4)  # CSV: 4 decimals
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True, help="training CT files or folders")
    parser.add_argument("--thin", nargs="+", required=True, help="held-out thin CTs (files or DICOM folders)")
    parser.add_argument("--model", default="sliceinterp-crossview", help="start model")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--factors", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--csv", default="sliceinterp_ablation.csv")
    args = parser.parse_args()
    volumes = load_training_volumes(find_volumes(args.data))
    thin_cts = [Path(p) for p in args.thin]
    rows = [{"recipe": "linear interpolation", "steps": 0, **scores(None, thin_cts, args.factors, "linear")}]
    for name in args.recipes:
        network, _ = initial_network(args.model)
        if RECIPES[name] is not None:
            torch.manual_seed(0)
            optimise(network, volumes, replace(RECIPES[name], steps=args.steps, learning_rate=args.lr, seed=args.seed))
        rows.append({"recipe": name, "steps": 0 if RECIPES[name] is None else args.steps,
                     **scores(network.eval(), thin_cts, args.factors, "crossview")})
    columns = [key for key in rows[0] if key not in ("recipe", "steps")]
    print(f"SliceInterp loss ablation from {args.model}, {args.steps} steps each, {datetime.date.today()}; "
          f"PSNR dB on removed slices; training CTs: {', '.join(v.name for v in volumes)}\n")
    print("| recipe | steps | " + " | ".join(columns) + " |\n|---|---|" + "---|" * len(columns))
    for row in rows:
        print(f"| {row['recipe']} | {row['steps']} | " + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")
    write_csv(args.csv, rows)


if __name__ == "__main__":
    main()

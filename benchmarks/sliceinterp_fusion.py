"""How the views' weights change the new slices on thin CTs; prints a markdown table, writes CSV.

For each held-out thin CT and factor, one slice in FACTOR is kept and the removed ones are restored (the protocol of
``sliceinterp evaluate``) by the model with its axial view weighted W and the coronal and sagittal views (1 - W) / 2
each, for every W of ``--axial-weights``; with ``--adapt-minutes M`` also after adapting the model to the kept
slices for M minutes (the ``--adapt`` of ``sliceinterp upsample``). Linear and cubic B-spline come first.

    python benchmarks/sliceinterp_fusion.py THIN_CT... [--factors 2 3 4] [--axial-weights 0.333 0.15 0]
        [--adapt-minutes 2] [--model M] [--csv FILE]
"""

from __future__ import annotations

import argparse
import datetime
from dataclasses import replace
from pathlib import Path

import SimpleITK as sitk

from CTSynthesisCore.tables import write_csv
from CTSynthesisCore.volume_io import read_volume
from SliceInterpLib.classical import upsample_classical
from SliceInterpLib.crossview import upsample_crossview
from SliceInterpLib.model import load_crossview
from SliceInterpLib.networks import CrossViewNet
from SliceInterpLib.research.evaluation import removed_slice_scores, thick_from_thin
from SliceInterpLib.selfsupervised import adapt


def with_axial_weight(network: CrossViewNet, weight: float) -> CrossViewNet:
    """``network`` with the axial view weighted ``weight`` and the other two sharing the rest equally."""
    network.config = replace(network.config, view_weights=(weight, (1 - weight) / 2, (1 - weight) / 2))
    return network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("thin", nargs="+", help="held-out thin CTs (files or DICOM folders)")
    parser.add_argument("--factors", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--axial-weights", type=float, nargs="+", default=[1 / 3, 0.15, 0.0])
    parser.add_argument("--adapt-minutes", type=float, default=0.0, help="0: no adapted rows")
    parser.add_argument("--model", default="sliceinterp-crossview")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", default="sliceinterp_fusion.csv")
    args = parser.parse_args()
    network, _ = load_crossview(args.model)
    rows: dict[str, dict] = {}
    for path in map(Path, args.thin):
        image = read_volume(path)
        for factor in args.factors:
            column = f"{path.name.split('.')[0]} x{factor}"
            reference, thick = thick_from_thin(image, factor)
            truth, spacing = sitk.GetArrayFromImage(reference), reference.GetSpacing()[2]

            def score(row: str, restored: sitk.Image) -> None:
                psnr = removed_slice_scores(sitk.GetArrayFromImage(restored), truth, factor)["psnr"]
                rows.setdefault(row, {"method": row})[column] = round(psnr, 4)

            for method in ("linear", "cubic"):
                score(method, upsample_classical(thick, spacing, method))
            variants = {"model": network}
            if args.adapt_minutes > 0:
                variants[f"adapted {args.adapt_minutes:g} min"] = adapt(network, thick, args.adapt_minutes, args.seed)
            for name, variant in variants.items():
                for weight in args.axial_weights:
                    restored = upsample_crossview(thick, spacing, with_axial_weight(variant, weight)).image
                    score(f"{name}, axial weight {weight:.2f}", restored)
    columns = [key for key in next(iter(rows.values())) if key != "method"]
    print(f"View weights of {args.model} on held-out thin CTs, {datetime.date.today()}; PSNR dB on removed slices "
          "(coronal and sagittal share what the axial view does not take)\n")
    print("| method | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
    for row in rows.values():
        print(f"| {row['method']} | " + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")
    write_csv(args.csv, list(rows.values()))


if __name__ == "__main__":
    main()

"""MRItoCT on CT-derived pairs from a real CT that no model was trained on, against two baselines.

Pairs are rendered from the held-out CT with the training recipe (random contrast and acquisition, no
spatial augmentation), and every model is scored inside the body with the SynthRAD metrics. A contrast CT's
iodine is neither rendered into the MRI nor scored: a T2 image cannot show it, so its HU (enhanced blood and
organs, ``ct_pairs.iodine_enhanced``) are left out of the scored region (``--iodine-visible``: rendered and
scored, as before 2026-12-04). Two references frame the numbers:

* water in the body: 0 HU everywhere inside the body mask (what a model that learned nothing gives);
* an intensity-only lookup table fitted on the test case itself: each normalised MRI intensity bin mapped
  to the median CT HU of that bin in the same case. It sees the answer, so it is the best any
  voxel-by-voxel intensity map can do; beating it means the model uses anatomy, not just intensity.

Diffusion models also get the uncertainty's Spearman correlation with the absolute error and its AUSE.

    python benchmarks/mritoct_heldout.py --ct HELD_OUT_CT.nii.gz [--models ...] [--cases 2] [--slices 16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.model_cards import record_evaluation
from CTSynthesisCore.tables import markdown_table, write_csv
from CTSynthesisCore.volume_io import read_volume
from MRItoCTLib.cli import add_test_time_options, test_time_settings
from MRItoCTLib.model import load_model
from MRItoCTLib.intensity import foreground_mask
from MRItoCTLib.pipeline import synthesize
from MRItoCTLib.research.ct_pairs import iodine_enhanced, pair_from_ct
from MRItoCTLib.research.metrics import image_metrics, uncertainty_metrics
from MRItoCTLib.research.model_card import model_card
from MRItoCTLib.settings import SynthesisSettings
from mritoct_roi import model_label

COLUMNS = ["mae", "me", "psnr", "ssim", "mae_bone", "spearman", "ause"]
HEADER = ["method", "MAE (HU)", "ME (HU)", "PSNR (dB)", "SSIM", "bone MAE (HU)", "Spearman(unc, err)", "AUSE"]
REFERENCES = ("water in body", "lookup table fitted on this case")


def central(image: sitk.Image, slices: int | None) -> sitk.Image:
    """The ``slices`` central slices of a volume (all of them when None)."""
    if slices is None or slices >= image.GetSize()[2]:
        return image
    start = (image.GetSize()[2] - slices) // 2
    return image[:, :, start:start + slices]


def ct_stem(path: str) -> str:
    """'crlm1004_abdomen_ct_5mm' for '.../crlm1004_abdomen_ct_5mm.nii.gz': how tables and records name a CT."""
    return Path(path).name.split(".")[0]


def held_out_pair(ct: sitk.Image, seed: int, case: int,
                  iodine_visible: bool = False) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """(MRI, CT, body mask) of pair ``case``: the training recipe's contrast and acquisition, no spatial
    augmentation; the same pairs for every benchmark given the same seed. The MRI does not show the iodine of a
    contrast-enhanced CT, as a T2 image cannot (``iodine_visible``: it does, as before 2026-12-04)."""
    return pair_from_ct(ct, np.random.default_rng([seed, case]), augment=False, hide_iodine=not iodine_visible)


def scored_region(truth_hu: np.ndarray, spacing: tuple[float, float, float], body: np.ndarray,
                  iodine_visible: bool = False) -> np.ndarray:
    """The body without its iodine-enhanced soft tissue, whose HU no T2 image can tell (``iodine_visible``: all)."""
    if iodine_visible:
        return body
    return body & ~iodine_enhanced(truth_hu.astype(np.float32), spacing)


def water_in_body(mask: np.ndarray) -> np.ndarray:
    return np.where(mask, 0.0, -1024.0)


def lookup_table_ct(mri: sitk.Image, ct_hu: np.ndarray, mask: np.ndarray, bins: int = 64,
                    fitted_on: np.ndarray | None = None) -> np.ndarray:
    """The case's own intensity-to-HU lookup inside ``mask``: MRI intensity (scaled by its bright signal's median)
    in ``bins`` quantile bins, each mapped to the median true HU of its voxels in ``fitted_on`` (default ``mask``)."""
    fitted_on = mask if fitted_on is None else fitted_on
    signal = sitk.GetArrayFromImage(foreground_mask(sitk.Cast(mri, sitk.sitkFloat32))).astype(bool)
    values = sitk.GetArrayFromImage(mri).astype(np.float64)
    values = values / max(float(np.median(values[signal])) if signal.any() else 1.0, 1e-6)
    edges = np.unique(np.quantile(values[fitted_on], np.linspace(0, 1, bins + 1)))
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    table = np.array([np.median(ct_hu[fitted_on & (index == b)]) if np.any(fitted_on & (index == b)) else 0.0
                      for b in range(len(edges) - 1)])
    return np.where(mask, table[index], -1024.0)


def scores(prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray, uncertainty: np.ndarray | None) -> dict:
    row = {**image_metrics(prediction, truth, mask), "spearman": float("nan"), "ause": float("nan")}
    if uncertainty is not None:
        row.update(uncertainty_metrics(uncertainty, prediction, truth, mask))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", required=True, help="a real CT that none of the models was trained on")
    parser.add_argument("--models", nargs="+", default=["mritoct-residual", "mritoct-ddpm", "mritoct-cnn", "mritoct-gan"])
    parser.add_argument("--cases", type=int, default=2, help="pairs rendered from the CT (default 2)")
    parser.add_argument("--slices", type=int, help="central slices of each pair scored (default all)")
    parser.add_argument("--mc", type=int, default=4)
    parser.add_argument("--steps", type=int, help="sampler steps (default: the sampler's)")
    add_test_time_options(parser)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--csv", default="mritoct_heldout.csv")
    parser.add_argument("--record", action="store_true", help="store each model's result in its metadata and card")
    parser.add_argument("--iodine-visible", action="store_true",
                        help="render a contrast CT's iodine into the MRI and score it (the benchmark before 2026-12-04)")
    args = parser.parse_args()
    ct = read_volume(args.ct)
    models = {}
    for name in args.models:
        model = load_model(name)
        models[model_label(name, model.metadata)] = model
    settings = SynthesisSettings(steps=args.steps, mc=args.mc, seed=args.seed, **test_time_settings(args))
    rows = []
    for case in range(args.cases):
        mri, truth_image, body_image = held_out_pair(ct, args.seed, case, args.iodine_visible)
        mri, truth_image, body_image = (central(image, args.slices) for image in (mri, truth_image, body_image))
        truth = sitk.GetArrayFromImage(truth_image).astype(np.float64)
        body = sitk.GetArrayFromImage(body_image).astype(bool)
        mask = scored_region(truth, truth_image.GetSpacing(), body, args.iodine_visible)
        rows.append({"case": case, "method": REFERENCES[0], **scores(water_in_body(body), truth, mask, None)})
        rows.append({"case": case, "method": REFERENCES[1],
                     **scores(lookup_table_ct(mri, truth, body, fitted_on=mask), truth, mask, None)})
        for label, model in models.items():
            result = synthesize(mri, model, settings, device="cpu")
            uncertainty = sitk.GetArrayFromImage(result.uncertainty) if model.kind.stochastic and args.mc > 1 else None
            rows.append({"case": case, "method": label,
                         **scores(sitk.GetArrayFromImage(result.ct), truth, mask, uncertainty)})
        print(f"case {case} done: {mask.sum()} of {body.sum()} body voxels scored", flush=True)
    write_csv(args.csv, rows)
    stem = ct_stem(args.ct)
    print(f"\nHeld-out CT {stem}: {args.cases} rendered pairs, {args.slices or 'all'} central slices, "
          f"{scored_text(args)}\n")
    print(markdown_table(HEADER, [mean_cells(rows, method) for method in dict.fromkeys(row["method"] for row in rows)]))
    if args.record:
        for label, model in models.items():
            sampling = settings.describe_sampling(model.kind.stochastic)
            record_evaluation(model.metadata["folder"], f"ct_pairs_{stem}",
                              evaluation_record(rows, label, model, stem, sampling, args), model_card)


def mean_cells(rows: list[dict], method: str) -> list[str]:
    """A method's row of the table: its scores averaged over the cases, formatted."""
    own = [row for row in rows if row["method"] == method]
    mean = {c: float(np.nanmean([r[c] for r in own])) if any(np.isfinite(r[c]) for r in own) else float("nan")
            for c in COLUMNS}
    return [method] + [f"{mean[c]:.1f}" if c in ("mae", "me", "mae_bone") else f"{mean[c]:.2f}" if c == "psnr"
                       else "–" if not np.isfinite(mean[c]) else f"{mean[c]:.3f}" for c in COLUMNS]


def scored_text(args: argparse.Namespace) -> str:
    return "inside the body" if args.iodine_visible else "inside the body, iodine-enhanced soft tissue left out"


def evaluation_record(rows: list[dict], label: str, model, stem: str, sampling: str, args) -> dict:
    """The model's result beside the two references, for its metadata and model card; says whether the CT was
    among the model's own training CTs (then it is not a held-out result)."""
    trained_on = any(stem in case for case in model.metadata.get("training", {}).get("train_cases", []))
    note = (f"{stem} was among this model's training CTs (its pairs were rendered by an older simulator), so this is "
            "not a held-out result." if trained_on else f"{stem} was not among this model's training CTs.")
    return {"title": f"MRI/CT pairs rendered from the real CT {stem} ({args.cases} pairs, "
                     f"{args.slices or 'all'} central slices, {scored_text(args)}, {sampling})",
            "columns": HEADER, "rows": [mean_cells(rows, method) for method in (*REFERENCES, label)],
            "note": note, "command": "python benchmarks/mritoct_heldout.py " + " ".join(sys.argv[1:])}


if __name__ == "__main__":
    main()

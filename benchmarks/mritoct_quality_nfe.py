"""Quality against NFE for every MRItoCT sampler on held-out cases; prints a markdown table, writes CSV.

The held-out cases are the test split of a paired data folder (``--data``) or pairs rendered, as
``mritoct_heldout.py`` renders them, from a real CT no model was trained on (``--ct``). Each run draws
one sample of the central slice of each case (with its true neighbouring slices as context) from the
same initial noise, on the model's grid, the way the model's kind samples (a residual model: its
regression mean plus a sampled residual). It is scored against the true CT (SynthRAD metrics inside
the body mask; for ``--ct``, without a contrast CT's iodine, as ``mritoct_heldout.py`` scores) and against
the DDPM-1000 sample. The last table gives, per sampler, the fewest NFE
whose PSNR is within 0.5 dB of DDPM-1000's.

    python benchmarks/mritoct_quality_nfe.py (--data DATA | --ct CT) [--cases 3] [--sweep ddpm=10,250 ...] [--csv FILE]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import time

import numpy as np
import torch

from mritoct_heldout import ct_stem, held_out_pair, scored_region

from CTSynthesisCore.device import choose_device
from CTSynthesisCore.metrics import psnr
from CTSynthesisCore.volume_io import read_volume
from MRItoCTLib.catalog import DEFAULT_MODEL
from MRItoCTLib.model import LoadedModel, load_model, new_generator
from MRItoCTLib.model_types import Draw
from MRItoCTLib.pipeline import context_stack
from MRItoCTLib.research.dataset import PreparedCase, cases_in_split, prepare_case, prepare_pair
from MRItoCTLib.research.metrics import DATA_RANGE, image_metrics

SWEEP = {
    "ddpm": ["1000", "10", "25", "50", "100", "250"],
    "em": ["50", "250", "1000"],
    "pc": ["25", "100"],
    "ode": ["heun:5", "heun:10", "heun:25", "rk45:1e-3"],
    "ddim": ["5", "10", "20", "50"],
    "dpmpp": ["5", "8", "10", "15", "20", "25"],
}
TOLERANCE_DB = 0.5


def sampler_call(setting: str) -> tuple[int, dict]:
    """'250' -> 250 steps; 'heun:10' -> 10 fixed Heun steps; 'rk45:1e-3' -> adaptive RK45 at that tolerance."""
    if ":" not in setting:
        return int(setting), {}
    method, value = setting.split(":")
    if method == "rk45":
        return 100, {"method": "rk45", "tolerance": float(value)}
    return int(value), {"method": method}


def parse_sweep(items: list[str] | None, reference_steps: int) -> dict[str, list[str]]:
    """``ddpm=10,1000 dpmpp=5,10`` -> {"ddpm": ["1000", "10"], ...} (default: the full sweep); the DDPM reference
    always runs first."""
    sweep = {name: values.split(",") for name, _, values in (item.partition("=") for item in items)} if items else SWEEP
    reference = str(reference_steps)
    return {"ddpm": [reference] + [s for s in sweep.get("ddpm", []) if s != reference],
            **{k: v for k, v in sweep.items() if k != "ddpm"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="paired data folder (mritoct make-data layout): its test split")
    source.add_argument("--ct", help="a real CT no model was trained on: pairs rendered from it")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--cases", type=int, default=3, help="held-out cases, central slice each")
    parser.add_argument("--pair-seed", type=int, default=1000, help="seed of the pairs rendered from --ct "
                        "(default 1000, as mritoct_heldout.py)")
    parser.add_argument("--sweep", nargs="+", help="SAMPLER=SETTING,SETTING ... (default: the full sweep)")
    parser.add_argument("--reference-steps", type=int, default=1000, help="steps of the DDPM reference (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--csv", default="mritoct_quality_nfe.csv")
    args = parser.parse_args()
    sweep = parse_sweep(args.sweep, args.reference_steps)
    reference_key = ("ddpm", str(args.reference_steps))
    device = choose_device(args.device)
    model = load_model(args.model, device.device)
    cases = held_out_cases(args, model)
    centres = [case.mri.shape[0] // 2 for case in cases]
    height = max(case.mri.shape[1] for case in cases)
    width = max(case.mri.shape[2] for case in cases)
    multiple = model.config.size_multiple
    shape = (height + (-height) % multiple, width + (-width) % multiple)
    condition = np.concatenate([
        context_stack(np.pad(case.mri, [(0, 0), (0, shape[0] - case.mri.shape[1]), (0, shape[1] - case.mri.shape[2])],
                             constant_values=-1.0), [k], model.config.context_slices)
        for case, k in zip(cases, centres)])
    condition = torch.from_numpy(condition).to(device.device)
    truths = [model.intensity.unit_to_hu(case.ct[k]) for case, k in zip(cases, centres)]
    masks = [case.mask[k] for case, k in zip(cases, centres)]

    rows, reference_hu = [], None
    handle = open(args.csv, "w", newline="", encoding="utf-8")
    writer = csv.DictWriter(handle, fieldnames=["sampler", "setting", "nfe", "mae", "psnr", "ssim", "psnr_vs_reference",
                                                "mae_vs_reference", "seconds"])
    writer.writeheader()
    for sampler_name, settings in sweep.items():
        for setting in settings:
            steps, options = sampler_call(setting)
            started = time.perf_counter()
            draw = Draw(sampler_name, steps, options, new_generator(device.device, args.seed))
            with torch.inference_mode():
                sample, nfe = model.kind.draw(model.network, model.network, condition, draw)
            seconds = time.perf_counter() - started
            predictions = [model.intensity.unit_to_hu(sample[i, 0, : t.shape[0], : t.shape[1]].float().cpu().numpy())
                           for i, t in enumerate(truths)]
            if (sampler_name, setting) == reference_key:
                reference_hu = predictions
            scores = [image_metrics(p[None], t[None], m[None]) for p, t, m in zip(predictions, truths, masks)]
            row = {"sampler": sampler_name, "setting": setting, "nfe": nfe, "seconds": round(seconds, 1),
                   **{key: float(np.mean([s[key] for s in scores])) for key in ("mae", "psnr", "ssim")}}
            if reference_hu is not None:
                row["psnr_vs_reference"] = float(np.mean([psnr(np.clip(p, -1024, 3000)[m], np.clip(r, -1024, 3000)[m],
                                                              DATA_RANGE) for p, r, m in zip(predictions, reference_hu, masks)]))
                row["mae_vs_reference"] = float(np.mean([np.abs(np.clip(p, -1024, 3000) - np.clip(r, -1024, 3000))[m].mean()
                                                        for p, r, m in zip(predictions, reference_hu, masks)]))
            rows.append(row)
            writer.writerow(row)
            handle.flush()
            print(f"{sampler_name} {setting}: NFE {nfe}, PSNR {row['psnr']:.2f} dB, {seconds:.0f} s", flush=True)
    handle.close()
    print_tables(rows, reference_key, [case.name for case in cases], device.reason)


def held_out_cases(args: argparse.Namespace, model: LoadedModel) -> list[PreparedCase]:
    """The test split of ``--data``, or pairs rendered from ``--ct`` without spatial augmentation."""
    if args.data:
        return [prepare_case(folder, model.spacing_mm, model.intensity)
                for folder in cases_in_split(args.data, "test")[: args.cases]]
    ct = read_volume(args.ct)
    return [without_iodine_scored(prepare_pair(f"{ct_stem(args.ct)} pair {case}", *held_out_pair(ct, args.pair_seed, case),
                                               model.spacing_mm, model.intensity), model)
            for case in range(args.cases)]


def without_iodine_scored(case: PreparedCase, model: LoadedModel) -> PreparedCase:
    """The case with its iodine-enhanced soft tissue out of the scored mask (``mritoct_heldout.scored_region``)."""
    hu = model.intensity.unit_to_hu(case.ct)
    return dataclasses.replace(case, mask=scored_region(hu, case.grid.GetSpacing(), case.mask))


def print_tables(rows: list[dict], reference_key: tuple[str, str], case_names: list[str], device_reason: str) -> None:
    reference = next(r for r in rows if (r["sampler"], r["setting"]) == reference_key)
    label = f"DDPM-{reference_key[1]}"
    print(f"\nMRItoCT quality against NFE, {datetime.date.today()}, {device_reason}; held-out cases "
          f"{', '.join(case_names)} (central slice each, one sample, same initial noise)\n")
    print(f"| sampler | setting | NFE | MAE (HU) | PSNR (dB) | SSIM | PSNR - {label} (dB) | PSNR vs {label} sample (dB) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        versus = row.get("psnr_vs_reference", float("nan"))
        versus_text = "–" if row is reference or not np.isfinite(versus) else f"{versus:.2f}"
        print(f"| {row['sampler']} | {row['setting']} | {row['nfe']} | {row['mae']:.1f} | {row['psnr']:.2f} | "
              f"{row['ssim']:.3f} | {row['psnr'] - reference['psnr']:+.2f} | {versus_text} |")
    print(f"\nFewest NFE within {TOLERANCE_DB} dB PSNR of {label} ({reference['psnr']:.2f} dB, NFE "
          f"{reference['nfe']}):\n")
    print(f"| sampler | setting | NFE | fewer NFE than {label} |\n|---|---|---|---|")
    for sampler in dict.fromkeys(r["sampler"] for r in rows):
        good = [r for r in rows if r["sampler"] == sampler and r is not reference
                and r["psnr"] >= reference["psnr"] - TOLERANCE_DB]
        if good:
            best = min(good, key=lambda r: r["nfe"])
            print(f"| {sampler} | {best['setting']} | {best['nfe']} | {reference['nfe'] / best['nfe']:.1f}x |")
        else:
            print(f"| {sampler} | none of the settings tried | – | – |")


if __name__ == "__main__":
    main()

"""Stripes between slices: the mean absolute HU step between adjacent slices inside the body.

A 2.5D model samples each slice; when every slice draws its own noise, neighbouring slices differ by more
than anatomy does and coronal and sagittal views show stripes. This prints the step for a real CT (the shipped
abdomen-pelvis sample, 3 mm slices) and for the synthetic CT of the bundled real T2 (3 mm slices) with
independent and with shared slice noise, one Monte-Carlo sample and the mean of several, and the same for a
CT-derived pair made from the real CT (so that the two figures compare like with like).

    python benchmarks/mritoct_slice_consistency.py [--model mritoct-ddpm] [--mc 4] [--csv FILE]
"""

from __future__ import annotations

import argparse

import numpy as np
import SimpleITK as sitk

from CTSynthesisCore.sample_data import sample_path
from CTSynthesisCore.tables import write_csv
from MRItoCTLib.catalog import DEFAULT_MODEL
from MRItoCTLib.model import load_model
from MRItoCTLib.pipeline import synthesize
from MRItoCTLib.research.ct_pairs import ct_body_mask, pair_from_ct
from MRItoCTLib.research.metrics import slice_step
from MRItoCTLib.settings import SLICE_NOISE, SynthesisSettings


def step_of(image: sitk.Image) -> float:
    """The slice step of a CT (or synthetic CT) inside its body."""
    mask = sitk.GetArrayFromImage(ct_body_mask(image)).astype(bool)
    return slice_step(sitk.GetArrayFromImage(image), mask)


def central(image: sitk.Image, slices: int | None) -> sitk.Image:
    """The ``slices`` central slices of a volume (all of them when None)."""
    if slices is None or slices >= image.GetSize()[2]:
        return image
    start = (image.GetSize()[2] - slices) // 2
    return image[:, :, start:start + slices]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--mc", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="sampler steps (default: the sampler's)")
    parser.add_argument("--slices", type=int, help="only this many central slices of each input (default all)")
    parser.add_argument("--csv", default="mritoct_slice_consistency.csv")
    args = parser.parse_args()
    model = load_model(args.model)
    real_ct = sitk.ReadImage(str(sample_path("ct_abdomen_pelvis_3mm")))
    derived_mri, derived_ct, _ = pair_from_ct(real_ct, np.random.default_rng(args.seed), augment=False)
    inputs = {name: central(image, args.slices) for name, image in
              (("ProstateX T2", sitk.ReadImage(str(sample_path("t2_pelvis")))), ("CT-derived pair", derived_mri))}
    rows = [{"input": "real CT (abdomen-pelvis sample)", "output": "the CT itself", "step_hu": step_of(real_ct)},
            {"input": "CT-derived pair", "output": "its CT", "step_hu": step_of(derived_ct)}]
    for name, mri in inputs.items():
        for noise in SLICE_NOISE:
            for mc in sorted({1, args.mc}):
                settings = SynthesisSettings(steps=args.steps, mc=mc, seed=args.seed, slice_noise=noise)
                ct = synthesize(mri, model, settings, device="cpu").ct
                rows.append({"input": name, "output": f"sCT, {noise} slice noise, MC {mc}", "step_hu": step_of(ct)})
                print(rows[-1], flush=True)
    write_csv(args.csv, rows)
    print(f"\nModel {model.metadata['name']}; mean |HU step| between adjacent slices inside the body\n")
    print("| input | output | step (HU) |\n|---|---|---|")
    for row in rows:
        print(f"| {row['input']} | {row['output']} | {row['step_hu']:.1f} |")


if __name__ == "__main__":
    main()

"""Montage of a real MRI, its synthetic CT (shown from -400 to 1200 HU) and the uncertainty in axial, coronal and
sagittal views, with the run's figures inside the body printed as a table.

Used for the README's figures: the bundled pelvis T2 (in domain) and the bundled upper-abdomen MRI (out of
domain: a physicist should see what the model does there).

    python benchmarks/mritoct_montage.py --input t2_pelvis --model mritoct-ddpm --output montage.png [--mc 4]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import SimpleITK as sitk

from CTSynthesisCore.sample_data import SAMPLES, sample_path
from MRItoCTLib.catalog import DEFAULT_MODEL
from MRItoCTLib.jobs import result_facts
from MRItoCTLib.model import load_model
from MRItoCTLib.pipeline import synthesize
from MRItoCTLib.research.figures import montage
from MRItoCTLib.settings import SynthesisSettings


def read_input(name_or_path: str) -> tuple[sitk.Image, str]:
    """A bundled sample by name, or a volume file; with its title."""
    if name_or_path in SAMPLES:
        return sitk.ReadImage(str(sample_path(name_or_path))), SAMPLES[name_or_path].title
    return sitk.ReadImage(name_or_path), Path(name_or_path).name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help=f"a bundled sample ({', '.join(SAMPLES)}) or a file")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--output", required=True)
    parser.add_argument("--mc", type=int, default=4)
    parser.add_argument("--steps", type=int, help="sampler steps (default: the sampler's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    mri, title = read_input(args.input)
    model = load_model(args.model)
    settings = SynthesisSettings(steps=args.steps, mc=args.mc, seed=args.seed)
    result = synthesize(mri, model, settings, device="cpu")
    montage(mri, result.ct, result.uncertainty, args.output, f"{title}: {model.metadata['name']}, research use only")
    print(f"\n{title}, {model.metadata['name']} ({args.model}), MC {args.mc}; figure: {args.output}\n")
    print("| | |\n|---|---|")
    for label, value in result_facts(result, settings, model).items():
        print(f"| {label} | {value} |")


if __name__ == "__main__":
    main()

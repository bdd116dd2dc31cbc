"""CPU cost of each shipped MRItoCT model per megapixel network evaluation, the figure behind the panel's
time estimate (``MRItoCTLib.estimate``); prints a markdown table, and with ``--write`` stores it as
``cpu_cost`` in each model's ``metadata.json`` (the weights and their sha256 are not touched).

Each model synthesizes a slab of the bundled ProstateX T2 placed on a 256 x 256 grid at 2 mm (the size of a
typical pelvis field of view) through the real pipeline with the Standard preset (``MRItoCTLib.catalog.PRESETS``:
DDPM, 6 steps, 4 Monte-Carlo samples; one evaluation for the CNN and GAN). The cost is the run's seconds divided by
(evaluations per sample x samples x slices x megapixels per slice on the model grid), so the input and
output resampling is counted in it too.

    python benchmarks/mritoct_cost.py [--slices 8] [--models mritoct-ddpm ...] [--write]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from mritoct_speed import pelvis_volume

from CTSynthesisCore.model_cards import update_model_metadata
from CTSynthesisCore.weights import list_models, resolve_model_folder
from MRItoCTLib.catalog import DEFAULT_PRESET, PRESETS
from MRItoCTLib.estimate import volume_layout
from MRItoCTLib.model import load_model
from MRItoCTLib.pipeline import SynthesisResult, synthesize
from MRItoCTLib.research.model_card import model_card
from MRItoCTLib.settings import SynthesisSettings


def measured_on() -> str:
    """The machine in words, as the panel quotes it ("2-core CPU")."""
    return f"{os.cpu_count()}-core CPU"


def preset_settings(**test_time: bool) -> SynthesisSettings:
    """The settings of the panel's default preset (test-time augmentation as given, the rest at their defaults)."""
    preset = PRESETS[DEFAULT_PRESET]
    return SynthesisSettings(sampler=preset.sampler, steps=preset.steps, mc=preset.mc, **test_time)


def timed_preset_run(volume, model, device: str = "cpu", **test_time: bool) -> tuple[SynthesisResult, float]:
    """One synthesis of ``volume`` with the panel's default preset, and its seconds."""
    settings = preset_settings(**test_time)
    started = time.perf_counter()
    result = synthesize(volume, model, settings, device=device)
    return result, time.perf_counter() - started


def model_cost(name: str, slices: int) -> dict:
    """One model's measured run and its seconds per megapixel evaluation."""
    volume = pelvis_volume((256, 256, slices))
    model = load_model(name)
    result, seconds = timed_preset_run(volume, model)
    mc = PRESETS[DEFAULT_PRESET].mc if model.kind.stochastic else 1
    layout = volume_layout(volume.GetSize(), volume.GetSpacing(), volume.GetDirection())
    megapixels = layout.model_pixels(model.spacing_mm) / 1e6
    per_megapixel = seconds / (result.nfe * mc * layout.slices * megapixels)
    return {"model": name, "nfe": result.nfe, "mc": mc, "slices": layout.slices, "megapixels": megapixels,
            "seconds": seconds, "seconds_per_megapixel": per_megapixel}


def write_cost(row: dict, command: str) -> None:
    cost = {"seconds_per_megapixel": round(row["seconds_per_megapixel"], 3), "measured_on": measured_on(),
            "command": command}
    update_model_metadata(resolve_model_folder(row["model"]), lambda metadata: metadata.update(cpu_cost=cost),
                          model_card)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--models", nargs="+", default=[m["name"] for m in list_models("mritoct")])
    parser.add_argument("--write", action="store_true", help="store the cost in each model's metadata.json")
    args = parser.parse_args()
    print(f"CPU cost per megapixel network evaluation, {measured_on()} ({platform.processor() or platform.machine()}), "
          f"{args.slices} slices of 256 x 256 at 2 mm, Standard preset\n")
    print("| model | NFE | MC | slices | seconds | s per megapixel evaluation |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        row = model_cost(name, args.slices)
        print(f"| {name} | {row['nfe']} | {row['mc']} | {row['slices']} | {row['seconds']:.1f} | "
              f"{row['seconds_per_megapixel']:.2f} |")
        if args.write:
            write_cost(row, f"python benchmarks/mritoct_cost.py --slices {args.slices} --write")


if __name__ == "__main__":
    main()

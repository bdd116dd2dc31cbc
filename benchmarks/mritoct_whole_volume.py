"""Whole-volume MRItoCT synthesis time with the panel's default preset: one complete run per model.

The volume has the size of a typical pelvis T2 series (275 x 275 x 85 voxels at 1.5 x 1.5 x 3 mm): the bundled
ProstateX T2 resampled onto 275 x 275 x 85 voxels, then given that spacing (its 19-slice slab stretched over the 85
slices; every slice is synthesized either way, so the time is that of a real series of this size). Each model
synthesizes all of it through the real pipeline with the Standard preset (``MRItoCTLib.catalog.PRESETS``: DDPM,
6 steps, 4 Monte-Carlo samples, test-time flips and shifts; one pass for the CNN and GAN), timed from the call to the
result on the input grid. Prints a markdown table; the target is at most 5 minutes on the 2-core CPU.

    python benchmarks/mritoct_whole_volume.py --models mritoct-ddpm runs/residual/last [--device cpu] [--no-test-time-flips]
        [--no-test-time-shifts]
"""

from __future__ import annotations

import argparse

from mritoct_cost import measured_on, preset_settings, timed_preset_run
from mritoct_speed import pelvis_volume

from CTSynthesisCore.device import choose_device
from CTSynthesisCore.tables import markdown_table
from MRItoCTLib.catalog import DEFAULT_MODEL, DEFAULT_PRESET
from MRItoCTLib.cli import add_test_time_options, test_time_settings
from MRItoCTLib.model import load_model

SIZE = (275, 275, 85)
SPACING = (1.5, 1.5, 3.0)
TARGET_MINUTES = 5.0


def pelvis_series(slices: int = SIZE[2]):
    """The bundled T2 resampled onto 275 x 275 x ``slices`` voxels, labelled 1.5 x 1.5 x 3 mm."""
    image = pelvis_volume((*SIZE[:2], slices), SPACING[0])
    image.SetSpacing(SPACING)
    return image


def timed_run(name: str, device: str, slices: int, test_time: dict[str, bool]) -> list[str]:
    """One complete synthesis of the series; the table row."""
    model = load_model(name, device)
    result, seconds = timed_preset_run(pelvis_series(slices), model, device, **test_time)
    sampling = preset_settings(**test_time).describe_sampling(model.kind.stochastic)
    verdict = "yes" if seconds <= TARGET_MINUTES * 60 else "no"
    return [f"{model.metadata['name']} ({name})", sampling, result.device, f"{seconds:.0f}", f"{seconds / 60:.1f}",
            verdict]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[DEFAULT_MODEL])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--slices", type=int, default=SIZE[2], help=f"slices of the series (default {SIZE[2]})")
    add_test_time_options(parser)
    args = parser.parse_args()
    device = choose_device(args.device).device
    rows = [timed_run(name, device, args.slices, test_time_settings(args)) for name in args.models]
    print(f"\nWhole-volume synthesis, {' x '.join(map(str, (*SIZE[:2], args.slices)))} voxels at {' x '.join(map(str, SPACING))} mm, "
          f"preset {DEFAULT_PRESET}, on a {measured_on()} ({device})\n")
    print(markdown_table(["model", "sampling", "device", "seconds", "minutes", f"<= {TARGET_MINUTES:g} min"], rows))


if __name__ == "__main__":
    main()

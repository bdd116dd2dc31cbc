"""``mritoct``: synthesize CT from MRI on the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from CTSynthesisCore.cli import ArgumentParser, positive_int, run_cli
from CTSynthesisCore.device import DEVICE_CHOICES
from CTSynthesisCore.errors import UserInputError

from .samplers import SAMPLER_INFO


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="mritoct", description="Synthetic CT (HU) and uncertainty from a T2-weighted MRI "
                            "with a conditional diffusion model. Research use only.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    run = commands.add_parser("synthesize", help="synthesize CT + uncertainty from one MRI volume")
    run.add_argument("input", help="MRI volume file (NIfTI, NRRD, MHA, ...) or DICOM series folder")
    run.add_argument("--output", required=True,
                     help="synthetic CT file (.nii.gz, .nrrd, .mha); a folder (no extension) gets a DICOM CT series")
    run.add_argument("--uncertainty", help="write the Monte-Carlo standard deviation (HU) here")
    run.add_argument("--samples-dir", help="write every Monte-Carlo sample into this folder")
    run.add_argument("--model", default=None, help="shipped model name or model folder (default: mritoct-ddpm)")
    run.add_argument("--sampler", default="dpmpp", choices=list(SAMPLER_INFO), help="sampling method (default dpmpp)")
    run.add_argument("--steps", type=positive_int, help="time steps (default: per sampler, see 'mritoct samplers')")
    run.add_argument("--mc", type=positive_int, default=4, help="Monte-Carlo samples (default 4)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--device", default="auto", help=f"{', '.join(DEVICE_CHOICES)} (default auto)")
    run.add_argument("--batch-size", type=positive_int, default=8, help="network inputs per forward pass (default 8)")
    run.add_argument("--eta", type=float, help="DDIM noise level (0 = deterministic)")
    run.add_argument("--corrector-steps", type=int, help="Langevin corrector steps per time for pc (default 1)")
    run.add_argument("--snr", type=float, help="Langevin signal-to-noise ratio for pc (default 0.16)")
    run.add_argument("--ode-method", choices=["rk45", "heun", "rk4"], help="ODE solver (default rk45)")
    run.add_argument("--tolerance", type=float, help="rk45 relative and absolute tolerance (default 1e-5)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    commands.add_parser("samplers", help="list the samplers and their defaults")
    return parser


def sampler_options(args) -> dict:
    """Sampler keyword options given on the command line, checked against the chosen sampler."""
    given = {"eta": args.eta, "corrector_steps": args.corrector_steps, "snr": args.snr, "method": args.ode_method}
    if args.tolerance is not None:
        given.update(rtol=args.tolerance, atol=args.tolerance)
    allowed = {"ddim": {"eta"}, "pc": {"corrector_steps", "snr"}, "ode": {"method", "rtol", "atol"}}.get(args.sampler, set())
    options = {k: v for k, v in given.items() if v is not None}
    wrong = sorted(set(options) - allowed)
    if wrong:
        raise UserInputError(f"option(s) {', '.join(wrong)} do not apply to sampler '{args.sampler}'")
    if options.get("corrector_steps", 1) < 0:
        raise UserInputError("corrector steps must be 0 or more")
    return options


def command_synthesize(args) -> int:
    from CTSynthesisCore.progress import TqdmProgress
    from CTSynthesisCore.volume_io import check_output_path, read_volume, write_volume

    from .dicom_series import write_ct_series
    from .model import DEFAULT_MODEL, load_model
    from .pipeline import SynthesisSettings, synthesize

    outputs = [Path(p) for p in (args.output, args.uncertainty) if p]
    for output in outputs:
        check_output_path(output, inputs=(args.input,))
    if len(set(p.resolve() for p in outputs)) < len(outputs):
        raise UserInputError("--output and --uncertainty must be different files")
    settings = SynthesisSettings(sampler=args.sampler, steps=args.steps, mc=args.mc, seed=args.seed,
                                 batch_size=args.batch_size, keep_samples=bool(args.samples_dir),
                                 sampler_options=sampler_options(args)).validated()
    mri = read_volume(args.input)
    model = load_model(args.model or DEFAULT_MODEL)
    bar = TqdmProgress("synthesizing", disable=args.quiet)
    try:
        result = synthesize(mri, model, settings, device=args.device, progress=bar)
    finally:
        bar.close()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    output = Path(args.output)
    if output.suffix == "" or output.is_dir():
        write_ct_series(result.ct, output, source=mri)
    else:
        write_volume(result.ct, output)
    if args.uncertainty:
        write_volume(result.uncertainty, args.uncertainty)
    if args.samples_dir:
        folder = Path(args.samples_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for index, sample in enumerate(result.samples):
            write_volume(sample, folder / f"sample_{index:03d}.nii.gz")
    print(f"done: {result.summary()} ({result.device_reason}); MC samples {settings.mc}; wrote {args.output}")
    return 0


def command_samplers(args) -> int:
    print(f"{'name':<7} {'default steps':>13}  description")
    for info in SAMPLER_INFO.values():
        print(f"{info.name:<7} {info.default_steps:>13}  {info.title}: {info.description}")
    return 0


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return {"synthesize": command_synthesize, "samplers": command_samplers}[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

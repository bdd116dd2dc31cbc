"""``sliceinterp``: raise the between-slice resolution of a CT on the command line."""

from __future__ import annotations

import sys
from typing import Sequence

from CTSynthesisCore.cli import ArgumentParser, run_cli

from .classical import INTERPOLATORS


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="sliceinterp", description="Raise the between-slice resolution of a CT volume. "
                            "Research use only.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    run = commands.add_parser("upsample", help="interpolate new slices along the slice axis")
    run.add_argument("input", help="CT volume file or DICOM series folder")
    run.add_argument("--output", required=True, help="output volume file")
    amount = run.add_mutually_exclusive_group(required=True)
    amount.add_argument("--factor", type=int, help="integer factor 2-8 (new spacing = old / factor)")
    amount.add_argument("--spacing", type=float, help="target slice spacing in mm")
    run.add_argument("--method", default="linear", choices=list(INTERPOLATORS),
                     help="interpolation method (default linear)")
    return parser


def command_upsample(args) -> int:
    from CTSynthesisCore.volume_io import check_output_path, check_scalar_volume, read_volume, write_volume

    from .classical import resolve_factor, upsample_classical

    check_output_path(args.output, inputs=(args.input,))
    image = read_volume(args.input)
    check_scalar_volume(image, "input CT", min_slices=3)
    spacing, _ = resolve_factor(image, args.factor, args.spacing)
    result = upsample_classical(image, spacing, args.method)
    write_volume(result, args.output)
    print(f"done: {image.GetSize()[2]} -> {result.GetSize()[2]} slices at {spacing:.4g} mm ({args.method}); "
          f"wrote {args.output}")
    return 0


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return {"upsample": command_upsample}[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

"""``sliceinterp``: raise the between-slice resolution of a CT on the command line."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from CTSynthesisCore.cli import (ArgumentParser, add_inference_options, add_worker_option, check_output_files,
                                 command_progress, non_negative_float, non_negative_int, positive_float,
                                 positive_int, run_cli)
from CTSynthesisCore.device import DEFAULT_DEVICE, DEVICE_CHOICES
from CTSynthesisCore.errors import UserInputError

from .catalog import CPU_BATCH_SIZE, DEFAULT_ADAPT_MINUTES, DEFAULT_METHOD, DEFAULT_MODEL, DEFAULT_SEED, METHODS
from .networks import CrossViewConfig, check_view_weights
from .selfsupervised import INPLANE_PROFILES, INPLANE_SCALES, TrainConfig

DEVICE_HELP = f"{', '.join(DEVICE_CHOICES)} (default {DEFAULT_DEVICE})"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="sliceinterp", description="Raise the between-slice resolution of a CT volume. "
                            "Research use only.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    run = commands.add_parser("upsample", help="interpolate new slices along the slice axis")
    run.set_defaults(handler=command_upsample)
    run.add_argument("input", help="CT volume file or DICOM series folder; or a folder or .txt list of them "
                     "(batch: one case each, split over processes under torchrun)")
    run.add_argument("--output", required=True,
                     help="output volume file; in batch mode a folder that gets <case>.nii.gz and summary.csv")
    amount = run.add_mutually_exclusive_group(required=True)
    amount.add_argument("--factor", type=int, help="integer factor 2-8 (new spacing = old / factor)")
    amount.add_argument("--spacing", type=float, help="target slice spacing in mm")
    run.add_argument("--method", default=DEFAULT_METHOD, choices=list(METHODS),
                     help=f"the cross-view network or a classical interpolator (default {DEFAULT_METHOD})")
    run.add_argument("--adapt", action="store_true", help="fine-tune the network on this volume first (self-supervised)")
    run.add_argument("--adapt-minutes", type=positive_float, default=DEFAULT_ADAPT_MINUTES,
                     help=f"time budget of --adapt (default {DEFAULT_ADAPT_MINUTES:g})")
    run.add_argument("--disagreement", "--uncertainty", dest="disagreement",
                     help="also write the views' disagreement (their standard deviation, HU) to this file (crossview)")
    run.add_argument("--model", help=f"shipped model name or model folder (default {DEFAULT_MODEL})")
    run.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    run.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed of --adapt (default {DEFAULT_SEED})")
    add_inference_options(run, "images per network pass (crossview)", cpu_batch=CPU_BATCH_SIZE, compile_options=False)
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    add_worker_option(run)

    train = commands.add_parser("train", help="train the cross-view networks self-supervised on CT volumes")
    train.set_defaults(handler=command_train)
    train.add_argument("--data", nargs="+", required=True, help="CT volume files and/or folders of them")
    train.add_argument("--out", required=True, help="run folder (checkpoint.pt, log.csv, model/)")
    defaults = TrainConfig()
    train.add_argument("--steps", type=positive_int, default=defaults.steps,
                       help=f"optimisation steps (default {defaults.steps})")
    train.add_argument("--max-minutes", type=positive_float, help="stop after this many minutes (resume later)")
    train.add_argument("--lr", type=positive_float, default=defaults.learning_rate,
                       help=f"learning rate (default {defaults.learning_rate:g})")
    train.add_argument("--block-slices", type=positive_int, default=defaults.block_slices,
                       help=f"observed slices per block (default {defaults.block_slices})")
    train.add_argument("--block-size", type=positive_int, default=defaults.block_size,
                       help=f"in-plane block size (default {defaults.block_size})")
    train.add_argument("--restoration-weight", type=float, default=defaults.restoration_weight,
                       help=f"weight of restoring dropped slices (default {defaults.restoration_weight:g}; 0 with "
                            "--distill-weight 0 trains the coronal/sagittal network in-plane only)")
    train.add_argument("--distill-weight", type=float, default=defaults.distill_weight,
                       help=f"weight of mutual distillation (default {defaults.distill_weight:g})")
    train.add_argument("--distill-keep", type=positive_float, default=defaults.distill_keep,
                       help=f"fraction of most consistent voxels kept as distillation targets (default {defaults.distill_keep:g})")
    train.add_argument("--distill-levels", type=int, default=defaults.distill_levels, choices=[0, 1, 2, 3],
                       help="finer levels distilled above the given slices: 0 = none, 1 = x2, 2 = x2 and x4 "
                            f"(default {defaults.distill_levels})")
    train.add_argument("--inplane-weight", type=float, default=defaults.inplane_weight,
                       help="weight of in-plane restoration: axial slices degraded into thick rows train the "
                            f"coronal/sagittal network at the native fine scale (default {defaults.inplane_weight:g}: off)")
    train.add_argument("--inplane-scale", default=defaults.inplane_scale, choices=list(INPLANE_SCALES),
                       help="row thickness of the in-plane loss: the volume's own slice spacing, or random 2-8 "
                            f"pixels (default {defaults.inplane_scale})")
    train.add_argument("--inplane-profile", default=defaults.inplane_profile, choices=list(INPLANE_PROFILES),
                       help="slice profile of the in-plane rows: a box as thick as the spacing, or a random width "
                            f"from one pixel (thin slices) to the spacing (default {defaults.inplane_profile})")
    train.add_argument("--augment-contrast", type=non_negative_float, default=defaults.augment_contrast,
                       help="scale each training block's HU about water by a random factor within 1 +- this, as "
                            f"scanners' calibrations differ (below 1; default {defaults.augment_contrast:g}: off)")
    train.add_argument("--augment-noise", type=non_negative_float, default=defaults.augment_noise_hu,
                       help="add Gaussian noise of a random standard deviation up to this many HU to each training "
                            f"block, as doses and kernels differ (default {defaults.augment_noise_hu:g}: off)")
    train.add_argument("--channels", type=positive_int, nargs="+",
                       help="channels per level of both view networks, from scratch (default "
                            f"{' '.join(map(str, CrossViewConfig().channels))}); a model given by --init or a "
                            "checkpoint keeps its own")
    train.add_argument("--planar-context", type=non_negative_int,
                       help="parallel planes on each side seen by the coronal/sagittal network (2.5D; default: the "
                            "start model's, 0 from scratch); with --init, a larger value widens that model's "
                            "network, which starts as it")
    train.add_argument("--view-weights", type=float, nargs=3, metavar=("AXIAL", "CORONAL", "SAGITTAL"),
                       help="weights of the views in the new slices of the trained model (default: the start model's; "
                            "equal from scratch); a view of weight 0 is not run at inference")
    train.add_argument("--init", help="start from this model's weights (shipped name or model folder) instead of "
                                      "random ones; recorded in the new model's card")
    train.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    train.add_argument("--seed", type=int, default=DEFAULT_SEED)
    train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    evaluate = commands.add_parser("evaluate", help="drop slices of a thin CT, reconstruct, score the removed slices")
    evaluate.set_defaults(handler=command_evaluate)
    evaluate.add_argument("input", help="thin-slice CT (the reference)")
    evaluate.add_argument("--factor", type=int, required=True, help="keep every FACTOR-th slice (2-8)")
    evaluate.add_argument("--output", required=True, help="folder for metrics.csv, metrics.md and figures")
    evaluate.add_argument("--methods", nargs="+", default=None,
                          help="linear cubic sinc crossview crossview-adapt (default: all)")
    evaluate.add_argument("--adapt-minutes", type=positive_float, default=DEFAULT_ADAPT_MINUTES,
                          help="budget of crossview-adapt")
    evaluate.add_argument("--model", help="shipped model name or model folder")
    evaluate.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    evaluate.add_argument("--seed", type=int, default=DEFAULT_SEED)
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.add_argument("--record", action="store_true",
                          help="store the table in the model's metadata.json and model card")
    return parser


def command_upsample(args) -> int:
    from CTSynthesisCore.batch import batch_cases, run_batch_command

    from .jobs import closing_summary, read_ct, upsample_file
    from .settings import UpsampleSettings

    if args.disagreement and args.method != "crossview":
        raise UserInputError("--disagreement needs --method crossview (classical methods have no disagreement)")
    settings = UpsampleSettings(method=args.method, model=args.model, device=args.device, seed=args.seed,
                                adapt_minutes=args.adapt_minutes if args.adapt else None, batch_size=args.batch_size,
                                precision=args.precision).validated()
    cases = batch_cases(args.input)
    if cases is not None:
        def upsample_case(case, output, disagreement, progress, device) -> str:
            image, spacing = read_ct(case.path, args.factor, args.spacing)
            result = upsample_file(image, spacing, output, disagreement, replace(settings, device=device), progress)
            return closing_summary(image, result)

        return run_batch_command(args, cases, f"upsampling ({args.method})", upsample_case, second="disagreement")
    check_output_files(args, second="disagreement")
    image, spacing = read_ct(args.input, args.factor, args.spacing)
    bar = command_progress(args, f"upsampling ({args.method})")
    try:
        result = upsample_file(image, spacing, Path(args.output), args.disagreement, settings, bar)
    finally:
        bar.close()
    print(f"done: {closing_summary(image, result)}; wrote {args.output}")
    return 0


def network_config_for(channels: Sequence[int] | None, planar_context: int | None, init: str | None,
                       resume: bool) -> CrossViewConfig | None:
    """The levels of a run from scratch with ``--channels`` (a x2 stride between levels; ``--planar-context`` is
    applied by the training); refused with ``--resume``, whose checkpoint fixes the architecture, and ``--channels``
    with ``--init`` (whose model does; ``--planar-context`` widens it)."""
    if resume and (channels or planar_context is not None):
        raise UserInputError("--channels and --planar-context set the architecture of a new network; --resume keeps "
                             "the checkpoint's")
    if init and channels:
        raise UserInputError("--channels sets the architecture of a new network; --init keeps the model's")
    if not channels:
        return None
    if len(channels) < 2:
        raise UserInputError(f"--channels needs at least two levels, got {len(channels)}")
    return CrossViewConfig().with_channels(channels)


def command_train(args) -> int:
    from CTSynthesisCore.device import choose_device
    from CTSynthesisCore.progress import TqdmProgress

    from .research.training import train

    if min(args.restoration_weight, args.distill_weight, args.inplane_weight) < 0 or not (
            args.restoration_weight or args.distill_weight or args.inplane_weight):
        raise UserInputError("loss weights must be at least 0, and at least one above 0")
    if args.augment_contrast >= 1:
        raise UserInputError(f"--augment-contrast must be below 1, got {args.augment_contrast:g}")
    if not 0 < args.distill_keep <= 1:
        raise UserInputError(f"--distill-keep must be in (0, 1], got {args.distill_keep:g}")
    config = TrainConfig(steps=args.steps, max_minutes=args.max_minutes, learning_rate=args.lr,
                         block_slices=args.block_slices, block_size=args.block_size,
                         restoration_weight=args.restoration_weight, distill_weight=args.distill_weight,
                         distill_keep=args.distill_keep,
                         distill_levels=args.distill_levels, inplane_weight=args.inplane_weight,
                         inplane_scale=args.inplane_scale, inplane_profile=args.inplane_profile,
                         augment_contrast=args.augment_contrast, augment_noise_hu=args.augment_noise, seed=args.seed)
    network_config = network_config_for(args.channels, args.planar_context, args.init, args.resume)
    if args.view_weights is not None:
        try:
            check_view_weights(args.view_weights)
        except ValueError as error:
            raise UserInputError(f"--view-weights: {error}") from None
    device = choose_device(args.device)
    bar = TqdmProgress("training crossview", disable=args.quiet)
    try:
        summary = train(args.data, args.out, config, network_config, resume=args.resume, progress=bar,
                        device=device.device, init=args.init, view_weights=args.view_weights,
                        planar_context=args.planar_context)
    finally:
        bar.close()
    scores = "; ".join(f"{name} {s['crossview_db']} dB (linear {s['linear_db']})" for name, s in summary["scores"].items())
    print(f"done: {summary['steps']} steps in {summary['seconds']:.0f} s on {device.device}; restoring every other "
          f"slice: {scores}; model folder {summary['folder']}")
    return 0


def command_evaluate(args) -> int:
    from CTSynthesisCore.device import choose_device
    from CTSynthesisCore.progress import TqdmProgress
    from CTSynthesisCore.volume_io import read_volume

    from .classical import check_factor
    from .research.evaluation import METHODS as EVALUATION_METHODS
    from .research.evaluation import EvaluationPlan, evaluate

    plan = EvaluationPlan(factor=check_factor(args.factor), methods=tuple(args.methods or EVALUATION_METHODS), model=args.model,
                          adapt_minutes=args.adapt_minutes, device=choose_device(args.device).device, seed=args.seed)
    thin = read_volume(args.input)
    bar = TqdmProgress("evaluating", disable=args.quiet)
    try:
        rows = evaluate(thin, args.output, plan, progress=bar, name=Path(args.input).name)
    finally:
        bar.close()
    print((Path(args.output) / "metrics.md").read_text(encoding="utf-8"))
    if args.record:
        from CTSynthesisCore.model_cards import record_evaluation
        from CTSynthesisCore.weights import resolve_model_folder

        from .research.evaluation import evaluation_record
        from .research.model_card import model_card

        folder = resolve_model_folder(args.model or DEFAULT_MODEL)
        record = evaluation_record(rows, Path(args.input).name, plan.factor, folder, "sliceinterp " + " ".join(sys.argv[1:]))
        record_evaluation(folder, f"thin_ct_{Path(args.input).name.split('.')[0]}_x{plan.factor}", record, model_card)
    return 0


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

"""``mritoct``: synthesize CT from MRI on the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from CTSynthesisCore.cli import (ArgumentParser, add_inference_options, add_worker_option, check_output_files,
                                 command_progress, positive_int, run_cli)
from CTSynthesisCore.device import DEFAULT_DEVICE, DEVICE_CHOICES
from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.volume_io import read_volume, write_volume

from .catalog import DEFAULT_MC_SAMPLES, DEFAULT_MODEL, DEFAULT_SAMPLER, DEFAULT_SEED, SAMPLERS, all_sampler_options
from .model import load_model
from .intensity import MEDIAN_INTENSITY, MRI_SCALES
from .model_types import MODEL_TYPES, model_type
from .research.training import TrainConfig
from .settings import SLICE_NOISE, SynthesisSettings

DEVICE_HELP = f"{', '.join(DEVICE_CHOICES)} (default {DEFAULT_DEVICE})"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="mritoct", description="Synthetic CT (HU) and uncertainty from a T2-weighted MRI "
                            "with a conditional diffusion model. Research use only.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    run = commands.add_parser("synthesize", help="synthesize CT + uncertainty from one MRI volume")
    run.set_defaults(handler=command_synthesize)
    run.add_argument("input", help="MRI volume file (NIfTI, NRRD, MHA, ...) or DICOM series folder; or a folder or "
                     ".txt list of them (batch: one case each, split over processes under torchrun)")
    run.add_argument("--output", required=True,
                     help="synthetic CT file (.nii.gz, .nrrd, .mha); a folder (no extension) gets a DICOM CT series; "
                          "in batch mode a folder that gets <case>.nii.gz and summary.csv")
    run.add_argument("--uncertainty", help="write the Monte-Carlo standard deviation (HU) here (batch: a folder)")
    run.add_argument("--samples-dir", help="write every Monte-Carlo sample into this folder")
    add_synthesis_options(run)
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    add_worker_option(run)

    commands.add_parser("samplers", help="list the samplers, their default steps and options").set_defaults(
        handler=command_samplers)

    data = commands.add_parser("make-data", help="write paired MRI/CT cases (pelvis phantoms, CT-derived pairs)")
    data.set_defaults(handler=command_make_data)
    data.add_argument("--out", required=True, help="output folder (SynthRAD layout: <case>/mr.nii.gz, ct.nii.gz)")
    data.add_argument("--cases", type=int, default=20, help="number of phantom cases (default 20)")
    data.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    data.add_argument("--from-ct", nargs="*", default=[], metavar="CT",
                      help="real CT volumes to turn into CT-derived pairs (domain-randomised T2 rendering)")
    data.add_argument("--per-ct", type=positive_int, default=1,
                      help="randomised cases per CT (each a new spatial augmentation and tissue contrast; default 1)")
    data.add_argument("--allow-contrast", action="store_true",
                      help="accept CTs that look contrast-enhanced (refused by default: MRI cannot see iodine)")
    data.add_argument("--workers", type=positive_int, default=1,
                      help="processes making cases at once (default 1; the cases do not depend on it)")
    data.add_argument("--quiet", action="store_true", help="no progress bar")

    fit = commands.add_parser("train", help="train the diffusion model or a baseline on paired data")
    fit.set_defaults(handler=command_train)
    fit.add_argument("--data", required=True, nargs="+",
                     help="paired data folder(s) (SynthRAD layout; several are joined); split by case")
    fit.add_argument("--model", required=True, choices=list(MODEL_TYPES), help="what to train")
    fit.add_argument("--out", required=True, help="checkpoint folder (best/, last/, checkpoint.pt, train_log.csv)")
    defaults = TrainConfig()
    fit.add_argument("--epochs", type=positive_int, default=defaults.epochs, help=f"(default {defaults.epochs})")
    fit.add_argument("--steps-per-epoch", type=positive_int, default=defaults.steps_per_epoch,
                     help=f"(default {defaults.steps_per_epoch})")
    fit.add_argument("--batch-size", type=positive_int, default=defaults.batch_size,
                     help=f"(default {defaults.batch_size})")
    fit.add_argument("--lr", type=float, default=defaults.learning_rate,
                     help=f"learning rate (default {defaults.learning_rate:g})")
    fit.add_argument("--crop", type=positive_int, default=defaults.crop,
                     help=f"training crop size in pixels (default {defaults.crop})")
    fit.add_argument("--spacing", type=float, nargs=2, default=list(defaults.spacing_mm), metavar=("X", "Y"),
                     help="model in-plane spacing in mm (default {:g} {:g})".format(*defaults.spacing_mm))
    fit.add_argument("--context-slices", type=int, default=defaults.context_slices,
                     help=f"neighbouring MRI slices each side (default {defaults.context_slices})")
    fit.add_argument("--channels", type=positive_int, nargs="+", help="network channels per level")
    fit.add_argument("--max-minutes", type=float, help="stop after this much training time")
    fit.add_argument("--mri-scale", choices=list(MRI_SCALES),
                     help="MRI standardisation: the bright signal's median -> 0 (default for a new run; robust to a full "
                          "bladder) or its 99.5th percentile -> +1 (the shipped models'); --resume and --init keep the "
                          "scale of the run or model they continue")
    fit.add_argument("--mri-gamma", type=float, default=defaults.mri_gamma,
                     help=f"contrast augmentation: MRI gamma drawn in [e^-g, e^g] per crop (default {defaults.mri_gamma:g}; "
                          "0 = off)")
    fit.add_argument("--bone-weight", type=float, default=defaults.bone_weight,
                     help="--model cnn/gan: L1 weight of voxels whose true CT is bone, so the network does not settle on "
                          f"soft tissue where the MRI leaves bone likely (default {defaults.bone_weight:g}: plain L1)")
    fit.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    fit.add_argument("--seed", type=int, default=defaults.seed)
    fit.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    fit.add_argument("--init", metavar="MODEL", help="start from these weights (a shipped name such as mritoct-ddpm, or "
                     "a model folder) instead of random ones: fine-tuning on your own data; --model gan "
                     "also starts from a CNN's weights (its generator is the CNN's network)")
    fit.add_argument("--mean-model", metavar="MODEL", help="--model residual: the trained CNN (model folder or "
                     "shipped name) whose prediction is the mean; the diffusion model learns the residual")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")

    check = commands.add_parser("evaluate", help="SynthRAD metrics of models and samplers on held-out cases")
    check.set_defaults(handler=command_evaluate)
    check.add_argument("--data", required=True, help="paired data folder (SynthRAD layout)")
    check.add_argument("--output", required=True, help="folder for metrics.csv, metrics.md and figures")
    check.add_argument("--models", nargs="+", default=["mritoct-residual", "mritoct-ddpm", "mritoct-cnn", "mritoct-gan"])
    check.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS))
    check.add_argument("--steps", nargs="+", default=[], metavar="SAMPLER=N", help="steps per sampler, e.g. ddpm=250")
    check.add_argument("--ode-tolerance", type=float, default=1e-5, help="rk45 tolerance for the ode sampler")
    check.add_argument("--mc", type=positive_int, default=10, help="Monte-Carlo samples (default 10, as paper 1)")
    check.add_argument("--max-cases", type=positive_int, help="evaluate at most this many cases")
    check.add_argument("--max-slices", type=positive_int, help="central slices per case (default all)")
    check.add_argument("--split", default="test", choices=["train", "validation", "test", "all"])
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    check.add_argument("--batch-size", type=positive_int, default=16)
    check.add_argument("--quiet", action="store_true", help="no progress bar")

    demo = commands.add_parser("demo", help="synthesize CT + uncertainty from the bundled real T2 sample")
    demo.set_defaults(handler=command_demo)
    demo.add_argument("--output", default="out/demo", help="output folder (default out/demo)")
    add_synthesis_options(demo)
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def add_test_time_options(parser: ArgumentParser) -> None:
    """``--no-test-time-flips`` and ``--no-test-time-shifts``, read by :func:`test_time_settings` (the CLI and the
    benchmarks share them)."""
    parser.add_argument("--no-test-time-flips", dest="test_time_flips", action="store_false",
                        help="draw every Monte-Carlo sample on the MRI as is; by default they are drawn in turn on the "
                             "MRI as is, mirrored left-right and mirrored anterior-posterior, each mirrored back "
                             "(lower error, an uncertainty that tracks the error better)")
    parser.add_argument("--no-test-time-shifts", dest="test_time_shifts", action="store_false",
                        help="draw every Monte-Carlo sample at one position on the network's grid; by default they "
                             "are drawn in turn shifted by 0, 1/2, 1/4 and 3/4 of the network's size multiple, each "
                             "shifted back (a mean that depends less on where the image lies on that grid, lower "
                             "error)")


def test_time_settings(args) -> dict[str, bool]:
    """The test-time augmentation keywords of :class:`SynthesisSettings` from :func:`add_test_time_options` flags."""
    return {"test_time_flips": args.test_time_flips, "test_time_shifts": args.test_time_shifts}


def add_synthesis_options(parser: ArgumentParser) -> None:
    """The flags of :class:`SynthesisSettings` (model and device too); each sampler option's flag comes from the
    sampler registry."""
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"shipped model name or model folder (default {DEFAULT_MODEL})")
    parser.add_argument("--sampler", default=DEFAULT_SAMPLER, choices=list(SAMPLERS),
                        help=f"sampling method (default {DEFAULT_SAMPLER}; see 'mritoct samplers')")
    parser.add_argument("--steps", type=positive_int, help="time steps (default: per sampler, see 'mritoct samplers')")
    parser.add_argument("--mc", type=positive_int, default=DEFAULT_MC_SAMPLES,
                        help=f"Monte-Carlo samples (default {DEFAULT_MC_SAMPLES})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    parser.add_argument("--slice-noise", choices=SLICE_NOISE, default=SLICE_NOISE[0],
                        help="shared (default): a Monte-Carlo sample's slices share their noise, so the volume has no "
                             "stripes between slices; independent: every slice draws its own")
    add_test_time_options(parser)
    add_inference_options(parser)
    for option in all_sampler_options().values():
        users = [info.name for info in SAMPLERS.values() if option in info.options]
        default = f"{option.default:g}" if isinstance(option.default, float) else option.default
        parser.add_argument(option.flag, dest=option.name, type=option.type, choices=option.choices or None,
                            help=f"{option.help} (sampler {', '.join(users)}; default {default})")


def settings_from_arguments(args, keep_samples: bool = False) -> SynthesisSettings:
    """The :class:`SynthesisSettings` the flags ask for, checked (a sampler option of another sampler is an error)."""
    options = {name: getattr(args, name) for name in all_sampler_options() if getattr(args, name) is not None}
    return SynthesisSettings(sampler=args.sampler, steps=args.steps, mc=args.mc, seed=args.seed,
                             batch_size=args.batch_size, keep_samples=keep_samples, sampler_options=options,
                             precision=args.precision, channels_last=args.channels_last,
                             compile=args.compile, slice_noise=args.slice_noise,
                             **test_time_settings(args)).validated()


def command_synthesize(args) -> int:
    from CTSynthesisCore.batch import batch_cases

    from .jobs import closing_summary, result_facts, synthesize_file

    settings = settings_from_arguments(args, keep_samples=bool(args.samples_dir))
    cases = batch_cases(args.input)
    if cases is not None:
        return synthesize_batch(args, cases, settings)
    check_output_files(args)
    mri = read_volume(args.input)
    model = load_model(args.model)
    bar = command_progress(args, "synthesizing")
    try:
        result = synthesize_file(mri, Path(args.output), args.uncertainty, args.samples_dir, model, settings,
                                 args.device, bar)
    finally:
        bar.close()
    print(f"done: {closing_summary(result, settings)}; wrote {args.output}")
    for label, value in result_facts(result, settings, model).items():
        print(f"  {label}: {value}")
    return 0


def synthesize_batch(args, cases, settings) -> int:
    """Every case of a folder or list file into ``--output DIR/<case>.nii.gz`` (uncertainty and samples alike)."""
    from CTSynthesisCore.batch import run_batch_command

    from .jobs import synthesize_file

    model = load_model(args.model)

    def synthesize_case(case, output, uncertainty, progress, device) -> str:
        samples = Path(args.samples_dir) / case.name if args.samples_dir else None
        return synthesize_file(read_volume(case.path), output, uncertainty, samples, model, settings, device, progress).summary()

    return run_batch_command(args, cases, "synthesizing", synthesize_case)


def command_samplers(args) -> int:
    print(f"{'name':<7} {'default steps':>13}  description")
    for info in SAMPLERS.values():
        options = "; options " + ", ".join(f"{o.flag} (default {o.default})" for o in info.options) if info.options else ""
        print(f"{info.name:<7} {info.default_steps:>13}  {info.title}: {info.description}{options}")
    return 0


def command_make_data(args) -> int:
    from CTSynthesisCore.progress import TqdmProgress

    from .research.data_generation import make_dataset

    bar = TqdmProgress("making cases", disable=args.quiet)
    try:
        record = make_dataset(args.out, args.cases, args.seed, args.from_ct, progress=bar, per_ct=args.per_ct,
                              allow_contrast=args.allow_contrast, workers=args.workers)
    finally:
        bar.close()
    splits = {s: sum(c["split"] == s for c in record["cases"]) for s in ("train", "validation", "test")}
    print(f"done: {len(record['cases'])} cases in {args.out} (split by case: {splits})")
    return 0


def training_intensity(args):
    """The MRI scale of a training run: as asked, else that of the run resumed or the model fine-tuned, else the
    median scale."""
    from .research.training import checkpoint_intensity

    if args.mri_scale:
        return MRI_SCALES[args.mri_scale]
    if args.resume:
        return checkpoint_intensity(Path(args.out) / "checkpoint.pt") or MEDIAN_INTENSITY
    if args.init:
        return load_model(args.init).intensity
    return MEDIAN_INTENSITY


def check_bone_weight(weight: float, model: str) -> None:
    """--bone-weight is an L1 weight of the regression models, from 1 (plain L1) to 100."""
    if not 1 <= weight <= 100:
        raise UserInputError(f"--bone-weight must be between 1 and 100, got {weight:g}")
    if weight != 1 and model_type(model).kind != "regression":
        raise UserInputError(f"--bone-weight applies to --model cnn or gan, not {model}")


def command_train(args) -> int:
    from CTSynthesisCore.progress import TqdmProgress

    from .research.training import train

    if args.context_slices < 0:
        raise UserInputError("--context-slices must be 0 or more")
    if not 0 <= args.mri_gamma <= 2:
        raise UserInputError(f"--mri-gamma must be between 0 and 2, got {args.mri_gamma:g}")
    check_bone_weight(args.bone_weight, args.model)
    config = TrainConfig(model=args.model, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                         batch_size=args.batch_size, learning_rate=args.lr, crop=args.crop, seed=args.seed,
                         spacing_mm=tuple(args.spacing), context_slices=args.context_slices,
                         channels=tuple(args.channels) if args.channels else None, max_minutes=args.max_minutes,
                         init_from=args.init, mean_model=args.mean_model, mri_gamma=args.mri_gamma,
                         bone_weight=args.bone_weight, intensity=training_intensity(args))
    bar = TqdmProgress(f"training {args.model}", disable=args.quiet)
    try:
        summary = train(args.data, args.out, config, device=args.device, resume=args.resume, progress=bar,
                        log=bar.write)
    finally:
        bar.close()
    if summary:
        print(f"done: {summary['steps']} steps in {summary['seconds']:.0f} s; best validation MAE "
              f"{summary['best_validation_mae_hu']:.1f} HU; model folders {args.out}/best and {args.out}/last")
    return 0


def parse_steps(items: list[str]) -> dict[str, int]:
    """``ddpm=250 em=250`` -> {"ddpm": 250, "em": 250}."""
    steps = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in SAMPLERS or not value.isdigit() or int(value) < 1:
            raise UserInputError(f"--steps takes SAMPLER=N with N >= 1 (samplers: {', '.join(SAMPLERS)}), got '{item}'")
        steps[name] = int(value)
    return steps


def command_evaluate(args) -> int:
    from CTSynthesisCore.progress import TqdmProgress

    from .research.evaluation import EvaluationPlan, evaluate

    plan = EvaluationPlan(models=args.models, samplers=args.samplers, steps=parse_steps(args.steps),
                          sampler_options={"ode": {"method": "rk45", "tolerance": args.ode_tolerance}},
                          mc=args.mc, max_cases=args.max_cases, max_slices=args.max_slices, split=args.split,
                          seed=args.seed, device=args.device, batch_size=args.batch_size)
    bar = TqdmProgress("evaluating", disable=args.quiet)
    try:
        evaluate(args.data, args.output, plan, progress=bar)
    finally:
        bar.close()
    print((Path(args.output) / "metrics.md").read_text(encoding="utf-8"))
    return 0


def command_demo(args) -> int:
    from CTSynthesisCore.progress import TqdmProgress
    from CTSynthesisCore.sample_data import sample_path

    from .research.figures import montage
    from .pipeline import synthesize

    folder = Path(args.output)
    settings = settings_from_arguments(args)
    folder.mkdir(parents=True, exist_ok=True)
    mri = read_volume(sample_path("t2_pelvis"))
    model = load_model(args.model)
    bar = TqdmProgress("demo: synthesizing", disable=args.quiet)
    try:
        result = synthesize(mri, model, settings, device=args.device, progress=bar)
    finally:
        bar.close()
    write_volume(mri, folder / "t2_mri.nii.gz")
    write_volume(result.ct, folder / "synthetic_ct.nii.gz")
    write_volume(result.uncertainty, folder / "uncertainty_std.nii.gz")
    title = f"ProstateX-0000 T2 -> synthetic CT ({model.metadata['name']}, {args.sampler}, MC {args.mc})"
    montage(mri, result.ct, result.uncertainty, folder / "montage.png", title)
    print(f"done: {result.summary()} ({result.device_reason}); wrote {folder}/synthetic_ct.nii.gz, "
          f"uncertainty_std.nii.gz and montage.png")
    return 0


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

"""``mritoct``: synthesize CT from MRI on the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from CTSynthesisCore.cli import (ArgumentParser, add_inference_options, add_worker_option, check_output_files,
                                 command_progress, positive_int, run_cli)
from CTSynthesisCore.device import DEVICE_CHOICES
from CTSynthesisCore.errors import UserInputError
from CTSynthesisCore.volume_io import read_volume, write_volume

from .model import DEFAULT_MODEL, load_model
from .samplers import DEFAULT_SAMPLER, SAMPLER_INFO


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="mritoct", description="Synthetic CT (HU) and uncertainty from a T2-weighted MRI "
                            "with a conditional diffusion model. Research use only.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    run = commands.add_parser("synthesize", help="synthesize CT + uncertainty from one MRI volume")
    run.add_argument("input", help="MRI volume file (NIfTI, NRRD, MHA, ...) or DICOM series folder; or a folder or "
                     ".txt list of them (batch: one case each, split over processes under torchrun)")
    run.add_argument("--output", required=True,
                     help="synthetic CT file (.nii.gz, .nrrd, .mha); a folder (no extension) gets a DICOM CT series; "
                          "in batch mode a folder that gets <case>.nii.gz and summary.csv")
    run.add_argument("--uncertainty", help="write the Monte-Carlo standard deviation (HU) here (batch: a folder)")
    run.add_argument("--samples-dir", help="write every Monte-Carlo sample into this folder")
    run.add_argument("--model", default=None, help="shipped model name or model folder (default: mritoct-ddpm)")
    run.add_argument("--sampler", default=DEFAULT_SAMPLER, choices=list(SAMPLER_INFO),
                     help=f"sampling method (default {DEFAULT_SAMPLER})")
    run.add_argument("--steps", type=positive_int, help="time steps (default: per sampler, see 'mritoct samplers')")
    run.add_argument("--mc", type=positive_int, default=4, help="Monte-Carlo samples (default 4)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--device", default="auto", help=f"{', '.join(DEVICE_CHOICES)} (default auto)")
    add_inference_options(run)
    run.add_argument("--eta", type=float, help="DDIM noise level (0 = deterministic)")
    run.add_argument("--corrector-steps", type=int, help="Langevin corrector steps per time for pc (default 1)")
    run.add_argument("--snr", type=float, help="Langevin signal-to-noise ratio for pc (default 0.16)")
    run.add_argument("--ode-method", choices=["rk45", "heun", "rk4"], help="ODE solver (default rk45)")
    run.add_argument("--tolerance", type=float, help="rk45 relative and absolute tolerance (default 1e-5)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    add_worker_option(run)

    commands.add_parser("samplers", help="list the samplers and their defaults")

    data = commands.add_parser("make-data", help="write paired MRI/CT cases (pelvis phantoms, CT-derived pairs)")
    data.add_argument("--out", required=True, help="output folder (SynthRAD layout: <case>/mr.nii.gz, ct.nii.gz)")
    data.add_argument("--cases", type=int, default=20, help="number of phantom cases (default 20)")
    data.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    data.add_argument("--from-ct", nargs="*", default=[], metavar="CT",
                      help="real CT volumes to turn into CT-derived pairs (one case each)")
    data.add_argument("--quiet", action="store_true", help="no progress bar")

    fit = commands.add_parser("train", help="train the diffusion model or a baseline on paired data")
    fit.add_argument("--data", required=True, help="paired data folder (SynthRAD layout); split by case")
    fit.add_argument("--model", required=True, choices=["ddpm", "score", "cnn", "gan"], help="what to train")
    fit.add_argument("--out", required=True, help="checkpoint folder (best/, last/, checkpoint.pt, train_log.csv)")
    fit.add_argument("--epochs", type=positive_int, default=10)
    fit.add_argument("--steps-per-epoch", type=positive_int, default=100)
    fit.add_argument("--batch-size", type=positive_int, default=8)
    fit.add_argument("--lr", type=float, default=2e-4, help="learning rate (default 2e-4)")
    fit.add_argument("--crop", type=positive_int, default=96, help="training crop size in pixels (default 96)")
    fit.add_argument("--spacing", type=float, nargs=2, default=[2.0, 2.0], metavar=("X", "Y"),
                     help="model in-plane spacing in mm (default 2 2)")
    fit.add_argument("--context-slices", type=int, default=1, help="neighbouring MRI slices each side (default 1)")
    fit.add_argument("--channels", type=positive_int, nargs="+", help="network channels per level")
    fit.add_argument("--max-minutes", type=float, help="stop after this much training time")
    fit.add_argument("--mri-gamma", type=float, default=0.3,
                     help="contrast augmentation: MRI gamma drawn in [e^-g, e^g] per crop (default 0.3; 0 = off)")
    fit.add_argument("--device", default="auto", help=f"{', '.join(DEVICE_CHOICES)} (default auto)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    fit.add_argument("--init", metavar="MODEL", help="start from these weights (a shipped name such as mritoct-ddpm, or "
                     "a model folder) instead of random ones: fine-tuning on your own data")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")

    check = commands.add_parser("evaluate", help="SynthRAD metrics of models and samplers on held-out cases")
    check.add_argument("--data", required=True, help="paired data folder (SynthRAD layout)")
    check.add_argument("--output", required=True, help="folder for metrics.csv, metrics.md and figures")
    check.add_argument("--models", nargs="+", default=["mritoct-ddpm", "mritoct-cnn", "mritoct-gan"])
    check.add_argument("--samplers", nargs="+", default=list(SAMPLER_INFO), choices=list(SAMPLER_INFO))
    check.add_argument("--steps", nargs="+", default=[], metavar="SAMPLER=N", help="steps per sampler, e.g. ddpm=250")
    check.add_argument("--ode-tolerance", type=float, default=1e-5, help="rk45 tolerance for the ode sampler")
    check.add_argument("--mc", type=positive_int, default=10, help="Monte-Carlo samples (default 10, as paper 1)")
    check.add_argument("--max-cases", type=positive_int, help="evaluate at most this many cases")
    check.add_argument("--max-slices", type=positive_int, help="central slices per case (default all)")
    check.add_argument("--split", default="test", choices=["train", "validation", "test", "all"])
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--device", default="auto", help=f"{', '.join(DEVICE_CHOICES)} (default auto)")
    check.add_argument("--batch-size", type=positive_int, default=16)
    check.add_argument("--quiet", action="store_true", help="no progress bar")

    demo = commands.add_parser("demo", help="synthesize CT + uncertainty from the bundled real T2 sample")
    demo.add_argument("--output", default="out/demo", help="output folder (default out/demo)")
    demo.add_argument("--model", default=None, help="model name or folder (default: mritoct-ddpm)")
    demo.add_argument("--sampler", default=DEFAULT_SAMPLER, choices=list(SAMPLER_INFO))
    demo.add_argument("--steps", type=positive_int, default=None, help="default: the sampler's default")
    demo.add_argument("--mc", type=positive_int, default=4)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default="auto")
    add_inference_options(demo)
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
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
    from CTSynthesisCore.batch import batch_cases

    from .pipeline import SynthesisSettings

    settings = SynthesisSettings(sampler=args.sampler, steps=args.steps, mc=args.mc, seed=args.seed,
                                 batch_size=args.batch_size, keep_samples=bool(args.samples_dir),
                                 sampler_options=sampler_options(args), precision=args.precision,
                                 channels_last=args.channels_last, compile=args.compile).validated()
    cases = batch_cases(args.input)
    if cases is not None:
        return synthesize_batch(args, cases, settings)
    check_output_files(args)
    mri = read_volume(args.input)
    model = load_model(args.model or DEFAULT_MODEL)
    bar = command_progress(args, "synthesizing")
    try:
        result = synthesize_file(mri, Path(args.output), args.uncertainty, args.samples_dir, model, settings,
                                 args.device, bar)
    finally:
        bar.close()
    print(f"done: {result.summary()} ({result.device_reason}); MC samples {settings.mc}; wrote {args.output}")
    return 0


def synthesize_file(mri, output: Path, uncertainty, samples_dir, model, settings, device: str, progress):
    """Synthesize from one MRI, print warnings and write the CT (file or DICOM series), uncertainty and samples."""
    from .dicom_series import write_ct_series
    from .pipeline import synthesize

    result = synthesize(mri, model, settings, device=device, progress=progress)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if output.suffix == "" or output.is_dir():
        write_ct_series(result.ct, output, source=mri)
    else:
        write_volume(result.ct, output)
    if uncertainty:
        write_volume(result.uncertainty, uncertainty)
    if samples_dir:
        folder = Path(samples_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for index, sample in enumerate(result.samples):
            write_volume(sample, folder / f"sample_{index:03d}.nii.gz")
    return result


def synthesize_batch(args, cases, settings) -> int:
    """Every case of a folder or list file into ``--output DIR/<case>.nii.gz`` (uncertainty and samples alike)."""
    from CTSynthesisCore.batch import run_batch_command

    model = load_model(args.model or DEFAULT_MODEL)

    def synthesize_case(case, output, uncertainty, progress, device) -> str:
        samples = Path(args.samples_dir) / case.name if args.samples_dir else None
        return synthesize_file(read_volume(case.path), output, uncertainty, samples, model, settings, device, progress).summary()

    return run_batch_command(args, cases, "synthesizing", synthesize_case)


def command_samplers(args) -> int:
    print(f"{'name':<7} {'default steps':>13}  description")
    for info in SAMPLER_INFO.values():
        print(f"{info.name:<7} {info.default_steps:>13}  {info.title}: {info.description}")
    return 0


def command_make_data(args) -> int:
    from CTSynthesisCore.progress import TqdmProgress

    from .research.data_generation import make_dataset

    bar = TqdmProgress("making cases", disable=args.quiet)
    try:
        record = make_dataset(args.out, args.cases, args.seed, args.from_ct, progress=bar)
    finally:
        bar.close()
    splits = {s: sum(c["split"] == s for c in record["cases"]) for s in ("train", "validation", "test")}
    print(f"done: {len(record['cases'])} cases in {args.out} (split by case: {splits})")
    return 0


def command_train(args) -> int:
    from CTSynthesisCore.progress import TqdmProgress

    from .research.training import TrainConfig, train

    if args.context_slices < 0:
        raise UserInputError("--context-slices must be 0 or more")
    if not 0 <= args.mri_gamma <= 2:
        raise UserInputError(f"--mri-gamma must be between 0 and 2, got {args.mri_gamma:g}")
    config = TrainConfig(model=args.model, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                         batch_size=args.batch_size, learning_rate=args.lr, crop=args.crop, seed=args.seed,
                         spacing_mm=tuple(args.spacing), context_slices=args.context_slices,
                         channels=tuple(args.channels) if args.channels else None, max_minutes=args.max_minutes,
                         init_from=args.init, mri_gamma=args.mri_gamma)
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
        if name not in SAMPLER_INFO or not value.isdigit() or int(value) < 1:
            raise UserInputError(f"--steps takes SAMPLER=N with N >= 1 (samplers: {', '.join(SAMPLER_INFO)}), got '{item}'")
        steps[name] = int(value)
    return steps


def command_evaluate(args) -> int:
    from CTSynthesisCore.progress import TqdmProgress

    from .research.evaluation import EvaluationPlan, evaluate

    plan = EvaluationPlan(models=args.models, samplers=args.samplers, steps=parse_steps(args.steps),
                          sampler_options={"ode": {"method": "rk45", "rtol": args.ode_tolerance, "atol": args.ode_tolerance}},
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
    from .pipeline import SynthesisSettings, synthesize

    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)
    mri = read_volume(sample_path("t2_pelvis"))
    model = load_model(args.model or DEFAULT_MODEL)
    settings = SynthesisSettings(sampler=args.sampler, steps=args.steps, mc=args.mc, seed=args.seed,
                                 batch_size=args.batch_size, precision=args.precision,
                                 channels_last=args.channels_last, compile=args.compile)
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


COMMANDS = {"evaluate": command_evaluate, "demo": command_demo, "train": command_train, "synthesize": command_synthesize, "samplers": command_samplers, "make-data": command_make_data}


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

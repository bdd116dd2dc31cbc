"""Command-line plumbing shared by ``mritoct`` and ``sliceinterp``: one-line errors, exit codes."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Callable, NoReturn, Sequence

from .errors import Cancelled, UserInputError

EXIT_USER_ERROR = 2
EXIT_CANCELLED = 130


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are a single ``error:`` line with exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_USER_ERROR)


def _integer_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _integer_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _integer_at_least(text, 0)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0."""
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
    return value


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a CLI entry point, turning user errors and cancellation into one line and an exit code."""
    try:
        return main(argv)
    except SystemExit as exit_request:  # argparse: --help (0) or a usage error (2)
        return exit_request.code if isinstance(exit_request.code, int) else EXIT_USER_ERROR
    except UserInputError as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_USER_ERROR
    except (Cancelled, KeyboardInterrupt) as error:
        sys.stderr.write(f"error: {str(error) or 'cancelled; no output was written'}\n")
        return EXIT_CANCELLED
    except MemoryError:
        sys.stderr.write("error: out of memory; try a smaller --batch-size or the CPU device\n")
        return EXIT_USER_ERROR


def check_output_files(args: argparse.Namespace, second: str = "uncertainty") -> None:
    """``--output`` and the second output ``--SECOND`` (when given) of a single input: writable, not the input,
    not one file."""
    from .volume_io import check_output_path

    outputs = [Path(p) for p in (args.output, getattr(args, second)) if p]
    for output in outputs:
        check_output_path(output, inputs=(args.input,))
    if len({p.resolve() for p in outputs}) < len(outputs):
        raise UserInputError(f"--output and --{second} must be different files")


def add_worker_option(parser: argparse.ArgumentParser) -> None:
    """``--worker``: how the Slicer modules run a command in a background process."""
    parser.add_argument("--worker", action="store_true",
                        help="report progress as '@progress' lines on stdout and stop when stdin closes "
                             "(used by the Slicer modules' background runs)")


def add_inference_options(parser: argparse.ArgumentParser, batch_help: str = "network inputs per forward pass",
                          cpu_batch: int | None = None, compile_options: bool = True) -> None:
    """``--batch-size`` and ``--precision`` (and with ``compile_options`` ``--compile`` and ``--no-channels-last``):
    the inference fast paths."""
    from .acceleration import COMPILE_MODES, CPU_BATCH_SIZE, PRECISIONS

    parser.add_argument("--batch-size", type=positive_int,
                        help=f"{batch_help} (default: from free GPU memory, {cpu_batch or CPU_BATCH_SIZE} on CPU)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="network arithmetic (default auto: bf16 autocast on a GPU, fp32 on CPU)")
    if not compile_options:
        return
    parser.add_argument("--compile", default="off", choices=COMPILE_MODES,
                        help="torch.compile the network; reduce-overhead adds CUDA graphs (default off; falls back "
                             "to plain execution with a warning if compilation fails)")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                        help="keep the default NCHW memory layout instead of channels_last")


def command_progress(args: argparse.Namespace, description: str):
    """The progress callback of a command: a tqdm bar, or progress lines under ``--worker``."""
    if getattr(args, "worker", False):
        from .background import LineProgress, watch_parent

        watch_parent()
        return LineProgress()
    from .progress import TqdmProgress

    return TqdmProgress(description, disable=args.quiet)

"""Many cases in one command: a folder or a list file of inputs, split over processes under ``torchrun``.

A batch input is a list file (``.txt``: one volume file or DICOM folder per line, ``#``
comments, paths relative to the list file) or a folder holding volume files and/or case
subfolders (a subfolder with one volume file is that file, e.g. SynthRAD's ``mr.nii.gz``;
otherwise it is read as a DICOM series). A folder holding DICOM files itself is one input,
not a batch. Under ``torchrun --nproc_per_node N`` process ``r`` takes cases r, r + N, ...
on GPU ``LOCAL_RANK``; the summary rows are gathered to process 0, which prints the table.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import Cancelled, UserInputError
from .tables import write_csv
from .volume_io import VOLUME_SUFFIXES, check_output_path

LIST_SUFFIXES = (".txt", ".list")
SUMMARY_COLUMNS = ["case", "status", "seconds", "detail"]


@dataclass(frozen=True)
class Case:
    """One input of a batch and the name its outputs get."""

    name: str
    path: Path


def is_volume_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and any(name.endswith(suffix) for suffix in VOLUME_SUFFIXES if suffix != ".dcm")


def case_name(path: Path) -> str:
    """``ct_001.nii.gz`` -> ``ct_001``; a folder keeps its name."""
    name = path.name
    for suffix in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _case_of_folder(folder: Path) -> Case:
    volumes = [p for p in sorted(folder.iterdir()) if is_volume_file(p)]
    return Case(folder.name, volumes[0] if len(volumes) == 1 else folder)


def _unique(cases: list[Case]) -> list[Case]:
    """Cases with distinct names (a repeated name gets ``_2``, ``_3``, ...)."""
    seen: dict[str, int] = {}
    unique = []
    for case in cases:
        seen[case.name] = seen.get(case.name, 0) + 1
        unique.append(case if seen[case.name] == 1 else Case(f"{case.name}_{seen[case.name]}", case.path))
    return unique


def batch_cases(path: str | os.PathLike) -> list[Case] | None:
    """The cases of a batch input, or None when ``path`` is a single input (a volume file or a DICOM folder)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        entries = [Path(line) if Path(line).is_absolute() else path.parent / line
                   for line in lines if line and not line.startswith("#")]
        missing = [str(p) for p in entries if not p.exists()]
        if missing:
            raise UserInputError(f"list file {path.name}: {len(missing)} input(s) not found, first {missing[0]}")
        cases = [_case_of_folder(p) if p.is_dir() else Case(case_name(p), p) for p in entries]
    elif path.is_dir():
        entries = [p for p in sorted(path.iterdir()) if not p.name.startswith(".")]
        if any(p.is_file() and not is_volume_file(p) for p in entries) and not any(is_volume_file(p) for p in entries):
            return None  # the folder of one DICOM series
        cases = [Case(case_name(p), p) for p in entries if is_volume_file(p)]
        cases += [_case_of_folder(p) for p in entries if p.is_dir()]
    else:
        return None
    if not cases:
        raise UserInputError(f"no input volumes in {path}")
    return _unique(cases)


@dataclass(frozen=True)
class ProcessShare:
    """This process's place under torchrun (rank 0 of 1 without it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> "ProcessShare":
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    def cases(self, cases: list[Case]) -> list[Case]:
        return cases[self.rank:: self.world_size]

    def device(self, requested: str) -> str:
        """``auto``/``cuda`` become this process's GPU when several processes share a machine."""
        if self.world_size == 1 or requested not in ("auto", "cuda"):
            return requested
        from .device import cuda_status

        return f"cuda:{self.local_rank}" if cuda_status()[0] else ("cpu" if requested == "auto" else requested)


class CaseProgress:
    """A progress callback that prefixes each message with the current case (``start_case`` is ``on_case``)."""

    def __init__(self, progress: Callable[..., None]) -> None:
        self.progress, self.label = progress, ""

    def start_case(self, index: int, total: int, case: Case) -> None:
        self.label = f"case {index + 1}/{total} {case.name}"
        self.progress(0, 1, self.label)

    def __call__(self, done: int, total: int, message: str = "") -> None:
        self.progress(done, total, f"{self.label}: {message}" if message else self.label)


def run_cases(cases: list[Case], process: Callable[[Case], str],
              on_case: Callable[[int, int, Case], None] = lambda index, total, case: None) -> list[dict[str, Any]]:
    """``process(case)`` for each case (its return value is the row's detail); a user error fails that case
    only, cancelling stops the batch."""
    rows = []
    for index, case in enumerate(cases):
        on_case(index, len(cases), case)
        started = time.monotonic()
        try:
            detail, status = process(case), "ok"
        except (Cancelled, KeyboardInterrupt):
            raise Cancelled(f"cancelled during case {case.name}; {len(rows)} case(s) before it were written") from None
        except UserInputError as error:
            detail, status = str(error), "failed"
        rows.append({"case": case.name, "status": status, "seconds": round(time.monotonic() - started, 1),
                     "detail": detail})
    return rows


def gather_rows(rows: list[dict[str, Any]], share: ProcessShare) -> list[dict[str, Any]] | None:
    """All processes' rows on process 0 (None on the others); a no-op without torchrun."""
    if share.world_size == 1:
        return rows
    import torch.distributed as distributed

    if not distributed.is_initialized():
        distributed.init_process_group(backend="gloo")  # CPU collectives: only the summary rows travel
    gathered: list[Any] = [None] * share.world_size
    distributed.all_gather_object(gathered, rows)
    distributed.destroy_process_group()
    return [row for part in gathered for row in part] if share.rank == 0 else None


def summary_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of the batch, with a closing count line."""
    lines = ["| case | status | seconds | detail |", "|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['status']} | {r['seconds']:.1f} | {r['detail']} |" for r in rows]
    failed = sum(r["status"] != "ok" for r in rows)
    lines.append(f"\n{len(rows) - failed} of {len(rows)} cases done" + (f", {failed} failed" if failed else ""))
    return "\n".join(lines)


def write_summary(rows: list[dict[str, Any]], folder: Path) -> Path:
    return write_csv(folder / "summary.csv", rows, SUMMARY_COLUMNS)


def run_batch(cases: list[Case], output_folder: Path, process: Callable[[Case], str],
              on_case: Callable[[int, int, Case], None] = lambda index, total, case: None) -> int:
    """Run this process's share of ``cases``, then (process 0) print the summary table and write summary.csv.
    Returns the exit code: 0 when every case succeeded, 2 otherwise."""
    share = ProcessShare.from_environment()
    output_folder.mkdir(parents=True, exist_ok=True)
    rows = gather_rows(run_cases(share.cases(cases), process, on_case), share)
    if rows is None:
        return 0
    order = {case.name: index for index, case in enumerate(cases)}
    rows.sort(key=lambda row: order[row["case"]])
    print(summary_table(rows))
    print(f"summary: {write_summary(rows, output_folder)}")
    return 0 if all(row["status"] == "ok" for row in rows) else 2


CaseCommand = Callable[..., str]  # (case, output file, second output file or None, progress, device) -> summary


def make_output_folder(folder: Path) -> Path:
    """Create an output folder of a batch (a one-line error when that is impossible)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserInputError(f"cannot create output folder {folder}: {error.strerror}") from None
    return check_output_path(folder)


def run_batch_command(args: Any, cases: list[Case], description: str, process: CaseCommand,
                      second: str = "uncertainty") -> int:
    """A CLI's batch mode: ``--output`` (and the second output ``--SECOND``) are folders that get ``<case>.nii.gz``;
    ``process(case, output_file, second_file, progress, device)`` handles one case and returns its summary."""
    from .cli import command_progress

    folders = [Path(p) for p in (args.output, getattr(args, second)) if p]
    if any(folder.suffix for folder in folders):
        raise UserInputError(f"with a folder or list of inputs, --output and --{second} are folders (no extension)")
    if len({folder.resolve() for folder in folders}) < len(folders):
        raise UserInputError(f"--output and --{second} must be different folders")
    output = make_output_folder(folders[0])
    uncertainty = make_output_folder(folders[1]) if len(folders) == 2 else None
    share = ProcessShare.from_environment()
    args.quiet = args.quiet or share.rank > 0  # one progress bar under torchrun
    bar = command_progress(args, description)
    progress = CaseProgress(bar)

    def process_case(case: Case) -> str:
        output_file = check_output_path(output / f"{case.name}.nii.gz", inputs=(case.path,))
        uncertainty_file = uncertainty / f"{case.name}.nii.gz" if uncertainty else None
        if uncertainty_file:
            check_output_path(uncertainty_file, inputs=(case.path,))
        return process(case, output_file, uncertainty_file, progress, share.device(args.device))

    try:
        return run_batch(cases, output, process_case, progress.start_case)
    finally:
        bar.close()

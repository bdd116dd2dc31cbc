"""The contract between a Slicer panel and its background worker: a job folder.

Going in: ``input.mha`` and ``job.json``, the request dataclass of the module (its settings and
whatever else the run needs), serialised field by field. Coming out: the output volumes and
``result.json``, a :class:`JobResult` (output files by role, summary, warnings, seconds, device).
While it runs the worker prints ``@progress`` lines (:mod:`CTSynthesisCore.background`); a failure
is its one ``error:`` line and a non-zero exit code. Nothing is parsed out of printed text.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from .errors import UserInputError, read_json
from .progress import ProgressCallback

INPUT_FILE = "input.mha"
JOB_FILE = "job.json"
RESULT_FILE = "result.json"
JOB_FORMAT = 1  # the version of job.json and result.json; a worker refuses any other

Request = TypeVar("Request")


@dataclass
class JobResult:
    """What a worker hands back: output files by role (relative to the job folder) and its account of the run."""

    outputs: dict[str, list[str]]
    summary: str
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    device: str = ""
    facts: dict[str, str] = field(default_factory=dict)  # label -> value, for the panel's results box


def to_record(value: Any) -> Any:
    """A dataclass (nested ones too) as JSON-ready dicts and lists."""
    if dataclasses.is_dataclass(value):
        return {f.name: to_record(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_record(item) for item in value]
    if isinstance(value, dict):
        return {key: to_record(item) for key, item in value.items()}
    return value


def _typed(hint: Any, value: Any, where: str) -> Any:
    """``value`` read back as ``hint``: nested dataclasses and tuples rebuilt, scalar types checked."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(option for option in options if option is not type(None))
        origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_record(hint, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise UserInputError(f"{where} must be a list, got {value!r}")
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and type(value) is not hint:
        raise UserInputError(f"{where} must be a {hint.__name__}, got {value!r}")
    return value


def from_record(cls: type[Request], record: dict[str, Any], where: str = "job") -> Request:
    """The dataclass ``cls`` rebuilt from :func:`to_record`'s output; an unknown or mistyped field is an error."""
    if not isinstance(record, dict):
        raise UserInputError(f"{where} must be a JSON object")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(record) - names)
    if unknown:
        raise UserInputError(f"{where} has unknown field(s) {', '.join(unknown)}")
    return cls(**{name: _typed(hints[name], value, f"{where}.{name}") for name, value in record.items()})


def _write_json(path: Path, record: dict[str, Any]) -> Path:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def _read_json(path: Path, kind: str) -> dict[str, Any]:
    record = read_json(path, f"{path} is missing")
    if not isinstance(record, dict) or record.get("format") != JOB_FORMAT or record.get("kind") != kind:
        found = (record.get("kind"), record.get("format")) if isinstance(record, dict) else (None, None)
        raise UserInputError(f"{path} is not a {kind} record of format {JOB_FORMAT} (found {found[0]!r}, "
                             f"format {found[1]!r})")
    return record


def write_request(folder: Path, kind: str, request: Any) -> Path:
    """``job.json``: the request dataclass of a ``kind`` of job."""
    return _write_json(Path(folder) / JOB_FILE, {"format": JOB_FORMAT, "kind": kind, "request": to_record(request)})


def read_request(folder: Path, kind: str, cls: type[Request]) -> Request:
    """The request a worker was given."""
    return from_record(cls, _read_json(Path(folder) / JOB_FILE, kind)["request"], "request")


def write_result(folder: Path, kind: str, result: JobResult) -> Path:
    return _write_json(Path(folder) / RESULT_FILE, {"format": JOB_FORMAT, "kind": kind, "result": to_record(result)})


def read_result(folder: Path, kind: str) -> JobResult:
    """The record a worker left after succeeding."""
    return from_record(JobResult, _read_json(Path(folder) / RESULT_FILE, kind)["result"], "result")


def run_worker(argv: Sequence[str] | None, kind: str, request_class: type[Request],
               run: Callable[[Request, Path, ProgressCallback], JobResult]) -> int:
    """A worker's entry point: ``FOLDER --worker``; reads the request, runs it with ``@progress`` lines,
    writes ``result.json``. Errors become one ``error:`` line and an exit code, as on the command line."""
    from .cli import ArgumentParser, add_worker_option, command_progress, run_cli

    def main(arguments: Sequence[str] | None) -> int:
        parser = ArgumentParser(prog=kind, description=f"run the {kind} job of a job folder")
        parser.add_argument("folder", type=Path)
        add_worker_option(parser)
        args = parser.parse_args(arguments)
        args.quiet = True
        request = read_request(args.folder, kind, request_class)
        progress = command_progress(args, kind)
        write_result(args.folder, kind, run(request, args.folder, progress))
        return 0

    return run_cli(main, sys.argv[1:] if argv is None else argv)

"""Engine runs in a child process: progress lines, one-line errors, cancel that ends the process tree.

The Slicer modules run long work this way (as SlicerMONAIAuto3DSeg does) so the GUI stays
responsive: the child is the module's worker on a job folder (:mod:`CTSynthesisCore.jobs`), started with
``--worker``, which prints ``@progress DONE TOTAL MESSAGE`` lines on stdout, its ``error:`` line on stderr, and
exits by itself when its parent goes away (its stdin closes). Nothing here imports Qt or
Slicer; the GUI polls :meth:`BackgroundProcess.poll` from a timer.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import Cancelled, UserInputError
from .progress import CancelToken, ProgressCallback, no_progress

PROGRESS_PREFIX = "@progress "


@dataclass(frozen=True)
class ProgressUpdate:
    done: int
    total: int
    message: str


def format_progress_line(done: int, total: int, message: str = "") -> str:
    """The line a worker prints for one progress report."""
    return f"{PROGRESS_PREFIX}{int(done)} {int(total)} {' '.join(message.split())}"


def parse_progress_line(line: str) -> ProgressUpdate | None:
    """The progress report in a worker's stdout line, or None for any other line."""
    if not line.startswith(PROGRESS_PREFIX):
        return None
    parts = line[len(PROGRESS_PREFIX):].rstrip("\n").split(" ", 2)
    try:
        return ProgressUpdate(int(parts[0]), int(parts[1]), parts[2] if len(parts) > 2 else "")
    except (ValueError, IndexError):
        return None


def python_executable() -> str:
    """The interpreter for the child: Slicer's ``PythonSlicer`` inside Slicer, otherwise this one."""
    slicer = sys.modules.get("slicer")
    if slicer is not None and getattr(slicer, "app", None) is not None:
        found = shutil.which("PythonSlicer")
        if found:
            return found
    return sys.executable


def import_root(package: str) -> Path:
    """The folder that must be on ``sys.path`` for ``import package`` to work."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise UserInputError(f"cannot find the Python package '{package}'")
    return Path(spec.origin).resolve().parent.parent


# Puts the packages' folders first on sys.path and runs the module as __main__. Passing the folders as an
# argument (not PYTHONPATH) keeps this independent of the environment Slicer's PythonSlicer launcher sets.
BOOTSTRAP = ("import os, runpy, sys; roots, module = sys.argv[1], sys.argv[2]; "
             "sys.path[:0] = roots.split(os.pathsep); sys.argv = [module] + sys.argv[3:]; "
             "runpy.run_module(module, run_name='__main__', alter_sys=True)")


def worker_command(module: str, arguments: list[str], packages: tuple[str, ...]) -> list[str]:
    """The child's command line: this interpreter (PythonSlicer in Slicer) running ``module`` with ``arguments``."""
    roots = os.pathsep.join(dict.fromkeys(str(import_root(name)) for name in packages))
    return [python_executable(), "-c", BOOTSTRAP, roots, module, *arguments, "--worker"]


class BackgroundProcess:
    """``MODULE ARGUMENTS --worker`` run as a script in a child process of its own process group."""

    def __init__(self, module: str, arguments: list[str], packages: tuple[str, ...]) -> None:
        self.command = worker_command(module, arguments, packages)
        self.messages: list[str] = []  # stdout lines that are not progress reports
        self.errors: list[str] = []  # stderr lines
        self.started_at: float | None = None
        self._process: subprocess.Popen | None = None
        self._updates: queue.Queue[ProgressUpdate] = queue.Queue()
        self._readers: list[threading.Thread] = []
        self._cancelled = False

    def start(self) -> None:
        """Start the child; it inherits nothing but the environment and a stdin pipe it watches."""
        options: dict = {}
        if os.name == "nt":
            options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
        else:
            options["start_new_session"] = True  # its own process group: cancel ends all of it
        self._process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"}, **options)
        self.started_at = time.monotonic()
        self._readers = [threading.Thread(target=self._read, args=(self._process.stdout, True), daemon=True),
                         threading.Thread(target=self._read, args=(self._process.stderr, False), daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, is_stdout: bool) -> None:
        for line in stream:
            update = parse_progress_line(line) if is_stdout else None
            if update is not None:
                self._updates.put(update)
            elif line.strip():
                (self.messages if is_stdout else self.errors).append(line.rstrip("\n"))

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_at if self.started_at else 0.0

    def poll(self) -> ProgressUpdate | None:
        """The newest progress report since the last call (None if there was none)."""
        latest = None
        while True:
            try:
                latest = self._updates.get_nowait()
            except queue.Empty:
                return latest

    def wait_for_progress(self, timeout_s: float = 120.0, interval_s: float = 0.1) -> ProgressUpdate:
        """Block until the first progress report (the work has really started); raise RuntimeError if the
        worker ends or stays silent for ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            update = self.poll()
            if update is not None:
                return update
            if not self.running:
                raise RuntimeError(f"the worker ended before reporting progress: {self.errors[-3:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no progress report from the worker within {timeout_s:g} s")
            time.sleep(interval_s)

    def cancel(self, grace_s: float = 3.0) -> None:
        """End the child and everything it started: terminate, then kill after ``grace_s``."""
        self._cancelled = True
        if self._process is None or self._process.poll() is not None:
            return
        if os.name == "nt":
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(self._process.pid)], capture_output=True, check=False)
        else:
            _signal_group(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(self._process.pid, signal.SIGKILL)
        self._process.wait()
        self._finish_reading()

    def _finish_reading(self) -> None:
        for reader in self._readers:
            reader.join(timeout=5)
        if self._process and self._process.stdin:
            self._process.stdin.close()

    def error_message(self) -> str:
        """The child's one-line cause of failure (its last ``error:`` line, else its last line)."""
        lines = [line for line in self.errors if line.startswith("error:")] or self.errors[-1:]
        if not lines:
            return f"the worker process stopped with exit code {self._process.returncode if self._process else '?'}"
        return lines[-1].removeprefix("error:").strip()

    def raise_for_outcome(self) -> None:
        """After the child ended: return on success, raise Cancelled or a UserInputError with its cause."""
        if self.running:
            raise RuntimeError("the worker is still running")
        self._finish_reading()
        if self._cancelled:
            raise Cancelled("cancelled by the user")
        if self._process.returncode != 0:
            raise UserInputError(self.error_message())

    def wait(self, progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
             interval_s: float = 0.1) -> None:
        """Block until the child ends, forwarding progress and honouring ``cancel``; then as raise_for_outcome."""
        try:
            while self.running:
                if cancel is not None and cancel.cancelled:
                    self.cancel()
                    break
                update = self.poll()
                if update is not None:
                    progress(update.done, update.total, update.message)
                time.sleep(interval_s)
        except BaseException:  # Ctrl-C in the console: leave no worker behind
            self.cancel()
            raise
        update = self.poll()
        if update is not None:
            progress(update.done, update.total, update.message)
        self.raise_for_outcome()


def process_group_alive(pid: int) -> bool:
    """Whether any process of the group led by ``pid`` still exists (POSIX; False elsewhere)."""
    if os.name == "nt":
        return False
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pid: int, signal_number: int) -> None:
    try:
        os.killpg(pid, signal_number)
    except (ProcessLookupError, PermissionError):
        pass


def watch_parent() -> None:
    """In a worker: exit at once when the parent closes our stdin (it was cancelled or it died)."""

    def wait_for_end_of_input() -> None:
        try:
            while sys.stdin.readline():
                pass
        except (OSError, ValueError):
            pass
        os._exit(130)

    threading.Thread(target=wait_for_end_of_input, daemon=True).start()


class LineProgress:
    """Progress callback of a worker: ``@progress`` lines on stdout, at most one per ``interval_s``."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s, self._last = interval_s, 0.0

    def __call__(self, done: int, total: int, message: str = "") -> None:
        now = time.monotonic()
        if now - self._last >= self.interval_s or done >= total:
            self._last = now
            print(format_progress_line(done, total, message), flush=True)

    def write(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None:
        pass

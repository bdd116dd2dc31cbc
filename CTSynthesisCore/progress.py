"""Progress reporting and cooperative cancellation shared by both engines.

Engines call ``progress(done, total, message)`` between units of work and
``cancel.raise_if_set()`` at the same places. The GUI, the CLI (tqdm) and
tests plug in their own callbacks.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class ProgressCallback(Protocol):
    """Receives ``done`` of ``total`` units and a short human-readable message."""

    def __call__(self, done: int, total: int, message: str = "") -> None: ...


def no_progress(done: int, total: int, message: str = "") -> None:
    """A progress callback that ignores everything."""


class CancelToken:
    """A thread-safe flag that long-running work checks between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the work to stop at its next check."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_set(self) -> None:
        """Raise :class:`~CTSynthesisCore.errors.Cancelled` if cancellation was requested."""
        from .errors import Cancelled

        if self._event.is_set():
            raise Cancelled("cancelled by the user")


class StageProgress:
    """Maps the progress of one stage onto a sub-range of an overall progress bar."""

    def __init__(self, callback: ProgressCallback, start: float, stop: float, total: int = 1000) -> None:
        self.callback, self.start, self.stop, self.total = callback, start, stop, total

    def __call__(self, done: int, total: int, message: str = "") -> None:
        fraction = self.start + (self.stop - self.start) * (done / max(total, 1))
        self.callback(int(round(fraction * self.total)), self.total, message)


class TqdmProgress:
    """Progress callback that drives a tqdm bar (used by the command-line tools)."""

    def __init__(self, description: str, disable: bool = False) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=1, desc=description, disable=disable, dynamic_ncols=True)
        self._started = time.monotonic()

    def __call__(self, done: int, total: int, message: str = "") -> None:
        if self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        if message:
            self._bar.set_postfix_str(message, refresh=False)
        self._bar.refresh()

    def write(self, text: str) -> None:
        """Print a line without breaking the bar."""
        self._bar.write(text)

    def close(self) -> None:
        self._bar.close()


def progress_status(done: int, total: int, message: str, elapsed_s: float) -> str:
    """A status line with elapsed time and, once some work is done, an estimate of the time left."""
    def clock(seconds: float) -> str:
        seconds = int(round(seconds))
        return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"

    text = f"{message} — {clock(elapsed_s)} elapsed" if message else f"{clock(elapsed_s)} elapsed"
    if 0 < done < total:
        text += f", about {clock(elapsed_s * (total - done) / done)} left"
    return text

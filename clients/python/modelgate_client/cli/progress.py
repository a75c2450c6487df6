"""Progress on stderr for hashing, upload and download.

On a terminal: a click progress bar. Without one (a CI log): one line every few seconds
(``MODELGATE_PROGRESS_INTERVAL``, default 5) with bytes done, the rate and the time left,
and a last line when the transfer ends, so a long upload never looks hung.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from modelgate_client.artifacts import Progress

DEFAULT_INTERVAL = 5.0


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _duration(exact: float) -> str:
    seconds = round(exact)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def progress_line(label: str, done: int, total: int, elapsed: float) -> str:
    """``uploading model.tar: 12.0 MiB of 48.0 MiB (25%), 3.1 MiB/s, 12s left``."""
    rate = done / elapsed if elapsed > 0 else 0.0
    share = f" ({100 * done // total}%)" if total else ""
    line = f"{label}: {human_size(done)} of {human_size(total)}{share}, {human_size(rate)}/s"
    if rate > 0 and total >= done:
        line += f", {_duration((total - done) / rate)} left"
    return line


class LogProgress:
    """A progress callback that writes a line at most every ``interval`` seconds."""

    def __init__(
        self,
        label: str,
        *,
        interval: float,
        write: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.interval = interval
        self._write = write
        self._clock = clock
        self._start = clock()
        self._last = self._start
        self._done = 0
        self._total = 0

    def __call__(self, done: int, total: int) -> None:
        if done < self._done:  # a retry streams again from 0
            self._start = self._last = self._clock()
        self._done, self._total = done, total
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            self._write(progress_line(self.label, done, total, now - self._start))

    def finish(self) -> None:
        elapsed = self._clock() - self._start
        if elapsed >= self.interval:  # short transfers stay quiet
            self._write(progress_line(self.label, self._done, self._total, elapsed))


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("MODELGATE_PROGRESS_INTERVAL", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


@contextmanager
def progress(label: str) -> Iterator[Progress]:
    """A progress callback for one transfer: a bar on a terminal, log lines otherwise."""
    if not sys.stderr.isatty():
        log = LogProgress(
            label,
            interval=_interval(),
            write=lambda line: click.echo(f"modelgate: {line}", err=True),
        )
        yield log
        log.finish()
        return
    bars: list[Any] = []

    def update(done: int, total: int) -> None:
        if not bars:
            bar = click.progressbar(length=max(total, 1), label=label, file=sys.stderr)
            bar.__enter__()
            bars.append(bar)
        # A retry streams again from 0: the step is then negative and the bar goes back.
        bars[0].update(done - bars[0].pos)

    try:
        yield update
    finally:
        if bars:
            bars[0].__exit__(None, None, None)

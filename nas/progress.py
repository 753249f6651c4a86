"""A counter for long loops that reads well both on a terminal and in a captured log.

On a terminal the counter rewrites one line in place (``\\r``), a few times a second. Anywhere
else (a pipe, a log file) rewriting does not work, so it prints a full line at most every few
seconds and once at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

TERMINAL_INTERVAL_S = 0.1
LOG_INTERVAL_S = 5.0


class Progress:
    """``Progress(label, total)``; call ``step()`` per item done and ``close()`` at the end.

    Also a context manager that closes on exit, errors included, so that on a terminal the
    next message starts on a fresh line. ``clock`` returns seconds (``time.monotonic``).
    """

    def __init__(self, label: str, total: int, stream: TextIO | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # sys.stderr as it is now (not when this module was imported: it may have been replaced)
        self.stream = sys.stderr if stream is None else stream
        self.label, self.total, self.clock = label, total, clock
        self.terminal = self.stream.isatty()
        self.interval = TERMINAL_INTERVAL_S if self.terminal else LOG_INTERVAL_S
        self.done = 0
        self.start = clock()
        self.shown_at = self.start  # no line before the first interval has passed
        self.shown_done = 0  # the count the last line showed
        self.width = 0  # length of the line on the terminal, to blank out a longer old one
        self.closed = False
        self.note = ""  # shown after the count, e.g. the best result so far

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def step(self, n: int = 1) -> None:
        """Count ``n`` more items done; shows a line when the interval has passed."""
        self.done += n
        now = self.clock()
        if now - self.shown_at >= self.interval:
            self._show(now)

    def close(self) -> None:
        """Show the final count (unless the last line showed it) and end the line; idempotent."""
        if self.closed:
            return
        self.closed = True
        if self.done != self.shown_done:
            self._show(self.clock())
        if self.terminal and self.width:
            self.stream.write("\n")
            self.stream.flush()

    def _line(self, now: float) -> str:
        """The text shown at time ``now``: count, elapsed time and, while running, time left."""
        elapsed = now - self.start
        text = f"{self.label}: {self.done}/{self.total}, {elapsed:.0f}s"
        if 0 < self.done < self.total:
            text += f", ~{elapsed / self.done * (self.total - self.done):.0f}s left"
        return f"{text}; {self.note}" if self.note else text

    def _show(self, now: float) -> None:
        text = self._line(now)
        if self.terminal:
            self.stream.write("\r" + text.ljust(self.width))
            self.width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.shown_at, self.shown_done = now, self.done

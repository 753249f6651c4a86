"""Holding Ctrl-C and SIGTERM back while results are written, so a stop never cuts one in half."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOPS = (signal.SIGINT, signal.SIGTERM)


def hold_stops() -> Callable[[], None]:
    """Hold SIGINT and SIGTERM from now until the returned ``release`` is called; the first stop
    that came is acted on then, by the handler back in place.

    Outside the main thread, where Python cannot set handlers, nothing is held.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in STOPS}

    def release() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if caught:
            signal.raise_signal(caught[0])

    return release


@contextmanager
def deferred_stops() -> Iterator[None]:
    """Run the block with SIGINT and SIGTERM held; the first that came is acted on after it.

    A Ctrl-C that lands in the middle of a report once interrupted plotly's first, lazy import
    of its figure modules; the report written while unwinding then failed on the half-imported
    module (exit 1 instead of 130).
    """
    release = hold_stops()
    try:
        yield
    finally:
        release()

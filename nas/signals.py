"""Holding Ctrl-C and SIGTERM back while results are written, so a stop never cuts one in half."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOPS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def deferred_stops() -> Iterator[None]:
    """Run the block with SIGINT and SIGTERM held; the first that came is acted on after it.

    A Ctrl-C that lands in the middle of a report once interrupted plotly's first, lazy import
    of its figure modules; the report written while unwinding then failed on the half-imported
    module (exit 1 instead of 130). Outside the main thread, where Python cannot set handlers,
    the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in STOPS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if caught:
            signal.raise_signal(caught[0])  # the handler now in place acts on it

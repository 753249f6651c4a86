"""Stops held back while results are written: acted on after the block, not inside it."""

import signal

import pytest

from nas.cli import Terminated, _terminate
from nas.signals import deferred_stops


@pytest.fixture(autouse=True)
def _python_ctrl_c_handler():
    """Python's own SIGINT handler, even where the tests were started ignoring SIGINT (a shell
    starting them in the background)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_inside_the_block_is_raised_after_it():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_stops():
            signal.raise_signal(signal.SIGINT)
            done.append("the rest of the block ran")
    assert done == ["the rest of the block ran"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_sigterm_reaches_the_handler_in_place_after_the_block():
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with pytest.raises(Terminated):
            with deferred_stops():
                signal.raise_signal(signal.SIGTERM)
                signal.raise_signal(signal.SIGINT)  # only the first stop is acted on
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_block_without_stops_runs_as_usual():
    with deferred_stops():
        value = 1
    assert value == 1 and signal.getsignal(signal.SIGINT) is signal.default_int_handler

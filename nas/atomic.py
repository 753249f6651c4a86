"""Durable atomic file writes: a kill or a power cut at any moment leaves either the old file or
the new one, whole; and lock files that processes sharing a run folder take turns with."""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` when the body ends.

    The temporary file is created with ``open()`` by the writer, so it gets the user's usual
    permissions (files here are meant to be copied and shared); the pid keeps two processes
    apart. Its content reaches the disk before the rename, and the rename before this returns
    (``fsync`` of the file, then of the folder): without the first, a power cut can leave the
    new name on an empty file. If the body raises, the temporary file is removed and ``path`` is
    untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
        _fsync(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextmanager
def locked(path: Path, waiting: str = "", *, shared: bool = False) -> Iterator[None]:
    """Hold a lock on ``path`` (created if missing) for the body: exclusive, or ``shared`` with
    other shared holders; a process asking for a lock another holds waits (``waiting``, if
    given, is printed to stderr while it does). An advisory ``flock``: the kernel drops it when
    the holder dies, even by SIGKILL."""
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, file=sys.stderr)
            fcntl.flock(handle, mode)
        yield  # closing the file releases the lock


@contextmanager
def claimed(path: Path) -> Iterator[bool]:
    """Try once to take an exclusive lock on ``path`` and hold it for the body; yields whether
    this process got it (another holds it: False, at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True

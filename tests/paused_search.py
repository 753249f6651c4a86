"""Test helper: ``run_search.py`` that stops at a chosen moment, so a test can SIGKILL it there.

    python tests/paused_search.py MOMENT COUNT MARKER run_search.py-flags...

At the COUNT-th (from 1) occurrence of MOMENT it writes MARKER and sleeps until it is killed:

- ``train``: a candidate's training has begun (its trial is RUNNING);
- ``report``: ``summary.md``, the report's last file, is written to its temporary file and not
  yet renamed;
- ``weights``: ``best/weights.pt`` is written to its temporary file and not yet renamed;
- ``arch``: ``best/weights.pt`` is replaced and ``best/arch.json`` not yet written.

The package is untouched: the helper wraps two functions before the modules that use them load.
"""

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nas.atomic

MOMENT, COUNT, MARKER = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
_seen = 0


def _pause(moment: str) -> None:
    global _seen
    if moment != MOMENT:
        return
    _seen += 1
    if _seen == COUNT:
        MARKER.write_text(moment)
        while True:
            time.sleep(60)


_atomic_path = nas.atomic.atomic_path


@contextmanager
def _paused_atomic_path(path: Path) -> Iterator[Path]:
    if path.name == "arch.json" and path.parent.name == "best":
        _pause("arch")
    with _atomic_path(path) as tmp:
        yield tmp
        _pause({"summary.md": "report", "weights.pt": "weights"}.get(path.name, ""))


nas.atomic.atomic_path = _paused_atomic_path  # before nas.run and nas.report import it

import nas.evaluator  # noqa: E402  (after the patch above)

_train = nas.evaluator.train_and_validate


def _paused_train(*args, **kwargs):
    _pause("train")
    return _train(*args, **kwargs)


nas.evaluator.train_and_validate = _paused_train

from nas.cli import search_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(search_main(sys.argv[4:]))

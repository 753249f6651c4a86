"""Where a study lives: the one place a storage URL is opened, and how dead workers are found.

`open_storage` turns a URL (``sqlite:///FILE``, ``postgresql://USER@HOST/DB``, any SQLAlchemy
URL Optuna's `RDBStorage` takes) into a storage, or a one-line `StorageError`: an unknown scheme,
a missing database driver, a server that cannot be reached.

Several processes (workers) may run trials of one study at once. Each trial a worker runs is
tagged with the worker (machine boot, PID namespace, PID and start time) and kept alive by
Optuna's heartbeat, which a thread of the worker records every `HEARTBEAT_S` seconds while the
trial runs (Optuna records it only inside ``study.optimize``; the search asks and tells). A
worker killed with SIGKILL, or a machine that lost power, leaves its trial RUNNING;
`WorkerStorage.close_stale_trials` closes such trials: the worker's process is gone from this
machine, or (from another machine) no heartbeat came for `GRACE_S` seconds, or the trial has no
tag and started that long ago (a trial of an earlier version, or one whose worker died before
tagging it).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from nas.atomic import locked
from nas.errors import UserError

HEARTBEAT_S = 10  # a worker records the heartbeat of its trial this often
GRACE_S = 60  # a trial whose heartbeat is this old is stale (its worker is on another machine)
WORKER = "nas:worker"  # trial system attribute: the worker that runs it (`Worker`, as a dict)
SQLITE_TIMEOUT_S = 60  # how long a worker waits for another's write to an SQLite file
SCHEMA_ATTEMPTS = 5  # tries to open a database other workers are creating the tables of


class StorageError(UserError):
    """A storage URL that cannot be opened; the message says why and what to do."""


@dataclass(frozen=True)
class Worker:
    """A process, told apart across machines, PID namespaces (containers) and PID reuse."""

    host: str  # for people reading the study; the next three tell machines apart
    boot: str  # the kernel's boot id: a reboot (or a power cut) ends every earlier worker
    pid_namespace: str
    pid: int
    start: str  # the process's start time in clock ticks since boot (/proc/PID/stat)

    @classmethod
    def this(cls) -> Worker:
        """This process; where /proc does not say (not Linux), only its host and PID."""
        try:
            namespace = os.readlink("/proc/self/ns/pid")
        except OSError:
            namespace = ""
        return cls(socket.gethostname(), _read("/proc/sys/kernel/random/boot_id") or "",
                   namespace, os.getpid(), _start_time(os.getpid()) or "")

    def is_gone(self, here: Worker) -> bool:
        """Whether this worker ran where ``here`` runs (same boot, same PID namespace) and its
        process has ended; False when it ran elsewhere, or where /proc does not say, where
        only its heartbeat tells."""
        if "" in (self.boot, self.pid_namespace, self.start) or \
                (self.boot, self.pid_namespace) != (here.boot, here.pid_namespace):
            return False
        return _start_time(self.pid) != self.start


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """A live process's start time, None when there is no such process or it is a zombie."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return None if fields[0] in ("Z", "X") else fields[19]


class WorkerStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage that tags and heartbeats the trials this process runs."""

    def __init__(self, url: str, engine_kwargs: dict[str, Any]) -> None:
        with warnings.catch_warnings():  # the heartbeat is experimental since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S,
                             grace_period=GRACE_S)
        self.worker = Worker.this()
        self._running: set[int] = set()
        self._guard = threading.Lock()
        self._beating: threading.Thread | None = None

    # Optuna calls these for every trial it starts (a new one, or a queued one it pops) and
    # ends. `_create_new_trial` is internal, but it is what both `create_new_trial` and the
    # cache Optuna puts in front of an RDBStorage call (tests/test_storage.py checks the tag).
    def _create_new_trial(self, study_id: int,
                          template_trial: FrozenTrial | None = None) -> FrozenTrial:
        trial = super()._create_new_trial(study_id, template_trial)
        if trial.state == TrialState.RUNNING:
            self._claim(trial._trial_id)
        return trial

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Any = None) -> bool:
        changed = super().set_trial_state_values(trial_id, state, values)
        if changed and state == TrialState.RUNNING:
            self._claim(trial_id)
        elif state.is_finished():
            with self._guard:
                self._running.discard(trial_id)
        return changed

    def _claim(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, WORKER, asdict(self.worker))
        self.record_heartbeat(trial_id)
        with self._guard:
            self._running.add(trial_id)
            if self._beating is None:
                self._beating = threading.Thread(target=self._beat, name="nas-heartbeat",
                                                 daemon=True)
                self._beating.start()

    def _beat(self) -> None:
        """Record the heartbeat of every trial this process runs, every `HEARTBEAT_S` seconds,
        for the life of the process (a missed beat, say the server briefly away, is retried)."""
        while True:
            time.sleep(HEARTBEAT_S)
            with self._guard:
                running = sorted(self._running)
            for trial_id in running:
                try:
                    self.record_heartbeat(trial_id)
                except sqlalchemy.exc.SQLAlchemyError:
                    pass

    def close_stale_trials(self, study_name: str, user_attrs: Mapping[str, Any]) -> list[int]:
        """Close the study's stale trials (see the module's docstring) as FAIL with
        ``user_attrs``; returns their numbers. A trial that another worker closed or finished
        first is left as it is."""
        study_id = self.get_study_id_from_name(study_name)
        silent = set(self._get_stale_trial_ids(study_id))  # no heartbeat for GRACE_S
        long_ago = datetime.now() - timedelta(seconds=GRACE_S)
        closed = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            trial_id = self.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            tag = trial.system_attrs.get(WORKER)
            stale = (trial_id in silent
                     or (tag is None and trial.datetime_start is not None
                         and trial.datetime_start < long_ago)
                     or (isinstance(tag, dict) and _worker(tag).is_gone(self.worker)))
            if stale and self._close(trial_id, user_attrs):
                closed.append(trial.number)
        return closed

    def _close(self, trial_id: int, user_attrs: Mapping[str, Any]) -> bool:
        try:
            for key, value in user_attrs.items():
                self.set_trial_user_attr(trial_id, key, value)
            return self.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            return False


def _worker(tag: dict[str, Any]) -> Worker:
    try:
        return Worker(**tag)
    except TypeError:  # a tag written by another version: treat as a worker elsewhere
        return Worker("", "", "", 0, "")


def _new_storage(url: str, parsed: sqlalchemy.engine.URL,
                 engine_kwargs: dict[str, Any]) -> WorkerStorage:
    """The storage. Workers that open a new database at once race to create Optuna's tables:
    on an SQLite file they take turns (a lock file beside it); on a server the losers, who find
    the tables half made, try again."""
    database = Path(parsed.database or ":memory:")
    if parsed.get_backend_name() == "sqlite" and database.name != ":memory:" \
            and database.parent.is_dir():
        with locked(database.with_name(f".{database.name}.lock")):
            return WorkerStorage(url, engine_kwargs)
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            return WorkerStorage(url, engine_kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


def open_storage(url: str) -> WorkerStorage:
    """The storage at ``url``; a `StorageError` in one line when it cannot be opened."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise StorageError(f"--storage {url!r} is not a database URL; pass sqlite:///FILE or "
                           "postgresql://USER@HOST/DB") from None
    shown = parsed.render_as_string(hide_password=True)
    # Several workers write one SQLite file: wait for each other's writes instead of failing.
    engine_kwargs = ({"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
                     if parsed.get_backend_name() == "sqlite" else {})
    try:
        return _new_storage(url, parsed, engine_kwargs)
    except sqlalchemy.exc.NoSuchModuleError:
        raise StorageError(f"--storage {shown}: unknown database {parsed.drivername!r}; pass "
                           "sqlite:///FILE or postgresql://USER@HOST/DB") from None
    except ImportError as exc:  # Optuna re-raises SQLAlchemy's, which names the module
        missing = getattr(exc.__cause__, "name", None) or exc.name or "module"
        raise StorageError(f"--storage {shown}: its database driver ({missing}) is not "
                           "installed; pip install it (postgresql:// uses psycopg: pip install "
                           "'psycopg[binary]')") from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        reason = next((line.strip() for line in str(getattr(exc, "orig", None) or exc)
                       .splitlines() if line.strip()), exc.__class__.__name__)
        raise StorageError(f"--storage {shown}: cannot open the database ({reason}); start the "
                           "server, or fix the URL") from None
    except RuntimeError as exc:  # Optuna: a database written by another Optuna version
        raise StorageError(f"--storage {shown}: {str(exc).splitlines()[0]}") from None

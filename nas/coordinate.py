"""What the run's one coordinator does besides training candidates: bring ``best/`` to the
study's best, train the reference networks, and verify the front on the target once every
worker is done.

Which process coordinates is decided by a lock in the run folder (`nas.run.RunDir.
coordinator_lock`), not by how it was started; every other process on the run only trains
candidates. Timing on the target and training take turns (`nas.run.RunDir.timing_turn`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import optuna
from optuna.trial import TrialState

from nas.arch import Arch
from nas.atomic import locked
from nas.config import ProfileConfig
from nas.evaluator import TrainEvaluator
from nas.latency.predict import LatencyModel
from nas.latency.profile import measure_layers, time_networks
from nas.references import REFERENCES, ReferenceResult, adapt, load_references, save_references
from nas.report import front_info, trials_frame
from nas.run import RunDir, RunError, RunRecord, load_best, read_checkpoint, save_best
from nas.identity import Identity, check
from nas.monitor import TrialMonitor
from nas.search import (ARCH, best_under_budget, close_stale_trials, made_identity, search,
                        trained_network, trial_seed)
from nas.space import SearchSpace
from nas.storage import WorkerStorage
from nas.verify import Timer, run_choice, verify_front
from nas.workers import Helpers

POLL_S = 5.0  # how often the coordinator looks whether the other workers' trials have ended


def made_identities(run_dir: RunDir, storage: WorkerStorage,
                    name: str) -> list[tuple[str, Identity]]:
    """The identities the run was made with, where each is recorded: its run.json, its study
    (on a shared server, the study may predate this machine's folder)."""
    made = []
    if run_dir.record.is_file():
        made.append((str(run_dir.root), RunRecord.load(run_dir).identity()))
    in_study = made_identity(storage, name)
    if in_study is not None:
        made.append((f"study {name!r}", in_study))
    return made


def check_all(made: list[tuple[str, Identity]], now: Identity) -> None:
    """Refuse in one line (`nas.identity.check`) a start that differs from any of them."""
    for where, identity in made:
        check(identity, now, where)


def coordinate(study: optuna.Study, storage: WorkerStorage, record: RunRecord, run_dir: RunDir,
               space: SearchSpace, latency: LatencyModel, evaluator: TrainEvaluator,
               monitor: TrialMonitor, lut_path: Path, helper_argv: list[str]) -> None:
    """The coordinator's search: best/ restored, the references' layers timed, then helpers
    started (``helper_argv``, ``record.workers - 1`` of them) while it trains the references and
    candidates; once every worker is done, the front verified on the target."""
    rungs = record.search.rungs(record.train.epochs)
    restore_best(study, run_dir, record, evaluator, len(rungs) - 1)
    references = references_to_train(run_dir, record, space, latency, lut_path)
    # Helpers start after the last timing on this machine until the verification.
    helpers = Helpers.start(helper_argv, record.workers - 1, run_dir.root)
    with monitor:
        try:
            train_references(run_dir, record, evaluator, latency, references)
            search(study, space, latency, evaluator, record.search, rungs, monitor.on_trial,
                   run_dir.training_turn)
            for problem in helpers.wait():
                print(f"warning: {problem}", file=sys.stderr)
        finally:
            helpers.stop()
        wait_for_workers(study, storage)
        verify_on_target(study, run_dir, record, evaluator, len(rungs) - 1)


def close_stale(study: optuna.Study, storage: WorkerStorage) -> None:
    closed = close_stale_trials(study, storage)
    if closed:
        print(f"closed trial(s) {', '.join(map(str, closed))} as failed: their worker stopped "
              "while they ran", file=sys.stderr)


def restore_best(study: optuna.Study, run_dir: RunDir, record: RunRecord,
                 evaluator: TrainEvaluator, top_rung: int) -> None:
    """Make best/ hold the study's best network under the budget where it does not: after a
    kill between the end of a trial and the save of its weights (best/ then holds an older
    network, or the new weights beside an old arch.json), or where a worker on another machine
    trained it. Weights in weights.pt are kept; missing ones are retrained from the trial's
    seed, which gives the same weights for the same seed and thread count."""
    rule = run_choice(run_dir, record)
    best = best_under_budget(study.trials, rule, top_rung)
    if best is None:
        return
    try:
        if load_best(run_dir)[0].trial == best.number:
            return
    except RunError:  # none yet, damaged, or its two files disagree
        pass
    try:
        held, state = read_checkpoint(run_dir)
    except RunError:
        held = None
    network = trained_network(best)
    if held is None or held.trial != best.number:
        print(f"best/: retraining trial {best.number}, the best under the budget, whose weights "
              "this run folder lacks", file=sys.stderr)
        accuracy = evaluator(network.arch, trial_seed(record.search.seed, best.number)).accuracy
        assert evaluator.last is not None
        state = evaluator.last.state_dict()
        if accuracy != network.accuracy:
            print(f"best/: trial {best.number} retrained to {100 * accuracy:.2f}% validation "
                  f"accuracy ({100 * network.accuracy:.2f}% when first trained: another thread "
                  "count or machine); best/ keeps the retrained weights and their accuracy",
                  file=sys.stderr)
            network = replace(network, accuracy=accuracy)
    save_best(run_dir, network, state, rule)


def references_to_train(run_dir: RunDir, record: RunRecord, space: SearchSpace,
                        latency: LatencyModel, lut_path: Path) -> list[tuple[str, Arch]]:
    """The references the run asks for that references.json lacks, adapted to its resolution;
    the layers the table lacks are timed into it now when this machine is the target (else
    that reference is skipped)."""
    done = {r.name for r in load_references(run_dir.references)}
    todo = []
    for name in record.search.references:
        if name in done:
            continue
        arch = adapt(REFERENCES[name], space, record.data_info.image_size)
        if latency.table.missing(latency.layers(arch)):
            if not record.target.on_this_machine():
                print(f"reference {name} skipped: the latency table lacks its layers and this "
                      "machine is not the target to time them", file=sys.stderr)
                continue
            with run_dir.timing_turn():
                measure_layers(latency.table, latency.layers(arch), lut_path, ProfileConfig(),
                               label=f"{name} layers")
        todo.append((name, arch))
    return todo


def train_references(run_dir: RunDir, record: RunRecord, evaluator: TrainEvaluator,
                     latency: LatencyModel, references: list[tuple[str, Arch]]) -> None:
    """Train the references with the search's proxy and seed and predict their latency from
    its table; each is saved to references.json when trained, so a rerun trains only those
    not yet there."""
    for name, arch in references:
        prediction = latency.predict(arch)
        print(f"reference {name}: training with the search's proxy", file=sys.stderr)
        with run_dir.training_turn():
            evaluation = evaluator(arch, record.search.seed)
        result = ReferenceResult(
            name=name, arch=arch.to_string(), accuracy=evaluation.accuracy,
            latency_ms=prediction.latency_ms, latency_err_ms=prediction.error_ms,
            epochs=record.train.epochs, train_seconds=evaluation.train_seconds)
        with locked(run_dir.lock):
            save_references(run_dir.references, [*load_references(run_dir.references), result])


def wait_for_workers(study: optuna.Study, storage: WorkerStorage) -> None:
    """Wait until no trial of the study is running (a worker on another machine, or one started
    by hand, may still train one); trials of workers that died are closed on the way."""
    said = False
    while True:
        close_stale(study, storage)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return
        if not said:
            print(f"waiting for {len(running)} trial(s) other workers are training before "
                  "verifying the front", file=sys.stderr)
            said = True
        time.sleep(POLL_S)


def verify_on_target(study: optuna.Study, run_dir: RunDir, record: RunRecord,
                     evaluator: TrainEvaluator, top_rung: int) -> None:
    """On the target machine, time every front member under the budget end to end, then each
    network chosen in turn until the most accurate one left is within the budget (with the
    margin) as measured; best/ then holds it, retrained from its seed if best/ held another."""
    if not record.target.on_this_machine():
        print(f"front not verified: this machine is not the target ({record.target.describe()})",
              file=sys.stderr)
        return
    with locked(run_dir.lock):
        info = front_info(trials_frame(study.trials), run_choice(run_dir, record),
                          record.search.seed_std, record.search.rungs(record.train.epochs))
    members = dict(zip(info.front["number"], info.front["arch"]))
    timer = _timer(record)
    while members:
        print(f"verifying on the target: timing {len(members)} network(s) end to end",
              file=sys.stderr)
        with run_dir.timing_turn():
            measured = verify_front({int(n): Arch.from_string(a) for n, a in members.items()},
                                    timer, run_dir, record.target)
        best = best_under_budget(study.trials, run_choice(run_dir, record), top_rung)
        members = {} if best is None or best.number in measured else {
            best.number: best.user_attrs[ARCH]}
        if best is None:
            print("no trained network is within the budget as measured on the target; best/ "
                  "keeps what it held (see summary.md)", file=sys.stderr)
    restore_best(study, run_dir, record, evaluator, top_rung)


def _timer(record: RunRecord) -> Timer:
    def timer(archs: Sequence[Arch]) -> tuple[list[float], float]:
        timings, probe = time_networks(archs, record.target, record.model, ProfileConfig())
        return [t.median_ms for t in timings], probe.median_ms

    return timer

"""``nas search`` (and ``run_search.py``): the study, a report after every trained candidate, and
the best network under the budget saved as it appears."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import optuna

from nas.arch import Arch
from nas.atomic import locked
from nas.commands.common import load_data, lut_info, space_from_args, target_from_args
from nas.config import DataConfig, ProfileConfig, SearchConfig, TrainConfig
from nas.data import Dataset
from nas.evaluator import TrainEvaluator
from nas.flags import from_args
from nas.latency.predict import LatencyModel
from nas.latency.profile import (check_coverage, check_speed, measure_layers, profile_space,
                                 time_networks)
from nas.latency.table import LatencyTable, default_path
from nas.model import ModelConfig
from nas.progress import Progress
from nas.references import REFERENCES, ReferenceResult, adapt, load_references, save_references
from nas.report import front_info, trials_frame, write_report
from nas.run import DataInfo, RunDir, RunError, RunRecord, load_best, read_checkpoint, save_best
from nas.search import (ARCH, LATENCY, RUNG, STATUS, Status, best_under_budget,
                        close_stale_trials, make_sampler, open_study, search, trained_count,
                        trained_network, trial_seed)
from nas.signals import deferred_stops
from nas.space import SearchSpace
from nas.storage import WorkerStorage, open_storage
from nas.train import use_threads
from nas.verify import Timer, run_choice, verify_front
from nas.workers import Helpers, plan, usable_core_count


def run(args: argparse.Namespace) -> int:
    config = from_args(SearchConfig, args)
    workers, threads = plan(args.workers, args.train_threads, usable_core_count())
    train_config = from_args(TrainConfig, args, train_threads=threads)
    rungs = config.rungs(train_config.epochs)
    space_path, space = space_from_args(args)
    data_config = from_args(DataConfig, args, seed=config.seed,
                            resolution=args.resolution or space.resolution)
    data = load_data(data_config)
    for note in data.notes:
        print(f"data: {note}", file=sys.stderr)
    for problem in space.invisible_kernels(data.image_size):
        print(f"warning: {problem}; pick a space whose stride plan fits {data.image_size}px",
              file=sys.stderr)
    model_config = ModelConfig(in_channels=data.in_channels, num_classes=data.num_classes)
    name = args.run_name or f"{space.name}-{config.budget_ms:g}ms-seed{config.seed}"
    run_dir = RunDir(args.results_dir / name)
    run_dir.root.mkdir(parents=True, exist_ok=True)
    storage_url = args.storage or f"sqlite:///{run_dir.study_db.resolve()}"
    storage = open_storage(storage_url)  # before profiling: a bad URL is said at once
    lut_path, table = _latency_table(args, space, model_config, data.image_size)
    record = RunRecord(
        name=name, storage=storage_url, space=str(space_path.resolve()), space_name=space.name,
        search=config, data=data_config, data_info=_data_info(data), train=train_config,
        model=model_config, target=table.target, lut=lut_info(lut_path, table),
        training_threads=use_threads(train_config.train_threads), workers=workers)
    record.save(run_dir)
    study = open_study(storage, name)
    _close_stale(study, storage)
    study.sampler = make_sampler(config.sampler, config.seed)
    evaluator = TrainEvaluator(data, model_config, record.train)
    latency = LatencyModel(table, data.in_channels, data.num_classes)
    if args.helper:  # the starting worker does the rest (nas.workers)
        with _Monitor(study, run_dir, record, evaluator, len(rungs) - 1) as monitor:
            search(study, space, latency, evaluator, config, rungs, monitor.on_trial)
        return 0
    _restore_best(study, run_dir, record, evaluator, len(rungs) - 1)
    references = _references_to_train(run_dir, record, space, latency, lut_path)
    # Helpers start after the last timing on this machine until the verification.
    helpers = Helpers.start([*args.argv, "--workers", str(workers), "--train-threads",
                             str(record.training_threads), "--run-name", name, "--storage",
                             storage_url], workers - 1, run_dir.root)
    with _Monitor(study, run_dir, record, evaluator, len(rungs) - 1) as monitor:
        try:
            _train_references(run_dir, record, evaluator, latency, references)
            search(study, space, latency, evaluator, config, rungs, monitor.on_trial)
            for problem in helpers.wait():
                print(f"warning: {problem}", file=sys.stderr)
        finally:
            helpers.stop()
        _close_stale(study, storage)  # trials of other workers that died while this one ran
        _verify_on_target(study, run_dir, record, evaluator, len(rungs) - 1)
    print(run_dir.summary().read_text())
    print(f"results in {run_dir.root}/ (pareto.html, trials.csv, summary.md, best/)")
    return 0


def _latency_table(args: argparse.Namespace, space: SearchSpace, model_config: ModelConfig,
                   resolution: int) -> tuple[Path, LatencyTable]:
    """The table given with ``--lut``, else this machine's, profiled now if not cached."""
    if args.lut is not None:
        table = LatencyTable.load(args.lut, space=space.name)
        check_coverage(args.lut, table, space, model_config)
        if not args.helper:  # see profile_space
            check_speed(args.lut, table, ProfileConfig())
        return args.lut, table
    target = target_from_args(args, resolution)
    path = default_path(args.results_dir, space.name, target)
    print(f"latency table {path} ({target.describe()})")
    return path, profile_space(path, space, target, model_config, check=not args.helper)


def _data_info(data: Dataset) -> DataInfo:
    return DataInfo(train=len(data.train), val=len(data.val), test=len(data.test),
                    image_size=data.image_size, class_names=data.class_names, mean=data.mean,
                    std=data.std)


def _close_stale(study: optuna.Study, storage: WorkerStorage) -> None:
    closed = close_stale_trials(study, storage)
    if closed:
        print(f"closed trial(s) {', '.join(map(str, closed))} as failed: their worker stopped "
              "while they ran", file=sys.stderr)


def _restore_best(study: optuna.Study, run_dir: RunDir, record: RunRecord,
                  evaluator: TrainEvaluator, top_rung: int) -> None:
    """Make best/ hold the study's best network under the budget where it does not: after a
    kill between the end of a trial and the save of its weights (best/ then holds an older
    network, or the new weights beside an old arch.json), or where a worker on another machine
    trained it. Weights in weights.pt are kept; missing ones are retrained from the trial's
    seed, which gives the same weights for the same seed and thread count."""
    choice = run_choice(run_dir, record)
    best = best_under_budget(study.trials, choice, top_rung)
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
    save_best(run_dir, network, state, choice)


def _references_to_train(run_dir: RunDir, record: RunRecord, space: SearchSpace,
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
            measure_layers(latency.table, latency.layers(arch), lut_path, ProfileConfig(),
                           label=f"{name} layers")
        todo.append((name, arch))
    return todo


def _train_references(run_dir: RunDir, record: RunRecord, evaluator: TrainEvaluator,
                      latency: LatencyModel, references: list[tuple[str, Arch]]) -> None:
    """Train the references with the search's proxy and seed and predict their latency from
    its table; each is saved to references.json when trained, so a rerun trains only those
    not yet there."""
    for name, arch in references:
        prediction = latency.predict(arch)
        print(f"reference {name}: training with the search's proxy", file=sys.stderr)
        evaluation = evaluator(arch, record.search.seed)
        result = ReferenceResult(
            name=name, arch=arch.to_string(), accuracy=evaluation.accuracy,
            latency_ms=prediction.latency_ms, latency_err_ms=prediction.error_ms,
            epochs=record.train.epochs, train_seconds=evaluation.train_seconds)
        with locked(run_dir.lock):
            save_references(run_dir.references, [*load_references(run_dir.references), result])


def _verify_on_target(study: optuna.Study, run_dir: RunDir, record: RunRecord,
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
        measured = verify_front({int(n): Arch.from_string(a) for n, a in members.items()},
                                timer, run_dir, record.target)
        best = best_under_budget(study.trials, run_choice(run_dir, record), top_rung)
        members = {} if best is None or best.number in measured else {
            best.number: best.user_attrs[ARCH]}
        if best is None:
            print("no trained network is within the budget as measured on the target; best/ "
                  "keeps what it held (see summary.md)", file=sys.stderr)
    _restore_best(study, run_dir, record, evaluator, top_rung)


def _timer(record: RunRecord) -> Timer:
    def timer(archs: Sequence[Arch]) -> tuple[list[float], float]:
        timings, probe = time_networks(archs, record.target, record.model, ProfileConfig())
        return [t.median_ms for t in timings], probe.median_ms

    return timer


class _Monitor:
    """After each training: the report; after each at the top rung, also progress and the best
    network."""

    def __init__(self, study: optuna.Study, run_dir: RunDir, record: RunRecord,
                 evaluator: TrainEvaluator, top_rung: int) -> None:
        self.study, self.run_dir, self.record, self.evaluator = study, run_dir, record, evaluator
        self.top_rung = top_rung
        self.progress = Progress(f"search <= {record.search.budget_ms:g} ms, trained at the "
                                 "top rung", record.search.trials)
        self._count()

    def on_trial(self, trial: optuna.trial.FrozenTrial) -> None:
        if trial.user_attrs.get(STATUS) not in (Status.TRAINED, Status.FAILED):
            return
        if trial.user_attrs.get(RUNG) != self.top_rung:
            self._report()
            return
        choice = run_choice(self.run_dir, self.record)
        best = best_under_budget(self.study.trials, choice, self.top_rung)
        if best is not None:
            self.progress.note = (f"best {100 * best.values[0]:.2f}% @ "
                                  f"{best.user_attrs[LATENCY]:.2f} ms")
        with deferred_stops():  # a stop comes after the writes, not half-way through
            if trial.user_attrs[STATUS] == Status.TRAINED and self.evaluator.last is not None:
                # save_best keeps it only if it beats the network held: the study's best, or on
                # a machine sharing the study with others, the best trained into this folder.
                save_best(self.run_dir, trained_network(trial), self.evaluator.last.state_dict(),
                          choice)
            self._report()
        self._count()

    def _count(self) -> None:
        """Progress counts the top-rung candidates of every worker of the study."""
        done = min(trained_count(self.study, self.top_rung), self.record.search.trials)
        self.progress.step(max(0, done - self.progress.done))

    def __enter__(self) -> _Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.progress.close()
        with deferred_stops():
            self._report()

    def _report(self) -> None:
        with locked(self.run_dir.lock):  # read inside: the last writer has the latest trials
            choice = run_choice(self.run_dir, self.record)
            write_report(self.run_dir, trials_frame(self.study.trials, choice.measured_ms),
                         choice, self.record,
                         references=load_references(self.run_dir.references))

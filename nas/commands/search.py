"""``nas search`` (and ``run_search.py``): check the run's identity, claim its coordinator role
or join it as a worker, then search (`nas.search`, `nas.coordinate`, `nas.monitor`)."""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from pathlib import Path

from nas.atomic import claimed
from nas.commands.common import load_data, lut_info, space_from_args, target_from_args
from nas.config import DataConfig, ProfileConfig, SearchConfig, TrainConfig
from nas.coordinate import check_all, close_stale, coordinate, made_identities
from nas.evaluator import TrainEvaluator
from nas.flags import from_args
from nas.latency.predict import LatencyModel
from nas.latency.profile import check_coverage, check_speed, profile_space
from nas.latency.table import LatencyTable, default_path
from nas.latency.target import Target
from nas.model import ModelConfig
from nas.monitor import TrialMonitor
from nas.run import DataInfo, LutInfo, RunDir, RunRecord, run_name
from nas.search import make_sampler, open_study, search
from nas.space import SearchSpace
from nas.storage import open_storage
from nas.train import resolve_device, use_threads
from nas.workers import plan, usable_core_count, visible_gpus


def run(args: argparse.Namespace) -> int:
    config = from_args(SearchConfig, args)
    device = resolve_device(args.train_device)
    workers, threads = plan(args.workers, args.train_threads, usable_core_count(),
                            device=args.train_device, gpus=len(visible_gpus()))
    train_config = from_args(TrainConfig, args, train_threads=threads, train_device=str(device))
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
    model = ModelConfig(in_channels=data.in_channels, num_classes=data.num_classes)
    name = args.run_name or run_name(data_config.dataset, space.name, config.budget_ms,
                                     config.seed)
    run_dir = RunDir(args.results_dir / name)
    run_dir.root.mkdir(parents=True, exist_ok=True)
    storage_url = args.storage or f"sqlite:///{run_dir.study_db.resolve()}"
    storage = open_storage(storage_url)  # before profiling: a bad URL is said at once
    target = None if args.lut else target_from_args(args, data.image_size)
    lut_path = args.lut or default_path(args.results_dir, space.name, target)

    def record_with(lut: LutInfo, target: Target) -> RunRecord:
        return RunRecord(
            name=name, storage=storage_url, space=str(space_path.resolve()),
            space_sha256=space.fingerprint(), space_name=space.name, search=config,
            data=data_config, data_info=DataInfo.of(data), train=train_config, model=model,
            target=target, lut=lut, training_threads=use_threads(train_config.train_threads),
            workers=workers)

    made = made_identities(run_dir, storage, name)
    # --lut's table must exist (a one-line error otherwise); this machine's may not be built yet
    held = (LatencyTable.load(lut_path, space=space.name) if target is None or lut_path.is_file()
            else None)
    now = LutInfo(str(lut_path), "", held.identity() if held else "none", "")
    check_all(made, record_with(now, target or held.target).identity())  # before any timing
    role = nullcontext(False) if args.helper else claimed(run_dir.coordinator_lock)
    with role as coordinator:
        with run_dir.timing_turn() if coordinator else nullcontext():
            table = _latency_table(lut_path, target, held, space, model, check=coordinator)
        record = record_with(lut_info(lut_path, table), table.target)
        identity = record.identity()
        check_all(made, identity)
        if coordinator or not run_dir.record.is_file():
            record.save(run_dir)
        study = open_study(storage, name, identity=identity)
        study.sampler = make_sampler(config.sampler, config.seed)
        close_stale(study, storage)
        evaluator = TrainEvaluator(data, model, record.train)
        latency = LatencyModel(table, data.in_channels, data.num_classes)
        monitor = TrialMonitor(study, run_dir, record, evaluator, len(rungs) - 1)
        if not coordinator:
            if not args.helper:
                print("another process coordinates this run (it holds "
                      f"{run_dir.coordinator_lock}): this one trains candidates only",
                      file=sys.stderr)
            with monitor:
                search(study, space, latency, evaluator, config, rungs, monitor.on_trial,
                       run_dir.training_turn)
            return 0
        helper_argv = [*args.argv, "--workers", str(workers), "--train-threads",
                       str(record.training_threads), "--run-name", name, "--storage",
                       storage_url]
        coordinate(study, storage, record, run_dir, space, latency, evaluator, monitor,
                   lut_path, helper_argv)
    print(run_dir.summary().read_text())
    print(f"results in {run_dir.root}/ (pareto.html, trials.csv, summary.md, best/)")
    return 0


def _latency_table(path: Path, target: Target | None, given: LatencyTable | None,
                   space: SearchSpace, model: ModelConfig, *, check: bool) -> LatencyTable:
    """The table ``given`` with ``--lut`` (``target`` None), else this machine's for
    ``target``, profiled now if not cached; checked against this machine's speed by the
    coordinator."""
    if target is not None:
        print(f"latency table {path} ({target.describe()})")
        return profile_space(path, space, target, model, check=check)
    assert given is not None  # loaded from --lut before the identity check
    table = given
    check_coverage(path, table, space, model)
    if check:
        check_speed(path, table, ProfileConfig())
    return table

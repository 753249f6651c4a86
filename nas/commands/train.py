"""``nas train``: the final training of a front member (default: the best under the budget) into
``<run>/final/``; rerunning it after a kill resumes from the last finished epoch (`nas.final`)."""

from __future__ import annotations

import argparse
from dataclasses import replace

from nas.arch import ArchError
from nas.commands.common import run_data
from nas.config import FinalConfig
from nas.errors import UsageError
from nas.final import Training, all_training_images, load_final, mirror_note, train_final
from nas.flags import from_args
from nas.run import BestNetwork, RunDir, RunRecord, load_best
from nas.train import resolve_device, use_threads


def run(args: argparse.Namespace) -> int:
    config = from_args(FinalConfig, args)
    device = resolve_device(config.train_device)
    run_dir = RunDir(args.run)
    record = RunRecord.load(run_dir)
    network = load_best(run_dir)[0] if config.trial is None else _trial(record, config.trial)
    seed = record.search.seed if config.seed is None else config.seed
    training = Training(network.arch, seed, replace(config.recipe(), train_device=str(device)))
    done = load_final(run_dir)
    if done is not None:
        result = done[0]
        training.check_continues(result.training, str(run_dir.final_record), run_dir)
        print(f"{run_dir.final}/ is already complete: trial {result.network.trial}, "
              f"{result.epochs} epochs, test accuracy {100 * result.test_accuracy:.2f}%; "
              "delete it to train again")
        return 0
    data = run_data(record, args.data_dir, train_samples=None)
    data = all_training_images(data, record.data_info.mean, record.data_info.std)
    threads = use_threads(config.train_threads)
    print(f"final training of trial {network.trial} ({network.arch.to_string()}): "
          f"{config.epochs} epochs on {len(data.train)} images, seed {seed}, {threads} threads "
          f"on {device}, {config.precision}")
    result = train_final(run_dir, network, data, record.model, training)
    print(f"test accuracy {100 * result.test_accuracy:.2f}% on {len(data.test)} images after "
          f"{result.epochs} epochs ({result.train_seconds:.0f}s){mirror_note(result)}; weights, "
          f"curve and record in {run_dir.final}/")
    return 0


def _trial(record: RunRecord, number: int) -> BestNetwork:
    """Trial ``number`` of the run's study, refused in one line unless it was trained."""
    from nas.search import ACCURACY, ARCH, open_study, trained_network  # Optuna: --trial only
    from nas.storage import open_storage

    study = open_study(open_storage(record.storage), record.name)
    trial = next((t for t in study.trials if t.number == number), None)
    if trial is None:
        raise UsageError(f"--trial {number}: the study has trials 0 to {len(study.trials) - 1}; "
                         "pick one of trials.csv's numbers")
    no_arch = UsageError(f"--trial {number}: it has no architecture (never sampled); pick a "
                         "trained trial from trials.csv")
    if ARCH not in trial.user_attrs:
        raise no_arch
    if ACCURACY not in trial.user_attrs:
        raise UsageError(f"--trial {number}: it was never trained (state {trial.state.name}), "
                         "so it has no validation accuracy; pick a trained trial from trials.csv")
    try:
        return trained_network(trial)
    except ArchError as exc:
        raise no_arch from exc

"""What each subcommand does, from parsed arguments to files under ``results/``."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch

from nas.arch import Arch
from nas.cli import UsageError, parse_budget
from nas.export import ExportError
from nas.data import DataError, load_dataset
from nas.latency.predict import LatencyModel
from nas.latency.profile import ProfileConfig, profile_space, time_networks
from nas.latency.table import LatencyTable, TableError, default_path, file_hash
from nas.latency.target import Target
from nas.model import MobileNet, ModelConfig
from nas.space import DEFAULT_SPACE, SearchSpace, SpaceError, load_space


def _space(args: argparse.Namespace) -> SearchSpace:
    return load_space(args.space or DEFAULT_SPACE)


def _target(args: argparse.Namespace, space: SearchSpace) -> Target:
    return Target.here(backend=args.backend, threads=args.threads,
                       input_size=args.input_size or space.resolution)


def _table_meta(path: Path, table: LatencyTable) -> dict[str, object]:
    c, v = table.calibration, table.validation
    calibration = ("none" if c is None else
                   f"{c.fitted_on} whole networks, RMS error {100 * c.rel_rmse:.1f}% on them")
    if v is not None:
        calibration += (f"; on {v.count} held-out networks {100 * v.within_10:.0f}% within "
                        f"+-10%, MAPE {100 * v.mape:.1f}%")
    return {"target": table.target.describe(), "lut": str(path), "lut_hash": file_hash(path),
            "calibration": calibration}


# --- search -----------------------------------------------------------------------------------

def cmd_search(args: argparse.Namespace) -> int:
    import optuna
    from tqdm import tqdm

    from nas.evaluate import TrainEvaluator
    from nas.report import trials_frame, write_report
    from nas.search import (STATUS, TRAINED, SearchConfig, SearchStalled, best_under_budget,
                            open_study, search, trained_count)
    from nas.train import TrainConfig

    budget = parse_budget(args.latency_budget)
    space = _space(args)
    data = load_dataset(args.dataset, args.data_dir, val_samples=args.val_samples,
                        train_samples=args.train_samples, seed=args.seed)
    model_config = ModelConfig(in_channels=data.in_channels, num_classes=data.num_classes)
    run_name = args.run_name or f"{space.name}-{budget:g}ms-seed{args.seed}"
    run_dir = args.results_dir / run_name
    run_dir.mkdir(parents=True, exist_ok=True)

    if args.lut is not None:
        table = LatencyTable.load(args.lut, space=space.name)
        lut_path = args.lut
    else:
        target = _target(args, space)
        lut_path = default_path(args.results_dir, space.name, target)
        print(f"latency table {lut_path} ({target.describe()})")
        table = profile_space(lut_path, space, target, model_config)
    latency = LatencyModel(table, model_config.in_channels, model_config.num_classes)
    train_config = TrainConfig(epochs=args.epochs)
    evaluator = TrainEvaluator(data, model_config, train_config)
    config = SearchConfig(budget_ms=budget, trials=args.trials, seed=args.seed,
                          sampler=args.sampler)
    storage = args.storage or f"sqlite:///{(run_dir / 'study.db').resolve()}"
    study = open_study(storage, run_name, args.sampler, args.seed)
    meta: dict[str, Any] = {
        "run_name": run_name, "budget_ms": budget, "storage": storage,
        "space": str(Path(args.space or DEFAULT_SPACE).resolve()), "space_name": space.name,
        **_table_meta(lut_path, table), "target_fields": asdict(table.target),
        "data": (f"{data.name}: {len(data.train)} train / {len(data.val)} validation / "
                 f"{len(data.test)} test images of {data.image_size}px"),
        "dataset": data.name, "data_dir": args.data_dir, "seed": args.seed,
        "image_size": data.image_size,
        "model_config": asdict(model_config), "train_config": asdict(train_config),
        "normalization": {"mean": data.mean, "std": data.std},
        "train_samples": args.train_samples, "val_samples": args.val_samples,
        "settings": (f"{args.trials} trained trials, {args.sampler} sampler, seed {args.seed}, "
                     f"{args.epochs} epochs on {len(data.train)} images, "
                     f"{torch.get_num_threads()} training threads"),
    }
    (run_dir / "run.json").write_text(json.dumps(meta, indent=2, default=str))

    def report() -> None:
        write_report(run_dir, trials_frame(study.trials), budget, meta)

    done = trained_count(study)
    bar = tqdm(total=args.trials, initial=min(done, args.trials), unit="trained",
               desc=f"search <= {budget:g} ms", dynamic_ncols=True)

    def on_trial(trial: optuna.trial.FrozenTrial) -> None:
        if trial.user_attrs.get(STATUS) != TRAINED and trial.user_attrs.get(STATUS) != "failed":
            return
        bar.update(1)
        best = best_under_budget(study.trials, budget)
        if best is not None:
            bar.set_postfix_str(f"best {100 * best.values[0]:.2f}% @ "
                                f"{best.user_attrs['latency_ms']:.1f} ms")
            if best.number == trial.number:
                evaluator.save_last(run_dir / "best" / "weights.pt")
        report()

    try:
        search(study, space, latency, evaluator, config, on_trial)
    except SearchStalled as exc:
        raise UsageError(str(exc)) from exc
    finally:
        bar.close()
        report()
    print((run_dir / "summary.md").read_text())
    print(f"results in {run_dir}/ (pareto.html, trials.csv, summary.md, best/)")
    return 0


# --- profile ----------------------------------------------------------------------------------

def cmd_profile(args: argparse.Namespace) -> int:
    space = _space(args)
    target = _target(args, space)
    path = args.out or default_path(args.results_dir, space.name, target)
    model_config = ModelConfig(in_channels=args.in_channels, num_classes=args.num_classes)
    config = ProfileConfig(rounds=args.rounds, calibration_networks=args.calibration_networks)
    table = profile_space(path, space, target, model_config, config)
    print(f"wrote {path}: {len(table.entries)} layers, target {target.describe()}, "
          f"fingerprint {target.fingerprint()}; calibration: "
          f"{_table_meta(path, table)['calibration']}")
    return 0


# --- report -----------------------------------------------------------------------------------

def _load_run(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a search run (no run.json); pass results/<run>")
    return json.loads(path.read_text())


def cmd_report(args: argparse.Namespace) -> int:
    from nas.report import trials_frame, write_report
    from nas.search import ARCH, LATENCY, LATENCY_ERR, open_study

    meta = _load_run(args.run)
    study = open_study(meta["storage"], meta["run_name"], "random", 0)
    frame = trials_frame(study.trials)
    budget = parse_budget(args.latency_budget) if args.latency_budget else meta["budget_ms"]
    suffix = ""
    if args.lut is not None:
        table = LatencyTable.load(args.lut, space=meta["space_name"])
        mc = meta["model_config"]
        model = LatencyModel(table, mc["in_channels"], mc["num_classes"])
        predictions = [model.predict(Arch.from_string(a)) if a else None for a in frame[ARCH]]
        frame[LATENCY] = [p.latency_ms if p else None for p in predictions]
        frame[LATENCY_ERR] = [p.error_ms if p else None for p in predictions]
        meta = {**meta, **_table_meta(args.lut, table)}
        suffix = f"-{table.target.fingerprint()}"
    info = write_report(args.run, frame, budget, meta, suffix)
    print(f"wrote {args.run}/summary{suffix}.md: {len(info.front)} networks on the front "
          f"under {budget:g} ms")
    return 0


# --- export -----------------------------------------------------------------------------------

def cmd_export(args: argparse.Namespace) -> int:
    from nas.export import export_network

    meta = _load_run(args.run)
    best_path = args.run / "best" / "arch.json"
    weights_path = args.run / "best" / "weights.pt"
    if not best_path.is_file() or not weights_path.is_file():
        raise UsageError(f"{args.run} has no trained network under its budget to export")
    best = json.loads(best_path.read_text())
    arch = Arch.from_string(best["arch"])
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    out = args.out or args.run / "export"
    card = {"trial": best["trial"], "validation_accuracy": best["accuracy"],
            "predicted_latency_ms": best["latency_ms"], "target": meta["target"],
            "lut": meta["lut"], "lut_hash": meta["lut_hash"], "seed": meta["seed"],
            "data": meta["data"], "normalization": meta["normalization"],
            "input": f"{meta['model_config']['in_channels']}x{{H}}x{{W}} float, normalized"}
    model_config = ModelConfig(**meta["model_config"])
    state = torch.load(weights_path, weights_only=True)
    card["test_accuracy"] = _test_accuracy(arch, model_config, state, meta,
                                           args.data_dir or meta["data_dir"])
    card.update(_measured_latency(arch, Target(**meta["target_fields"]), model_config,
                                  best["latency_ms"]))
    try:
        diffs = export_network(arch, model_config, state, input_size=meta["image_size"],
                               formats=formats, out=out, card=card)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(f"exported trial {best['trial']} to {out}/ ({', '.join(formats)}); max |diff| vs "
          f"PyTorch: {diffs}")
    return 0


def _test_accuracy(arch: Arch, model_config: ModelConfig, state: dict[str, torch.Tensor],
                   meta: dict[str, Any], data_dir: str | None) -> float | None:
    """Accuracy on the test split, which the search never saw; None if the data is gone."""
    from nas.train import evaluate

    try:
        data = load_dataset(meta["dataset"], data_dir, val_samples=meta["val_samples"],
                            train_samples=meta["train_samples"], seed=meta["seed"])
    except DataError as exc:
        print(f"test accuracy not computed: {exc} (pass --data-dir)")
        return None
    model = MobileNet(arch, model_config).to(memory_format=torch.channels_last)
    model.load_state_dict(state)
    accuracy = evaluate(model, data.test, data)
    print(f"test accuracy {100 * accuracy:.2f}% on {len(data.test)} images the search never saw")
    return accuracy


def _measured_latency(arch: Arch, target: Target, model_config: ModelConfig,
                      predicted_ms: float) -> dict[str, object]:
    """Time the network end to end when this machine is the run's latency target."""
    here = Target.here(target.backend, target.threads, target.batch, target.input_size)
    if here.fingerprint() != target.fingerprint():
        print(f"latency not measured: this machine ({here.describe()}) is not the target "
              f"({target.describe()})")
        return {"measured_latency_ms": None,
                "measured_latency_note": f"not measured: exported on {here.describe()}"}
    timing = time_networks([arch], target, model_config, ProfileConfig())[0]
    print(f"latency on this machine (the target): predicted {predicted_ms:.2f} ms, measured "
          f"{timing.median_ms:.2f} ms ({100 * (predicted_ms / timing.median_ms - 1):+.1f}%)")
    return {"measured_latency_ms": timing.median_ms,
            "measured_latency_spread_ms": timing.spread_ms}


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "search": cmd_search, "profile": cmd_profile, "report": cmd_report, "export": cmd_export}
USER_ERRORS = (UsageError, DataError, SpaceError, TableError, ExportError)

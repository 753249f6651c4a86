"""Building a table for a space on this machine: layers, whole-network timings, calibration.

Needs only torch: this is what ``python -m nas profile`` runs on a device.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from nas.arch import Arch
from nas.atomic import locked
from nas.config import ProfileConfig
from nas.latency.calibrate import fit_calibration
from nas.latency.layers import Layer
from nas.latency.measure import (Runner, Timing, build_runner, time_round_robin,
                                 use_allocator)
from nas.latency.predict import LatencyModel
from nas.latency.table import LatencyTable, TableError
from nas.latency.target import Target
from nas.latency.validate import Agreement, agreement
from nas.model import MobileNet, ModelConfig
from nas.progress import Progress
from nas.space import SearchSpace, random_archs
from nas.bundle_timer import pace, probe_runner


def open_table(path: Path, space: SearchSpace, target: Target) -> LatencyTable:
    """The table at ``path`` if it is for this space and target (resume), else a new one."""
    if not path.exists():
        return LatencyTable(target=target, space=space.name)
    table = LatencyTable.load(path, space=space.name)
    if table.target.fingerprint() != target.fingerprint():
        raise TableError(f"{path}: table is for another target ({table.target.describe()}); "
                         "pass a new --out or --lut for this one")
    return table


def measure_layers(table: LatencyTable, layers: Sequence[Layer], path: Path,
                   config: ProfileConfig, *, label: str = "layers") -> int:
    """Time the layers the table lacks on this machine (its target), round-robin, in groups of
    ``config.layers_per_save``, saving after each group so an interrupted build resumes."""
    missing = table.missing(layers)
    size = config.layers_per_save
    groups = [missing[i:i + size] for i in range(0, len(missing), size)]
    progress = Progress(f"{label} ({len(missing)}, {config.rounds} rounds each)",
                        len(groups) * config.rounds)
    with progress:
        for group in groups:
            _time_group(table, group, config, progress)
            table.save(path)
    return len(missing)


def _time_group(table: LatencyTable, group: Sequence[Layer], config: ProfileConfig,
                progress: Progress) -> None:
    runners = [build_runner(table.target, layer.build(), layer.in_channels, layer.in_size)
               for layer in group]
    timings = time_round_robin(runners, threads=table.target.threads,
                               cores=table.target.cores, warmup=config.warmup,
                               rounds=config.rounds, runs=config.runs,
                               on_round=lambda _: progress.step())
    table.entries.update({layer.key: t for layer, t in zip(group, timings, strict=True)})


def time_networks(archs: Sequence[Arch], target: Target, model_config: ModelConfig,
                  config: ProfileConfig) -> tuple[list[Timing], Timing]:
    """End-to-end latency of whole networks on this machine, timed round-robin, and of the
    speed probe (`nas.bundle_timer.speed_probe`) in the same rounds."""
    runners = [build_runner(target, MobileNet(a, model_config), model_config.in_channels,
                            target.input_size) for a in archs]
    with Progress(f"networks ({len(archs)})", config.network_rounds) as progress:
        return _with_probe(runners, target, config, on_round=lambda _: progress.step())


def _with_probe(runners: Sequence[Runner], target: Target, config: ProfileConfig,
                on_round: Callable[[int], None] | None = None) -> tuple[list[Timing], Timing]:
    """``runners`` and the speed probe, round-robin in the networks' rounds on the target's
    allocator, threads and cores."""
    use_allocator(target.allocator)
    timings = time_round_robin([*runners, probe_runner()], threads=target.threads,
                               cores=target.cores, warmup=config.warmup,
                               rounds=config.network_rounds, runs=config.network_runs,
                               on_round=on_round)
    return timings[:-1], timings[-1]


def calibrate(table: LatencyTable, fit_on: Sequence[Arch], held_out: Sequence[Arch],
              model_config: ModelConfig, path: Path, config: ProfileConfig) -> None:
    """Time whole networks in one round-robin set, fit the calibration on ``fit_on``, score it
    on ``held_out`` (at least two networks), and save both in the table."""
    model = LatencyModel(table, model_config.in_channels, model_config.num_classes)
    archs = [*fit_on, *held_out]
    measure_layers(table, [l for a in archs for l in model.layers(a)], path, config,
                   label="calibration layers")
    timings, table.speed_probe = time_networks(archs, table.target, model_config, config)
    measured = [t.median_ms for t in timings]
    table.calibration = fit_calibration([model.group_sums(a) for a in fit_on],
                                        measured[:len(fit_on)])
    table.validation = agreement([model.predict(a).latency_ms for a in held_out],
                                 measured[len(fit_on):])
    table.save(path)


def space_layers(space: SearchSpace, model: LatencyModel) -> list[Layer]:
    """Every layer configuration the space can produce, as the model's table keys them."""
    return [l for a in space.covering_archs() for l in model.layers(a)]


def check_coverage(path: Path, table: LatencyTable, space: SearchSpace,
                   model_config: ModelConfig) -> None:
    """Refuse a table that lacks layers of the space (say, the space was edited after it was
    profiled), naming the first missing one, before a search samples it."""
    model = LatencyModel(table, model_config.in_channels, model_config.num_classes)
    missing = table.missing(space_layers(space, model))
    if missing:
        raise TableError(f"{path}: lacks {len(missing)} layer configuration(s) of space "
                         f"{space.name!r}, the first {missing[0].key}; profile this space on the "
                         "target again ('python -m nas profile --space ...')")


def profile_space(path: Path, space: SearchSpace, target: Target, model_config: ModelConfig,
                  config: ProfileConfig = ProfileConfig(), *,
                  check: bool = True) -> LatencyTable:
    """Time every layer configuration the space can produce, then calibrate and validate; a
    table reused as it was is checked against this machine's speed now (`check_speed`) unless
    not ``check`` (a helper worker, whose first worker may be training beside it).

    One process at a time builds a table file (a lock file beside it): a second one, say a
    second search worker started at the same moment, waits and then finds the table built."""
    with locked(path.with_name(f".{path.name}.lock"),
                waiting=f"waiting for another process to finish building {path}"):
        table = open_table(path, space, target)
        model = LatencyModel(table, model_config.in_channels, model_config.num_classes)
        layers = space_layers(space, model)
        unique = {l.key for l in layers}
        print(f"{space.name}: {len(unique)} layer configurations at {target.input_size}px, "
              f"{len(table.missing(layers))} still to time", file=sys.stderr)
        timed_now = measure_layers(table, layers, path, config)
        if table.calibration is None:
            calibrate(table, *calibration_sets(space, config), model_config, path, config)
            if table.validation is not None and table.validation.poor:
                print(poor_table_warning(path, table.validation), file=sys.stderr)
        elif check and not timed_now:
            check_speed(path, table, config)
        return table


# A probe this far from the table's (either way) is said as a warning, not only as a figure.
SPEED_WARNING = 1.15


def check_speed(path: Path, table: LatencyTable, config: ProfileConfig) -> float | None:
    """Time the speed probe and say, in one line, how fast this machine runs against when the
    table (built earlier, now reused) was timed; returns now / then, or None where the table
    has no probe or this machine is not its target."""
    if table.speed_probe is None or not table.target.on_this_machine():
        return None
    now = _with_probe([], table.target, config)[1].median_ms
    ratio = now / table.speed_probe.median_ms
    line = (f"speed probe: {now:.3f} ms now, {table.speed_probe.median_ms:.3f} ms when {path} "
            f"was timed: this machine runs {pace(ratio)}")
    if max(ratio, 1 / ratio) > SPEED_WARNING:
        line = (f"warning: {line}; while that lasts, latencies measured here differ from the "
                "table's by about as much: rebuild the table (delete the file) if it persists")
    print(line, file=sys.stderr)
    return ratio


def poor_table_warning(path: Path, validation: Agreement) -> str:
    """One line for a table that failed its own held-out check: what it says, and what to do."""
    return (f"warning: {path} puts only {100 * validation.within_10:.0f}% of its "
            f"{validation.count} held-out networks within +-10% of their measured latency (MAPE "
            f"{100 * validation.mape:.1f}%): the machine was probably busy while it was timed, "
            "and predictions from it are that far off; rebuild it on a quiet machine (delete the "
            "file and run again)")


def calibration_sets(space: SearchSpace, config: ProfileConfig) -> tuple[list[Arch], list[Arch]]:
    """The random networks a profile fits its calibration on, and those it checks it on."""
    fit_on = random_archs(space, config.calibration_networks, config.seed)
    return fit_on, random_archs(space, config.validation_networks, config.seed + 1,
                                exclude=set(fit_on))

"""What several commands share: the space and latency target from the flags, a table's summary,
a run's data set.

`nas profile` imports this module on a device that may have only torch, so the data loader
(`nas.data`, with numpy and Pillow) is imported only by the functions that load data.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.config import DataConfig
from nas.errors import UserError
from nas.flags import from_args
from nas.latency.table import LatencyTable, file_hash
from nas.latency.target import Target, backend_version, default_cores
from nas.run import LutInfo, RunRecord
from nas.space import SearchSpace, load_space, resolve_space
from nas.bundle_timer import cores_text

if TYPE_CHECKING:
    from nas.data import Dataset


def space_from_args(args: argparse.Namespace) -> tuple[Path, SearchSpace]:
    path = resolve_space(args.space)
    return path, load_space(path)


def target_from_args(args: argparse.Namespace, resolution: int) -> Target:
    """This machine as the latency target, timing at ``resolution`` (the run's) unless
    ``--latency-input-size`` says otherwise, pinned to ``--latency-cores`` (default:
    `default_cores`)."""
    cores = args.cores or default_cores(args.threads)
    if cores and len(cores) < args.threads:
        raise UserError(f"--latency-cores {cores_text(cores)} gives {len(cores)} core(s) for "
                        f"{args.threads} threads; give at least one core per thread")
    return from_args(Target, args, input_size=args.input_size or resolution, cores=cores,
                     software=backend_version(args.backend))


def lut_info(path: Path, table: LatencyTable) -> LutInfo:
    c, v = table.calibration, table.validation
    calibration = ("none" if c is None else
                   f"{c.fitted_on} whole networks, RMS error {100 * c.rel_rmse:.1f}% on them")
    if v is not None:
        calibration += (f"; on {v.count} held-out networks {100 * v.within_10:.0f}% within "
                        f"+-10%, MAPE {100 * v.mape:.1f}%")
        if v.poor:
            calibration += (" (poor: timed on a busy machine, most likely; rebuild the table "
                            "on a quiet one)")
    return LutInfo(path=str(path), sha256=file_hash(path), identity=table.identity(),
                   calibration=calibration,
                   speed_probe_ms=None if table.speed_probe is None
                   else table.speed_probe.median_ms)


def load_data(config: DataConfig) -> Dataset:
    """The data set of a run, split and resized as the config says."""
    from nas.data import load_dataset

    return load_dataset(config.dataset, config.data_dir, val_samples=config.val_samples,
                        train_samples=config.train_samples, seed=config.seed,
                        resolution=config.resolution, cache_dir=config.cache_dir,
                        test_dir=config.test_dir)


def run_data(record: RunRecord, data_dir: str | None, **changes: Any) -> Dataset:
    """A run's data set as its record says, read from ``data_dir`` if given (data moved since
    the search), with ``changes`` to its `DataConfig` (e.g. ``train_samples=None``: all)."""
    config = replace(record.data, **changes)
    return load_data(config if data_dir is None else replace(config, data_dir=data_dir))

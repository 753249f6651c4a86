"""``nas profile``: build the latency table of a space on this machine (torch only)."""

from __future__ import annotations

import argparse

from nas.commands.common import lut_info, space_from_args, target_from_args
from nas.config import ProfileConfig
from nas.flags import from_args
from nas.latency.profile import profile_space
from nas.latency.table import default_path
from nas.model import ModelConfig


def run(args: argparse.Namespace) -> int:
    _, space = space_from_args(args)
    target = target_from_args(args, space.resolution)
    path = args.out or default_path(args.results_dir, space.name, target)
    table = profile_space(path, space, target, from_args(ModelConfig, args),
                          from_args(ProfileConfig, args))
    print(f"wrote {path}: {len(table.entries)} layers, target {target.describe()}, "
          f"fingerprint {target.fingerprint()}; calibration: {lut_info(path, table).calibration}")
    return 0

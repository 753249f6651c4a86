"""Do this machine's cores run a network at one speed? The same random networks of the default
space, timed pinned to each core in turn, alternating cores round after round in one process.

Prints, per core, the median latency of each network and its ratio to the fastest core, and
appends them to ``benchmarks/results/cores.jsonl``. A table is true of the cores it was timed on
(`Target.cores`); where cores differ, a process that is not pinned times whichever one the
scheduler gives it. Run::

    .venv/bin/python benchmarks/cores.py [--networks 5] [--rounds 6]
"""

from __future__ import annotations

import argparse
import statistics

from nas.latency.measure import build_runner, time_round_robin
from nas.latency.target import Target
from nas.model import MobileNet, ModelConfig
from nas.space import load_space, random_archs
from nas.bundle_timer import usable_cores
from record import append


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=6, help="alternations over the cores")
    args = parser.parse_args()

    space, model_config = load_space(), ModelConfig(in_channels=1, num_classes=10)
    cores = usable_cores()
    if len(cores) < 2:
        raise SystemExit("error: this process may use fewer than two cores; nothing to compare")
    target = Target.here(input_size=space.resolution)
    archs = random_archs(space, args.networks, seed=1)
    runners = [build_runner(target, MobileNet(a, model_config), model_config.in_channels,
                            space.resolution) for a in archs]
    samples: dict[int, list[list[float]]] = {c: [[] for _ in archs] for c in cores}
    for _ in range(args.rounds):
        for core in cores:
            timings = time_round_robin(runners, threads=1, cores=(core,), warmup=2, rounds=3,
                                       runs=3)
            for per_network, timing in zip(samples[core], timings, strict=True):
                per_network.append(timing.median_ms)
    medians = {c: [statistics.median(s) for s in samples[c]] for c in cores}
    fastest = [min(medians[c][i] for c in cores) for i in range(len(archs))]
    print(f"{target.device}, {target.software}, 1 thread, {space.resolution} px, "
          f"{len(archs)} networks, {args.rounds} rounds alternating cores {cores}")
    ratio = {}
    for core in cores:
        ratios = [m / f for m, f in zip(medians[core], fastest, strict=True)]
        ratio[core] = statistics.median(ratios)
        print(f"core {core}: " + ", ".join(f"{m:.2f}" for m in medians[core])
              + f" ms; median ratio to the fastest core {ratio[core]:.2f}")
    append("cores", {"space": space.name, "resolution": space.resolution,
                     "target": target.describe(), "networks": [a.to_string() for a in archs],
                     "rounds": args.rounds,
                     "median_ms": {str(c): medians[c] for c in cores},
                     "median_ratio_to_fastest": {str(c): ratio[c] for c in cores}}, threads=1)


if __name__ == "__main__":
    main()

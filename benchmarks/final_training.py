"""What a stride plan or a recipe change buys after final training: a run's best network (or
``--arch``), optionally moved onto another space's stride plan (same blocks) and trained with
`nas train`'s recipe, optionally changed (``--weight-decay``, ``--erase``), on the same seed and
data by `nas train`'s code into ``--out``.

The README's comparison of `mobilenetv3-28px` and `mobilenetv3-28px-s1` ran this twice side by
side, one training thread each, on the default run's best network:
``benchmarks/final_training.py results/<run> --space mobilenetv3-28px --out /tmp/s2`` and the
same with ``--space mobilenetv3-28px-s1 --out /tmp/s1``; the recipe comparison ran it side by side
with ``--epochs 30`` and the changed settings; the 20- and 30-epoch stride-1 trainings ran it
alone with trial 29's ``--arch`` and ``--space mobilenetv3-28px-s1 --epochs 20`` (or ``30``)
``--threads 2``. Prints the architecture, the recipe, the test accuracy and the training
seconds, and appends them with the curve to ``benchmarks/results/final_training.jsonl``;
``<out>/final/curve.csv`` has the curve too.
Run: ``.venv/bin/python benchmarks/final_training.py RUN --out DIR [--space SPACE] [--arch ARCH]
[--epochs 10] [--weight-decay W] [--erase P]``.
"""

from __future__ import annotations

import argparse
import csv
import math
from dataclasses import replace
from pathlib import Path

from nas.arch import Arch
from nas.commands.common import run_data
from nas.config import FinalConfig
from nas.final import Training, all_training_images, train_final
from nas.run import BestNetwork, RunDir, RunRecord, load_best
from nas.space import SearchSpace, load_space, resolve_space
from nas.train import use_threads
from record import append


def on_stride_plan(arch: Arch, space: SearchSpace) -> Arch:
    """``arch``'s blocks with ``space``'s stem stride and block strides: the fixed blocks'
    strides, then each stage's stride on its first block (stages are told apart by width, as
    in the shipped spaces) and 1 on the rest."""
    fixed = len(space.fixed_blocks)
    strides = [b.stride for b in space.fixed_blocks]
    previous = None
    for block in arch.blocks[fixed:]:
        stage = next(s for s in space.stages if s.channels == block.out_channels)
        strides.append(stage.stride if block.out_channels != previous else 1)
        previous = block.out_channels
    blocks = tuple(replace(b, stride=s) for b, s in zip(arch.blocks, strides, strict=True))
    return replace(arch, stem=replace(arch.stem, stride=space.stem.stride), blocks=blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished search's folder (its best network)")
    parser.add_argument("--space", help="space whose stride plan to train on (default: as is)")
    parser.add_argument("--arch", help="network to train (default: the run's best); its "
                        "final.json then has trial -1 and no validation accuracy or latency")
    parser.add_argument("--out", type=Path, required=True, help="folder for final/")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--weight-decay", type=float, help="instead of the recipe's")
    parser.add_argument("--erase", type=float, help="random-erasing probability instead")
    args = parser.parse_args()
    record = RunRecord.load(RunDir(args.run))
    best = load_best(RunDir(args.run))[0]
    if args.arch:
        best = BestNetwork(trial=-1, arch=Arch.from_string(args.arch), accuracy=math.nan,
                           latency_ms=math.nan)
    arch = best.arch
    if args.space:
        arch = on_stride_plan(arch, load_space(resolve_space(args.space)))
    recipe = FinalConfig(epochs=args.epochs).recipe()
    changes = {k: v for k, v in (("weight_decay", args.weight_decay), ("erase", args.erase))
               if v is not None}
    training = Training(arch, record.search.seed, replace(recipe, **changes))
    data = all_training_images(run_data(record, None, train_samples=None),
                               record.data_info.mean, record.data_info.std)
    threads = use_threads(args.threads)
    print(f"{arch.to_string()}, {threads} thread(s), recipe {training.config}", flush=True)
    result = train_final(RunDir(args.out), replace(best, arch=arch), data, record.model,
                         training)
    print(f"test accuracy {100 * result.test_accuracy:.2f}% after {result.epochs} epochs, "
          f"{result.train_seconds:.0f} s")
    with RunDir(args.out).final_curve.open() as f:
        curve = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    row = {k: (None if isinstance(v, float) and math.isnan(v) else v)
           for k, v in result.to_dict().items()}
    append("final_training", {**row, "search_run": str(args.run), "space": args.space,
                              "changes": changes, "curve": curve}, threads=threads)


if __name__ == "__main__":
    main()

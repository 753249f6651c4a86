"""What a space's stride plan buys after final training: a run's best network, moved onto another
space's stride plan (same blocks, same seed, same recipe, same data), trained by `nas train`'s
code into ``--out``.

The README's comparison of `mobilenetv3-28px` and `mobilenetv3-28px-s1` ran this twice side by
side, one training thread each, on the default run's best network:
``benchmarks/stem_stride.py results/<run> --space mobilenetv3-28px --out /tmp/s2`` and the same
with ``--space mobilenetv3-28px-s1 --out /tmp/s1``. Prints the architecture, the test accuracy
and the training seconds; ``<out>/final/curve.csv`` has the curve.
Run: ``.venv/bin/python benchmarks/stem_stride.py RUN --space SPACE --out DIR [--epochs 10]``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from nas.arch import Arch
from nas.commands.common import run_data
from nas.config import FinalConfig
from nas.final import Training, all_training_images, train_final
from nas.run import RunDir, RunRecord, load_best
from nas.space import SearchSpace, load_space, resolve_space
from nas.train import use_threads


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
    parser.add_argument("--space", required=True, help="space whose stride plan to train on")
    parser.add_argument("--out", type=Path, required=True, help="folder for final/")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    record = RunRecord.load(RunDir(args.run))
    best = load_best(RunDir(args.run))[0]
    arch = on_stride_plan(best.arch, load_space(resolve_space(args.space)))
    training = Training(arch, record.search.seed, FinalConfig(epochs=args.epochs).recipe())
    data = all_training_images(run_data(record, None, train_samples=None),
                               record.data_info.mean, record.data_info.std)
    print(f"{args.space}: {arch.to_string()}, {use_threads(args.threads)} thread(s)", flush=True)
    result = train_final(RunDir(args.out), replace(best, arch=arch), data, record.model,
                         training)
    print(f"{args.space}: test accuracy {100 * result.test_accuracy:.2f}% after "
          f"{result.epochs} epochs, {result.train_seconds:.0f} s")


if __name__ == "__main__":
    main()

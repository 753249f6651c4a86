"""Training speed of the depthwise convolution's dense form, side by side with the plain one.

For random networks of a space, trains a few steps of the search's recipe with every depthwise
layer as ``nn.Conv2d`` (oneDNN's kernel sweep) and with `nas.depthwise.DepthwiseConv2d` (the
dense form on maps smaller than the kernel), taking turns in one process so that the machine's
drift falls on both; prints milliseconds a step (medians of the rounds) and their ratio per
network, then the median ratio. Then the same for evaluation's batch size (256 against 1000).
Appends the figures to ``benchmarks/results/train_speed.jsonl``.
Run: ``.venv/bin/python benchmarks/train_speed.py [--networks 6] [--rounds 3] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from nas.config import TrainConfig
from nas.data import load_dataset
from nas.depthwise import DepthwiseConv2d
from nas.model import MobileNet, ModelConfig
from nas.space import load_space, random_archs, resolve_space
from nas.train import seeded, start_training, top1_accuracy, train_epoch, use_threads
from record import append, load


def plain(model: nn.Module) -> nn.Module:
    """``model`` with every depthwise layer running nn.Conv2d's own forward."""
    for m in model.modules():
        if isinstance(m, DepthwiseConv2d):
            m.forward = lambda x, m=m: nn.Conv2d.forward(m, x)  # type: ignore[method-assign]
    return model


def step_ms(build: Callable[[], nn.Module], data, config: TrainConfig, steps: int) -> float:
    model = build()
    generator = seeded(0)
    optimizer = start_training(model, config)
    train_epoch(model, optimizer, data, config, generator, epoch=0, step=0, total=1)  # warm-up
    start = time.perf_counter()
    train_epoch(model, optimizer, data, config, generator, epoch=0, step=0, total=steps)
    return 1000 * (time.perf_counter() - start) / steps


def eval_s(model: nn.Module, data, batch: int) -> float:
    start = time.perf_counter()
    top1_accuracy(model, data.val, data, batch)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=None, help="space name or YAML (default: the default)")
    parser.add_argument("--networks", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="timed training steps a turn")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=7, help="seed of the random networks")
    args = parser.parse_args()
    use_threads(args.threads)
    space = load_space(resolve_space(args.space))
    data = load_dataset("fashion-mnist", args.data_dir, train_samples=10_000,
                        resolution=space.resolution)
    config = TrainConfig()
    load_at_start = load()[0]
    ratios = []
    for i, arch in enumerate(random_archs(space, args.networks, args.seed)):
        times: dict[str, list[float]] = {"plain": [], "dense": []}
        for _ in range(args.rounds):
            times["plain"].append(step_ms(
                lambda: plain(MobileNet(arch, ModelConfig())), data, config, args.steps))
            times["dense"].append(step_ms(
                lambda: MobileNet(arch, ModelConfig()), data, config, args.steps))
        plain_ms, dense_ms = (statistics.median(times[k]) for k in ("plain", "dense"))
        ratios.append(plain_ms / dense_ms)
        print(f"network {i}: plain {plain_ms:.0f} ms/step, dense {dense_ms:.0f} ms/step, "
              f"{plain_ms / dense_ms:.2f}x", flush=True)
    model = MobileNet(random_archs(space, 1, args.seed)[0], ModelConfig())
    model.to(memory_format=torch.channels_last)
    evals: dict[int, list[float]] = {1000: [], 256: []}
    for _ in range(args.rounds):
        for batch in evals:
            evals[batch].append(eval_s(model, data, batch))
    eval_1000, eval_256 = (statistics.median(evals[b]) for b in (1000, 256))
    row = {"space": space.name, "networks": args.networks, "rounds": args.rounds,
           "steps": args.steps, "batch": config.batch_size,
           "median_speedup": statistics.median(ratios), "speedups": ratios,
           "eval_s_batch_1000": eval_1000, "eval_s_batch_256": eval_256,
           "val_images": len(data.val), "load_at_start": load_at_start,
           "torch": torch.__version__}
    print(f"median speed-up of a training step: {row['median_speedup']:.2f}x "
          f"({min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)} networks); evaluation of "
          f"{len(data.val)} images: {eval_1000:.2f} s at batch 1000, {eval_256:.2f} s at 256 "
          f"({eval_1000 / eval_256:.2f}x); load average {load_at_start:.2f} at the start")
    append("train_speed", row, threads=args.threads)


if __name__ == "__main__":
    main()

"""How much of the accuracy axis is signal: seed noise and rank fidelity of the search's proxy.

- Seed noise: ``--noise-archs`` architectures spread over the space (evenly spaced in MACs among
  200 uniform samples), each trained with the default proxy under ``--seeds`` seeds; prints the
  between-architecture std of their mean accuracy, the mean within-architecture (seed) std, and
  their ratio (the issue's goal: at least 3).
- Rank fidelity: ``--fidelity-archs`` architectures (the noise ones first), each scored by the
  default proxy (seed 0) and by a training ``--long-epochs`` epochs on every training image;
  prints Spearman and Kendall tau between the two (goal: Spearman >= 0.8).

Every training is appended to ``benchmarks/results/proxy_fidelity.jsonl`` as it finishes, tagged
with the run (printed at the start), then the run's figures; ``--resume RUN`` continues an
interrupted run, training only what it lacks.
Run: ``.venv/bin/python benchmarks/proxy_fidelity.py [--space NAME] [--resume RUN]``
(Fashion-MNIST, the default space).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from nas.arch import Arch
from nas.config import DataConfig, TrainConfig
from nas.data import Dataset, load_dataset
from nas.evaluator import TrainEvaluator
from nas.latency.target import cpu_model
from nas.model import MobileNet, ModelConfig, complexity
from nas.space import load_space, random_archs, resolve_space
from nas.stats import spearman
from rank_stats import kendall_tau
from record import append, read, run_id


def spread_archs(space_path: Path, count: int, seed: int = 0) -> list[Arch]:
    """``count`` architectures evenly spaced in MACs among 200 uniform samples of the space."""
    space = load_space(space_path)
    pool = sorted(random_archs(space, 200, seed),
                  key=lambda a: complexity(MobileNet(a), space.resolution).macs)
    step = (len(pool) - 1) / max(1, count - 1)
    return [pool[round(i * step)] for i in range(count)]


def _data(config: DataConfig, resolution: int) -> Dataset:
    return load_dataset(config.dataset, config.data_dir, val_samples=config.val_samples,
                        train_samples=config.train_samples, seed=config.seed,
                        resolution=resolution)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=None, help="space name or YAML (default: the default)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--noise-archs", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fidelity-archs", type=int, default=12)
    parser.add_argument("--long-epochs", type=int, default=2)
    parser.add_argument("--resume", metavar="RUN", help="continue this run (its first line's "
                        "'run' field) instead of starting a new one")
    args = parser.parse_args()
    space_path = resolve_space(args.space)
    space = load_space(space_path)
    run = args.resume or run_id()
    proxy, data_config = TrainConfig(), DataConfig(data_dir=args.data_dir)
    long_config = replace(proxy, epochs=args.long_epochs)
    archs = spread_archs(space_path, max(args.noise_archs, args.fidelity_archs))
    jobs = [("proxy", i, s) for i in range(args.noise_archs) for s in range(args.seeds)]
    jobs += [("proxy", i, 0) for i in range(args.noise_archs, args.fidelity_archs)]
    jobs += [("long", i, 0) for i in range(args.fidelity_archs)]
    done = {f"{r['kind']}/{r['arch']}/{r['seed']}": r
            for r in read("proxy_fidelity", run=run) if r.get("record") == "training"}
    if args.resume and not done:
        raise SystemExit(f"error: no training of run {run} in benchmarks/results/")
    datasets = {"proxy": _data(data_config, space.resolution),
                "long": _data(replace(data_config, train_samples=None), space.resolution)}
    print(f"{cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{platform.python_version()}; proxy: {proxy.epochs} epochs on "
          f"{len(datasets['proxy'].train)} images; long: {long_config.epochs} epochs on "
          f"{len(datasets['long'].train)} images; run {run}", flush=True)
    for kind, i, seed in jobs:
        key = f"{kind}/{archs[i].to_string()}/{seed}"
        if key in done:
            continue
        data = datasets[kind]
        evaluator = TrainEvaluator(data, ModelConfig(data.in_channels, data.num_classes),
                                   proxy if kind == "proxy" else long_config)
        start = time.perf_counter()
        result = evaluator(archs[i], seed)
        done[key] = append("proxy_fidelity", {
            "record": "training", "space": space.name, "kind": kind, "arch_index": i,
            "seed": seed, "arch": archs[i].to_string(), "accuracy": result.accuracy,
            "seconds": time.perf_counter() - start, "macs": result.macs,
            "epochs": (proxy if kind == "proxy" else long_config).epochs,
            "train_images": len(data.train)}, threads=torch.get_num_threads(), run=run)
        print(f"{kind} arch {i} seed {seed}: {100 * result.accuracy:.2f}% in "
              f"{done[key]['seconds']:.0f} s ({result.macs / 1e6:.1f} M MACs)", flush=True)
    figures = _summarize(list(done.values()), args.noise_archs)
    append("proxy_fidelity", {"record": "summary", "space": space.name, **figures},
           threads=torch.get_num_threads(), run=run)


def _summarize(rows: list[dict], noise_archs: int) -> dict[str, float]:
    """Print the seed noise, the rank fidelity and the training times; return them."""
    figures: dict[str, float] = {}
    proxy = [r for r in rows if r["kind"] == "proxy"]
    by_arch: dict[int, list[float]] = {}
    for r in proxy:
        by_arch.setdefault(r["arch_index"], []).append(100 * r["accuracy"])
    noisy = [v for i, v in sorted(by_arch.items()) if i < noise_archs and len(v) > 1]
    if len(noisy) >= 2:
        between = statistics.stdev(statistics.mean(v) for v in noisy)
        within = statistics.mean(statistics.stdev(v) for v in noisy)
        print(f"seed noise: {len(noisy)} architectures x {len(noisy[0])} seeds; std of the means "
              f"{between:.2f} points, mean seed std {within:.2f} points, ratio "
              f"{between / within:.2f}")
        figures.update(noise_archs=len(noisy), seeds=len(noisy[0]), seed_std=within,
                       between_std=between, ratio=between / within)
        for v in noisy:
            print("  " + " / ".join(f"{a:.2f}" for a in v))
    seed0 = {r["arch_index"]: 100 * r["accuracy"] for r in proxy if r["seed"] == 0}
    long = {r["arch_index"]: 100 * r["accuracy"] for r in rows if r["kind"] == "long"}
    both = sorted(set(seed0) & set(long))
    if len(both) >= 3:
        a, b = [seed0[i] for i in both], [long[i] for i in both]
        print(f"rank fidelity on {len(both)} architectures: Spearman {spearman(a, b):.3f}, "
              f"Kendall tau {kendall_tau(a, b):.3f}; proxy {min(a):.2f}-{max(a):.2f}%, long "
              f"{min(b):.2f}-{max(b):.2f}%")
        figures.update(fidelity_archs=len(both), spearman=spearman(a, b),
                       kendall_tau=kendall_tau(a, b))
    seconds = {k: statistics.median(r["seconds"] for r in rows if r["kind"] == k)
               for k in ("proxy", "long") if any(r["kind"] == k for r in rows)}
    print("median seconds per training: " + ", ".join(f"{k} {v:.0f} s" for k, v in
                                                       seconds.items()))
    figures.update({f"median_{k}_s": v for k, v in seconds.items()})
    return figures


if __name__ == "__main__":
    main()

"""``nas export``: the best network under the budget as JSON, weights, TorchScript and ONNX, with
a model card: provenance, which weights, test accuracy, the runtime settings the latency was
measured under (which the shipped ``time_model.py`` applies), and on the target itself the
measured latency.

Which network and weights: when ``nas train`` completed (``final/final.json``), the network it
trained with its final weights, whichever trial that is (``nas train --trial N`` trains another
front member than best/'s; final.json says which, and so do the printed line and the card);
else best/'s network with the search's proxy weights. Delete final/ to export best/ again."""

from __future__ import annotations

import argparse

import torch

from nas.arch import Arch
from nas.commands.common import run_data
from nas.config import ProfileConfig
from nas.data import DataError
from nas.export import export_network
from nas.final import FinalResult, load_final
from nas.latency.profile import time_networks
from nas.model import MobileNet
from nas.run import BestNetwork, RunDir, RunRecord, fit_weights, load_best
from nas.bundle_timer import probe_lines
from nas.train import top1_accuracy


def run(args: argparse.Namespace) -> int:
    run_dir = RunDir(args.run)
    record = RunRecord.load(run_dir)
    best, state, weights, final = _network(run_dir, record)
    out = args.out or run_dir.export
    card: dict[str, object] = {
        "trial": best.trial, "weights": weights, "validation_accuracy": best.accuracy,
        "predicted_latency_ms": best.latency_ms, "target": record.target.describe(),
        "lut": record.lut.path, "lut_hash": record.lut.sha256, "seed": record.search.seed,
        "data": record.describe_data(),
        "class_names": list(record.data_info.class_names),
        "normalization": {"mean": list(record.data_info.mean),
                          "std": list(record.data_info.std)},
        "input": (f"{record.model.in_channels}x{record.data_info.image_size}x"
                  f"{record.data_info.image_size} float (RGB or grey as trained), scaled to "
                  "[0, 1] then normalized per channel"),
        "resolution": record.describe_resolution(),
        "runtime_settings": record.target.runtime_settings(record.model.in_channels),
        "test_accuracy": _test_accuracy(best.arch, record, state, args.data_dir),
        "final_training": None if final is None else _final_card(final),
        "speed_probe_ms": record.lut.speed_probe_ms,
        **_measured_latency(best, record)}
    diffs = export_network(best.arch, record.model, state, input_size=record.data_info.image_size,
                           formats=args.format, out=out, card=card,
                           class_names=record.data_info.class_names)
    print(f"exported trial {best.trial} to {out}/ ({', '.join(args.format)}); max |diff| vs "
          f"PyTorch: {diffs}")
    return 0


def _network(run_dir: RunDir, record: RunRecord
             ) -> tuple[BestNetwork, dict[str, torch.Tensor], str, FinalResult | None]:
    """The network to export, its weights, for the card which weights they are, and the final
    training's record when they are its; says which in one printed line."""
    final = load_final(run_dir)
    if final is None:
        best, state = load_best(run_dir)
        fit_weights(MobileNet(best.arch, record.model), state, run_dir.best_checkpoint)
        print(f"using the search's proxy weights; run `python -m nas train {run_dir.root}` for "
              "a fully trained network")
        return best, state, f"search proxy, {record.train.epochs:g} epochs", None
    result, state = final
    fit_weights(MobileNet(result.network.arch, record.model), state, run_dir.final_weights)
    print(f"using final weights of trial {result.network.trial}: {result.epochs} epochs, test "
          f"accuracy {100 * result.test_accuracy:.2f}%")
    return result.network, state, f"final training, {result.epochs} epochs", result


def _final_card(result: FinalResult) -> dict[str, object]:
    """The final training on the card: how long, from which seed, and its test accuracy with
    one forward pass (the network as exported and timed) and, apart, with the mirror image too
    (two passes: not what the latency figures time)."""
    return {"epochs": result.epochs, "seed": result.seed,
            "train_seconds": round(result.train_seconds, 1),
            "train_device": result.config.train_device,
            "test_accuracy_single_view": result.test_accuracy,
            "test_accuracy_mirror_tta": result.test_accuracy_mirror,
            "mirror_tta": "each image scored by the mean of its and its mirror image's class "
                          "probabilities: 2 forward passes, twice the latency; the exported "
                          "model runs one"}


def _test_accuracy(arch: Arch, record: RunRecord, state: dict[str, torch.Tensor],
                   data_dir: str | None) -> float | None:
    """Accuracy on the test split, which the search never saw; None if the data is gone."""
    try:
        data = run_data(record, data_dir)
    except DataError as exc:
        print(f"test accuracy not computed: {exc} (pass --data-dir)")
        return None
    model = MobileNet(arch, record.model).to(memory_format=torch.channels_last)
    model.load_state_dict(state)
    accuracy = top1_accuracy(model, data.test, data)
    print(f"test accuracy {100 * accuracy:.2f}% on {len(data.test)} images the search never saw")
    return accuracy


def _measured_latency(best: BestNetwork, record: RunRecord) -> dict[str, object]:
    """Time the network end to end, with the speed probe, when this machine is the run's
    latency target."""
    target = record.target
    if not target.on_this_machine():
        print(f"latency not measured: this machine is not the target ({target.describe()})")
        return {"measured_latency_ms": None,
                "measured_latency_note": "not measured: exported off the target"}
    timings, probe = time_networks([best.arch], target, record.model, ProfileConfig())
    timing = timings[0]
    print(f"latency on this machine (the target): predicted {best.latency_ms:.2f} ms, measured "
          f"{timing.median_ms:.2f} ms ({100 * (timing.median_ms / best.latency_ms - 1):+.1f}%)")
    if record.lut.speed_probe_ms:
        for line in probe_lines(timing.median_ms, probe.median_ms, record.lut.speed_probe_ms,
                                best.latency_ms):
            print(line)
    return {"measured_latency_ms": timing.median_ms,
            "measured_latency_spread_ms": timing.spread_ms,
            "measured_speed_probe_ms": probe.median_ms}

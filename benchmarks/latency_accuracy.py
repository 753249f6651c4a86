"""How well the latency table predicts whole networks it was not calibrated on.

Profiles a space (the default unless ``--space``) afresh on this machine (timing the whole
build: the issue's 15-minute goal), times held-out random networks end to end twice
(round-robin, see `nas.latency.measure`), and prints nn-Meter's figures: share within +-5% and
+-10%, MAPE, Spearman, next to the noise floor (the same figures for the second measurement
against the first), and how much of the error is one shift of the machine's speed since the
table was built. Appends the figures to ``benchmarks/results/latency_accuracy.jsonl``; the
table and a predicted-vs-measured plot go to ``<results-dir>/benchmarks/`` (not committed).
Run: ``.venv/bin/python benchmarks/latency_accuracy.py [--space mobilenetv3]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import plotly.graph_objects as go

from nas.latency.predict import LatencyModel
from nas.config import ProfileConfig
from nas.latency.profile import calibration_sets, profile_space, time_networks
from nas.latency.table import TableError, default_path
from nas.latency.target import Target
from nas.latency.validate import agreement
from nas.model import ModelConfig
from nas.space import load_space, random_archs, resolve_space
from record import append


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=None, help="space name or YAML (default: the default)")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--networks", type=int, default=50, help="held-out networks")
    parser.add_argument("--results-dir", type=Path, default=Path("results"))
    parser.add_argument("--lut", type=Path, help="score this table instead of profiling afresh")
    args = parser.parse_args()

    space = load_space(resolve_space(args.space))
    target = Target.here(backend=args.backend, threads=args.threads,
                         input_size=space.resolution)
    config, model_config = ProfileConfig(), ModelConfig(in_channels=1, num_classes=10)
    path = args.lut or default_path(args.results_dir / "benchmarks", space.name, target)
    if args.lut is None:
        path.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        table = profile_space(path, space, target, model_config, config)
    except TableError as exc:
        raise SystemExit(f"error: {exc}") from None
    profile_s = time.perf_counter() - start
    model = LatencyModel(table, model_config.in_channels, model_config.num_classes)
    fit_on, checked_on = calibration_sets(space, config)
    held_out = random_archs(space, args.networks, seed=10_007, exclude={*fit_on, *checked_on})

    # Two independent round-robin measurements: their agreement is the noise floor, their mean
    # the reference the predictions are scored against.
    first, second = ([t.median_ms for t in time_networks(held_out, target, model_config, config)[0]]
                     for _ in range(2))
    measured = [(a + b) / 2 for a, b in zip(first, second, strict=True)]
    noise = agreement(second, first)
    predictions = [model.predict(a) for a in held_out]
    calibrated = agreement([p.latency_ms for p in predictions], measured)
    # A shift of the whole machine's speed between profiling and now moves every prediction by
    # the same factor: show it, and the scatter that is left without it.
    bias = statistics.median(p.latency_ms / m for p, m in zip(predictions, measured))
    unbiased = agreement([p.latency_ms / bias for p in predictions], measured)
    raw = agreement([p.raw_sum_ms for p in predictions], measured)

    print(f"target: {target.describe()}")
    print(f"table: {path} ({len(table.entries)} layers; calibration on "
          f"{table.calibration.fitted_on if table.calibration else 0} networks)"
          + ("" if args.lut else f", profiled in {profile_s:.0f} s"))
    if table.validation is not None:
        print(f"the profile's own check: {table.validation.describe()}")
    print(f"measured latency of held-out networks: {min(measured):.2f}-{max(measured):.2f} ms, "
          f"median {statistics.median(measured):.2f} ms")
    print(f"calibrated: {calibrated.describe()}")
    print(f"raw sum:    {raw.describe()}")
    print(f"median predicted/measured: {bias:.3f}; calibrated with that shift removed: "
          f"{unbiased.describe()}")
    print(f"noise floor (a second measurement vs the first): {noise.describe()}")
    append("latency_accuracy", {
        "space": space.name, "target": target.describe(), "backend": args.backend,
        "table": str(path), "layers": len(table.entries),
        "profile_s": None if args.lut else profile_s,
        "own_check": None if table.validation is None else table.validation.to_dict(),
        "measured_ms": {"min": min(measured), "median": statistics.median(measured),
                        "max": max(measured)},
        "calibrated": calibrated.to_dict(), "raw_sum": raw.to_dict(),
        "median_predicted_over_measured": bias, "calibrated_without_shift": unbiased.to_dict(),
        "noise_floor": noise.to_dict()}, threads=args.threads)

    out = args.results_dir / "benchmarks" / f"latency-{args.backend}-{target.fingerprint()}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    shown = measured + [p.latency_ms for p in predictions] + [p.raw_sum_ms for p in predictions]
    low, top = min(shown) * 0.9, max(shown) * 1.05
    fig = go.Figure([
        go.Scatter(x=measured, y=[p.latency_ms for p in predictions], mode="markers",
                   name="calibrated", error_y={"array": [p.error_ms for p in predictions]}),
        go.Scatter(x=measured, y=[p.raw_sum_ms for p in predictions], mode="markers",
                   name="raw sum", marker={"symbol": "x", "color": "#999"}),
        *(go.Scatter(x=[low, top], y=[low * f, top * f], mode="lines", name=label,
                     line={"dash": dash, "color": "black", "width": 1})
          for f, label, dash in ((1, "exact", "solid"), (1.1, "+10%", "dot"),
                                 (0.9, "-10%", "dot")))])
    fig.update_layout(title=f"predicted vs measured latency, {target.describe()}",
                      xaxis_title="measured (ms)", yaxis_title="predicted (ms)",
                      xaxis_range=[low, top], yaxis_range=[low, top],
                      template="plotly_white")
    fig.write_html(out, include_plotlyjs=True)
    print(f"plot: {out}")


if __name__ == "__main__":
    main()

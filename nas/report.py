"""Tables (pandas) and plots (plotly) of a study: compute first, then render."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from optuna.trial import FrozenTrial

from nas.pareto import hypervolume, pareto_front
from nas.search import (ARCH, LATENCY, LATENCY_ERR, MACS, OVER_BUDGET, PARAMS, REASON, SECONDS,
                        STATUS, TRAINED)

COLUMNS = ["number", "state", "status", "accuracy", "latency_ms", "latency_err_ms", "macs",
           "params", "train_seconds", "arch", "reason"]


def trials_frame(trials: list[FrozenTrial]) -> pd.DataFrame:
    """One row per finished trial; accuracy only for trained candidates."""
    rows = []
    for t in trials:
        if t.state.is_finished():
            attrs = t.user_attrs
            status = attrs.get(STATUS, "")
            rows.append({
                "number": t.number, "state": t.state.name, "status": status,
                "accuracy": t.values[0] if status == TRAINED else None,
                "latency_ms": attrs.get(LATENCY), "latency_err_ms": attrs.get(LATENCY_ERR),
                "macs": attrs.get(MACS), "params": attrs.get(PARAMS),
                "train_seconds": attrs.get(SECONDS), "arch": attrs.get(ARCH, ""),
                "reason": attrs.get(REASON, "")})
    return pd.DataFrame(rows, columns=COLUMNS)


@dataclass(frozen=True)
class FrontInfo:
    budget_ms: float
    front: pd.DataFrame  # trained, within budget, non-dominated; by increasing latency
    best: pd.Series | None  # most accurate within budget
    trained: int
    within_budget: int  # trained candidates whose latency (on this table) meets the budget
    over_budget: int  # sampled, rejected before training
    failed: int
    hypervolume: float  # of the front, reference (accuracy 0, latency = budget)


def front_info(frame: pd.DataFrame, budget_ms: float) -> FrontInfo:
    trained = frame[frame["status"] == TRAINED]
    feasible = trained[trained["latency_ms"] <= budget_ms].reset_index(drop=True)
    points = list(zip(feasible["accuracy"], feasible["latency_ms"]))
    front = feasible.iloc[pareto_front(points)].reset_index(drop=True)
    best = None
    if len(feasible):
        best = feasible.sort_values(["accuracy", "latency_ms"], ascending=[False, True]).iloc[0]
    return FrontInfo(budget_ms=budget_ms, front=front, best=best, trained=len(trained),
                     within_budget=len(feasible),
                     over_budget=int((frame["status"] == OVER_BUDGET).sum()),
                     failed=int((frame["status"] == "failed").sum()),
                     hypervolume=hypervolume(points, 0.0, budget_ms))


def pareto_figure(frame: pd.DataFrame, info: FrontInfo, title: str) -> go.Figure:
    """Trained candidates with latency error bars, the front, the budget line."""
    trained = frame[frame["status"] == TRAINED]
    inside = trained[trained["latency_ms"] <= info.budget_ms]
    outside = trained[trained["latency_ms"] > info.budget_ms]
    fig = go.Figure()
    for data, name, color in ((inside, "within budget", "#1f77b4"),
                              (outside, "over budget", "#bbbbbb")):
        fig.add_trace(go.Scatter(
            x=data["latency_ms"], y=data["accuracy"] * 100, mode="markers", name=name,
            marker={"color": color, "size": 8},
            error_x={"type": "data", "array": data["latency_err_ms"], "thickness": 1},
            customdata=data[["number", "arch"]],
            hovertemplate="trial %{customdata[0]}<br>%{y:.2f}% at %{x:.2f} ms"
                          "<br>%{customdata[1]}<extra></extra>"))
    fig.add_trace(go.Scatter(x=info.front["latency_ms"], y=info.front["accuracy"] * 100,
                             mode="lines+markers", name="Pareto front",
                             line={"shape": "hv", "color": "#d62728"}, hoverinfo="skip"))
    fig.add_vline(x=info.budget_ms, line_dash="dash", line_color="black",
                  annotation_text=f"budget {info.budget_ms:g} ms")
    fig.update_layout(title=title, xaxis_title="predicted latency (ms)",
                      yaxis_title="validation accuracy (%)", template="plotly_white")
    return fig


def summary_markdown(info: FrontInfo, meta: dict[str, object]) -> str:
    sampled = info.trained + info.over_budget + info.failed
    lines = [f"# Search {meta['run_name']}", "",
             f"- target: {meta['target']}",
             f"- latency table: `{meta['lut']}` (sha256 {meta['lut_hash']})",
             f"- latency calibration: {meta['calibration']}",
             f"- data: {meta['data']}",
             f"- settings: {meta['settings']}",
             f"- budget: {info.budget_ms:g} ms; {sampled} candidates sampled, "
             f"{info.over_budget} excluded by the budget before training "
             f"({100 * info.over_budget / max(1, sampled):.0f}%), {info.trained} trained, "
             f"{info.failed} failed; {info.within_budget} of the {info.trained} trained "
             f"candidates are within the budget on this target",
             f"- hypervolume (accuracy x ms under the budget): {info.hypervolume:.3f}", ""]
    if info.best is None:
        lines.append("No trained candidate is within the budget.")
    else:
        b = info.best
        lines += ["## Best network under the budget", "",
                  f"- trial {int(b['number'])}: validation accuracy {100 * b['accuracy']:.2f}%, "
                  f"predicted latency {b['latency_ms']:.2f} +- {b['latency_err_ms']:.2f} ms, "
                  f"{b['macs'] / 1e6:.1f} M MACs at the training resolution, "
                  f"{b['params'] / 1e6:.2f} M parameters",
                  f"- `{b['arch']}`"]
    lines += ["", "## Pareto front", "", "| trial | accuracy | latency (ms) | arch |",
              "|---|---|---|---|"]
    for _, r in info.front.iterrows():
        lines.append(f"| {int(r['number'])} | {100 * r['accuracy']:.2f}% | "
                     f"{r['latency_ms']:.2f} | `{r['arch']}` |")
    return "\n".join(lines) + "\n"


def write_report(run_dir: Path, frame: pd.DataFrame, budget_ms: float,
                 meta: dict[str, object], suffix: str = "") -> FrontInfo:
    """trials.csv, pareto.csv, pareto.html (plotly.js inlined), summary.md, best/arch.json."""
    info = front_info(frame, budget_ms)
    run_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(run_dir / f"trials{suffix}.csv", index=False)
    info.front.to_csv(run_dir / f"pareto{suffix}.csv", index=False)
    title = f"{meta['run_name']}: accuracy vs latency on {meta['target']}"
    pareto_figure(frame, info, title).write_html(run_dir / f"pareto{suffix}.html",
                                                 include_plotlyjs=True)
    (run_dir / f"summary{suffix}.md").write_text(summary_markdown(info, meta))
    if info.best is not None and not suffix:
        (run_dir / "best").mkdir(exist_ok=True)
        (run_dir / "best" / "arch.json").write_text(json.dumps(
            {"trial": int(info.best["number"]), "arch": info.best["arch"],
             "accuracy": float(info.best["accuracy"]),
             "latency_ms": float(info.best["latency_ms"])}, indent=2))
    return info

"""Tables (pandas) and plots (plotly) of a study: compute first, then render."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from optuna.trial import FrozenTrial

from nas.atomic import atomic_path, write_text
from nas.budget import BudgetRule, Scored, best_of
from nas.config import REFERENCE_MEMBERS
from nas.pareto import hypervolume, noise_margin, pareto_front, within_noise
from nas.references import ReferenceResult
from nas.run import RunDir, RunRecord
from nas.search import (ACCURACY, ARCH, EPOCHS, LATENCY, LATENCY_ERR, MACS, PARAMS, REASON,
                        RUNG, SECONDS, STATUS, Status)
from nas.bundle_timer import pace

COLUMNS = ["number", "state", "status", "rung", "epochs", "reached_epochs", "accuracy",
           "latency_ms", "latency_err_ms", "measured_latency_ms", "macs", "params",
           "train_seconds", "arch", "reason"]


def trials_frame(trials: list[FrozenTrial],
                 measured_ms: Mapping[int, float] | None = None) -> pd.DataFrame:
    """One row per finished trial (one training at one rung); accuracy only for trained ones;
    ``reached_epochs``: the longest training the same architecture got in the study;
    ``measured_latency_ms``: end to end on the target, for the trials in ``measured_ms``."""
    rows = []
    for t in trials:
        if t.state.is_finished():
            attrs = t.user_attrs
            status = attrs.get(STATUS, "")
            rows.append({
                "number": t.number, "state": t.state.name, "status": status,
                "rung": attrs.get(RUNG, 0), "epochs": attrs.get(EPOCHS),
                "accuracy": attrs.get(ACCURACY) if status == Status.TRAINED else None,
                "latency_ms": attrs.get(LATENCY), "latency_err_ms": attrs.get(LATENCY_ERR),
                "measured_latency_ms": (measured_ms or {}).get(t.number),
                "macs": attrs.get(MACS), "params": attrs.get(PARAMS),
                "train_seconds": attrs.get(SECONDS), "arch": attrs.get(ARCH, ""),
                "reason": attrs.get(REASON, "")})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    trained = frame[frame["status"] == Status.TRAINED]
    frame["reached_epochs"] = frame["arch"].map(trained.groupby("arch")["epochs"].max())
    return frame


@dataclass(frozen=True)
class FrontInfo:
    choice: BudgetRule  # budget, margin and measured latencies: which networks may be the best
    front: pd.DataFrame  # trained, within budget, non-dominated; by increasing latency
    best: pd.Series | None  # most accurate within budget that the choice admits
    passed_over: pd.DataFrame  # more accurate than the best, within budget, not admitted
    rungs: tuple[float, ...]  # epochs per rung, cheapest first
    per_rung: tuple[int, ...]  # candidates trained at each rung
    rung_seconds: tuple[float, ...]  # median training seconds of a candidate at each rung
    sampled: int  # candidates drawn (each enters at the cheapest rung)
    trained: int  # at the top rung, whose accuracy the front shows
    within_budget: int  # trained at the top rung, latency (on this table) within the budget
    over_budget: int  # sampled, rejected before training
    failed: int
    hypervolume: float  # of the front, reference (accuracy 0, latency = budget)
    seed_std: float  # seed noise of one accuracy, in points
    within_noise: pd.DataFrame  # trained within budget, indistinguishable from the best
    # 10th and 90th percentile of the sampled candidates' predicted latency: the budgets that
    # would bind on this target (None before any candidate was sampled)
    binding_ms: tuple[float, float] | None
    # Reference networks (name, family, width, accuracy, latency_ms, latency_err_ms, arch), each
    # with the most accurate candidate trained at the top rung at no more latency (rival_*;
    # none: NaN) and whether it beats the reference beyond seed noise (`verdict`, `VERDICTS`).
    references: pd.DataFrame

    @property
    def budget_ms(self) -> float:
        return self.choice.budget_ms


def front_info(frame: pd.DataFrame, choice: BudgetRule, seed_std: float,
               rungs: Sequence[float] = (2.0,),
               references: Sequence[ReferenceResult] = ()) -> FrontInfo:
    """The front, best and counts from the candidates trained at the top rung of ``rungs``, and
    how each reference network compares with them."""
    budget_ms = choice.budget_ms
    top = len(rungs) - 1
    done = frame[frame["status"] == Status.TRAINED]
    trained = done[done["rung"] == top]
    feasible = trained[trained["latency_ms"] <= budget_ms].reset_index(drop=True)
    points = list(zip(feasible["accuracy"], feasible["latency_ms"]))
    front = feasible.iloc[pareto_front(points)].reset_index(drop=True)
    scored = [Scored(int(n), a, ms) for n, a, ms in
              zip(feasible["number"], feasible["accuracy"], feasible["latency_ms"])]
    chosen = best_of(scored, choice)
    best = None if chosen is None else feasible[feasible["number"] == chosen.trial].iloc[0]
    above = [s.trial for s in scored if chosen is None or s.rank() > chosen.rank()]
    passed_over = feasible[feasible["number"].isin(above)].sort_values(
        ["accuracy", "latency_ms", "number"], ascending=[False, True, True])
    tied = feasible.iloc[:0]
    if best is not None:
        mask = within_noise(list(100 * feasible["accuracy"]), 100 * best["accuracy"], seed_std)
        tied = feasible[mask].sort_values("latency_ms").reset_index(drop=True)
    by_rung = [done[done["rung"] == r] for r in range(len(rungs))]
    return FrontInfo(choice=choice, front=front, best=best, passed_over=passed_over,
                     rungs=tuple(rungs),
                     per_rung=tuple(len(r) for r in by_rung),
                     rung_seconds=tuple(float(r["train_seconds"].median()) for r in by_rung),
                     sampled=int((frame["rung"] == 0).sum()), trained=len(trained),
                     within_budget=len(feasible),
                     over_budget=int((frame["status"] == Status.OVER_BUDGET).sum()),
                     failed=int((frame["status"] == Status.FAILED).sum()),
                     hypervolume=hypervolume(points, 0.0, budget_ms), seed_std=seed_std,
                     within_noise=tied, binding_ms=_binding(frame),
                     references=_rivals(trained, references, seed_std))


def _binding(frame: pd.DataFrame) -> tuple[float, float] | None:
    """The 10th to 90th percentile of the sampled candidates' predicted latency."""
    sampled = frame.loc[frame["rung"] == 0, "latency_ms"].dropna()
    if sampled.empty:
        return None
    return float(sampled.quantile(0.1)), float(sampled.quantile(0.9))


# What the best candidate at no more latency than a reference says about it, as the summary
# words it: "beaten" only when more accurate beyond seed noise (`nas.pareto.noise_margin`).
VERDICTS = {
    "beaten": "beaten beyond seed noise",
    "within noise": "not beaten beyond seed noise",
    "ahead": "not beaten, more accurate beyond seed noise",
    "unmatched": "not beaten",
}


def verdict(gap_points: float | None, seed_std: float) -> str:
    """A `VERDICTS` key for the best candidate at no more latency being ``gap_points`` more
    accurate than a reference (None: no candidate was trained at that latency or less)."""
    if gap_points is None:
        return "unmatched"
    margin = noise_margin(seed_std)
    return "beaten" if gap_points > margin else "ahead" if gap_points < -margin else \
        "within noise"


def _rivals(trained: pd.DataFrame, references: Sequence[ReferenceResult],
            seed_std: float) -> pd.DataFrame:
    """Each reference beside the most accurate candidate at no more latency than it."""
    rows = []
    for ref in references:
        rivals = trained[trained["latency_ms"] <= ref.latency_ms]
        rival = rivals.sort_values(["accuracy", "latency_ms"], ascending=[False, True]).head(1)
        found = len(rival) > 0
        gap = 100 * (float(rival["accuracy"].iloc[0]) - ref.accuracy) if found else None
        family, width = REFERENCE_MEMBERS.get(ref.name, (ref.name, 1.0))
        rows.append({"name": ref.name, "family": family, "width": width,
                     "accuracy": ref.accuracy, "latency_ms": ref.latency_ms,
                     "latency_err_ms": ref.latency_err_ms, "arch": ref.arch,
                     "rival_number": rival["number"].iloc[0] if found else None,
                     "rival_accuracy": rival["accuracy"].iloc[0] if found else None,
                     "rival_latency_ms": rival["latency_ms"].iloc[0] if found else None,
                     "gap_points": gap, "verdict": verdict(gap, seed_std)})
    return pd.DataFrame(rows, columns=["name", "family", "width", "accuracy", "latency_ms",
                                       "latency_err_ms", "arch", "rival_number", "rival_accuracy",
                                       "rival_latency_ms", "gap_points", "verdict"])


def family_curves(references: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per family with more than one member among ``references`` (`FrontInfo.references`), its
    members by increasing latency: the curve a user gets by scaling that network's width."""
    return {family: members.sort_values(["latency_ms", "width"]).reset_index(drop=True)
            for family, members in references.groupby("family", sort=False)
            if len(members) > 1}


@dataclass(frozen=True)
class PlotFrame:
    """What the Pareto plot's axes show: the trained candidates at the top rung and the
    references, padded; the budget drawn as a line inside the latency range, else marked at the
    edge it lies beyond."""

    latency_ms: tuple[float, float]
    accuracy: tuple[float, float]  # in %
    budget_edge: str | None  # "right" or "left" when the budget lies off the latency range


PAD = 0.08  # share of a range added on each side
FAMILY_DASHES = ("dash", "dot", "dashdot", "longdash")  # one per family curve, in their order


def plot_frame(frame: pd.DataFrame, info: FrontInfo) -> PlotFrame:
    """The axes' ranges: from the top rung's candidates and the references with their error
    bars, not from the cheaper rungs, whose short trainings score far lower."""
    done = frame[(frame["status"] == Status.TRAINED) & (frame["rung"] == len(info.rungs) - 1)]
    refs = info.references
    columns = ["latency_ms", "latency_err_ms"]
    ms = pd.concat([done[columns], refs[columns]])
    y = [*(done["accuracy"] * 100), *(refs["accuracy"] * 100)]
    if not y:  # nothing trained yet: the budget and the whole accuracy scale
        return PlotFrame((0.0, 1.2 * info.budget_ms), (0.0, 100.0), None)
    err = ms["latency_err_ms"].fillna(0.0)
    low, high = float((ms["latency_ms"] - err).min()), float((ms["latency_ms"] + err).max())
    pad = PAD * max(high - low, 0.1 * high)
    latency = (max(0.0, low - pad), high + pad)
    edge = ("right" if info.budget_ms > latency[1] else
            "left" if info.budget_ms < latency[0] else None)
    bottom, top = min(y) - info.seed_std, max(y) + info.seed_std
    pad = PAD * max(top - bottom, 1.0)
    return PlotFrame(latency, (max(0.0, bottom - pad), min(100.0, top + pad)), edge)


def pareto_figure(frame: pd.DataFrame, info: FrontInfo, title: str) -> go.Figure:
    """Candidates trained at the top rung with latency and accuracy error bars, those that
    stopped at a cheaper rung (lower accuracy: shorter training), the reference networks, the
    front and the budget line; below, on the same latency axis, the candidates rejected before
    training (predicted latency only). The axes frame the top rung and the references
    (`plot_frame`); the cheaper rungs are hidden until their legend entry is clicked."""
    axes = plot_frame(frame, info)
    done = frame[frame["status"] == Status.TRAINED]
    top = len(info.rungs) - 1
    trained = done[done["rung"] == top]
    inside = trained[trained["latency_ms"] <= info.budget_ms]
    outside = trained[trained["latency_ms"] > info.budget_ms]
    traces = [(inside, "within budget", "#1f77b4"), (outside, "over budget", "#bbbbbb")]
    if len(info.rungs) > 1:
        stopped = done[done["reached_epochs"] < info.rungs[-1]]
        traces.insert(0, (stopped, "stopped at a cheaper rung", "#c6dbef"))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.85, 0.15],
                        vertical_spacing=0.04)
    for data, name, color in traces:
        fig.add_trace(go.Scatter(
            x=data["latency_ms"], y=data["accuracy"] * 100, mode="markers", name=name,
            visible="legendonly" if name.startswith("stopped") else True,
            marker={"color": color, "size": 8},
            error_x={"type": "data", "array": data["latency_err_ms"], "thickness": 1},
            error_y={"type": "constant", "value": info.seed_std, "thickness": 1},
            customdata=data[["number", "arch"]],
            hovertemplate="trial %{customdata[0]}<br>%{y:.2f}% at %{x:.2f} ms"
                          "<br>%{customdata[1]}<extra></extra>"), row=1, col=1)
    refs = info.references
    for dash, (family, members) in zip(FAMILY_DASHES, family_curves(refs).items()):
        fig.add_trace(go.Scatter(
            x=members["latency_ms"], y=members["accuracy"] * 100, mode="lines",
            name=f"{family} family (width {', '.join(f'{w:g}' for w in members['width'])})",
            line={"color": "#2ca02c", "dash": dash}, hoverinfo="skip"), row=1, col=1)
    if len(refs):
        fig.add_trace(go.Scatter(
            x=refs["latency_ms"], y=refs["accuracy"] * 100, mode="markers+text",
            name="reference networks (same proxy, same table)", text=refs["name"],
            textposition="top center", marker={"color": "#2ca02c", "size": 13, "symbol": "star"},
            error_x={"type": "data", "array": refs["latency_err_ms"], "thickness": 1},
            error_y={"type": "constant", "value": info.seed_std, "thickness": 1},
            hovertemplate="%{text}<br>%{y:.2f}% at %{x:.2f} ms<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=info.front["latency_ms"], y=info.front["accuracy"] * 100,
                             mode="lines+markers", name="Pareto front",
                             line={"shape": "hv", "color": "#d62728"}, hoverinfo="skip"),
                  row=1, col=1)
    rejected = frame[frame["status"] == Status.OVER_BUDGET]
    fig.add_trace(go.Scatter(
        x=rejected["latency_ms"], y=[0] * len(rejected), mode="markers",
        name=f"rejected before training ({len(rejected)}): predicted latency only",
        marker={"color": "#7f7f7f", "symbol": "line-ns-open", "size": 12},
        customdata=rejected[["number", "arch"]],
        hovertemplate="trial %{customdata[0]} at %{x:.2f} ms (not trained)"
                      "<br>%{customdata[1]}<extra></extra>"), row=2, col=1)
    if rejected.empty:
        fig.add_annotation(x=0.5, y=0.5, xref="x2 domain", yref="y2 domain", showarrow=False,
                           text="no candidate rejected before training: every sampled one was "
                                "within the budget", font={"color": "#7f7f7f"})
    if axes.budget_edge is None:
        fig.add_vline(x=info.budget_ms, line_dash="dash", line_color="black", row=1, col=1,
                      annotation_text=f"budget {info.budget_ms:g} ms")
        fig.add_vline(x=info.budget_ms, line_dash="dash", line_color="black", row=2, col=1)
    else:
        right = axes.budget_edge == "right"
        fig.add_annotation(x=1.0 if right else 0.0, y=1.0, xref="x domain", yref="y domain",
                           xanchor="right" if right else "left", yanchor="top", showarrow=False,
                           text=(f"budget {info.budget_ms:g} ms {'→' if right else '←'} "
                                 "(off the axis: every candidate here is "
                                 f"{'within' if right else 'over'} it)"), row=1, col=1)
    fig.update_yaxes(title_text=f"validation accuracy (%), +- seed std {info.seed_std:g}",
                     range=list(axes.accuracy), row=1, col=1)
    fig.update_yaxes(showticklabels=False, title_text="rejected", row=2, col=1)
    fig.update_xaxes(range=list(axes.latency_ms), row=1, col=1)
    fig.update_xaxes(title_text="predicted latency (ms)", range=list(axes.latency_ms), row=2,
                     col=1)
    fig.update_layout(title=title, template="plotly_white", height=700)
    return fig


def budget_figure(frame: pd.DataFrame, info: FrontInfo, title: str) -> go.Figure:
    """The best validation accuracy reachable under each budget, from the candidates trained at
    the top rung (the front of all of them, as a staircase): what one more millisecond buys."""
    done = frame[frame["status"] == Status.TRAINED]
    trained = done[done["rung"] == len(info.rungs) - 1].reset_index(drop=True)
    stairs = trained.iloc[pareto_front(list(zip(trained["accuracy"], trained["latency_ms"])))]
    x = [*stairs["latency_ms"], *stairs["latency_ms"].tail(1) * 1.1]
    y = [*stairs["accuracy"] * 100, *stairs["accuracy"].tail(1) * 100]
    fig = go.Figure(go.Scatter(
        x=x, y=y, mode="lines+markers", line={"shape": "hv", "color": "#d62728"},
        name="best accuracy under the budget", customdata=[*stairs["number"],
                                                          *stairs["number"].tail(1)],
        hovertemplate="under %{x:.2f} ms: %{y:.2f}% (trial %{customdata})<extra></extra>"))
    fig.add_vline(x=info.budget_ms, line_dash="dash", line_color="black",
                  annotation_text=f"budget {info.budget_ms:g} ms")
    fig.update_layout(title=title, xaxis_title="latency budget (ms, predicted)",
                      yaxis_title="best validation accuracy reachable (%)",
                      template="plotly_white", height=450)
    return fig


def _html(figures: Sequence[go.Figure]) -> str:
    """One offline page (plotly.js inlined once) holding ``figures`` in order."""
    parts = [f.to_html(full_html=False, include_plotlyjs=i == 0) for i, f in enumerate(figures)]
    return "<html><head><meta charset=\"utf-8\"></head><body>" + "".join(parts) + "</body></html>"


def summary_markdown(info: FrontInfo, record: RunRecord) -> str:
    lines = [f"# Search {record.name}", "",
             f"- target: {record.target.describe()}",
             f"- latency table: `{record.lut.path}` (sha256 {record.lut.sha256})",
             f"- latency calibration: {record.lut.calibration}",
             f"- data: {record.describe_data()}",
             f"- resolution: {record.describe_resolution()}",
             f"- settings: {record.describe_settings()}",
             f"- budget: {info.budget_ms:g} ms{_margin_text(info.choice)}; {info.sampled} "
             "candidates sampled, "
             f"{info.over_budget} excluded by the budget before training "
             f"({100 * info.over_budget / max(1, info.sampled):.0f}%), {info.failed} failed; "
             f"{info.within_budget} of the {info.trained} candidates trained at the top rung "
             f"are within the budget on this target{_binding_text(info)}",
             f"- rungs: {_rungs_line(info, record)}",
             f"- hypervolume (accuracy x ms under the budget): {info.hypervolume:.3f}", ""]
    if info.best is None:
        lines.append("No trained candidate is within the budget.")
    else:
        b = info.best
        lines += ["## Best network under the budget", "",
                  f"- trial {int(b['number'])}: validation accuracy {100 * b['accuracy']:.2f}%, "
                  f"predicted latency {b['latency_ms']:.2f} +- {b['latency_err_ms']:.2f} ms"
                  f"{_measured_text(b)}, {b['macs'] / 1e6:.1f} M MACs at the training resolution, "
                  f"{b['params'] / 1e6:.2f} M parameters",
                  f"- `{b['arch']}`"]
    lines += _verified_lines(info, record.lut.speed_probe_ms)
    lines += _reference_lines(info)
    lines += _noise_lines(info)
    lines += ["", "## Pareto front", "", "| trial | accuracy | latency (ms) | arch |",
              "|---|---|---|---|"]
    for _, r in info.front.iterrows():
        lines.append(f"| {int(r['number'])} | {100 * r['accuracy']:.2f}% | "
                     f"{r['latency_ms']:.2f} | `{r['arch']}` |")
    return "\n".join(lines) + "\n"


def _binding_text(info: FrontInfo) -> str:
    """When the budget excluded nothing, the budgets that would have bound here."""
    if info.over_budget or info.binding_ms is None or not info.sampled:
        return ""
    low, high = info.binding_ms
    return (f"; the budget binds nothing here: budgets of {low:.2f} to {high:.2f} ms would "
            "(10th to 90th percentile of the sampled candidates' predicted latency)")


def _margin_text(choice: BudgetRule) -> str:
    if not choice.margin:
        return ""
    return (f" (safety margin {100 * choice.margin:g}%: the best network's latency must be "
            f"within {choice.budget_ms / (1 + choice.margin):.2f} ms)")


def _measured_text(row: pd.Series) -> str:
    measured = row["measured_latency_ms"]
    return "" if pd.isna(measured) else f", measured {measured:.2f} ms on the target"


def _verified_lines(info: FrontInfo, table_probe_ms: float | None) -> list[str]:
    """Front members under the budget as predicted and as measured on the target, how fast the
    target ran then against when its table was timed (the speed probe), and the more accurate
    networks the measurements or the margin passed over."""
    lines = ["", "## Verified on the target", ""]
    timed = info.front[info.front["measured_latency_ms"].notna()]
    if timed.empty:
        return [*lines, "- not verified: the search did not end on the target machine, so the "
                        "best network is chosen on predicted latency"]
    lines += ["| trial | accuracy | predicted (ms) | measured (ms) | measured / predicted |",
              "|---|---|---|---|---|"]
    for _, r in timed.iterrows():
        lines.append(f"| {int(r['number'])} | {100 * r['accuracy']:.2f}% | "
                     f"{r['latency_ms']:.2f} | {r['measured_latency_ms']:.2f} | "
                     f"{r['measured_latency_ms'] / r['latency_ms']:.2f} |")
    lines.append("")
    now = info.choice.measured_probe_ms
    if now and table_probe_ms:
        ratio = now / table_probe_ms
        lines.append(f"- speed probe: {now:.3f} ms during these measurements, {table_probe_ms:.3f} "
                     f"ms when the table was timed: the target ran {pace(ratio)}; divided by "
                     f"{ratio:.2f}, a measured / predicted ratio leaves out that change of speed "
                     "and is the table's own error")
    for _, r in info.passed_over.iterrows():
        latency = info.choice.latency_ms(int(r["number"]), r["latency_ms"])
        how = "measured" if pd.notna(r["measured_latency_ms"]) else "predicted"
        lines.append(f"- trial {int(r['number'])} ({100 * r['accuracy']:.2f}%) was passed over: "
                     f"{how} at {latency:.2f} ms, over the budget of {info.budget_ms:g} ms"
                     f"{_margin_text(info.choice)}")
    if info.best is not None and len(info.passed_over):
        lines.append(f"- so the best network under the budget is trial {int(info.best['number'])}")
    return lines


def _reference_lines(info: FrontInfo) -> list[str]:
    """Each reference beside the best candidate at no more latency, and whether it is beaten."""
    if info.references.empty:
        return []
    lines = ["", "## Reference networks", "",
             "Hand-designed MobileNetV3s adapted to the run's resolution, trained with the same "
             "proxy and predicted by the same table as the candidates.", "",
             "| network | accuracy | predicted (ms) | best candidate at no more latency |",
             "|---|---|---|---|"]
    verdicts = []
    margin = noise_margin(info.seed_std)
    for _, r in info.references.iterrows():
        said = f"- {r['name']}: {VERDICTS[r['verdict']]}: "
        if r["verdict"] == "unmatched":
            rival = "none trained"
            verdicts.append(f"{said}no candidate was trained at {r['latency_ms']:.2f} ms or less")
        else:
            rival = (f"trial {int(r['rival_number'])}: {100 * r['rival_accuracy']:.2f}% at "
                     f"{r['rival_latency_ms']:.2f} ms")
            noise = "within" if r["verdict"] == "within noise" else "beyond"
            verdicts.append(f"{said}trial {int(r['rival_number'])} is {r['gap_points']:+.2f} "
                            f"points at no more latency ({noise} seed noise, {margin:.2f} points)")
        lines.append(f"| {r['name']} | {100 * r['accuracy']:.2f}% | {r['latency_ms']:.2f} | "
                     f"{rival} |")
    beaten = int((info.references["verdict"] == "beaten").sum())
    return [*lines, "", f"{beaten} of {len(info.references)} beaten beyond seed noise by a "
                        "candidate at no more latency:", "", *verdicts]


def _rungs_line(info: FrontInfo, record: RunRecord) -> str:
    counts = ", ".join(f"{n} trained at {e:g} epochs" + (f" (median {t:.1f} s each)" if n else "")
                       for n, e, t in zip(info.per_rung, info.rungs, info.rung_seconds))
    if len(info.rungs) == 1:
        return f"{counts} (single fidelity)"
    return (f"{counts} (successive halving: 1 in {record.search.eta} promoted per latency "
            f"band, up to {record.search.bands} bands of at least {record.search.eta}; the front "
            "and the best come from the top rung)")


def _noise_lines(info: FrontInfo) -> list[str]:
    """Which candidates the seed noise cannot tell apart from the best, and the fastest of them."""
    margin = noise_margin(info.seed_std)
    lines = ["", "## Noise", "",
             f"- seed noise: {info.seed_std:g} points (std of one candidate's validation "
             f"accuracy over training seeds); two accuracies differ by more than noise when "
             f"they are more than {margin:.2f} points apart (2 x sqrt(2) x the seed std)"]
    if info.best is None:
        return lines
    others = info.within_noise[info.within_noise["number"] != info.best["number"]]
    if others.empty:
        lines.append(f"- the best network is ahead of every other candidate under the budget by "
                     f"more than {margin:.2f} points")
        return lines
    fastest = info.within_noise.iloc[0]
    trials = ", ".join(str(int(n)) for n in info.within_noise["number"])
    lines.append(f"- within noise of the best ({len(info.within_noise)} candidates: trials "
                 f"{trials}): the search cannot rank them; the fastest of them is trial "
                 f"{int(fastest['number'])} at {fastest['latency_ms']:.2f} ms "
                 f"({100 * fastest['accuracy']:.2f}%)")
    return lines


def write_report(run: RunDir, frame: pd.DataFrame, choice: BudgetRule, record: RunRecord,
                 suffix: str = "", references: Sequence[ReferenceResult] = ()) -> FrontInfo:
    """trials.csv, pareto.csv, pareto.html (two figures, plotly.js inlined) and summary.md, each
    written atomically; ``suffix`` names a re-scored report beside the run's own."""
    info = front_info(frame, choice, record.search.seed_std,
                      record.search.rungs(record.train.epochs), references)
    with atomic_path(run.trials_csv(suffix)) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(run.pareto_csv(suffix)) as tmp:
        info.front.to_csv(tmp, index=False)
    where = record.target.describe()
    write_text(run.pareto_html(suffix), _html([
        pareto_figure(frame, info, f"{record.name}: accuracy vs latency<br><sub>on {where}</sub>"),
        budget_figure(frame, info,
                      f"{record.name}: best accuracy under each budget<br><sub>on {where}</sub>")]))
    write_text(run.summary(suffix), summary_markdown(info, record))
    return info

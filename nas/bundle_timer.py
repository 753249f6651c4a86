"""Time an exported model in a fresh process, under the settings its latency table was timed with.

``nas export`` copies this file, unchanged, beside the model as ``time_model.py``. It needs only
torch (and onnxruntime for an ONNX model), never the ``nas`` package: it reads
``model_card.json`` next to it, applies the card's ``runtime_settings`` to this process (the
CPU cores it is pinned to, the allocator's mallopt settings, the thread count, eval mode under
``torch.inference_mode``), warms the model up, times single passes and prints their median and
interquartile range next to the card's prediction. Where the card has the table's speed probe
(`speed_probe`), the passes take turns with the probe's, and the script also prints how much
faster or slower the machine runs now than when the table was timed, and the model's time
rescaled to that speed::

    python time_model.py [--runs 50] [--warmup 20] [--plain] [--cores 1]

``--plain`` leaves the C library's allocator and the process's cores as they are, as a process
that sets nothing runs; ``--cores`` pins to other cores than the card's. The cores of one machine
can run at different speeds (on the development VM up to 1.45x apart), so an unpinned process
times whichever core the scheduler gave it.

A bundle holds this one file, so it is also the one copy of what a bundle and the package must do
alike, and the package imports it: the runners, the mallopt call and core pinning
(`nas.latency.measure`), the speed probe (`nas.latency.profile`), and the lines that describe a
card's settings and the probe's reading (model cards, reports). What only the package needs stays
in the package: which allocator settings exist and what they set is `nas.latency.target`'s, and
reaches this script through the card. So the table and the bundle apply one allocator setting and
one forward-pass mode; with the default ``torchscript`` target the table timed the very
TorchScript program the bundle holds.
A table timed on eager PyTorch (``--backend torch``) has no such file in the bundle: the script
then times the TorchScript program and says that it may run faster.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

Runner = Callable[[], object]

TORCH_MODE = "module.eval(), forward under torch.inference_mode()"


def apply_mallopt(settings: Sequence[Mapping[str, Any]]) -> bool:
    """Set each glibc mallopt parameter, process-wide; False where the C library has no
    ``mallopt`` (not glibc) or refuses one."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    return all([bool(mallopt(int(s["number"]), int(s["value"]))) for s in settings])


def usable_cores() -> tuple[int, ...]:
    """The CPU cores this process may run on, ascending; () where the platform cannot pin
    (no ``sched_setaffinity``, e.g. macOS)."""
    if not hasattr(os, "sched_getaffinity"):
        return ()
    return tuple(sorted(os.sched_getaffinity(0)))


def pin_process(cores: Iterable[int]) -> None:
    """Run every thread of this process (torch's intra-op pool included) on ``cores`` only;
    threads started later inherit it."""
    chosen = set(cores)
    try:
        threads = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: this thread only
        threads = [0]
    for thread in threads:
        try:
            os.sched_setaffinity(thread, chosen)
        except ProcessLookupError:  # the thread ended meanwhile
            pass


def cores_text(cores: Sequence[int]) -> str:
    return ",".join(str(c) for c in cores)


def onnxruntime_options(threads: int) -> dict[str, int]:
    """ONNX Runtime session options for a target with ``threads`` intra-op threads."""
    return {"intra_op_num_threads": threads, "inter_op_num_threads": 1, "log_severity_level": 3}


ONNXRUNTIME_PROVIDERS = ["CPUExecutionProvider"]


def backend_version(backend: str) -> str:
    """The installed version of a backend (``torch`` or ``onnxruntime``), as a table records it."""
    if backend == "onnxruntime":
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"
    return f"torch {torch.__version__}"


def torch_runner(module: torch.nn.Module, x: torch.Tensor) -> Runner:
    """One forward pass of ``module`` on ``x`` as `TORCH_MODE` says."""
    module = module.eval()

    def run() -> object:
        with torch.inference_mode():
            return module(x)

    return run


def onnxruntime_runner(model: bytes | str, x: torch.Tensor, threads: int) -> Runner:
    """One inference of an ONNX model (bytes or a path) on ``x`` on ONNX Runtime's CPU
    provider, with `onnxruntime_options`; the input is the model's first."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    for name, value in onnxruntime_options(threads).items():
        setattr(options, name, value)
    session = ort.InferenceSession(model, options, providers=ONNXRUNTIME_PROVIDERS)
    feed = {session.get_inputs()[0].name: x.numpy()}
    return lambda: session.run(None, feed)


# The speed probe: a fixed network's input shape. Its pass takes a few tenths of a millisecond.
PROBE_SHAPE = (1, 1, 28, 28)


def speed_probe() -> torch.nn.Module:
    """A fixed small network of the pieces the searched ones are made of (a strided stem,
    inverted residuals with 5x5 and 7x7 depthwise kernels, ReLU and h-swish, a head), with
    seeded weights, in eval mode.

    A table times it in the same rounds as its whole networks and keeps its median; this
    script times it again, in turns with the model. The ratio of the two says how much faster
    or slower this machine runs now than when the table was timed (another core, another
    machine, a host busier than then), apart from the table's own error.
    """
    nn = torch.nn
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        probe = nn.Sequential(
            nn.Conv2d(1, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish(),
            nn.Conv2d(16, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 5, 1, 2, groups=64, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 24, 1, bias=False), nn.BatchNorm2d(24),
            nn.Conv2d(24, 96, 1, bias=False), nn.BatchNorm2d(96), nn.Hardswish(),
            nn.Conv2d(96, 96, 7, 2, 3, groups=96, bias=False), nn.BatchNorm2d(96),
            nn.Hardswish(), nn.Conv2d(96, 40, 1, bias=False), nn.BatchNorm2d(40),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(40, 10))
    return probe.eval()


def probe_runner() -> Runner:
    """One pass of the speed probe, as `TORCH_MODE` says."""
    x = torch.randn(*PROBE_SHAPE, generator=torch.Generator().manual_seed(0))
    return torch_runner(speed_probe(), x)


def median_and_iqr(samples: Sequence[float]) -> tuple[float, float]:
    """Median and interquartile range of at least two timings."""
    if len(samples) < 2:
        raise ValueError("need at least two timings to summarize")
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return statistics.median(samples), q3 - q1


def environment(settings: Sequence[Mapping[str, Any]]) -> str:
    """The mallopt settings as the environment variables that set them in a new glibc process."""
    return " ".join(f"{s['environment']}={s['value']}" for s in settings)


def describe(settings: Mapping[str, Any]) -> list[str]:
    """Readable lines for a card's runtime settings (MODEL_CARD.md and this script's output)."""
    shape = "x".join(str(n) for n in settings["input_shape"])
    cores = settings.get("cores") or []
    lines = [f"backend: {settings['software'] or settings['backend']} on {settings['device']}",
             f"threads: {settings['threads']}",
             (f"cores: pinned to {cores_text(cores)} (as `taskset -c {cores_text(cores)}` does)"
              if cores else "cores: not pinned"),
             f"input: {shape} (batch {settings['batch']}, {settings['input_size']} px), "
             f"{settings['dtype']}, {settings['memory_format']}"]
    if "torch_mode" in settings:
        lines.append(f"mode: {settings['torch_mode']}")
    if "onnxruntime_session" in settings:
        lines.append(f"onnxruntime session: {settings['onnxruntime_session']}, providers "
                     f"{settings['onnxruntime_providers']}")
    allocator = settings["allocator"]
    if allocator["mallopt"]:
        lines.append(f"allocator: {allocator['name']}, glibc mallopt "
                     + ", ".join(f"{s['parameter']}={s['value']}" for s in allocator["mallopt"])
                     + f"; in a process of your own: {environment(allocator['mallopt'])}")
    else:
        lines.append(f"allocator: {allocator['name']} (the C library's defaults)")
    return lines


class BundleError(Exception):
    """A bundle this script cannot time: said in one line, exit status 2."""


def _choose_model(here: Path, backend: str) -> tuple[Path, str]:
    """The exported file to time and the backend it runs on: the target backend's own format
    where it was exported (an eager ``torch`` target has none: its TorchScript), else the
    other one."""
    files = {"torchscript": here / "model.torchscript.pt", "onnxruntime": here / "model.onnx"}
    own = "onnxruntime" if backend == "onnxruntime" else "torchscript"
    for name in (own, *(b for b in files if b != own)):
        if files[name].is_file():
            return files[name], name
    raise BundleError(f"{here} has neither model.torchscript.pt nor model.onnx; export with "
                      "--format torchscript or onnx")


def _runner(path: Path, backend: str, x: torch.Tensor, threads: int) -> Runner:
    if backend == "onnxruntime":
        return onnxruntime_runner(str(path), x, threads)
    return torch_runner(torch.jit.load(str(path)), x)


def _notes(path: Path, backend: str, settings: Mapping[str, Any]) -> list[str]:
    """Where this timing differs from the table's by construction."""
    if settings["backend"] == "torch" and backend == "torchscript":
        return [f"the table timed the eager PyTorch module; {path.name} runs on TorchScript's "
                "interpreter, which skips eager's per-layer Python calls (most of a pass at "
                "small inputs), so it can run faster"]
    if backend != settings["backend"]:
        return [f"timing {path.name} on {backend}; the table was timed on {settings['backend']}"]
    if backend_version(backend) != settings["software"]:
        return [f"this is {backend_version(backend)}; the table was timed with "
                f"{settings['software']}"]
    return []


PASSES_PER_TURN = 5  # consecutive passes of the model (and of the probe) in each turn


def _passes(run: Runner, count: int) -> list[float]:
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def _time(run: Runner, warmup: int, runs: int,
          probe: Runner | None) -> tuple[list[float], list[float]]:
    """``runs`` timed passes of ``run`` after ``warmup`` untimed ones; with a ``probe``, the
    passes come in turns of `PASSES_PER_TURN` with as many of the probe's (each turn after one
    untimed pass, since the other's turn evicted its caches), so a change of the machine's
    speed while it runs touches both alike. Returns the model's and the probe's times."""
    for _ in range(warmup):
        run()
        if probe is not None:
            probe()
    if probe is None:
        return _passes(run, runs), []
    model_times: list[float] = []
    probe_times: list[float] = []
    while len(model_times) < runs:
        run()
        model_times += _passes(run, min(PASSES_PER_TURN, runs - len(model_times)))
        probe()
        probe_times += _passes(probe, PASSES_PER_TURN)
    return model_times, probe_times


def _load_card(here: Path) -> dict[str, Any]:
    try:
        card = json.loads((here / "model_card.json").read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{here / 'model_card.json'}: cannot read it ({exc})") from exc
    if not isinstance(card, dict) or "runtime_settings" not in card:
        raise BundleError(f"{here / 'model_card.json'} has no runtime_settings; export the "
                          "model again with a newer nas")
    return card


def _apply_allocator(allocator: Mapping[str, Any], plain: bool) -> str:
    """Set the card's allocator in this process (unless ``plain``); says what was done."""
    if plain:
        return (f"allocator: the C library's defaults (--plain; the table was timed with "
                f"{allocator['name']!r})")
    if not allocator["mallopt"]:
        return f"allocator: {allocator['name']} (the C library's defaults, as the table was timed)"
    if not apply_mallopt(allocator["mallopt"]):
        return "allocator: this C library has no mallopt; timing with its defaults"
    return "allocator: applied mallopt " + ", ".join(
        f"{s['parameter']}={s['value']}" for s in allocator["mallopt"])


def _apply_cores(card_cores: Sequence[int], asked: Sequence[int] | None, plain: bool) -> str:
    """Pin this process to the card's cores, or to ``asked``, unless ``plain``; says what was
    done."""
    timed = f"the table was timed on core(s) {cores_text(card_cores)}" if card_cores else \
        "the table was timed unpinned"
    if plain:
        return f"cores: not pinned (--plain; {timed})"
    cores = card_cores if asked is None else asked
    if not cores:
        return "cores: not pinned, as the table was timed"
    usable = usable_cores()
    if not usable:
        return f"cores: this platform cannot pin a process; timing unpinned ({timed})"
    if not set(cores) <= set(usable):
        raise BundleError(f"core(s) {cores_text(cores)} are not among the cores this process may "
                          f"use ({cores_text(usable)}); {timed}: pass --cores with some of "
                          "those")
    pin_process(cores)
    if usable_cores() != tuple(sorted(cores)):
        raise BundleError(f"could not pin this process to core(s) {cores_text(cores)}")
    if asked is None:
        return f"cores: pinned to {cores_text(cores)}, as the table was timed"
    return f"cores: pinned to {cores_text(cores)} (--cores; {timed})"


def core_list(text: str) -> tuple[int, ...]:
    """``0`` or ``0,2`` to (0,) or (0, 2): distinct CPU core numbers (a flag's type)."""
    try:
        cores = tuple(int(item) for item in text.split(","))
    except ValueError:
        cores = ()
    if not cores or any(c < 0 for c in cores) or len(set(cores)) != len(cores):
        raise argparse.ArgumentTypeError(f"expected distinct core numbers such as 0 or 0,1, got "
                                         f"{text!r}")
    return cores


def _is_positive(x: object) -> bool:
    return isinstance(x, (int, float)) and x > 0


def _versus(measured: float, predicted: object) -> str:
    if _is_positive(predicted):
        assert isinstance(predicted, (int, float))
        return f"predicted {predicted:.2f} ms: {100 * (measured / predicted - 1):+.1f}%"
    return "no prediction in the card"


def _result(name: str, samples: Sequence[float], warmup: int, predicted: object) -> str:
    median, iqr = median_and_iqr(samples)
    return (f"{name}: {len(samples)} passes after {warmup} warm-up: measured {median:.2f} ms "
            f"(IQR {iqr:.2f}), {_versus(median, predicted)}")


def pace(ratio: float) -> str:
    """A speed probe's time now over then, in words."""
    if ratio > 1:
        return f"{ratio:.2f}x slower than then"
    return f"{1 / ratio:.2f}x faster than then" if ratio < 1 else "as fast as then"


def probe_lines(measured_ms: float, probe_now_ms: float, probe_then_ms: float,
                predicted: object) -> list[str]:
    """The probe's median now against the table's, and the model's median rescaled to the speed
    the machine had when the table was timed (this script and `nas export` print them)."""
    speed = probe_now_ms / probe_then_ms
    at_table_speed = measured_ms / speed
    return [f"speed probe: {probe_now_ms:.3f} ms now, {probe_then_ms:.3f} ms when the table was "
            f"timed: this machine runs {pace(speed)}",
            f"at the table's speed: {at_table_speed:.2f} ms, "
            f"{_versus(at_table_speed, predicted)}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="timed passes (default 50)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed passes first (default 20)")
    parser.add_argument("--plain", action="store_true",
                        help="leave the allocator and the cores as a process that sets nothing has "
                             "them")
    parser.add_argument("--cores", type=core_list,
                        help="pin to these cores (e.g. 1 or 0,1) instead of the card's")
    args = parser.parse_args(argv)
    if args.runs < 2 or args.warmup < 0:
        parser.error("--runs must be at least 2 and --warmup at least 0")
    here = Path(__file__).resolve().parent
    try:
        card = _load_card(here)
        settings = card["runtime_settings"]
        path, backend = _choose_model(here, settings["backend"])
        print(_apply_cores(settings.get("cores") or [], args.cores, args.plain))
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(_apply_allocator(settings["allocator"], args.plain))
    torch.set_num_threads(settings["threads"])
    for line in describe(settings):
        print(f"target {line}")
    for note in _notes(path, backend, settings):
        print(f"note: {note}")
    x = torch.randn(*settings["input_shape"], generator=torch.Generator().manual_seed(0))
    run = _runner(path, backend, x, settings["threads"])
    probe_then = card.get("speed_probe_ms")
    probe = probe_runner() if _is_positive(probe_then) else None
    model_times, probe_times = _time(run, args.warmup, args.runs, probe)
    predicted = card.get("predicted_latency_ms")
    print(_result(path.name, model_times, args.warmup, predicted))
    if probe is not None:
        assert isinstance(probe_then, (int, float))
        for line in probe_lines(statistics.median(model_times), statistics.median(probe_times),
                                probe_then, predicted):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Export: every runtime agrees with PyTorch, the card carries provenance and the runtime
settings, the shipped time_model.py times the model in a fresh process, best/ is checked."""

import ast
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import onnxruntime as ort
import pytest
import torch

import nas.bundle_timer
from nas.budget import BudgetRule
from nas.cli import main
from nas.export import export_network
from nas.latency.target import Target
from nas.model import MobileNet, ModelConfig
from nas.run import BestNetwork, RunDir, save_best
from nas.bundle_timer import backend_version
from test_run import TINY, make_record


def run_timer(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The bundle's time_model.py in a fresh process with a clean environment (no PYTHONPATH,
    no MALLOC_* variables), from another folder."""
    return subprocess.run([sys.executable, str(bundle / "time_model.py"), "--runs", "5",
                           "--warmup", "2", *args], capture_output=True, text=True,
                          cwd=bundle.parent, env={"PATH": os.environ.get("PATH", "")},
                          timeout=120)


def test_every_format_runs_and_agrees_with_pytorch(tmp_path):
    model = MobileNet(TINY, ModelConfig(3, 5)).eval()
    diffs = export_network(TINY, ModelConfig(3, 5), model.state_dict(), 24,
                           ("json", "torchscript", "onnx"), tmp_path, {"seed": 7})
    assert set(diffs) == {"torchscript", "onnx"} and max(diffs.values()) < 1e-4
    x = torch.randn(3, 3, 24, 24)  # another batch size: the ONNX batch axis is free
    with torch.no_grad():
        expected = model(x)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"))
    assert torch.allclose(torch.from_numpy(session.run(None, {"images": x.numpy()})[0]),
                          expected, atol=1e-4)
    loaded = torch.jit.load(str(tmp_path / "model.torchscript.pt"))
    assert torch.allclose(loaded(x), expected, atol=1e-4)
    card = json.loads((tmp_path / "model_card.json").read_text())
    assert card["seed"] == 7 and card["arch"] == TINY.to_string()
    assert card["formats"] == ["json", "torchscript", "onnx"]
    assert (tmp_path / "arch.txt").read_text().strip() == TINY.to_string()
    assert (tmp_path / "time_model.py").read_text() == Path(nas.bundle_timer.__file__).read_text()
    refused = run_timer(tmp_path)  # this card has no runtime settings
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "no runtime_settings" in refused.stderr


def test_json_only_export_writes_no_runtime_files(tmp_path):
    model = MobileNet(TINY, ModelConfig(1, 10))
    assert export_network(TINY, ModelConfig(1, 10), model.state_dict(), 16, ("json",), tmp_path,
                          {}) == {}
    assert not (tmp_path / "model.onnx").exists()
    assert not (tmp_path / "model.torchscript.pt").exists()
    assert not (tmp_path / "time_model.py").exists()  # nothing to time


def test_export_command_uses_the_saved_best_and_refuses_a_mixed_up_one(tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    record = make_record(tmp_path)  # its data folder does not exist: no test accuracy
    record.save(run)
    model = MobileNet(TINY, ModelConfig(1, 10))
    save_best(run, BestNetwork(trial=2, arch=TINY, accuracy=0.5, latency_ms=1.0),
              model.state_dict(), BudgetRule(record.search.budget_ms))
    out = tmp_path / "out"
    assert main(["export", str(run.root), "--format", "json", "--out", str(out)]) == 0
    card = json.loads((out / "model_card.json").read_text())
    assert card["trial"] == 2 and card["predicted_latency_ms"] == 1.0
    assert card["test_accuracy"] is None
    saved = torch.load(out / "weights.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    capsys.readouterr()
    run.best_arch.write_text(json.dumps({"trial": 3, "arch": TINY.to_string(),
                                         "accuracy": 0.6, "latency_ms": 1.0}))
    assert main(["export", str(run.root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "disagree" in err and err.count("\n") == 1


def test_the_shipped_timer_needs_only_the_standard_library_torch_and_onnxruntime():
    imported = set()
    for node in ast.walk(ast.parse(Path(nas.bundle_timer.__file__).read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"torch", "onnxruntime"}


def test_the_timer_takes_turns_with_the_probe_and_rescales_by_it():
    calls = {"model": 0, "probe": 0}

    def runner(name):
        return lambda: calls.__setitem__(name, calls[name] + 1)

    model, probe = nas.bundle_timer._time(runner("model"), 2, 12, runner("probe"))
    assert len(model) == 12 and len(probe) == 15  # 3 turns: 5 + 5 + 2 of the model, 5 of probe
    assert calls == {"model": 2 + 3 + 12, "probe": 2 + 3 + 15}  # warm-up, one untimed a turn
    assert nas.bundle_timer._time(runner("model"), 0, 4, None)[1] == []
    slower = nas.bundle_timer.probe_lines(4.2, 0.6, 0.5, 3.5)
    assert slower == ["speed probe: 0.600 ms now, 0.500 ms when the table was timed: this "
                      "machine runs 1.20x slower than then",
                      "at the table's speed: 3.50 ms, predicted 3.50 ms: +0.0%"]
    assert "runs 2.00x faster than then" in nas.bundle_timer.probe_lines(1.0, 0.25, 0.5,
                                                                         None)[0]


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_runtime_settings_are_the_targets_fields_and_the_allocators_mallopt(backend):
    target = Target.here(backend=backend, threads=2, input_size=40)
    settings = target.runtime_settings(in_channels=3)
    fields = json.loads(json.dumps(asdict(target)))  # the card's plain data: lists for tuples
    assert {k: settings[k] for k in fields if k != "allocator"} == {
        k: v for k, v in fields.items() if k != "allocator"}
    assert settings["input_shape"] == [1, 3, 40, 40] and settings["dtype"] == "float32"
    assert settings["allocator"] == {
        "name": "steady",
        "mallopt": [{"parameter": "M_MMAP_THRESHOLD", "number": -3, "value": 33554432,
                     "environment": "MALLOC_MMAP_THRESHOLD_"},
                    {"parameter": "M_TRIM_THRESHOLD", "number": -1, "value": 1073741824,
                     "environment": "MALLOC_TRIM_THRESHOLD_"}],
        "environment": "MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824"}
    if backend == "torch":
        assert settings["torch_mode"].startswith("module.eval()")
        assert "onnxruntime_session" not in settings
    else:
        assert settings["onnxruntime_session"]["intra_op_num_threads"] == 2
        assert settings["onnxruntime_session"]["inter_op_num_threads"] == 1
    system = Target.here(backend=backend, allocator="system").runtime_settings(in_channels=1)
    assert system["allocator"] == {"name": "system", "mallopt": [], "environment": ""}
    json.dumps(settings)  # plain data for the card


@pytest.mark.parametrize("allocator, fmt, backend", [("steady", "torchscript", "torchscript"),
                                                      ("steady", "torchscript", "torch"),
                                                      ("system", "onnx", "torchscript")])
@pytest.mark.slow
def test_the_shipped_timer_applies_the_cards_settings_in_a_fresh_process(tmp_path, allocator,
                                                                          fmt, backend):
    run = RunDir(tmp_path / "run")
    # A 'system' target on another device: the export does not time it (and this process keeps
    # the allocator an earlier test may have set); the script still does, where it runs.
    target = (Target.here(backend=backend, input_size=32) if allocator == "steady" else
              Target(backend=backend, input_size=32, allocator="system", device="another board",
                     software=backend_version("torch")))
    record = make_record(tmp_path, target=target)
    probe_then = 0.5 if allocator == "steady" else None  # a table without a probe: none timed
    record = replace(record, lut=replace(record.lut, speed_probe_ms=probe_then))
    record.save(run)
    save_best(run, BestNetwork(trial=2, arch=TINY, accuracy=0.5, latency_ms=1.25),
              MobileNet(TINY, ModelConfig(1, 10)).state_dict(), BudgetRule(record.search.budget_ms))
    out = tmp_path / "bundle"
    assert main(["export", str(run.root), "--format", f"json,{fmt}", "--out", str(out)]) == 0
    card = json.loads((out / "model_card.json").read_text())
    assert card["runtime_settings"] == target.runtime_settings(in_channels=1)
    markdown = (out / "MODEL_CARD.md").read_text()
    assert "## Runtime settings the latency was measured under" in markdown
    assert "- threads: 1" in markdown and "python time_model.py" in markdown
    assert ("MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824" in markdown) == (
        allocator == "steady")

    timed = run_timer(out)
    assert timed.returncode == 0, timed.stderr
    model_file = "model.torchscript.pt" if fmt == "torchscript" else "model.onnx"
    result = re.search(rf"{re.escape(model_file)}: 5 passes after 2 warm-up: measured "
                       r"([0-9.]+) ms \(IQR [0-9.]+\), predicted 1\.25 ms: [+-][0-9.]+%",
                       timed.stdout)
    assert result and float(result.group(1)) > 0, timed.stdout
    assert card["speed_probe_ms"] == probe_then
    probe = re.search(r"speed probe: ([0-9.]+) ms now, 0\.500 ms when the table was timed: this "
                      r"machine runs .* then\nat the table's speed: ([0-9.]+) ms, predicted "
                      r"1\.25 ms: [+-][0-9.]+%", timed.stdout)
    assert (probe is not None) == (probe_then is not None), timed.stdout
    if probe:  # the model's time rescaled by the probe's: then / now
        now, rescaled = float(probe.group(1)), float(probe.group(2))
        # printed to 0.01 ms (both times) and 0.001 ms (the probe): the rounding's bound
        slack = 0.0051 + 0.0051 * 0.5 / now + float(result.group(1)) * 0.5 * 0.0005 / now ** 2
        assert rescaled == pytest.approx(float(result.group(1)) * 0.5 / now, abs=slack)
    applied = "allocator: applied mallopt M_MMAP_THRESHOLD=33554432, M_TRIM_THRESHOLD=1073741824"
    if allocator == "steady":
        assert applied in timed.stdout
    else:
        assert "allocator: system (the C library's defaults" in timed.stdout
    if allocator == "steady":  # Target.here: pinned to the first core this process may use
        assert f"cores: pinned to {target.cores[0]}, as the table was timed" in timed.stdout
        assert f"- cores: pinned to {target.cores[0]}" in markdown
    else:
        assert "cores: not pinned, as the table was timed" in timed.stdout
    if fmt == "onnx":  # the table timed TorchScript: the script says it times another runtime
        assert ("note: timing model.onnx on onnxruntime; the table was timed on torchscript"
                in timed.stdout)
    elif backend == "torch":  # no eager model in the bundle: its TorchScript, said so
        assert "note: the table timed the eager PyTorch module" in timed.stdout
    else:  # the very program the table timed
        assert "note:" not in timed.stdout

    plain = run_timer(out, "--plain")
    assert plain.returncode == 0, plain.stderr
    assert "applied mallopt" not in plain.stdout
    assert f"allocator: the C library's defaults (--plain; the table was timed with " \
           f"{allocator!r})" in plain.stdout
    assert re.search(r"measured [0-9.]+ ms", plain.stdout)
    elsewhere = run_timer(out, "--cores", str(max(os.sched_getaffinity(0)) + 1))
    assert elsewhere.returncode == 2 and elsewhere.stderr.count("\n") == 1
    assert "pass --cores with some of those" in elsewhere.stderr

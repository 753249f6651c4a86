"""Export: every runtime agrees with PyTorch, the card carries provenance, best/ is checked."""

import json

import onnxruntime as ort
import torch

from nas.choice import Choice
from nas.cli import main
from nas.export import export_network
from nas.model import MobileNet, ModelConfig
from nas.run import BestNetwork, RunDir, save_best
from test_run import TINY, make_record


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


def test_json_only_export_writes_no_runtime_files(tmp_path):
    model = MobileNet(TINY, ModelConfig(1, 10))
    assert export_network(TINY, ModelConfig(1, 10), model.state_dict(), 16, ("json",), tmp_path,
                          {}) == {}
    assert not (tmp_path / "model.onnx").exists()
    assert not (tmp_path / "model.torchscript.pt").exists()


def test_export_command_uses_the_saved_best_and_refuses_a_mixed_up_one(tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    record = make_record(tmp_path)  # its data folder does not exist: no test accuracy
    record.save(run)
    model = MobileNet(TINY, ModelConfig(1, 10))
    save_best(run, BestNetwork(trial=2, arch=TINY, accuracy=0.5, latency_ms=1.0),
              model.state_dict(), Choice(record.search.budget_ms))
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

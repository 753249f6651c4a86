"""Training on a GPU when there is one (``--device``): one code path for every device, the device
resolved and refused at the boundary, recorded but not part of a run's identity, weights saved on
the CPU, and workers that take the GPUs in turn. This machine may have no GPU: the CUDA path is
checked on the CPU, and the tests that need a GPU are skipped without one."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from nas.arch import Arch
from nas.cli import main
from nas.config import DataConfig, SearchConfig, TrainConfig
from nas.data import Dataset, load_dataset, random_crop_flip, random_erase
from nas.errors import UsageError
from nas.evaluator import TrainEvaluator
from nas.identity import MAY_CHANGE, first_difference, identity
from nas.model import ModelConfig
from nas.run import RunDir, RunRecord
from nas.train import CPU, on_cpu, resolve_device
from nas.workers import Helpers, helper_gpus, plan

TINY = Arch.from_string("stem_c8_hs-ir_k3_e3_c16_s2_re-ir_k3_e3_c16_s1_hs_se-head_c32_f32_hs")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
without_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch made to see two CUDA devices (nothing runs on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def test_auto_is_the_cpu_without_cuda_and_a_resolved_device_resolves_to_itself(no_gpu):
    assert resolve_device("auto") == resolve_device("cpu") == CPU
    with pytest.raises(UsageError, match=r"^--device cuda: .*; pass --device cpu, or auto"):
        resolve_device("cuda")
    with pytest.raises(UsageError, match=r"^--device cuda:1: "):
        resolve_device("cuda:1")


def test_cuda_devices_resolve_by_index_and_one_past_the_count_is_refused(two_gpus):
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device(str(resolve_device("cuda:1"))) == torch.device("cuda", 1)
    with pytest.raises(UsageError, match=r"^--device cuda:2: this machine has 2 CUDA device\(s\), "
                                         r"cuda:0 to cuda:1; pass one of them$"):
        resolve_device("cuda:2")
    for bad in ("gpu", "cuda:x", "cuda:", "mps", "CPU"):
        with pytest.raises(UsageError, match="choose auto, cpu, cuda or cuda:N"):
            resolve_device(bad)


@without_cuda
@pytest.mark.parametrize("command", ["search", "train"])
def test_cuda_without_cuda_is_refused_in_one_line_with_exit_2(command, tmp_path, capsys):
    flags = {"search": ["search", "--latency-budget", "20ms", "--results-dir", str(tmp_path)],
             "train": ["train", str(tmp_path / "run")]}
    assert main([*flags[command], "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: --device cuda: ") and "pass --device cpu" in err
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_the_device_is_not_part_of_the_identity_but_the_precision_is():
    def made(train: TrainConfig) -> dict[str, Any]:
        return identity(space_sha256="a", space_name="s", data=DataConfig(),
                        data_shape={"channels": 1}, train=train,
                        search=SearchConfig(budget_ms=20.0), target="t", lut="l")

    assert "train_device" in MAY_CHANGE and "precision" not in MAY_CHANGE
    assert first_difference(made(TrainConfig()), made(TrainConfig(train_device="cuda:1"))) is None
    assert first_difference(made(TrainConfig()), made(TrainConfig(precision="bf16"))) == (
        "--precision: the run was made with fp32, this start gives bf16")


@pytest.fixture
def small_data(idx_dir: Path) -> Dataset:
    return load_dataset("fashion-mnist", idx_dir, val_samples=100, train_samples=256, seed=0)


def _trained(data: Dataset, config: TrainConfig) -> tuple[float, dict[str, torch.Tensor]]:
    evaluator = TrainEvaluator(data, ModelConfig(1, 10), config)
    accuracy = evaluator(TINY, seed=3).accuracy
    assert evaluator.last is not None
    return accuracy, evaluator.last.state_dict()


def test_cpu_and_auto_train_the_same_weights_left_on_the_cpu(small_data, no_gpu):
    config = TrainConfig(epochs=1, batch_size=64, crop_padding=1, erase=0.5)
    on_cpu_, on_auto = (_trained(small_data, replace(config, train_device=device))
                        for device in ("cpu", "auto"))
    assert on_cpu_[0] == on_auto[0]
    assert on_cpu_[1].keys() == on_auto[1].keys()
    assert all(torch.equal(on_cpu_[1][k], on_auto[1][k]) for k in on_cpu_[1])
    assert all(v.device == CPU for v in on_auto[1].values())


def test_bf16_trains_under_autocast_and_keeps_fp32_weights(small_data):
    accuracy, state = _trained(small_data, TrainConfig(epochs=1, batch_size=64,
                                                       precision="bf16"))
    assert 0 <= accuracy <= 1
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_on_cpu_keeps_the_nesting_of_a_state_dict():
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    state = on_cpu(optimizer.state_dict())
    assert state["param_groups"] == optimizer.state_dict()["param_groups"]
    assert all(s["momentum_buffer"].device == CPU for s in state["state"].values())


def _saved_on(path: Path) -> set[str]:
    """Where each tensor of a torch.save file was when it was saved."""
    locations: set[str] = set()
    torch.load(path, weights_only=True,
               map_location=lambda storage, location: locations.add(location) or storage)
    return locations


@pytest.mark.slow
def test_a_search_records_the_device_that_trained(tmp_path, tiny_space, tiny_data, tiny_lut,
                                                  no_gpu):
    """--device cpu and --device auto (without CUDA: the CPU) give the same weights; run.json
    and summary.md say where the run trained."""
    weights = []
    for device in ("cpu", "auto"):
        results = tmp_path / device
        assert main(["search", "--latency-budget", "1000ms", "--space", str(tiny_space),
                     "--lut", str(tiny_lut), "--data-dir", str(tiny_data), "--val-samples",
                     "100", "--train-samples", "300", "--epochs", "1", "--rung-epochs", "none",
                     "--references", "none", "--sampler", "random", "--train-threads", "1",
                     "--results-dir", str(results), "--run-name", "r", "--trials", "1",
                     "--device", device]) == 0
        run = RunDir(results / "r")
        expected = "cpu"
        assert json.loads(run.record.read_text())["train"]["train_device"] == expected
        assert RunRecord.load(run).train.train_device == expected
        assert f"1 training thread on {expected}, fp32" in run.summary().read_text()
        assert _saved_on(run.best_checkpoint) == {"cpu"}
        weights.append(torch.load(run.best_checkpoint, weights_only=True)["state_dict"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_auto_workers_are_one_per_gpu_when_training_on_cuda():
    # (workers, threads) on 16 cores with 4 GPUs, by --device
    assert plan(None, None, 16, device="auto", gpus=4) == (4, 4)
    assert plan(None, None, 16, device="cuda", gpus=4) == (4, 4)
    assert plan(None, None, 16, device="cuda:2", gpus=4) == (1, None)  # one named GPU
    assert plan(None, None, 16, device="cpu", gpus=4) == (8, 2)  # as without GPUs
    assert plan(None, None, 2, device="auto", gpus=0) == plan(None, None, 2) == (2, 1)
    assert plan(None, 2, 16, device="auto", gpus=2) == (2, 2)
    assert plan(3, None, 16, device="cuda", gpus=2) == (3, 5)  # given: GPUs taken in turn
    assert plan(3, None, 2, device="cuda:0", gpus=1) == (3, 1)  # all share the one GPU
    with pytest.raises(UsageError, match=r"^--device cuda:1 with 3 workers: .* pass --device "
                                         r"cuda, or --workers 1"):
        plan(3, None, 16, device="cuda:1", gpus=2)


def test_helpers_take_the_gpus_in_turn_after_the_first():
    assert helper_gpus(3, ("0", "1")) == ["1", "0", "1"]  # worker 1 trains on GPU 0
    assert helper_gpus(2, ("4", "6", "7")) == ["6", "7"]  # as CUDA_VISIBLE_DEVICES names them
    assert helper_gpus(2, ("0",)) == helper_gpus(2, ()) == [None, None]  # inherit


class _Process:
    """What `Helpers.start` keeps of a process it started (nothing runs)."""

    started: list[dict[str, str] | None] = []

    def __init__(self, command: list[str], *, env: dict[str, str] | None = None,
                 **options: Any) -> None:
        _Process.started.append(env)

    def poll(self) -> int:
        return 0


@pytest.mark.parametrize("visible, pinned", [(("0", "1"), ["1", "0"]), ((), [None, None])])
def test_each_helper_is_pinned_to_its_gpu_in_its_environment(visible, pinned, tmp_path,
                                                             monkeypatch):
    monkeypatch.setattr("nas.workers.visible_gpus", lambda: visible)
    monkeypatch.setattr("nas.workers.subprocess.Popen", _Process)
    _Process.started = []
    Helpers.start(["search"], 2, tmp_path).stop()
    assert _Process.started == [None if gpu is None else {**os.environ,
                                                          "CUDA_VISIBLE_DEVICES": gpu}
                                for gpu in pinned]


@needs_cuda
def test_augmentation_draws_the_same_on_cuda_as_on_the_cpu():
    images = torch.randint(0, 256, (32, 3, 12, 12), dtype=torch.uint8)
    cuda = torch.device("cuda", 0)
    for augment in (lambda x, g: random_crop_flip(x, 2, True, g),
                    lambda x, g: random_erase(x, 0.5, g)):
        expected = augment(images, torch.Generator().manual_seed(0))
        got = augment(images.to(cuda), torch.Generator().manual_seed(0))
        assert got.device == cuda and torch.equal(got.cpu(), expected)


@needs_cuda
def test_cuda_training_keeps_the_last_model_on_the_cpu(small_data):
    accuracy, state = _trained(small_data, TrainConfig(epochs=1, batch_size=64,
                                                       train_device="cuda"))
    assert 0 <= accuracy <= 1 and all(v.device == CPU for v in state.values())

"""The run record (run.json) and the one writer of best/."""

import json
import multiprocessing
from pathlib import Path

import pytest
import torch

from nas.arch import Arch
from nas.budget import BudgetRule
from nas.config import DataConfig, SearchConfig, TrainConfig
from nas.errors import UserError
from nas.latency.target import Target
from nas.model import MobileNet, ModelConfig
from nas.run import (BestNetwork, DataInfo, LutInfo, RunDir, RunError, RunRecord, load_best,
                     save_best)

TINY = Arch.from_string("stem_c8_hs-ir_k3_e3_c16_s2_re-ir_k3_e3_c16_s1_hs_se-head_c32_f32_hs")


def make_record(tmp_path, **changes) -> RunRecord:
    record = RunRecord(
        name="r", storage=f"sqlite:///{tmp_path / 'study.db'}", space="/spaces/s.yaml",
        space_sha256="0123456789ab", space_name="s",
        search=SearchConfig(budget_ms=12.5, trials=3, sampler="random", rung_epochs=(0.25,)),
        data=DataConfig(data_dir=str(tmp_path / "data"), val_samples=100),
        data_info=DataInfo(train=500, val=100, test=200, image_size=32,
                           class_names=tuple("abcdefghij"), mean=(0.2,), std=(0.3,)),
        train=TrainConfig(epochs=1, train_device="cpu"), model=ModelConfig(1, 10),
        target=Target.here(input_size=32),
        lut=LutInfo(path="t.json", sha256="abc", identity="def", calibration="none"),
        training_threads=2)
    return RunRecord(**{**record.__dict__, **changes})


def test_record_round_trips_through_run_json(tmp_path):
    run = RunDir(tmp_path / "run")
    record = make_record(tmp_path)
    record.save(run)
    assert RunRecord.load(run) == record
    assert record.describe_settings() == (
        "3 candidates trained at the top rung, rungs of 0.25, 1 epochs on 500 images, random "
        "sampler, seed 0, 2 training threads on cpu, fp32")
    single = make_record(tmp_path, search=SearchConfig(budget_ms=12.5, trials=3, rung_epochs=()))
    assert single.describe_settings().startswith(
        "3 candidates trained for 1 epoch each (single fidelity) on 500 images, tpe sampler")
    assert record.describe_data() == ("fashion-mnist: 500 train / 100 validation / 200 test "
                                      "images of 32px, 1 channel(s), 10 classes")
    assert record.describe_resolution().startswith("32x32 px for training")
    other = make_record(tmp_path, target=Target.here(input_size=224))
    assert other.describe_resolution().startswith("MISMATCH")


def test_old_foreign_or_damaged_records_are_refused_in_one_line(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(RunError, match="not a search run"):
        RunRecord.load(run)
    make_record(tmp_path).save(run)
    data = json.loads(run.record.read_text())
    old = {k: v for k, v in data.items() if k != "schema"}  # what the first version wrote
    for text, message in ((json.dumps(old), "another version"),
                          (json.dumps({**data, "schema": 99}), "another version"),
                          (json.dumps({**data, "extra": 1}), "malformed"),
                          (json.dumps({**data, "search": {"trials": 3}}), "malformed"),
                          (run.record.read_text()[:50], "unreadable")):
        run.record.write_text(text)
        with pytest.raises(RunError, match=message) as caught:
            RunRecord.load(run)
        assert "\n" not in str(caught.value) and str(run.record) in str(caught.value)
    assert issubclass(RunError, UserError)


def test_best_network_and_weights_are_one_consistent_save(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(RunError, match="no trained network"):
        load_best(run)
    model = MobileNet(TINY, ModelConfig(1, 10))
    best = BestNetwork(trial=4, arch=TINY, accuracy=0.75, latency_ms=3.5)
    assert save_best(run, best, model.state_dict(), BudgetRule(10))
    loaded, state = load_best(run)
    assert loaded == best
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not [p for p in run.best.iterdir() if p.name.endswith(".tmp")]
    # A second writer of arch.json (as reports once were) is caught, not exported silently.
    run.best_arch.write_text(json.dumps({**best.to_dict(), "trial": 5}))
    with pytest.raises(RunError, match="disagree"):
        load_best(run)
    run.best_checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(RunError, match="damaged"):
        load_best(run)


def test_a_worse_network_never_replaces_a_better_one(tmp_path):
    run = RunDir(tmp_path / "run")
    state = MobileNet(TINY, ModelConfig(1, 10)).state_dict()
    good = BestNetwork(trial=3, arch=TINY, accuracy=0.8, latency_ms=5.0)
    assert save_best(run, good, state, BudgetRule(10))
    for worse in (BestNetwork(2, TINY, 0.7, 1.0), BestNetwork(7, TINY, 0.8, 6.0),
                  BestNetwork(8, TINY, 0.8, 5.0)):  # less accurate; slower; a later tie
        assert not save_best(run, worse, state, BudgetRule(10))
    assert load_best(run)[0] == good
    assert save_best(run, BestNetwork(1, TINY, 0.8, 5.0), state, BudgetRule(10))  # earlier tie
    # The same trial rewrites both files (a repair); under a tighter budget any network
    # within it replaces one over it.
    run.best_arch.unlink()
    assert save_best(run, BestNetwork(1, TINY, 0.8, 5.0), state, BudgetRule(10))
    assert load_best(run)[0].trial == 1
    assert save_best(run, BestNetwork(9, TINY, 0.1, 1.0), state, BudgetRule(2))


def _save_many(root: str, accuracies: list[float]) -> None:
    state = MobileNet(TINY, ModelConfig(1, 10)).state_dict()
    for accuracy in accuracies:
        save_best(RunDir(Path(root)), BestNetwork(int(accuracy * 1000), TINY, accuracy, 1.0),
                  state, BudgetRule(10))


def test_workers_saving_at_once_leave_the_best_of_all(tmp_path):
    accuracies = [i / 1000 for i in range(1, 41)]
    shares = [accuracies[i::4] for i in range(4)]  # each worker saves increasing accuracies
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_save_many, args=(str(tmp_path), share))
               for share in shares]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    best, _ = load_best(RunDir(tmp_path))
    assert best.accuracy == max(accuracies) and best.trial == 40


def test_atomic_writes_reach_the_disk_before_and_after_the_rename(tmp_path, monkeypatch):
    """The file's content is synced before it takes the name, and the folder after: a power
    cut leaves the old file or the new one, whole."""
    import os

    from nas.atomic import write_text

    synced: list[tuple[str, bool]] = []
    fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        synced.append((os.path.basename(path), (tmp_path / "out.txt").exists()))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_text(tmp_path / "out.txt", "new")
    assert synced == [(".out.txt.%d.tmp" % os.getpid(), False), (tmp_path.name, True)]
    assert (tmp_path / "out.txt").read_text() == "new"

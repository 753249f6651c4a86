import dataclasses

import pytest

from conftest import write_fashion_like
from nas.arch import Arch
from nas.data import load_dataset
from nas.model import MobileNet, ModelConfig
from nas.train import Diverged, TrainConfig, lr_at, train_and_evaluate

TINY = Arch.from_string("stem_c8_hs-ir_k3_e3_c16_s2_re-ir_k3_e3_c16_s1_hs_se-head_c32_f32_hs")


def test_schedule_warms_up_then_decays_to_zero():
    lrs = [lr_at(s, 100, 0.1, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] < 1e-3


def test_training_learns_and_is_deterministic(tmp_path):
    directory = write_fashion_like(tmp_path / "data", n_train=2000)
    data = load_dataset("fashion-mnist", directory, val_samples=200, seed=0)
    # no flips: the label is where the square is
    config = TrainConfig(epochs=6, batch_size=32, lr=0.3, flip=False)
    runs = [train_and_evaluate(MobileNet(TINY, ModelConfig(1, 10)), data, config, seed=5)
            for _ in range(2)]
    assert runs[0].val_accuracy == runs[1].val_accuracy
    assert runs[0].val_accuracy > 0.8  # chance is 0.1


def test_nan_loss_raises_diverged(idx_dir):
    data = load_dataset("fashion-mnist", idx_dir, val_samples=50, seed=0)
    poisoned = dataclasses.replace(data, std=0.0)  # normalisation divides by zero
    with pytest.raises(Diverged, match="epoch 1, step 1"):
        train_and_evaluate(MobileNet(TINY, ModelConfig(1, 10)), poisoned, TrainConfig(), seed=0)

import dataclasses

import pytest
import torch

from conftest import write_fashion_like
from nas.arch import Arch
from nas.config import TrainConfig
from nas.data import load_dataset, normalize
from nas.evaluator import TrainEvaluator
from nas.model import MobileNet, ModelConfig, complexity
from nas.train import (Diverged, lr_at, recalibrate_batchnorm, seeded, top1_accuracy, train,
                       train_and_validate)

TINY = Arch.from_string("stem_c8_hs-ir_k3_e3_c16_s2_re-ir_k3_e3_c16_s1_hs_se-head_c32_f32_hs")


def test_schedule_warms_up_then_decays_to_zero():
    lrs = [lr_at(s, 100, 0.1, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] < 1e-3
    # the triangle falls linearly: halfway through the decay, half the peak
    tri = [lr_at(s, 101, 0.2, 0.01, "triangle") for s in range(101)]
    assert tri[0] == pytest.approx(0.2) and tri[51] == pytest.approx(0.1)
    assert all(a - b == pytest.approx(0.002) for a, b in zip(tri[1:], tri[2:]))
    assert lrs != [lr_at(s, 100, 0.1, 0.1, "triangle") for s in range(100)]


@pytest.mark.slow
def test_evaluator_trains_from_the_seed_and_keeps_the_model_it_scored(tmp_path):
    directory = write_fashion_like(tmp_path / "data", n_train=2000)
    data = load_dataset("fashion-mnist", directory, val_samples=200, seed=0)
    # no flips: the label is where the square is; on the CPU, where the model it keeps is scored
    config = TrainConfig(epochs=6, batch_size=32, lr=0.3, flip=False,
                         train_device="cpu")
    evaluator = TrainEvaluator(data, ModelConfig(1, 10), config)
    first = evaluator(TINY, seed=5)
    weights = {k: v.clone() for k, v in evaluator.last.state_dict().items()}
    assert first.accuracy > 0.8  # chance is 0.1
    assert top1_accuracy(evaluator.last, data.val, data) == first.accuracy
    size = complexity(MobileNet(TINY, ModelConfig(1, 10)), data.image_size)
    assert (first.macs, first.params) == (size.macs, size.params) and first.train_seconds > 0
    again = evaluator(TINY, seed=5)  # the same seed: the same weights, the same score
    assert again.accuracy == first.accuracy
    assert all(torch.equal(weights[k], v) for k, v in evaluator.last.state_dict().items())
    evaluator(TINY, seed=6)
    assert any(not torch.equal(weights[k], v) for k, v in evaluator.last.state_dict().items())


def test_nan_loss_raises_diverged(idx_dir):
    data = load_dataset("fashion-mnist", idx_dir, val_samples=50, seed=0)
    poisoned = dataclasses.replace(data, std=0.0)  # normalisation divides by zero
    with pytest.raises(Diverged, match="epoch 1, step 1"):
        generator = seeded(0)
        train_and_validate(MobileNet(TINY, ModelConfig(1, 10)), poisoned, TrainConfig(),
                           generator)


def test_batchnorm_statistics_are_re_estimated_from_training_images_after_training(idx_dir):
    data = load_dataset("fashion-mnist", idx_dir, val_samples=50, seed=0)
    model = MobileNet(TINY, ModelConfig(1, 10))
    config = TrainConfig(epochs=0.5, batch_size=len(data.train), recalibration_images=0,
                         train_device="cpu")  # the model stays where the hooks below run it
    train(model, data, config, seeded(0))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    inputs: dict[torch.nn.Module, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda m, args, out: inputs.__setitem__(m, args[0]))
             for m in norms]
    model.train()
    with torch.no_grad():
        model(normalize(data.train.images, data.mean, data.std))
    for hook in hooks:
        hook.remove()
    # what each layer sees with the trained weights, over all the training images
    means = [inputs[m].mean((0, 2, 3)) for m in norms]
    variances = [inputs[m].var((0, 2, 3)) for m in norms]  # unbiased, as BatchNorm keeps it

    def matches() -> bool:
        return all(torch.allclose(m.running_mean, mean, rtol=1e-3, atol=1e-5)
                   and torch.allclose(m.running_var, var, rtol=1e-3, atol=1e-5)
                   for m, mean, var in zip(norms, means, variances))

    assert not matches()  # the momentum averages of a short training lag the weights
    recalibrate_batchnorm(model, data, len(data.train), batch_size=len(data.train))
    assert matches()
    assert all(m.momentum == 0.1 for m in norms)  # training would go on as before


def test_mirror_scoring_averages_an_image_and_its_mirror_and_leaves_the_model(idx_dir):
    data = load_dataset("fashion-mnist", idx_dir, val_samples=50, seed=0)
    model = MobileNet(TINY, ModelConfig(1, 10))
    train(model, data, TrainConfig(epochs=0.5, batch_size=64, train_device="cpu"), seeded(0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen: list[torch.Tensor] = []
    hook = model.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    single = top1_accuracy(model, data.test, data, batch_size=len(data.test))
    assert len(seen) == 1
    both = top1_accuracy(model, data.test, data, batch_size=len(data.test), mirror=True)
    hook.remove()
    assert len(seen) == 3 and torch.equal(seen[1], seen[0]) and torch.equal(seen[2],
                                                                            seen[0].flip(-1))
    with torch.no_grad():
        scores = model(seen[0]).softmax(1) + model(seen[2]).softmax(1)
    expected = (scores.argmax(1) == data.test.labels).float().mean().item()
    assert both == pytest.approx(expected)
    # mirror-symmetric images: each pair is one image twice, so the single view decides
    symmetric = dataclasses.replace(data.test, images=torch.cat(
        [data.test.images[..., :14], data.test.images[..., :14].flip(-1)], -1))
    assert (top1_accuracy(model, symmetric, data, mirror=True)
            == top1_accuracy(model, symmetric, data))
    assert 0 <= single <= 1
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())

import pytest
import torch
from torch import nn

import nas.model as model_module
from conftest import LARGE_SPACE
from nas.arch import Arch, BlockSpec
from nas.model import InvertedResidual, MobileNet, ModelConfig, complexity
from nas.space import load_space
from nas.references import MOBILENETV3_LARGE, MOBILENETV3_SMALL, REFERENCES


@pytest.mark.parametrize("choice", load_space(LARGE_SPACE).choices(), ids=str)
def test_every_block_choice_builds_and_runs_forward_and_backward(choice):
    for stride, cin, cout in ((1, 24, 24), (2, 16, 24)):
        block = InvertedResidual(cin, choice.block(cout, stride))
        x = torch.randn(2, cin, 12, 12, requires_grad=True)
        out = block(x)
        assert out.shape == (2, cout, 12 // stride, 12 // stride)
        out.sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
        assert block.residual == (stride == 1 and cin == cout)


@pytest.mark.parametrize("arch", [*REFERENCES.values(),
                                  load_space(LARGE_SPACE).covering_archs()[-1]],
                         ids=[*REFERENCES, "largest"])
def test_reference_and_largest_networks_run_without_nan(arch):
    model = MobileNet(arch, ModelConfig(in_channels=3, num_classes=7)).eval()
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_expansion_one_skips_the_expansion_conv_and_se_adds_a_gate():
    plain = InvertedResidual(16, BlockSpec(3, 1, 16, 1, False, "relu"))
    gated = InvertedResidual(16, BlockSpec(3, 1, 16, 1, True, "relu"))
    assert len(plain.body) == 2 and len(gated.body) == 3
    assert isinstance(gated.body[1].gate, nn.Hardsigmoid)


def test_macs_match_a_hand_count():
    # stem 3x3 s2 1->8 on 8x8 -> 4x4; block e2 (16 hidden) k3 s1 8->8; head 1x1 8->32,
    # fc 32->16, 16->10
    arch = Arch.from_string("stem_c8_re-ir_k3_e2_c8_s1_re-head_c32_f16_re")
    model = MobileNet(arch, ModelConfig(in_channels=1, num_classes=10))
    hand = (16 * 8 * 9 * 1  # stem: 16 outputs x 8 channels x 3x3x1
            + 16 * 16 * 8  # expand 1x1
            + 16 * 16 * 9  # depthwise 3x3
            + 16 * 8 * 16  # project 1x1
            + 16 * 32 * 8  # head 1x1
            + 32 * 16 + 16 * 10)  # linear layers
    counted = complexity(model, 8)
    # fvcore also counts batch norm (2 per element in eval: scale and shift) and the pooling.
    bn_and_pool = 2 * 16 * (8 + 16 + 16 + 8 + 32) + 16 * 32
    assert counted.macs == hand + bn_and_pool
    assert counted.params == sum(p.numel() for p in model.parameters())


def test_activation_table_is_an_extension_point(monkeypatch):
    monkeypatch.setitem(model_module.ACTIVATION_LAYERS, "relu", nn.ReLU6)
    block = InvertedResidual(8, BlockSpec(3, 2, 8, 1, False, "relu"))
    assert any(isinstance(m, nn.ReLU6) for m in block.modules())


def test_residual_blocks_start_as_identity():
    model = MobileNet(Arch.from_string("stem_c8_hs-ir_k3_e3_c8_s1_re-head_c16_f16_hs"))
    block = model[1]
    x = torch.randn(1, 8, 5, 5)
    assert torch.equal(block.eval()(x), x)


@pytest.mark.parametrize("arch, params", [(MOBILENETV3_LARGE, 5_483_032),
                                          (MOBILENETV3_SMALL, 2_542_856)])
def test_references_have_the_reference_implementations_parameter_counts(arch, params):
    """torchvision's mobilenet_v3_large/small (1000 classes, RGB) have exactly these counts."""
    model = MobileNet(arch, ModelConfig(in_channels=3, num_classes=1000))
    assert sum(p.numel() for p in model.parameters()) == params

import pytest
import torch
import torch.nn.functional as F

from nas.depthwise import DepthwiseConv2d, dense_depthwise, tap_matrix
from nas.model import MobileNet, ModelConfig, conv_bn_act
from nas.space import load_space


@pytest.mark.parametrize("size,kernel,stride", [
    (4, 7, 1), (4, 5, 1), (4, 3, 1), (3, 5, 1), (7, 7, 2), (4, 7, 2), (5, 3, 2), (2, 7, 1)])
def test_dense_form_equals_the_convolution_and_both_gradients(size, kernel, stride):
    torch.manual_seed(size * 100 + kernel * 10 + stride)
    x = torch.randn(3, 6, size, size, requires_grad=True)
    weight = torch.randn(6, 1, kernel, kernel, requires_grad=True)
    plain = F.conv2d(x, weight, None, stride, kernel // 2, groups=6)
    dense = dense_depthwise(x, weight, stride)
    assert dense.shape == plain.shape
    torch.testing.assert_close(dense, plain, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(plain)
    expected = torch.autograd.grad(plain, (x, weight), grad)
    got = torch.autograd.grad(dense, (x, weight), grad)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_dense_form_follows_the_weights_dtype():
    x = torch.randn(2, 4, 4, 4, dtype=torch.float64)
    weight = torch.randn(4, 1, 7, 7, dtype=torch.float64)
    dense = dense_depthwise(x, weight, 1)
    assert dense.dtype == torch.float64
    torch.testing.assert_close(dense, F.conv2d(x, weight, None, 1, 3, groups=4))


def test_tap_matrix_counts_the_taps_inside_the_map():
    # 3x3 kernel, 2x2 map, padding 1: every output pixel sees all 4 input pixels, each through
    # a different tap; 4 outputs x 4 inputs = 16 ones, one per (input, output) column.
    matrix = tap_matrix(2, 2, 3, 1)
    assert matrix.shape == (9, 16) and matrix.sum() == 16
    assert (matrix.sum(0) == 1).all()
    # input (0, 0) seen from output (1, 1) is the kernel's top-left tap (row 0)
    assert matrix[0, 0 * 4 + 3] == 1
    # a 7x7 kernel on a 1x1 map meets its only pixel at the centre tap
    assert tap_matrix(1, 1, 7, 1).nonzero().tolist() == [[24, 0]]


def test_dense_form_only_while_training_on_maps_smaller_than_the_kernel(monkeypatch):
    calls = []
    real = dense_depthwise
    monkeypatch.setattr("nas.depthwise.dense_depthwise",
                        lambda *args: calls.append(args[0].shape) or real(*args))
    conv = DepthwiseConv2d(8, 7)
    conv(torch.randn(2, 8, 4, 4))         # 16 pixels < 49 taps
    conv(torch.randn(2, 8, 7, 7))         # 49 pixels: the kernel sweep
    DepthwiseConv2d(8, 3)(torch.randn(2, 8, 4, 4))
    conv.eval()(torch.randn(2, 8, 4, 4))  # evaluation: the plain convolution
    assert calls == [(2, 8, 4, 4)]


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # training-mode batch norm
def test_a_network_trains_with_the_dense_form_and_traces_to_the_plain_convolution():
    torch.manual_seed(0)
    arch = max(load_space().covering_archs(), key=lambda a: a.to_string().count("_k7_"))
    model = MobileNet(arch, ModelConfig())
    x = torch.randn(4, 1, 28, 28)
    torch.manual_seed(1)  # the same dropout mask in both passes
    trained_form = model.train()(x)
    for m in model.modules():  # the same weights through nn.Conv2d's own forward
        if isinstance(m, DepthwiseConv2d):
            m.forward = lambda t, m=m: torch.nn.Conv2d.forward(m, t)
    torch.manual_seed(1)
    torch.testing.assert_close(trained_form, model(x), rtol=1e-4, atol=1e-4)
    traced = torch.jit.trace(MobileNet(arch, ModelConfig()).train(), x, check_trace=False)
    graph = str(traced.inlined_graph)
    assert "aten::_convolution" in graph and "aten::bmm" not in graph


def test_only_depthwise_layers_get_the_dense_form():
    assert isinstance(conv_bn_act(8, 8, 5, groups=8)[0], DepthwiseConv2d)
    assert type(conv_bn_act(8, 16, 1)[0]) is torch.nn.Conv2d
    assert type(conv_bn_act(8, 16, 3, groups=2)[0]) is torch.nn.Conv2d

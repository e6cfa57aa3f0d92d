"""The compiled first conv of LeNet-5 (`book.chapters.sparse.conv1`) against oneDNN, bit for bit."""
import pytest
import torch
import torch.nn as nn

from book.chapters import sparse as sp
from book.chapters.sparse import conv1, native

CL = torch.channels_last
needs_kernel = pytest.mark.skipif(not (native.x86_avx2() and conv1.status().startswith("compiled")),
                                  reason=f"the compiled conv does not run here: {conv1.status()}")


def bits(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().view(torch.int32).numpy().tobytes()


def layer_and_data(n: int, h: int, w: int, seed: int):
    torch.manual_seed(seed)
    conv = nn.Conv2d(1, 20, 5).to(memory_format=CL)
    x = torch.randn(n, 1, h, w)
    x.view(-1)[:6] = torch.tensor([0.0, -0.0, 1e-40, -1e-40, 3e30, -3e30])   # signed zeros, subnormals, large
    grad = torch.randn(n, 20, h - 4, w - 4)
    grad.view(-1)[:3] = torch.tensor([-0.0, 0.0, 1e-41])
    return conv, x.contiguous(memory_format=CL), grad.contiguous(memory_format=CL)


@pytest.fixture(scope="module")
def libraries(tmp_path_factory):
    """The kernel built with its AVX2 path and with the portable C alone."""
    if not (native.x86_avx2() and conv1.status().startswith("compiled")):
        pytest.skip(conv1.status())
    folder = tmp_path_factory.mktemp("kernels")
    return {name: native.load(native.build(conv1.NAME, folder, flags=native.compiler_flags(avx2=avx2)),
                              conv1.SIGNATURES) for name, avx2 in (("avx2", True), ("portable", False))}


@pytest.mark.parametrize("n,h,w", [(1, 5, 5), (3, 9, 12), (7, 28, 28), (100, 28, 28), (2, 28, 31)])
def test_the_kernel_gives_onednns_bits(libraries, n, h, w):
    conv, x, grad = layer_and_data(n, h, w, seed=n + h + w)
    out = conv(x)
    out.backward(grad)
    for name, lib in libraries.items():
        mine = conv1.forward(lib, x, conv.weight, conv.bias)
        assert mine.is_contiguous(memory_format=CL) and bits(mine) == bits(out), name
        grad_weight, grad_bias = conv1.backward(lib, x, grad)
        assert bits(grad_weight) == bits(conv.weight.grad) and bits(grad_bias) == bits(conv.bias.grad), name


@pytest.mark.parametrize("n,h,w", [(1, 6, 6), (3, 10, 12), (100, 28, 28)])
def test_the_kernel_with_the_pooling_gives_the_three_layers_bits(libraries, n, h, w):
    conv, x, _ = layer_and_data(n, h, w, seed=n + h)
    g = torch.Generator().manual_seed(n)
    pooled_grad = torch.randn(n, 20, (h - 4) // 2, (w - 4) // 2, generator=g)
    pooled_grad.view(-1)[:2] = torch.tensor([-0.0, float("nan")])
    pooled_grad = pooled_grad.contiguous(memory_format=CL)
    with torch.no_grad():
        conv.bias[:3] = torch.tensor([-50.0, 0.0, 50.0])   # channels ReLU zeroes, and ties at zero
    out = torch.relu(torch.max_pool2d(conv(x), 2))
    out.backward(pooled_grad)
    for name, lib in libraries.items():
        mine, code = conv1.pooled_forward(lib, x, conv.weight, conv.bias)
        assert mine.is_contiguous(memory_format=CL) and bits(mine) == bits(out), name
        grad_weight, grad_bias = conv1.pooled_backward(lib, x, pooled_grad, code)
        assert bits(grad_weight) == bits(conv.weight.grad) and bits(grad_bias) == bits(conv.bias.grad), name


@needs_kernel
def test_the_stage_is_the_kernel_where_it_applies_and_the_layer_elsewhere():
    conv, x, grad = layer_and_data(4, 28, 28, seed=0)
    stage = conv1.Conv1Stage(conv)
    out = stage(x)
    assert "Conv1" in type(out.grad_fn).__name__
    out.backward(grad)
    mine = (bits(out), bits(conv.weight.grad), bits(conv.bias.grad))
    conv.weight.grad = conv.bias.grad = None
    ref = conv(x)
    ref.backward(grad)
    assert mine == (bits(ref), bits(conv.weight.grad), bits(conv.bias.grad))
    # an input that needs its gradient, another layer: the layer itself
    assert "Conv1" not in type(stage(x.clone().requires_grad_()).grad_fn).__name__
    other = conv1.Conv1Stage(nn.Conv2d(1, 20, 5, padding=1))
    assert not conv1.kernel_applies(other.conv, x) and "Conv1" not in type(other(x).grad_fn).__name__
    assert not conv1.layer_fits(nn.Conv2d(1, 20, 3)) and not conv1.layer_fits(nn.Conv2d(1, 20, 5, bias=False))
    # with the pooling: one kernel where the conv's output has even sides, else the conv then the pooling
    pooled = conv1.Conv1PoolReLUStage(conv)
    assert "Conv1PoolReLU" in type(pooled(x).grad_fn).__name__
    odd = torch.randn(2, 1, 27, 28)
    assert not conv1.pooled_applies(conv, odd) and "Conv1PoolReLU" not in type(pooled(odd).grad_fn).__name__
    assert bits(pooled(odd)) == bits(torch.relu(torch.max_pool2d(conv(odd), 2)))

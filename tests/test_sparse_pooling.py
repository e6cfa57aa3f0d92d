"""The fused max-pool + ReLU kernel (`book.chapters.sparse.pooling`) against ATen, bit for bit."""
import hashlib

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from book.chapters import sparse as sp
from book.chapters.sparse import native, pooling

CL = torch.channels_last
needs_kernel = pytest.mark.skipif(not pooling.status().startswith("compiled"),
                                  reason=f"no compiled kernel here: {pooling.status()}")


def bits(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().view(torch.int32).numpy().tobytes()


def awkward_map(n: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Values that make a pooling kernel choose: many ties (small integers), signed zeros, ±inf, NaN."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-3, 4, (n, c, h, w), generator=g).float()
    special = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan"), 1e-45, -1e-45])
    pick = torch.randint(0, 6, x.shape, generator=g) == 0
    x[pick] = special[torch.randint(0, len(special), (int(pick.sum()),), generator=g)]
    return x.contiguous(memory_format=CL)


def aten(x: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().requires_grad_()
    out = F.relu(F.max_pool2d(x, 2))
    out.backward(grad)
    return out, x.grad


@pytest.fixture(scope="module")
def libraries(tmp_path_factory):
    """The kernel built twice: with the AVX2 path where this CPU has it, and the portable C alone."""
    if not pooling.status().startswith("compiled"):
        pytest.skip(pooling.status())
    folder = tmp_path_factory.mktemp("kernels")
    build = lambda avx2: native.load(native.build(pooling.NAME, folder, flags=native.compiler_flags(avx2=avx2)),
                                     pooling.SIGNATURES)
    return {"portable": build(False), **({"avx2": build(True)} if native.x86_avx2() else {})}


@pytest.mark.parametrize("c", [1, 3, 4, 8, 12, 20, 50, 64])   # the 8-wide loop, the 4-wide one, the tail
@pytest.mark.parametrize("channel_major", [False, True])
def test_the_kernel_gives_atens_bits_forward_and_backward(libraries, c, channel_major):
    x = awkward_map(5, c, 8, 6, seed=c)
    grad = awkward_map(5, c, 4, 3, seed=100 + c)
    if channel_major:
        grad = grad.contiguous()
    want_out, want_grad = aten(x, grad)
    for name, lib in libraries.items():
        out, code = pooling.forward(lib, x, channel_major)
        assert out.is_contiguous() if channel_major else out.is_contiguous(memory_format=CL), name
        assert bits(out) == bits(want_out), name
        got = pooling.backward(lib, grad, code, tuple(x.shape))
        assert got.is_contiguous(memory_format=CL), name
        assert bits(got) == bits(want_grad), name


@needs_kernel
def test_max_pool2_relu_is_the_kernel_where_it_applies_and_aten_elsewhere():
    x = awkward_map(3, 20, 12, 12, seed=1).requires_grad_()
    assert pooling.kernel_applies(x)
    out = pooling.max_pool2_relu(x)
    assert out.grad_fn is not None and "PoolReLU" in type(out.grad_fn).__name__
    grad = awkward_map(3, 20, 6, 6, seed=2)
    out.backward(grad)
    want_out, want_grad = aten(x, grad)
    assert bits(out) == bits(want_out) and bits(x.grad) == bits(want_grad)
    # maps the kernel does not take: the same function from ATen's ops
    for odd in (awkward_map(2, 4, 7, 8, seed=3), awkward_map(2, 65, 4, 4, seed=4),
                awkward_map(2, 4, 4, 4, seed=5).contiguous(), awkward_map(2, 4, 4, 4, seed=6).double()):
        assert not pooling.kernel_applies(odd)
        assert pooling.max_pool2_relu(odd).numpy().tobytes() == F.relu(F.max_pool2d(odd, 2)).numpy().tobytes()


def test_lenet5_keeps_its_layers_names_and_runs_them_one_by_one_when_not_fused():
    net = sp.lenet5_caffe()
    assert list(net.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias",
                                      "9.weight", "9.bias"]
    assert len(list(net.children())) == 10          # the stages are not layers of the net
    assert net[:3].stages is None                   # a slice is not LeNet-5: its layers run one by one
    x = torch.randn(4, 1, 28, 28)
    net.fused = False
    plain = net(x)
    net.fused = True
    assert net._runs_in_stages(x) == pooling.status().startswith("compiled")
    assert bits(net(x)) == bits(plain)
    seen = []
    handle = net[0].register_forward_hook(lambda *a: seen.append("conv1"))
    assert not net._runs_in_stages(x) and bits(net(x)) == bits(plain) and seen == ["conv1"]   # hooks still fire
    handle.remove()
    assert net._runs_in_stages(x) == pooling.status().startswith("compiled")


@needs_kernel
def test_lenet5_trains_to_the_same_bits_with_the_kernel_as_layer_by_layer():
    """Sparse momentum at 5 % with a prune/regrow cycle, and dense: parameters and momentum byte for byte."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(400, 1, 28, 28, generator=g), torch.randint(0, 10, (400,), generator=g)

    def run(fused: bool, density: float) -> str:
        torch.manual_seed(0)
        model = sp.lenet5_caffe()
        model.fused = fused
        opt = sp.sgd(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        stepper = sp.SparseMomentum(model, opt, density, epochs=4, seed=0)
        for epoch in range(2):
            for b in range(4):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x[b * 100:(b + 1) * 100]), y[b * 100:(b + 1) * 100]).backward()
                stepper.step()
            stepper.end_epoch()
        h = hashlib.sha256()
        for p in model.parameters():
            h.update(bits(p) + bits(opt.state[p]["momentum_buffer"]))
        h.update(bits(model(x[:100])))
        return h.hexdigest()

    for density in (0.05, 1.0):
        assert run(True, density) == run(False, density)


def test_the_stages_are_those_of_the_net():
    net = sp.lenet5_caffe()
    kinds = [type(s) for s in net.stages]
    assert kinds == [sp.conv1.Conv1PoolReLUStage, nn.Conv2d, pooling.MaxPool2ReLU, nn.Flatten, nn.Linear, nn.ReLU,
                     nn.Linear]
    assert net.stages[0].conv is net[0] and net.stages[1] is net[3] and net.stages[4] is net[7]

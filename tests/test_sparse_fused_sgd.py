"""The compiled SGD step (`book.chapters.sparse.fused_sgd`) against torch's, bit for bit."""
import pytest
import torch

from book.chapters.sparse import fused_sgd, native

needs_kernel = pytest.mark.skipif(not (native.x86_avx2() and fused_sgd.status().startswith("compiled")),
                                  reason=f"the compiled step does not run here: {fused_sgd.status()}")


def bits(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().view(torch.int32).numpy().tobytes()


def params(seed: int) -> list[torch.nn.Parameter]:
    """Sizes that leave every remainder of ATen's 16-wide loop, a channels-last conv weight, and values
    with signed zeros, tiny and huge magnitudes."""
    g = torch.Generator().manual_seed(seed)
    out = [torch.nn.Parameter(torch.randn(n, generator=g)) for n in (1, 7, 16, 20, 33, 500, 25000)]
    for shape in ((50, 20, 5, 5), (20, 1, 5, 5)):   # LeNet-5's conv weights (the second: channels-last with C = 1)
        out.append(torch.nn.Parameter(torch.randn(shape, generator=g).contiguous(memory_format=torch.channels_last)))
    with torch.no_grad():
        out[2][:4] = torch.tensor([0.0, -0.0, 1e-39, -3e38])
    return out


def train(optimizer_class, steps: int, lrs=(0.1, 0.1, 0.01, 0.01, 0.001)) -> list[bytes]:
    ps = params(0)
    opt = optimizer_class(ps)
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lrs[step % len(lrs)]
        for p in ps:
            p.grad = torch.randn(p.shape, generator=g).contiguous(memory_format=torch.channels_last
                                                                   if p.dim() == 4 else torch.contiguous_format)
            if step == 2 and p.dim() == 1 and len(p) > 1:
                p.grad[:2] = torch.tensor([-0.0, 0.0])
        opt.step()
    return [bits(p) for p in ps] + [bits(opt.state[p]["momentum_buffer"]) for p in ps] + [bits(p.grad) for p in ps]


@needs_kernel
@pytest.mark.parametrize("foreach", [True, False])
def test_the_compiled_step_gives_torchs_bits(foreach, monkeypatch):
    calls = []
    real = fused_sgd._torch_step
    monkeypatch.setattr(fused_sgd, "_torch_step", lambda opt, closure: calls.append(1) or real(opt, closure))
    mine = train(lambda ps: fused_sgd.NesterovSGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4), 6)
    assert len(calls) == 1            # torch's step once (it makes the momentum), then the compiled one
    theirs = train(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                                              foreach=foreach), 6)
    assert mine == theirs             # parameters, momentum, and the gradients left as they were


def test_where_the_compiled_step_does_not_apply_torchs_runs(monkeypatch):
    calls = []
    real = fused_sgd._torch_step
    monkeypatch.setattr(fused_sgd, "_torch_step", lambda opt, closure: calls.append(1) or real(opt, closure))
    p = torch.nn.Parameter(torch.randn(10, dtype=torch.float64))
    opt = fused_sgd.NesterovSGD([p], lr=0.1, momentum=0.9, weight_decay=0.0)
    for _ in range(2):
        p.grad = torch.ones_like(p)
        opt.step()
    q = torch.nn.Parameter(torch.randn(10))
    opt = fused_sgd.NesterovSGD([q], lr=0.1, momentum=0.9, weight_decay=0.0)
    q.grad = torch.ones_like(q)
    opt.step()
    q.grad = torch.ones(20)[::2]      # a strided gradient
    opt.step()
    assert float(opt.step(lambda: torch.tensor(1.0))) == 1.0   # a closure: torch's step, which returns its loss
    assert len(calls) == 5


@needs_kernel
def test_the_step_hooks_run_once_and_versions_move():
    p = torch.nn.Parameter(torch.randn(10))
    opt = fused_sgd.NesterovSGD([p], lr=0.1, momentum=0.9, weight_decay=1e-4)
    seen = []
    opt.register_step_pre_hook(lambda *a: seen.append("pre"))
    opt.register_step_post_hook(lambda *a: seen.append("post"))
    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)   # torch wraps SGD.step with its hooks too
    for _ in range(2):
        p.grad = torch.ones_like(p)
        before = p._version
        opt.step()
        assert p._version > before
    assert seen == ["pre", "post", "pre", "post"]


def test_state_dict_is_sgds():
    p = torch.nn.Parameter(torch.randn(4))
    opt = fused_sgd.NesterovSGD([p], lr=0.1, momentum=0.9, weight_decay=1e-4)
    p.grad = torch.ones_like(p)
    opt.step()
    plain = torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4, foreach=True)
    plain.load_state_dict(opt.state_dict())
    assert torch.equal(plain.state[p]["momentum_buffer"], opt.state[p]["momentum_buffer"])

"""The legacy probe (AdamWatch, kept for optstats.network): the book's Adam is torch's, and AdamWatch reads it right.

References are independent of the probe's code: the update direction is
recovered from the change of the weights (theta_{t-1} (1 - lr wd) - theta_t)
/ lr, the momentum from an EMA of the gradients kept by the test, the angle
from numpy's arccos in float64.
"""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from optstats import optimizers  # noqa: E402
from optstats.probe import FIELDS, AdamWatch  # noqa: E402


@pytest.mark.parametrize("beta1, beta2, eps", [(0.9, 0.95, 1e-8), (0.5, 0.999, 1e-3), (0.0, 0.9, 0.0)])
def test_book_adam_is_torch_adam(beta1, beta2, eps):
    rng = np.random.default_rng(7)
    grads = rng.standard_normal((30, 5)) * np.array([1.0, 1e-3, 10.0, 0.1, 3.0]) + 0.2
    p = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=1.0, betas=(beta1, beta2), eps=eps)
    rule = optimizers.Adam(beta1, beta2, eps, bias_correction=True)
    state = rule.init((5,))
    for g in grads:
        before = p.detach().clone()
        p.grad = torch.tensor(g)
        opt.step()
        theirs = (before - p.detach()).numpy()  # lr = 1: theta moves by -u
        ours = rule.step(state, g)
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(6, 8)
        self.norm = torch.nn.LayerNorm(8)
        self.out = torch.nn.Linear(8, 3)
        self.frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)
        self.unused = torch.nn.Parameter(torch.ones(2))

    def forward(self, x):
        return self.out(self.norm(torch.relu(self.fc(x))))


def train(watch_it, steps=12, lr=0.05, wd=0.1, two_groups=False):
    torch.manual_seed(3)
    net = Net().double()
    if two_groups:  # the first layer with its own beta2, eps and no decay
        first = list(net.fc.parameters())
        rest = [p for n, p in net.named_parameters() if not n.startswith("fc.")]
        groups = [{"params": first, "betas": (0.9, 0.99), "eps": 1e-3, "weight_decay": 0.0}, {"params": rest}]
    else:
        groups = net.parameters()
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=wd)
    watch = AdamWatch(net, opt) if watch_it else None
    gen = torch.Generator().manual_seed(4)
    records, snapshots, grads = [], [], []
    for _ in range(steps):
        x = torch.randn(16, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (16,), generator=gen)
        before = {n: p.detach().clone() for n, p in net.named_parameters()}
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        snapshots.append(before)
        grads.append({n: p.grad.detach().clone() for n, p in net.named_parameters() if p.grad is not None})
        if watch:
            records.append(watch.record())
    return net, records, snapshots, grads


@pytest.mark.parametrize("two_groups", [False, True])
def test_watch_fields_against_hand_computation(two_groups):
    lr = 0.05
    net, records, snapshots, grads = train(True, lr=lr, wd=0.1, two_groups=two_groups)
    params = dict(net.named_parameters())
    momentum = {n: np.zeros(p.numel()) for n, p in params.items()}
    for t, (rec, before, g) in enumerate(zip(records, snapshots, grads)):
        assert set(rec) == {"fc.weight", "fc.bias", "norm.weight", "norm.bias", "out.weight", "out.bias"}
        after = snapshots[t + 1] if t + 1 < len(snapshots) else {n: p.detach() for n, p in params.items()}
        for name, stats in rec.items():
            assert tuple(stats) == FIELDS
            b = before[name].numpy().ravel()
            a = after[name].numpy().ravel()
            gg = g[name].numpy().ravel()
            momentum[name] = 0.9 * momentum[name] + 0.1 * gg
            wd = 0.0 if two_groups and name.startswith("fc.") else 0.1
            u = (b * (1 - lr * wd) - a) / lr  # AdamW: theta <- theta (1 - lr wd) - lr u
            assert stats["update_rms"] == pytest.approx(np.sqrt(np.mean(u**2)), rel=1e-9)
            assert stats["weight_rms"] == pytest.approx(np.sqrt(np.mean(a**2)), rel=1e-12)
            assert stats["grad_norm"] == pytest.approx(np.linalg.norm(gg), rel=1e-12)
            want = np.linalg.norm(momentum[name]) / np.linalg.norm(gg)
            assert stats["momentum_ratio"] == pytest.approx(want, rel=1e-10)
            if not np.any(b):  # zero-initialised (biases, LayerNorm's shift)
                assert np.isnan(stats["cos_theta_u"]) and np.isnan(stats["angle"])
                continue
            cos_bu = b @ u / (np.linalg.norm(b) * np.linalg.norm(u))
            assert stats["cos_theta_u"] == pytest.approx(cos_bu, rel=1e-8, abs=1e-10)
            cos_ba = np.clip(b @ a / (np.linalg.norm(b) * np.linalg.norm(a)), -1, 1)
            assert stats["angle"] == pytest.approx(np.arccos(cos_ba), rel=1e-6, abs=1e-7)


def test_watching_does_not_change_training():
    watched, *_ = train(True)
    plain, *_ = train(False)
    for (n, p), (_, q) in zip(watched.named_parameters(), plain.named_parameters()):
        assert torch.equal(p, q), n


def test_bad_input():
    net = Net()
    with pytest.raises(ValueError, match="optimizer"):
        AdamWatch(net, torch.optim.SGD(net.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="amsgrad"):
        AdamWatch(net, torch.optim.Adam(net.parameters(), amsgrad=True))
    with pytest.raises(ValueError, match="model"):
        AdamWatch(object(), torch.optim.Adam(net.parameters()))


def test_package_works_without_torch():
    # torch made unimportable: every module but probe still imports
    code = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch blocked by the test')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import importlib, pkgutil, optstats\n"
        "for m in pkgutil.walk_packages(optstats.__path__, 'optstats.'):\n"
        "    if not m.name.startswith(('optstats.probe', 'optstats.network')):\n"
        "        importlib.import_module(m.name)\n"
        "assert 'torch' not in sys.modules\n"
        "try:\n"
        "    import optstats.probe\n"
        "except ImportError:\n"
        "    print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_flat_buffers_are_the_last_step():
    torch.manual_seed(3)
    net2 = Net().double()
    opt = torch.optim.AdamW(net2.parameters(), lr=0.05)
    watch = AdamWatch(net2, opt)
    net2(torch.zeros(1, 6, dtype=torch.float64)).sum().backward()
    opt.step()
    watch.record()
    flat = watch.flat
    assert flat.names == ("fc.weight", "fc.bias", "norm.weight", "norm.bias", "out.weight", "out.bias")
    assert flat.sizes == (48, 8, 8, 8, 24, 3)
    g = torch.cat([p.grad.flatten() for p in net2.parameters() if p.grad is not None])
    assert torch.equal(flat.gradient, g)
    v = torch.cat([opt.state[p]["exp_avg_sq"].flatten() for p in net2.parameters() if p in opt.state])
    want = torch.sqrt(v / (1 - 0.999)) + 1e-8  # step 1, torch's default betas and eps
    torch.testing.assert_close(flat.denominator, want, rtol=1e-15, atol=0)
    m = torch.cat([opt.state[p]["exp_avg"].flatten() for p in net2.parameters() if p in opt.state])
    torch.testing.assert_close(flat.update, m / (1 - 0.9) / want, rtol=1e-15, atol=0)

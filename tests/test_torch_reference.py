"""References that are not the probe: the book's numpy Adam is torch's, and
the package without torch still imports (only probe and network need it)."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from optstats import optimizers  # noqa: E402


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

"""optimizers.Muon is torch.optim.Muon: the same gradients, the same weights.

torch runs in float64 here, so that the only differences left are those of
the Newton-Schulz iteration in bfloat16. The reference update is recovered
from torch's weights with torch's own convention (decay by the unadjusted lr,
step by the adjusted one): O_t = (theta_{t-1} (1 - lr wd) - theta_t) / lr_adj,
exact to float64 rounding. A wrong Nesterov input, scale factor or decay
convention changes O_t by a whole unit, far outside the tolerances below.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from optstats import optimizers, theory  # noqa: E402

#: bfloat16 keeps 8 significant bits: one unit in the last place (ulp) is
#: 2^-8 of its binade. Where the iteration's sums are short (min(n, m) <= 32
#: here) the emulation gives torch's bits on most steps; on a few, torch's
#: float32 accumulator and our float64 sum round one entry of a Gram matrix to
#: different neighbours, and the later products spread that one ulp over the
#: whole update (measured: up to 0.7% RMS on such a step). On larger matrices
#: the kernel's summation order flips more roundings: measured 0.3-0.6% RMS on
#: average over steps, 1.0% at worst, and largest entries up to 1.8% of max|O|
#: (64x64 to 300x200), against 1.1-1.7% RMS on average for float32 or float64
#: Newton-Schulz. Hence: on average one ulp in RMS (MEAN_RMS_TOL), on every
#: step four ulps in RMS (STEP_RMS_TOL) and eight of the largest entry (MAX_TOL).
MEAN_RMS_TOL = 2.0**-8
STEP_RMS_TOL = 2.0**-6
MAX_TOL = 2.0**-5


def _run(shape, nesterov, adjust_lr_fn, wd, ns_dtype="bfloat16", steps=30, lr=0.02, beta=0.95):
    rng = np.random.default_rng(5)
    theta0 = 0.1 * rng.standard_normal(shape)
    p = torch.nn.Parameter(torch.from_numpy(theta0.copy()))
    opt = torch.optim.Muon([p], lr=lr, weight_decay=wd, momentum=beta, nesterov=nesterov, adjust_lr_fn=adjust_lr_fn)
    rule = optimizers.Muon(beta, ns_steps=5, nesterov=nesterov, ns_dtype=ns_dtype)
    state = rule.init(shape)
    lr_adj = theory.torch_muon_lr(lr, shape, adjust_lr_fn)
    ours = theta0.copy()
    rms, worst, drift = [], [], []
    for t in range(1, steps + 1):
        g = rng.standard_normal(shape)
        before = p.detach().numpy().copy()
        p.grad = torch.from_numpy(g.copy())
        opt.step()
        after = p.detach().numpy()
        o_torch = (before * (1.0 - lr * wd) - after) / lr_adj
        u = rule.step(state, g)
        ours = ours * (1.0 - lr * wd) - lr_adj * u
        rms.append(np.sqrt(np.mean((o_torch - u) ** 2) / np.mean(u**2)))
        worst.append(np.max(np.abs(o_torch - u)) / np.max(np.abs(u)))
        # the weights: each step adds at most lr_adj * MAX_TOL * max|u|
        drift.append(np.max(np.abs(after - ours)) / (t * lr_adj * MAX_TOL * np.max(np.abs(u))))
    return np.array(rms), np.array(worst), np.array(drift)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("adjust_lr_fn", ["original", "match_rms_adamw"])
@pytest.mark.parametrize("wd", [0.0, 0.1])
@pytest.mark.parametrize("shape", [(16, 16), (32, 8)])
def test_short_sums_reproduce_torch_bit_for_bit_but_rare_flips(shape, nesterov, adjust_lr_fn, wd):
    rms, worst, drift = _run(shape, nesterov, adjust_lr_fn, wd)
    # most steps are bit for bit (float64 rounding of the recovery only)
    assert np.mean(rms < 1e-12) >= 0.8, np.mean(rms < 1e-12)
    assert rms.max() <= STEP_RMS_TOL and worst.max() <= MAX_TOL, (rms.max(), worst.max())
    assert np.all(drift <= 1.0), drift.max()


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("shape", [(64, 64), (48, 96)])
def test_long_sums_within_bfloat16_rounding(shape, nesterov):
    rms, worst, drift = _run(shape, nesterov, "match_rms_adamw", 0.1)
    assert rms.mean() <= MEAN_RMS_TOL, rms.mean()
    assert rms.max() <= STEP_RMS_TOL, rms.max()
    assert worst.max() <= MAX_TOL, worst.max()
    assert np.all(drift <= 1.0), drift.max()


def test_the_tolerance_tells_precisions_and_rules_apart():
    # float64 Newton-Schulz is outside the bfloat16 tolerance (so the test sees
    # the emulation), and so is the other momentum kind
    rms, _, _ = _run((64, 64), True, "original", 0.1, ns_dtype="float64", steps=10)
    assert rms.mean() > MEAN_RMS_TOL, rms.mean()
    rule = optimizers.Muon(0.95, ns_steps=5, nesterov=False, ns_dtype="bfloat16")
    rng = np.random.default_rng(0)
    p = torch.nn.Parameter(torch.zeros((16, 16), dtype=torch.float64))
    opt = torch.optim.Muon([p], lr=1.0, weight_decay=0.0, momentum=0.95)  # nesterov=True by default
    state = rule.init((16, 16))
    for _ in range(3):
        g = rng.standard_normal((16, 16))
        before = p.detach().numpy().copy()
        p.grad = torch.from_numpy(g.copy())
        opt.step()
        u = rule.step(state, g)
    o_torch = before - p.detach().numpy()
    assert np.sqrt(np.mean((o_torch - u) ** 2) / np.mean(u**2)) > 0.1


def test_bfloat16_rounding_is_torchs():
    x = np.random.default_rng(1).standard_normal(10_000) * 10.0 ** np.random.default_rng(2).integers(-30, 30, 10_000)
    # ties: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 and goes to the even 1
    x = np.concatenate([x, [1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, -0.0, np.inf, 3.39e38]])
    ours = optimizers.round_bfloat16(x)
    theirs = torch.from_numpy(x.astype(np.float32)).bfloat16().double().numpy()
    np.testing.assert_array_equal(ours, theirs)

"""Muon with Nesterov momentum, and the matrix law at any shape (issue 28).

References independent of the code under test: sympy for Nesterov's lag
factor, the filter's coefficients summed by brute force, the "matrix" Monte
Carlo of the very shape for the shipped table, and simulated Muon (optimizers,
simulate) for the weight RMS and the angle.
"""

import numpy as np
import pytest
import sympy as sp

from optstats import gradients, optimizers, simulate, symbolic, theory
from optstats.theory.muon import _table_nodes


def test_nesterov_lag_factor_by_sympy_and_by_the_filter():
    b = sp.symbols("beta", positive=True)
    k = sp.symbols("k", integer=True, positive=True)
    # x_t = beta m_t + (1 - beta) g_t = (1 - beta^2) g_t + sum_k (1 - beta) beta^(k+1) g_{t-k}
    h0, h = 1 - b**2, lambda j: (1 - b) * b ** (j + 1)
    # the tails are geometric in beta^(2k): sum_k h_k h_{k+d} = (1 - beta)^2 beta^(d+2) S2
    n = sp.symbols("n", integer=True, positive=True)
    finite = symbolic.geometric_sum(b ** (2 * k), k, 1, n)
    assert sp.simplify(finite - (b**2 - b ** (2 * n + 2)) / (1 - b**2)) == 0
    s2 = b**2 / (1 - b**2)  # the finite sum as n -> oo, beta < 1
    var = h0**2 + (1 - b) ** 2 * b**2 * s2
    claimed = b * (1 + b - b**2) / (1 + 2 * b - 2 * b**3)
    for lag in (1, 2, 5):
        assert sp.simplify(sp.powsimp(h(k) * h(k + lag) - (1 - b) ** 2 * b ** (lag + 2) * b ** (2 * k))) == 0
        cov = h0 * h(lag) + (1 - b) ** 2 * b ** (lag + 2) * s2
        # the lag-d covariance over the variance is claimed * beta^d at every lag d >= 1
        assert sp.simplify(cov / var - claimed * b**lag) == 0
    c = claimed
    for beta in (0.5, 0.9, 0.95, 0.99):
        coef = np.concatenate([[1 - beta**2], (1 - beta) * beta ** np.arange(2, 20_000)])
        for lag in (1, 3, 10):
            brute = coef[:-lag] @ coef[lag:] / (coef @ coef)
            assert theory.momentum_lag_correlation(beta, lag, nesterov=True) == pytest.approx(brute, rel=1e-10)
            assert float(c.subs(b, beta)) * beta**lag == pytest.approx(brute, rel=1e-10)
    assert theory.momentum_lag_correlation(0.9, 0, nesterov=True) == 1.0
    assert theory.momentum_lag_correlation(0.9, 4) == pytest.approx(0.9**4)


def test_muon_rule_nesterov_input_is_torchs_formula():
    rule, rng = optimizers.Muon(0.9, nesterov=True), np.random.default_rng(0)
    state, m = rule.init((5, 3)), np.zeros((5, 3))
    for _ in range(4):
        g = rng.standard_normal((5, 3))
        m = 0.9 * m + 0.1 * g
        u = rule.step(state, g)
        np.testing.assert_allclose(u, optimizers.msign(0.9 * m + 0.1 * g), atol=1e-12)


INTERP_TOL = 5e-3


#: off the table's grid in size and aspect ratio; the reference is the
#: "matrix" Monte Carlo of the shape itself, two seeds
@pytest.mark.parametrize("shape", [(3, 7), (6, 10), (12, 40), (20, 20), (48, 64)])
def test_table_against_the_shapes_own_monte_carlo(shape):
    rho = np.array([0.95, 0.9, 0.8, 0.6, 0.3])
    table = theory.msign_correlation(rho, shape)
    mc = [theory.msign_correlation(rho, shape, method="matrix", seed=s) for s in (0, 1)]
    # the two seeds' spread is the Monte Carlo's error; the table's own standard
    # error and its interpolation error add to it: INTERP_TOL is the largest
    # measured, 0.005 at aspect 3/4 (24x32, 48x64), between the tabulated 1/2 and 1
    _, _, se = _table_nodes(*shape)
    err = np.abs(table - np.mean(mc, axis=0))
    tol = 4 * (np.abs(mc[0] - mc[1]) + se.max()) + INTERP_TOL
    assert np.all(err < tol), (err, tol)


def test_table_approaches_a_large_shape_limit():
    rho = 0.9
    big = [theory.msign_correlation(rho, (k, k)) for k in (64, 256, 1024, 4096, 16384)]
    # monotone in k, with increments shrinking like 1/k
    steps = np.diff(big)
    assert np.all(steps >= 0) and np.all(steps[1:] <= steps[:-1] + 1e-12)
    # at any shape, between the momentum's correlation and the 1 x 1 arcsine law
    r = theory.msign_correlation(rho, (16384, 65536))
    assert 2 / np.pi * np.arcsin(rho) < r < rho


@pytest.mark.parametrize("shape, beta1", [((8, 8), 0.95), ((4, 16), 0.9)])
def test_nesterov_weight_rms_and_angle_against_simulated_muon(shape, beta1):
    wd = np.array([1e-4, 1e-3])
    rule = optimizers.Muon(beta1, nesterov=True)
    est = simulate.weight_rms(rule, gradients.Gaussian(), lr=1.0, wd=wd, rng=np.random.default_rng(4), n_coords=32,
                              groups=16, matrix_shape=shape, block=128, steps=2000)
    w = theory.muon_weight_rms(1.0, wd, beta1, shape, nesterov=True)
    # the table's error in R moves W by about half of it relatively (W ~ sqrt(S)); 4 standard errors
    _, _, se = _table_nodes(*shape)
    tol = 4 * np.hypot(est.stderr, 0.5 * se.max() * w) + 0.002 * w
    assert np.all(np.abs(w - est.value) < tol), (w, est)
    # Nesterov lowers the weight RMS against EMA momentum at the same beta1
    assert np.all(w < theory.muon_weight_rms(1.0, wd, beta1, shape))
    # the angle per step, from the same model
    prod = simulate.weight_update_products(rule, gradients.Gaussian(), lr=1.0, wd=1e-3, theta0_rms=float(w[1]),
                                           rng=np.random.default_rng(5), n_coords=32, groups=16, matrix_shape=shape,
                                           block=128, steps=3000)
    angle = theory.muon_angular_update(1.0, 1e-3, beta1, shape, nesterov=True)
    a = prod["angle"]
    assert abs(angle - a.value) < 4 * a.stderr + 0.01 * angle, (angle, a)


def test_torch_convention_helper():
    shape = (256, 1024)
    for fn, factor in ((None, 1.0), ("original", 1.0), ("match_rms_adamw", 0.2 * 32)):
        eta = theory.torch_muon_lr(0.02, shape, fn)
        assert eta == pytest.approx(0.02 * factor)
        w = theory.torch_muon_weight_rms(0.02, 0.1, 0.95, shape, adjust_lr_fn=fn)
        assert w == pytest.approx(theory.muon_weight_rms(eta, 0.02 * 0.1 / eta, 0.95, shape, nesterov=True))
    # tall: "original" steps by sqrt(4) lr, and the weights scale with it
    tall = theory.torch_muon_weight_rms(0.02, 0.1, 0.95, (1024, 256))
    assert tall == pytest.approx(2 * theory.muon_weight_rms(0.02, 0.1, 0.95, (1024, 256), nesterov=True), rel=1e-3)
    with pytest.raises(ValueError, match="adjust_lr_fn"):
        theory.torch_muon_lr(0.02, shape, "none")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: theory.muon_weight_rms(1e-3, 0.1, 0.9, (4, 4), nesterov="yes"), "nesterov"),
        (lambda: theory.momentum_lag_correlation(0.9, -1), "lag"),
        (lambda: theory.msign_correlation(0.5, (4, 4), pairs=64), "pairs"),
        (lambda: theory.conv_matrix((8, 4, 3, 3), "torch-original"), "p.ndim"),
        (lambda: theory.conv_matrix((8, 4, 3), "keller-jordan"), "shape"),
        (lambda: theory.conv_matrix((8, 4), "spectral"), "convention"),
        (lambda: optimizers.Muon(0.9, ns_dtype="bfloat16"), "ns_dtype"),
        (lambda: optimizers.Muon(0.9, ns_steps=5, ns_dtype="float16"), "ns_dtype"),
        (lambda: optimizers.Muon(0.9, nesterov=1), "nesterov"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()

"""Lion's weight RMS and Muon's matching scale (theory.lion, theory.muon).

The arcsine formula is checked three ways: its pre-sign correlation derived
again with sympy from the recursion, that correlation against a simulation,
and the weight RMS against the simulated Lion (simulate.weight_rms, whose
control variate now uses Lion's beta2 momentum).
"""

import numpy as np
import pytest
import sympy as sp

from optstats import gradients, optimizers, simulate, stats, theory


def test_presign_correlation_derived_with_sympy():
    b1, b2 = sp.symbols("beta_1 beta_2", positive=True)
    d = sp.Symbol("d", integer=True, positive=True)
    V = (1 - b2) / (1 + b2)  # stationary Var m, sigma = 1
    # c_t = b1 m_{t-1} + (1 - b1) g_t and m_t = b2 m_{t-1} + (1 - b2) g_t:
    # Cov(c_t, m_t) = b1 b2 V + (1 - b1)(1 - b2); m_{t+d-1} = b2^(d-1) m_t + (later g)
    cov_c_m = b1 * b2 * V + (1 - b1) * (1 - b2)
    cov = b1 * b2 ** (d - 1) * cov_c_m
    var_c = b1**2 * V + (1 - b1) ** 2
    f = sp.lambdify((b1, b2, d), cov / var_c)
    for beta1, beta2 in [(0.9, 0.99), (0.5, 0.9), (0.0, 0.95), (0.95, 0.98)]:
        lags = np.arange(1, 6)
        np.testing.assert_allclose(theory.lion_presign_correlation(beta1, beta2, lags),
                                   f(beta1, beta2, lags), rtol=1e-13)


def test_presign_correlation_against_simulation():
    rng = np.random.default_rng(5)
    beta1, beta2, n, steps = 0.9, 0.95, 20_000, 400
    m = np.zeros(n)
    cs = []
    for t in range(steps):
        g = rng.standard_normal(n)
        cs.append(beta1 * m + (1 - beta1) * g)
        m = beta2 * m + (1 - beta2) * g
    c = np.array(cs[200:])  # stationary
    for lag in (1, 3, 10):
        r = np.mean(c[:-lag] * c[lag:], axis=0) / np.mean(c * c)
        est = stats.from_replicas(r.reshape(40, -1).mean(1))
        assert abs(stats.z_scores(est, theory.lion_presign_correlation(beta1, beta2, lag))) < 5


@pytest.mark.parametrize("beta1, beta2", [(0.9, 0.95), (0.5, 0.9)])
def test_lion_weight_rms_arcsine_against_simulated_lion(beta1, beta2):
    lr, wd = 1e-2, 1.0
    est = simulate.weight_rms(optimizers.Lion(beta1, beta2), gradients.Gaussian(), lr=lr, wd=wd,
                              rng=np.random.default_rng(8), n_coords=4_000)
    want = theory.lion_weight_rms(lr, wd, beta1, beta2)
    # 5 standard errors (Student t, 39 dof: a correct formula fails with p ~ 1e-5)
    assert abs(stats.z_scores(est, want)) < 5


def test_lion_special_cases():
    # beta1 = beta2 = 0 is SignSGD: independent +-1 updates, W^2 = lr^2 / (1 - beta3^2)
    lr, wd = 1e-3, 2.0
    b3 = 1 - lr * wd
    assert theory.lion_weight_rms(lr, wd, 0.0, 0.0) == pytest.approx(lr / np.sqrt(1 - b3**2), rel=1e-12)
    # Lion with beta1 = beta2 is SignSGDM: the weight-RMS chapter's arcsine formula
    np.testing.assert_allclose(theory.lion_weight_rms(lr, wd, 0.9, 0.9),
                               theory.signsgdmw_weight_rms(lr, wd, 0.9, method="arcsine"), rtol=1e-10)
    # broadcasting over a grid
    grid = theory.lion_weight_rms(np.array([1e-3, 1e-2])[:, None], 1.0, np.array([0.5, 0.9]), 0.99)
    assert grid.shape == (2, 2)


def test_muon_update_rms_and_matching_scale():
    rng = np.random.default_rng(9)
    for shape in [(64, 64), (32, 128), (128, 32)]:
        u = optimizers.msign(rng.standard_normal(shape))
        assert np.sqrt(np.mean(u**2)) == pytest.approx(theory.muon_update_rms(shape), rel=1e-12)
    exact = theory.adam_matching_scale(0.9, 0.95, (1024, 4096))
    assert exact * theory.muon_update_rms((1024, 4096)) == pytest.approx(
        theory.adam_update_rms(0.9, 0.95, method="exact"), rel=1e-14)
    mf = theory.adam_matching_scale(0.9, 0.95, (1024, 4096), method="mean-field")
    assert mf == pytest.approx(np.sqrt(0.1 / 1.9) * 64, rel=1e-14)


def test_msign_correlation_endpoints_and_special_shapes():
    # exact at rho = 0 and 1; odd in rho; the 1 x 1 matrix is the scalar sign,
    # whose correlation is the arcsine law: the Monte Carlo error of one pair
    # product (+-1) is at most 1, so 4/sqrt(pairs) is a four-sigma bound
    assert theory.msign_correlation(0.0, (8, 8)) == 0.0
    assert theory.msign_correlation(1.0, (8, 8)) == pytest.approx(1.0, abs=1e-15)
    rho = np.array([0.2, 0.6, 0.95])
    np.testing.assert_allclose(theory.msign_correlation(-rho, (8, 8)), -theory.msign_correlation(rho, (8, 8)))
    pairs = 20_000
    np.testing.assert_allclose(theory.msign_correlation(rho, (1, 1), method="matrix", pairs=pairs),
                               2 / np.pi * np.arcsin(rho), atol=4 / np.sqrt(pairs))
    np.testing.assert_allclose(theory.msign_correlation(rho, (4, 4), method="linear"), rho)


def test_msign_correlation_against_brute_force_pairs():
    # plain Monte Carlo, none of the method's variance reduction, other seed;
    # the tolerance is four standard errors of the plain estimate
    rng = np.random.default_rng(21)
    shape, rho, n = (6, 10), 0.7, 4000
    a = rng.standard_normal((n, *shape))
    b = rho * a + np.sqrt(1 - rho**2) * rng.standard_normal((n, *shape))
    x = np.einsum("sij,sij->s", optimizers.msign(a), optimizers.msign(b)) / 6
    assert theory.msign_correlation(rho, shape) == pytest.approx(x.mean(), abs=4 * x.std() / np.sqrt(n))


@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (16, 16), (8, 32), (40, 6)])
def test_gram_msign_is_the_svd_msign(shape):
    # the Monte Carlo's msign (eigh of the Gram matrix, ill-conditioned ones by
    # SVD) against optimizers.msign (SVD) on Gaussian matrices like the Monte
    # Carlo's, and on matrices whose condition number sends them to the SVD
    from optstats.theory.muon import _gram_msign

    rng = np.random.default_rng(8)
    x = rng.standard_normal((4000, *shape))
    k = min(shape)
    # singular values 1 and 1e-6 (kappa^2 = 1e12 > 1 / _GRAM_COND) in a few of them
    u, s, vt = np.linalg.svd(x[:5], full_matrices=False)
    s[:, -1] = 1e-6 * s[:, 0] if k > 1 else s[:, -1]
    x[:5] = (u * s[:, None, :]) @ vt
    # 1e-8 is the bound eps kappa^2 / 2 at the threshold kappa^2 = 1e8 (see _gram_msign)
    np.testing.assert_allclose(_gram_msign(x), optimizers.msign(x), rtol=0, atol=1e-8)


def test_muon_weight_rms_linear_is_the_closed_form():
    lr, wd, b1, shape = 2e-3, 0.1, 0.9, (16, 64)
    b3 = 1 - lr * wd
    closed = lr / 8 * np.sqrt((1 + b1 * b3) / ((1 - b3**2) * (1 - b1 * b3)))
    assert theory.muon_weight_rms(lr, wd, b1, shape, method="linear") == pytest.approx(closed, rel=1e-14)
    # the 1 x 1 matrix with the arcsine law is SignSGDM-W
    assert theory.muon_weight_rms(lr, wd, b1, (1, 1), method="arcsine") == pytest.approx(
        theory.signsgdmw_weight_rms(lr, wd, b1, method="arcsine"), rel=1e-6)


@pytest.mark.parametrize("shape, beta1", [((8, 8), 0.9), ((4, 16), 0.95)])
def test_muon_weight_rms_against_simulated_muon(shape, beta1):
    wd = np.array([1e-4, 1e-3])
    est = simulate.weight_rms(optimizers.Muon(beta1), gradients.Gaussian(), lr=1.0, wd=wd,
                              rng=np.random.default_rng(4), n_coords=32, groups=16, matrix_shape=shape,
                              block=128, steps=2000)
    # the method's own Monte Carlo error, from two seeds, adds to the simulation's
    seeds = [theory.muon_weight_rms(1.0, wd, beta1, shape, method="matrix", seed=s) for s in (0, 1)]
    spread = np.abs(seeds[0] - seeds[1])
    z = (seeds[0] - est.value) / np.hypot(est.stderr, spread)
    assert np.all(np.abs(z) < 4), (seeds, est)
    # and the linear assumption is off by more than that for a square matrix
    if shape[0] == shape[1]:
        linear = theory.muon_weight_rms(1.0, wd, beta1, shape, method="linear")
        assert np.all(linear / est.value - 1 > 10 * est.stderr / est.value)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: theory.lion_weight_rms(1e-3, 1.0, 1.0, 0.9), "beta1"),
        (lambda: theory.lion_weight_rms(1e-3, 1.0, 0.9, -0.1), "beta2"),
        (lambda: theory.lion_weight_rms(-1e-3, 1.0, 0.9, 0.9), "lr"),
        (lambda: theory.lion_weight_rms(1e-3, 0.0, 0.9, 0.9), "wd"),
        (lambda: theory.lion_weight_rms(1e-3, 1.0, 0.9, 0.9, method="exact"), "method"),
        (lambda: theory.lion_presign_correlation(0.9, 0.9, -1), "lag"),
        (lambda: theory.lion_presign_correlation(0.9, 0.9, 1.5), "lag"),
        (lambda: theory.muon_update_rms((0, 4)), "shape"),
        (lambda: theory.muon_update_rms((4,)), "shape"),
        (lambda: theory.muon_update_rms((4, 2.5)), "shape"),
        (lambda: theory.muon_update_rms("4x4"), "shape"),
        (lambda: theory.adam_matching_scale(0.9, 0.95, (4, -1)), "shape"),
        (lambda: theory.adam_matching_scale(1.0, 0.95, (4, 4)), "beta1"),
        (lambda: theory.adam_matching_scale(0.9, 0.95, (4, 4), method="post"), "method"),
        (lambda: theory.msign_correlation(1.5, (4, 4)), "rho"),
        (lambda: theory.msign_correlation(0.5, (4, 0)), "shape"),
        (lambda: theory.msign_correlation(0.5, (4, 4), method="free"), "method"),
        (lambda: theory.msign_correlation(0.5, (4, 4), pairs=2), "pairs"),
        (lambda: theory.muon_weight_rms(1e-3, 1.0, 1.0, (4, 4)), "beta1"),
        (lambda: theory.muon_weight_rms(1e-3, -1.0, 0.9, (4, 4)), "wd"),
        (lambda: theory.muon_weight_rms(1e-3, 1.0, 0.9, (4, 4, 4)), "shape"),
        (lambda: theory.muon_weight_rms(1e-3, 1.0, 0.9, (4, 4), method="exact"), "method"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_muon_scale_conventions_by_hand():
    c = theory.muon_scale_conventions((1024, 4096))
    assert c["keller-jordan"] == 1.0  # fan-out below fan-in
    assert c["moonlight"] == pytest.approx(0.2 * 64)
    assert c["nemo-unit_rms_norm"] == pytest.approx(0.5)
    assert c["nemo-spectral"] * theory.muon_update_rms((1024, 4096)) == pytest.approx(1.0)
    assert c["torch-match_rms_adamw"] == c["moonlight"] and c["torch-original"] == c["keller-jordan"]
    assert theory.muon_scale_conventions((4096, 1024))["keller-jordan"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="shape"):
        theory.muon_scale_conventions((0, 3))

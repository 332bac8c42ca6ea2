"""The noisy-quadratic lab: input checks, its scales, and eta* measured by
running real update rules against cases known exactly.

Exact references: SGDM's momentum is a linear filter, so in steady state
E[m] = g and Cov[m] = kappa Sigma / B for any Sigma and H, and
eta* = eta_max / (1 + kappa B_noise / B) exactly. SignSGDM's m is Gaussian, so
with a diagonal Sigma E[sign m_i] = erf(g_i / sqrt(2 kappa sigma_i^2 / B)) and
the coordinates are independent: theory's "exact" method is exact.
"""

import numpy as np
import pytest
from conftest import Z_TOL, correlated_problem

from optstats import optimizers, theory
from optstats.quadratic import NoisyQuadratic


def diagonal_problem():
    g = np.array([1.0, -0.5, 0.25, 2.0])
    h = np.array([[2.0, 0.5, 0.0, 0.3], [0.5, 1.0, 0.2, 0.0], [0.0, 0.2, 0.5, 0.1], [0.3, 0.0, 0.1, 1.5]])
    return NoisyQuadratic(g, h, np.diag([9.0, 4.0, 16.0, 1.0]))


def assert_within(est, exact):
    z = (np.asarray(est.value) - exact) / np.asarray(est.stderr)
    assert np.all(np.abs(z) < Z_TOL), f"estimate {est} vs exact {exact}: z = {z}"


def test_scales():
    p = correlated_problem()
    g, h, s = p.g, p.H, p.Sigma
    assert p.eta_max == pytest.approx(g @ g / (g @ h @ g), rel=1e-14)
    assert p.b_noise == pytest.approx(np.trace(s @ h) / (g @ h @ g), rel=1e-14)
    assert p.b_simple == pytest.approx(np.trace(s) / (g @ g), rel=1e-14)
    np.testing.assert_allclose(p._factor @ p._factor.T, s, atol=1e-12)
    assert not p.diagonal_noise and diagonal_problem().diagonal_noise


@pytest.mark.parametrize("beta1", [0.0, 0.9])
def test_sgdm_lab_matches_exact_law_with_correlated_noise(rng, beta1):
    p = correlated_problem()
    b = np.array([1.0, 4.0, 30.0])
    est = p.optimal_lr(optimizers.SGDM(beta1), b, rng=rng, chains=128, steps=1000)
    assert_within(est, theory.optimal_lr_sgdm(p, b, beta1=beta1))


def test_signsgdm_lab_matches_erf_moments(rng):
    p = diagonal_problem()
    b = np.array([1.0, 10.0])
    est = p.optimal_lr(optimizers.SignSGDM(0.8), b, rng=rng, chains=128, steps=1000)
    assert_within(est, theory.optimal_lr_signsgdm(p, b, beta1=0.8, method="exact"))


def test_adam_lab_matches_exact_moments(rng):
    p = diagonal_problem()
    b = np.array([1.0, 10.0])
    est = p.optimal_lr(optimizers.Adam(0.9, 0.95), b, rng=rng, chains=128, steps=1000)
    assert_within(est, theory.optimal_lr_adam(p, b, beta1=0.9, beta2=0.95, method="exact"))


def test_default_precision_and_shape(rng):
    p = diagonal_problem()
    b = np.array([[1.0, 3.0], [10.0, 100.0]])
    est = p.optimal_lr(optimizers.Adam(0.9, 0.95), b, rng=rng)
    assert np.shape(est.value) == (2, 2)
    assert np.all(est.relative_halfwidth95 <= 0.008)


def test_reproducible():
    p = diagonal_problem()
    runs = [p.optimal_lr(optimizers.SGDM(0.5), 2.0, rng=np.random.default_rng(7), steps=200) for _ in range(2)]
    assert runs[0] == runs[1]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"H": [[1.0, 0.5], [0.0, 1.0]]}, "H must be symmetric"),
        ({"H": [[1.0, 2.0], [2.0, 1.0]]}, "H must be positive semi-definite"),
        ({"Sigma": [[-1.0, 0.0], [0.0, 1.0]]}, "Sigma must be positive semi-definite"),
        ({"Sigma": np.eye(3)}, r"Sigma must be a \(2, 2\) matrix"),
        ({"g": [[1.0, 2.0]]}, "g must be a non-empty vector"),
        ({"g": [1.0, np.nan]}, "g must be finite"),
        ({"H": [[0.0, 0.0], [0.0, 1.0]], "g": [1.0, 0.0]}, "null space of H"),
    ],
)
def test_bad_problem(kwargs, match):
    args = {"g": [1.0, 2.0], "H": np.eye(2), "Sigma": np.eye(2)} | kwargs
    with pytest.raises(ValueError, match=match):
        NoisyQuadratic(**args)


@pytest.mark.parametrize(
    "rule, batch_size, kwargs, match",
    [
        (optimizers.SGDM(0.9), 0.5, {}, "batch_size must be >= 1"),
        (optimizers.SGDM([0.5, 0.9]), 2.0, {}, "scalar hyperparameters"),
        ("adam", 2.0, {}, "update rule"),
        (optimizers.SGDM(0.9), 2.0, {"rng": 3}, "rng must be a numpy.random.Generator"),
        (optimizers.SGDM(0.9), 2.0, {"chains": 1}, "chains must be a whole number >= 4"),
        (optimizers.SGDM(0.9), 2.0, {"rel_halfwidth": 0.0}, "rel_halfwidth must be > 0"),
    ],
)
def test_bad_lab_input(rule, batch_size, kwargs, match):
    kwargs = {"rng": np.random.default_rng(0)} | kwargs
    with pytest.raises(ValueError, match=match):
        diagonal_problem().optimal_lr(rule, batch_size, **kwargs)


def test_control_variates_keep_the_mean_and_cut_the_noise(rng):
    """Both estimators agree with Adam's exact eta*; at a small batch, where
    the noise dominates, the controlled one is clearly more precise."""
    base = diagonal_problem()
    p = NoisyQuadratic(base.g, base.H, 100 * base.Sigma)  # B_simple ~ 480: B = 1 is noise-dominated
    b = np.array([1.0, 50.0])
    kwargs = dict(rng=rng, chains=128, steps=1000, max_steps=1000)
    plain = p.optimal_lr(optimizers.Adam(0.9, 0.95), b, control_variates=False, **kwargs)
    controlled = p.optimal_lr(optimizers.Adam(0.9, 0.95), b, **kwargs)
    exact = theory.optimal_lr_adam(p, b, beta1=0.9, beta2=0.95, method="exact")
    assert_within(plain, exact)
    assert_within(controlled, exact)
    # observed ratio ~2.1 at B = 1 on this problem (10x on the chapter's); a
    # stderr from 128 chains is itself uncertain by ~6%, so 1.5 is a safe floor
    assert controlled.stderr[0] < plain.stderr[0] / 1.5

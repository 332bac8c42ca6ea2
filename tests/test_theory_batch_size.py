"""theory.batch_size: the post's eta*(B) formulas and their per-coordinate
versions, checked against identities derived by hand (the chapter derives
them again with sympy). The identities are exact, so their tolerances
(rtol 1e-12 to 1e-14) only allow for rounding."""

import numpy as np
import pytest

from optstats import theory
from optstats.quadratic import NoisyQuadratic

B = np.geomspace(1.0, 1e4, 9)


def isotropic(d=6, sigma=10.0):
    """Equal |g_i| and sigma_i, H = I: every coordinate has the same SNR, so
    the post's B_simple average loses nothing."""
    g = np.array([1.0, -1.0] * (d // 2))
    return NoisyQuadratic(g, np.eye(d), sigma**2 * np.eye(d))


def uneven():
    g = np.array([0.1, -0.4, 1.0, 2.0])
    h = np.array([[1.0, 0.3, 0.0, 0.0], [0.3, 2.0, 0.4, 0.0], [0.0, 0.4, 1.0, 0.2], [0.0, 0.0, 0.2, 0.5]])
    return NoisyQuadratic(g, h, np.diag([4.0, 25.0, 9.0, 1.0]) * 10)


@pytest.mark.parametrize("beta1", [0.5, 0.9, 0.99])
def test_momentum_multiplies_the_batch(beta1):
    p = uneven()
    factor = (1 + beta1) / (1 - beta1)
    np.testing.assert_allclose(
        theory.optimal_lr_sgdm(p, B, beta1=beta1), theory.optimal_lr_sgdm(p, B * factor), rtol=1e-14
    )
    for method in ("post", "mean-field", "exact"):
        np.testing.assert_allclose(
            theory.optimal_lr_signsgdm(p, B, beta1=beta1, method=method),
            theory.optimal_lr_signsgdm(p, B * factor, method=method),
            rtol=1e-13,
        )


def test_sgd_limits():
    p = uneven()
    assert theory.optimal_lr_sgdm(p, 1e300) == pytest.approx(p.eta_max, rel=1e-14)
    assert theory.optimal_lr_sgdm(p, 1.0) == pytest.approx(p.eta_max / (1 + p.b_noise), rel=1e-14)


def test_rmsprop_is_signsgd_in_the_post():
    """beta1 = 0: the post's Adam second moment is 1, as for SignSGD."""
    p = uneven()
    np.testing.assert_allclose(
        theory.optimal_lr_adam(p, B, beta1=0.0), theory.optimal_lr_signsgdm(p, B), rtol=1e-14
    )
    np.testing.assert_allclose(
        theory.optimal_lr_adam(p, B, beta1=0.0, method="mean-field"),
        theory.optimal_lr_signsgdm(p, B, method="mean-field"),
        rtol=1e-14,
    )


@pytest.mark.parametrize("beta1", [0.0, 0.5, 0.9])
def test_post_equals_per_coordinate_mean_field_when_snr_is_uniform(beta1):
    p = isotropic()
    np.testing.assert_allclose(
        theory.optimal_lr_adam(p, B, beta1=beta1),
        theory.optimal_lr_adam(p, B, beta1=beta1, method="mean-field"),
        rtol=1e-13,
    )
    np.testing.assert_allclose(
        theory.optimal_lr_signsgdm(p, B, beta1=beta1),
        theory.optimal_lr_signsgdm(p, B, beta1=beta1, method="mean-field"),
        rtol=1e-13,
    )


@pytest.mark.parametrize("beta1", [0.5, 0.9, 0.95])
def test_adam_peak_sits_at_the_surge_threshold(beta1):
    """Diagonal H, uniform SNR: eta*/eta_max = 1/(kappa/beta + (1-kappa) beta),
    largest at B = threshold * B_simple, with height 1/(2 sqrt(kappa (1-kappa)))."""
    p = isotropic(sigma=1000.0)
    threshold = theory.adam_surge_threshold(beta1)
    b_peak = threshold * p.b_simple
    eta_max = theory.optimal_lr_adam(p, 1e300, beta1=beta1)
    kappa = (1 - beta1) / (1 + beta1)
    assert theory.optimal_lr_adam(p, b_peak, beta1=beta1) / eta_max == pytest.approx(
        1 / (2 * np.sqrt(kappa * (1 - kappa))), rel=1e-12
    )
    for side in (1 - 1e-3, 1 + 1e-3):
        assert theory.optimal_lr_adam(p, b_peak * side, beta1=beta1) < theory.optimal_lr_adam(p, b_peak, beta1=beta1)


def test_surge_threshold_values():
    assert theory.adam_surge_threshold(0.9) == pytest.approx(0.1 / 1.7, rel=1e-15)
    assert theory.adam_surge_threshold(1 / 3) is None
    assert theory.adam_surge_threshold(0.0) is None


def test_sign_methods_agree_at_large_batch():
    p = uneven()
    big = 1e12
    ref = theory.optimal_lr_signsgdm(p, big, beta1=0.9, method="exact")
    # the methods differ by O(kappa sigma_i^2 / (g_i^2 B)) <= 2e-9 here
    for method in ("post", "mean-field"):
        assert theory.optimal_lr_signsgdm(p, big, beta1=0.9, method=method) == pytest.approx(ref, rel=1e-7)


def test_adam_second_order_between_mean_field_and_exact_at_small_noise():
    p = uneven()
    exact = theory.optimal_lr_adam(p, B, beta1=0.9, beta2=0.999, method="exact")
    second = theory.optimal_lr_adam(p, B, beta1=0.9, beta2=0.999, method="second-order")
    mean_field = theory.optimal_lr_adam(p, B, beta1=0.9, beta2=0.999, method="mean-field")
    # at beta2 = 0.999 v is nearly deterministic: the second order is close
    assert np.all(np.abs(second / exact - 1) <= np.abs(mean_field / exact - 1) + 1e-12)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda p: theory.optimal_lr_sgdm(p, 0.5), "batch_size must be >= 1"),
        (lambda p: theory.optimal_lr_sgdm(p, 2.0, beta1=1.0), r"beta1 must lie in \[0, 1\)"),
        (lambda p: theory.optimal_lr_sgdm(p, 2.0, beta1=[0.5, 0.9]), "beta1 must be a single number"),
        (lambda p: theory.optimal_lr_signsgdm(p, 2.0, method="bogus"), "method must be one of"),
        (lambda p: theory.optimal_lr_adam(p, 2.0, beta1=0.9, method="exact"), "beta2 is required"),
        (lambda p: theory.optimal_lr_adam("p", 2.0, beta1=0.9), "problem must be"),
        (lambda p: theory.adam_surge_threshold(-0.1), r"beta1 must lie in \[0, 1\)"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call(uneven())


def test_exact_needs_independent_coordinates():
    p = NoisyQuadratic([1.0, 1.0], np.eye(2), [[1.0, 0.5], [0.5, 1.0]])
    with pytest.raises(ValueError, match="diagonal Sigma"):
        theory.optimal_lr_signsgdm(p, 2.0, method="exact")
    with pytest.raises(ValueError, match="diagonal Sigma"):
        theory.optimal_lr_adam(p, 2.0, beta1=0.9, beta2=0.95, method="second-order")
    with pytest.raises(ValueError, match="diagonal Sigma"):
        theory.optimal_lr_softsign(p, 2.0, eps=0.1, method="exact")

"""The EMA closed forms against independent references: direct sums in
50-digit arithmetic (mpmath) and the defining recursions."""

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optstats import theory

mp.mp.dps = 50


def ref_double_ema(b3, b1, t):
    """(mean, variance) of mbar_t per unit mu and sigma^2, by direct summation."""
    b3, b1 = mp.mpf(b3), mp.mpf(b1)

    def kern(k):
        return k * b3 ** (k - 1) if b3 == b1 else (b3**k - b1**k) / (b3 - b1)

    c = (1 - b3) * (1 - b1) / (1 - b3**t)
    s1 = mp.fsum(kern(k) for k in range(1, t + 1))
    s2 = mp.fsum(kern(k) ** 2 for k in range(1, t + 1))
    return float(c * s1), float(c * c * s2)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("t", [1, 2, 17, 300])
def test_ema_mean_and_variance_against_direct_sums(beta, t):
    b = mp.mpf(beta)
    w = [(1 - b) * b ** (t - i) for i in range(1, t + 1)]
    assert theory.ema_mean(beta, t, mean=2.0) == pytest.approx(float(2 * mp.fsum(w)), rel=1e-13)
    assert theory.ema_variance(beta, t, std=3.0) == pytest.approx(float(9 * mp.fsum(x * x for x in w)), rel=1e-13)


def test_bias_corrected_ema():
    beta, t = 0.9, 5
    assert theory.ema_mean(beta, t, mean=1.5, bias_correction=True) == pytest.approx(1.5)
    expected = theory.ema_variance(beta, t) / (1 - beta**t) ** 2
    assert theory.ema_variance(beta, t, bias_correction=True) == pytest.approx(expected, rel=1e-13)


def test_stationary_limits():
    assert theory.ema_variance(0.9) == pytest.approx(0.1 / 1.9)
    assert theory.ema_variance(0.9, 10_000) == pytest.approx(theory.ema_variance(0.9), rel=1e-14)
    np.testing.assert_allclose(theory.ema_mean([0.1, 0.9], mean=3.0), [3.0, 3.0])


@pytest.mark.parametrize(
    "b3, b1, t",
    [
        (0.99, 0.9, 10),
        (0.999, 0.9, 5000),  # closed form
        (0.9999, 0.9, 6000),
        (0.9, 0.9, 5000),  # the limit beta3 = beta1, quadrature branch
        (0.9, 0.9 + 1e-9, 5000),
        (0.99, 0.99 - 1e-4, 8000),
        (0.5, 0.0, 5000),
        (0.0, 0.0, 3),
        (0.9, 0.0, 7),
    ],
)
def test_double_ema_against_direct_sums(b3, b1, t):
    mean, var = ref_double_ema(b3, b1, t)
    assert theory.double_ema_mean(b3, b1, t) == pytest.approx(mean, rel=1e-12)
    assert theory.double_ema_variance(b3, b1, t) == pytest.approx(var, rel=1e-11)


def test_double_ema_stationary_variance_is_the_large_t_limit():
    for b3, b1 in [(0.999, 0.9), (0.9, 0.9), (0.5, 0.95)]:
        assert theory.double_ema_variance(b3, b1) == pytest.approx(ref_double_ema(b3, b1, 60_000)[1], rel=1e-10)


@settings(max_examples=60, deadline=None)
@given(
    b3=st.floats(0.0, 0.999),
    b1=st.floats(0.0, 0.999),
    k=st.integers(0, 400),
)
def test_kernel_equals_its_sum_form(b3, b1, k):
    # (b3^k - b1^k)/(b3 - b1) = sum_{j<k} b3^j b1^(k-1-j): no division, no limit needed
    ref = float(mp.fsum(mp.mpf(b3) ** j * mp.mpf(b1) ** (k - 1 - j) for j in range(k)))
    assert theory.double_ema_kernel(b3, b1, k) == pytest.approx(ref, rel=1e-12, abs=1e-300)


def test_kernel_limit_and_symmetry():
    assert theory.double_ema_kernel(0.9, 0.9, 3) == pytest.approx(3 * 0.81)
    np.testing.assert_allclose(
        theory.double_ema_kernel(0.7, [0.2, 0.9], 5), theory.double_ema_kernel([0.2, 0.9], 0.7, 5)
    )


def test_post_variance_approximation_is_the_beta1_independent_limit():
    # the post's form is the exact one with beta1^t dropped and beta3 -> 1 where alone;
    # at beta3 = 1 - 1e-5 and beta1 = 0 they must agree to O(1 - beta3)
    b3, t = 1 - 1e-5, 50_000
    exact = theory.double_ema_variance(b3, 0.0, t)
    assert theory.double_ema_variance_post(b3, t) == pytest.approx(exact, rel=1e-4)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: theory.ema_mean(1.0), "beta"),
        (lambda: theory.ema_variance(0.9, 0), "t"),
        (lambda: theory.ema_variance(0.9, 2.5), "t"),
        (lambda: theory.ema_variance(0.9, std=-1.0), "std"),
        (lambda: theory.double_ema_kernel(0.9, 0.5, -1), "k"),
        (lambda: theory.double_ema_kernel(0.9, 1.5, 2), "beta1"),
        (lambda: theory.double_ema_mean(-0.1, 0.5, 3), "beta3"),
        (lambda: theory.double_ema_variance(0.9, 0.5, np.nan), "t"),
    ],
)
def test_bad_input(call, name):
    with pytest.raises(ValueError, match=name):
        call()

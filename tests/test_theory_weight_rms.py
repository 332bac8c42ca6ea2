"""Weight-RMS formulas against independent references: the defining sums of
the long-run identity in 50-digit arithmetic, the post's printed formula, and
exact SGDM values."""

import mpmath as mp
import numpy as np
import pytest

from optstats import theory

mp.mp.dps = 30


def arcsine_reference(lr, wd, b1):
    b3 = 1 - mp.mpf(lr) * mp.mpf(wd)
    total = 1 + 2 * mp.nsum(lambda d: b3**d * 2 / mp.pi * mp.asin(mp.mpf(b1) ** d), [1, mp.inf])
    return float(mp.sqrt(mp.mpf(lr) ** 2 / (1 - b3**2) * total))


@pytest.mark.parametrize("b1", [0.0, 0.5, 0.9, 0.95])
@pytest.mark.parametrize("lr, wd", [(1e-3, 0.1), (0.05, 1.0)])
def test_arcsine_against_series(lr, wd, b1):
    assert theory.signsgdmw_weight_rms(lr, wd, b1, method="arcsine") == pytest.approx(arcsine_reference(lr, wd, b1), rel=1e-12)


def test_mean_field_signsgdmw_is_the_corrected_post_formula():
    assert theory.signsgdmw_weight_rms(1e-3, 0.1, 0.9) == pytest.approx(np.sqrt(1e-3 / 0.2 * 19), rel=1e-15)


def printed_theta_rms(lr, wd, t, theta0, snr):
    """Post 11307, eq. theta-rms, as printed."""
    b3 = 1 - lr * wd
    ubar2 = (snr + (1 - b3) * (1 + b3**t) / (2 * (1 - b3**t))) / (snr + 1)
    return np.sqrt(b3 ** (2 * t) * theta0**2 + (1 - b3**t) ** 2 * ubar2 / wd**2)


@pytest.mark.parametrize("t", [1000, 10_000, 100_000])
@pytest.mark.parametrize("snr", [0.0, 0.3])
def test_adamw_weight_rms_agrees_with_printed_form_to_first_order(t, snr):
    # the package takes the double-EMA sums exactly; the post's form differs by O(lr wd) in the variance and,
    # with a mean, by the momentum's lag: E[mbar_t] falls short of mu by about beta1/(1-beta1) (1-beta3)/(1-beta3^t)
    lr, wd, b1 = 1e-3, 0.1, 0.9
    b3 = 1 - lr * wd
    ours = theory.adamw_weight_rms(lr, wd, beta1=b1, t=t, theta0_rms=0.1, snr=snr)
    lag = b1 / (1 - b1) * (1 - b3) / (1 - b3**t)
    assert ours == pytest.approx(printed_theta_rms(lr, wd, t, 0.1, snr), rel=20 * lr * wd + (lag if snr else 0))


def test_adamw_limits():
    lr, wd = 1e-3, 0.1
    # t -> infinity at mu = 0: sqrt(lr / 2 wd) up to O(lr wd)
    assert theory.adamw_weight_rms(lr, wd) == pytest.approx(np.sqrt(lr / (2 * wd)), rel=10 * lr * wd)
    # a dominating SNR: ||theta|| -> 1/wd (the update is sign(mu) = 1 per coordinate); the remainder is
    # (1 - (snr + var)/(snr + 1))/2 ~ 1/(2 snr) = 5e-13 here
    assert theory.adamw_weight_rms(lr, wd, snr=1e12) == pytest.approx(1 / wd, rel=1e-11)
    # t = 1: theta_1 = beta3 theta_0 - lr u_1, u_1 ~ (1 - beta1) g (mean field, sigma = 1, no bias correction)
    one = theory.adamw_weight_rms(lr, wd, beta1=0.9, t=1, theta0_rms=0.1)
    assert one == pytest.approx(np.sqrt((1 - lr * wd) ** 2 * 0.01 + lr**2 * 0.01), rel=1e-12)
    # broadcasting over t
    assert theory.adamw_weight_rms(lr, wd, t=np.array([1, 10, 100])).shape == (3,)


def test_quick_estimate():
    assert theory.weight_rms_quick_estimate(1e-3, 0.1, 0.9) == pytest.approx(np.sqrt(0.1 / 1.9 * 1e-3 / 0.2), rel=1e-15)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: theory.adamw_weight_rms(0.0, 0.1), "lr"),
        (lambda: theory.adamw_weight_rms(1e-3, -0.1), "wd"),
        (lambda: theory.adamw_weight_rms(10.0, 0.2), r"lr \* wd"),
        (lambda: theory.adamw_weight_rms(1e-3, 0.1, t=0), "t must"),
        (lambda: theory.adamw_weight_rms(1e-3, 0.1, theta0_rms=-1), "theta0_rms"),
        (lambda: theory.adamw_weight_rms(1e-3, 0.1, snr=-1), "snr"),
        (lambda: theory.adamw_weight_rms(1e-3, 0.1, beta1=1.0), "beta1"),
        (lambda: theory.signsgdmw_weight_rms(1e-3, 0.1, 0.9, method="exact"), "method"),
        (lambda: theory.signsgdmw_weight_rms(1e-3, 0.1, -0.5), "beta1"),
        (lambda: theory.weight_rms_quick_estimate(1e-3, np.nan, 0.9), "wd"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()

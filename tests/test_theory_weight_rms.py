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


@pytest.mark.parametrize("t", [1, 10, 100, 1000, 10_000, 100_000])
@pytest.mark.parametrize("snr", [0.0, 0.3])
def test_adamw_mean_field_is_the_printed_form_at_every_step(t, snr):
    lr, wd = 1e-3, 0.1
    ours = theory.adamw_weight_rms(lr, wd, t=t, theta0_rms=0.1, snr=snr)
    # the same expression evaluated in another order: rounding only
    assert ours == pytest.approx(printed_theta_rms(lr, wd, t, 0.1, snr), rel=1e-12)


def test_adamw_first_step_is_the_bias_corrected_update():
    # bias-corrected u_1 = +-1 exactly, so E[theta_1^2] = beta3^2 theta0^2 + lr^2; the printed form gives
    # lr^2 (1 + beta3)/2 for the second term, i.e. an O(lr wd) relative shortfall (not the 10x of old)
    lr, wd = 1e-2, 0.1
    b3 = 1 - lr * wd
    one = theory.adamw_weight_rms(lr, wd, t=1, theta0_rms=0.0)
    assert one == pytest.approx(lr * np.sqrt((1 + b3) / 2), rel=1e-12)
    assert one == pytest.approx(lr, rel=lr * wd)


@pytest.mark.parametrize("b1", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("lr, wd", [(1e-3, 0.1), (1e-2, 0.5)])
def test_adamw_exact_sums_is_wens_exact_in_alpha_norm(b1, lr, wd):
    # Wen et al., part 2: ||W_inf|| = lr U sqrt((1 + a b1) / ((1 - a^2)(1 - a b1))), a = 1 - lr wd,
    # with U^2 = (1 - b1)/(1 + b1) the stationary E[m^2] at sigma = 1 (the book's mean field)
    a = 1 - lr * wd
    wen = lr * np.sqrt((1 - b1) / (1 + b1)) * np.sqrt((1 + a * b1) / ((1 - a**2) * (1 - a * b1)))
    assert theory.adamw_weight_rms(lr, wd, beta1=b1, method="exact-sums") == pytest.approx(wen, rel=1e-12)
    # the printed form's limit sqrt((1 - beta3)/2)/wd differs from it at first order in eps = lr wd, by
    # c eps/(1 - b1) with |c| <= 1/2 (sympy's series in the EMA chapter); rel = eps/(1 - b1) leaves room for
    # the second order while eps <= (1 - b1)/10
    if lr * wd <= (1 - b1) / 10:
        assert theory.adamw_weight_rms(lr, wd) == pytest.approx(wen, rel=lr * wd / (1 - b1))


def test_adamw_limits():
    lr, wd = 1e-3, 0.1
    # t -> infinity at mu = 0: sqrt(lr/2wd) times sqrt(1 - lr wd / 2) ... exactly sqrt((1 - beta3)/2)/wd
    assert theory.adamw_weight_rms(lr, wd) == pytest.approx(np.sqrt(lr * wd / 2) / wd, rel=1e-14)
    # a dominating SNR: ||theta|| -> 1/wd (the update is sign(mu) = 1 per coordinate); the remainder is
    # (1 - (snr + var)/(snr + 1))/2 ~ 1/(2 snr) = 5e-13 here
    for method in ("mean-field", "exact-sums"):
        assert theory.adamw_weight_rms(lr, wd, snr=1e12, method=method) == pytest.approx(1 / wd, rel=1e-11)
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
        (lambda: theory.adamw_weight_rms(1e-3, 0.1, t=10, method="exact-sums"), "t must be None"),
        (lambda: theory.adamw_weight_rms(1e-3, 0.1, method="exact"), "method"),
        (lambda: theory.signsgdmw_weight_rms(1e-3, 0.1, 0.9, method="exact"), "method"),
        (lambda: theory.signsgdmw_weight_rms(1e-3, 0.1, -0.5), "beta1"),
        (lambda: theory.weight_rms_quick_estimate(1e-3, np.nan, 0.9), "wd"),
        (lambda: theory.relaxation_time(-1e-3, 0.1), "lr"),
        (lambda: theory.relaxation_time(1e-3, 2e3), "wd"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("lr, wd", [(1e-3, 0.1), (0.05, 0.02), (0.1, 2.0)])
def test_relaxation_time_is_sgds_exact_e_folding(lr, wd):
    # SGD (u = g, iid, unit variance): E theta_t^2 - W^2 = (theta_0^2 - W^2) beta3^(2t)
    # exactly, so the e-folding time of the gap is -1/(2 ln beta3)
    b3 = 1 - lr * wd
    w_sq = lr**2 / (1 - b3**2)
    t = np.arange(0, 8)  # short: the gap is a difference of near-equal numbers later

    def gap(t):
        return (b3 ** (2 * t) * 4.0 + lr**2 * (1 - b3 ** (2 * t)) / (1 - b3**2)) - w_sq

    tau = theory.relaxation_time(lr, wd)
    np.testing.assert_allclose(gap(t + tau) / gap(t), np.exp(-1.0), rtol=1e-9)
    assert tau == pytest.approx(1 / (2 * lr * wd), rel=lr * wd)
    # the scale-invariant time is about half as long: 1/(2(1 - beta3^2)) ~ 1/(4 lr wd)
    assert theory.relaxation_time(lr, wd, scale_invariant=True) == pytest.approx(
        1 / (4 * lr * wd), rel=lr * wd)

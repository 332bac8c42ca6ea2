"""Adam's stationary update statistics against independent references:

- "exact" against a brute-force evaluation of the same integral (every term of
  the infinite sums taken directly, a four times finer trapezoid over a wider
  range), which shares no code with the package's split into direct terms and
  geometric tails;
- the Gaussian moments behind "second-order" against Monte Carlo over explicit
  EMA sums;
- limits every method must reach, and the inverse estimators as inverses.
"""

import numpy as np
import pytest

from optstats import theory
from optstats.theory import update_rms

from conftest import Z_TOL


def brute_force(beta1, beta2, mu, h=0.0625):
    """(E[m/sqrt v], E[m^2/v]) with all terms k < K summed directly (K covers beta1 and beta2 to e^-80)."""
    K = int(80 / min(-np.log(beta2), -np.log(beta1) if beta1 > 0 else 99.0)) + 1
    k = np.arange(K)
    b = (1 - beta2) * beta2**k
    a = (1 - beta1) * beta1**k
    x = np.arange(-75.0, 45.0, h)
    s = np.exp(x)[:, None]
    y = 2 * s * b
    L = (0.5 * np.log1p(y) + 0.5 * mu * mu * y / (1 + y)).sum(axis=1)
    P = (a / (1 + y)).sum(axis=1)
    Q = (a * a / (1 + y)).sum(axis=1)
    s = s[:, 0]
    first = h * np.sum(np.sqrt(s / np.pi) * np.exp(-L) * mu * P)
    second = h * np.sum(s * np.exp(-L) * (mu * mu * P * P + Q))
    return first, second


POINTS = [(0.9, 0.95, 0.0), (0.9, 0.5, 0.0), (0.95, 0.5, 0.7), (0.0, 0.9, 2.0), (0.5, 0.999, 1.0), (0.9, 0.05, 0.3), (0.99, 0.99, 0.1)]


@pytest.mark.parametrize("beta1, beta2, mu", POINTS)
def test_exact_against_brute_force(beta1, beta2, mu):
    ref_first, ref_second = brute_force(beta1, beta2, mu)
    # the quadrature's stated error is ~1e-17 per node sum; the docstring
    # promises better than 1e-10 relative
    assert theory.adam_update_rms(beta1, beta2, mu * mu, method="exact") ** 2 == pytest.approx(ref_second, rel=1e-10)
    if mu:
        assert theory.adam_update_mean(beta1, beta2, mu, method="exact") == pytest.approx(ref_first, rel=1e-10)
        assert theory.adam_update_mean(beta1, beta2, -mu, method="exact") == pytest.approx(-ref_first, rel=1e-10)
    else:
        assert theory.adam_update_mean(beta1, beta2, mu, method="exact") == 0.0


def test_mean_field_values():
    # the post's zero-SNR value sqrt((1-b1)/(1+b1)) and its SNR formula
    assert theory.adam_update_rms(0.9) == pytest.approx(np.sqrt(0.1 / 1.9), rel=1e-15)
    assert theory.adam_update_rms(0.5, snr=2.0) == pytest.approx(np.sqrt((2 + 1 / 3) / 3), rel=1e-15)
    assert theory.adam_update_mean(0.9, mu_over_sigma=1.0) == pytest.approx(2**-0.5)


def test_gaussian_moments_against_monte_carlo():
    """The delta method's inputs (Var v, Cov[m, v], Cov[m^2, v]) from explicit sums of Gaussians."""
    rng = np.random.default_rng(11267)
    beta1, beta2, mu, K, n = 0.6, 0.7, 0.8, 80, 200_000
    k = np.arange(K)
    a = (1 - beta1) * beta1**k
    b = (1 - beta2) * beta2**k
    g = mu + rng.standard_normal((n, K))
    m, v = g @ a, (g * g) @ b
    exact = update_rms._moment_terms(beta1, beta2, mu)
    pairs = {
        "m2": m * m,
        "v": v,
        "var_v": (v - v.mean()) ** 2,
        "cov_m_v": (m - m.mean()) * (v - v.mean()),
        "cov_m2_v": (m * m - (m * m).mean()) * (v - v.mean()),
    }
    for name, samples in pairs.items():
        stderr = samples.std() / np.sqrt(n)
        assert abs(samples.mean() - exact[name]) < Z_TOL * stderr, name


def test_limits():
    # beta1 = 0 and beta2 -> 1: m = g, v -> E[g^2] = 1, so E[u^2] -> 1 (error ~ 1 - beta2)
    for method in ("second-order", "exact"):
        assert theory.adam_update_rms(0.0, 0.99999, method=method) == pytest.approx(1.0, abs=1e-4)
    # a dominant SNR: u -> sign(mu) whatever the betas; the remainder is O(1/SNR) = O(1e-6)
    assert theory.adam_update_rms(0.9, 0.5, 1e6, method="exact") == pytest.approx(1.0, abs=1e-5)
    assert theory.adam_update_mean(0.9, 0.5, 1e3, method="exact") == pytest.approx(1.0, abs=1e-5)


def test_second_order_error_shrinks_faster_as_beta2_grows():
    """The mean-field error is O(1 - beta2) at fixed beta1; the delta method removes that order."""
    b2 = np.array([0.99, 0.999])
    exact = theory.adam_update_rms(0.9, b2, method="exact")
    mf_err = np.abs(theory.adam_update_rms(0.9, b2) - exact)
    so_err = np.abs(theory.adam_update_rms(0.9, b2, method="second-order") - exact)
    # O(1 - beta2): a tenfold smaller 1 - beta2 gives ~0.1 (20% allows the next order);
    # O((1 - beta2)^2) would give ~0.01, so 0.02 separates the two orders
    assert mf_err[1] / mf_err[0] == pytest.approx(0.1, rel=0.2)
    assert so_err[1] / so_err[0] < 0.02
    assert np.all(so_err < mf_err / 10)


def test_broadcasting():
    out = theory.adam_update_rms(np.array([0.5, 0.9])[:, None], np.array([0.5, 0.9, 0.99]), method="exact")
    assert out.shape == (2, 3)
    assert out[1, 2] == pytest.approx(theory.adam_update_rms(0.9, 0.99, method="exact"), rel=1e-15)
    assert theory.adam_update_rms(0.9, [0.5, 0.9]).shape == (2,)
    assert theory.adam_update_mean([0.1, 0.9], 0.95, [[0.1], [0.2]], method="second-order").shape == (2, 2)


def test_inverse_estimators_invert_the_mean_field():
    snr = np.array([0.0, 0.01, 0.3, 4.0])
    # (beta1 = 0 is excluded: there the mean field gives RMS 1 at every SNR, nothing to invert)
    for beta1 in (0.3, 0.5, 0.9):
        rms = theory.adam_update_rms(beta1, snr=snr)
        np.testing.assert_allclose(theory.snr_from_update_rms(rms, beta1), snr, atol=1e-12)
        np.testing.assert_allclose(theory.snr_from_momentum_ratio(rms, beta1), snr, atol=1e-12)
    # below the noise floor: a negative estimate, not a clipped one
    assert theory.snr_from_update_rms(0.1, 0.9) < 0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: theory.adam_update_rms(1.0), "beta1"),
        (lambda: theory.adam_update_rms(0.9, snr=-1.0), "snr"),
        (lambda: theory.adam_update_rms(0.9, method="exact"), "beta2 is required"),
        (lambda: theory.adam_update_rms(0.9, 0.0, method="exact"), r"beta2 must lie in \(0, 1\)"),
        (lambda: theory.adam_update_rms(0.9, 0.95, method="exakt"), "method"),
        (lambda: theory.adam_update_mean(0.9, 0.95, np.nan, method="exact"), "mu_over_sigma"),
        (lambda: theory.adam_update_mean(0.9, 1.2, 0.1, method="second-order"), "beta2"),
        (lambda: theory.snr_from_update_rms(1.0, 0.9), r"rms must lie in \[0, 1\)"),
        (lambda: theory.snr_from_momentum_ratio(-0.1, 0.9), "ratio"),
        (lambda: theory.snr_from_momentum_ratio(0.5, -0.1), "beta1"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("method", ["mean-field", "second-order", "exact"])
def test_eps_scales_every_method_by_the_mean_field_denominator(method):
    base = theory.adam_update_rms(0.9, 0.95, 0.5, method=method)
    with_eps = theory.adam_update_rms(0.9, 0.95, 0.5, method=method, eps_over_sigma=0.3)
    root = np.sqrt(1.5)
    assert with_eps == pytest.approx(base * root / (root + 0.3), rel=1e-14)
    assert theory.adam_update_rms(0.9, 0.95, 0.5, method=method, eps_over_sigma=0.0) == base
    with pytest.raises(ValueError, match="eps_over_sigma"):
        theory.adam_update_rms(0.9, 0.95, method=method, eps_over_sigma=-1.0)


@pytest.mark.parametrize("snr", [0.0, 0.01, 0.3, 5.0])
def test_exact_snr_inversion_round_trips(snr):
    rms = float(theory.adam_update_rms(0.9, 0.95, snr, method="exact"))
    back = theory.snr_from_update_rms(rms, 0.9, 0.95, method="exact")
    assert back == pytest.approx(snr, abs=1e-9)


def test_exact_snr_inversion_refuses_what_it_cannot_answer():
    with pytest.raises(ValueError, match="below Adam's exact pure-noise"):
        theory.snr_from_update_rms(0.2, 0.9, 0.95, method="exact")
    with pytest.raises(ValueError, match="beta2 is required"):
        theory.snr_from_update_rms(0.3, 0.9, method="exact")
    with pytest.raises(ValueError, match="method"):
        theory.snr_from_update_rms(0.3, 0.9, 0.95, method="second-order")


@pytest.mark.parametrize("snr", [0.0, 0.5])
def test_noise_std_from_exp_avg_sq_against_simulated_adam_state(snr):
    # Adam's v_t = EMA of g^2 for iid N(mu, sigma^2), after 400 steps at beta2 = 0.95
    # (beta2^400 = 1e-9: the bias correction has faded), over many coordinates
    rng = np.random.default_rng(29)
    sigma, beta2, n = 0.03, 0.95, 200_000
    mu = sigma * np.sqrt(snr)
    v = np.zeros(n)
    for _ in range(400):
        g = rng.normal(mu, sigma, n)
        v = beta2 * v + (1 - beta2) * g * g
    read = theory.noise_std_from_exp_avg_sq(v.mean(), snr)
    # delta method: sigma = sqrt(mean v / (1+snr)) has relative se se(mean v) / (2 mean v)
    rel_se = v.std(ddof=1) / np.sqrt(n) / (2 * v.mean())
    assert abs(read / sigma - 1) < Z_TOL * rel_se
    # with eps / sigma from it, eps's factor is the mean field of the denominator sqrt(v) + eps
    eps, one_v = 1e-3, float(v[0])
    ratio = eps / theory.noise_std_from_exp_avg_sq(one_v, snr)
    factor = (theory.adam_update_rms(0.9, beta2, snr, method="exact", eps_over_sigma=ratio)
              / theory.adam_update_rms(0.9, beta2, snr, method="exact"))
    assert factor == pytest.approx(np.sqrt(one_v) / (np.sqrt(one_v) + eps), rel=1e-14)  # rounding only
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="exp_avg_sq"):
            theory.noise_std_from_exp_avg_sq(bad)
    with pytest.raises(ValueError, match="snr"):
        theory.noise_std_from_exp_avg_sq(1.0, -0.1)

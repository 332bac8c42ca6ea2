"""The restoring-force model (theory.feedback) against a simulation of its
own linear process, its a = 0 limit against the posts, and its inverses.

The simulation runs the recursions of the module's docstring coordinate by
coordinate (numpy, seeded), independently of the Lyapunov solution; its
tolerances are a few Monte Carlo standard errors, computed from the sample.
"""

import numpy as np
import pytest

from optstats import theory
from optstats.theory import feedback as fb

B3 = 1 - 4.5e-3


def simulate(a, beta1, beta3, *, lr=1.0, coords=2000, burn=2000, steps=3000, seed=0):
    """h, u and theta (theta_t = beta3 theta_{t-1} - lr u_t) of the linear process, after a burn-in."""
    rng = np.random.default_rng(seed)
    s = fb.restoring_noise_share(a, beta1, beta3)
    y = np.zeros(coords)
    m = np.zeros(coords)
    theta = np.zeros(coords)
    H, U, T = [], [], []
    for t in range(burn + steps):
        h = y + s * rng.standard_normal(coords)
        m = beta1 * m + (1 - beta1) * h
        y = beta3 * y - a * m
        theta = beta3 * theta - lr * m
        if t >= burn:
            H.append(h)
            U.append(m)
            T.append(theta)
    return np.array(H), np.array(U), np.array(T)


def mean_and_se(x):
    """Mean over coordinates of a per-coordinate time average, and its standard error."""
    per = x.mean(axis=0)
    return per.mean(), per.std(ddof=1) / np.sqrt(per.size)


@pytest.mark.parametrize("a, beta1", [(0.05, 0.9), (0.5, 0.9), (0.3, 0.6)])
def test_stationary_statistics_match_the_simulated_process(a, beta1):
    H, U, T = simulate(a, beta1, B3)
    power, se = mean_and_se(H * H)
    assert abs(power - 1) < 5 * se  # Adam's normalisation, E[h^2] = 1
    u2, se = mean_and_se(U * U)
    assert abs(u2 - fb.restoring_update_rms(a, beta1, B3) ** 2) < 5 * se
    for k, want in zip((1, 2, 5, 20), fb.restoring_lag_correlation(a, beta1, B3, [1, 2, 5, 20])):
        c, se = mean_and_se(H[k:] * H[:-k])
        assert abs(c / power - want) < 5 * se / power + 5e-3 * abs(want)
    w2, se = mean_and_se(T * T)
    assert abs(w2 - fb.restoring_weight_rms(1.0, 1 - B3, a, beta1) ** 2) < 5 * se


def test_no_feedback_is_the_posts_model():
    for beta1 in (0.6, 0.9, 0.95):
        assert fb.restoring_update_rms(0.0, beta1, B3) == pytest.approx(np.sqrt((1 - beta1) / (1 + beta1)), rel=1e-12)
        np.testing.assert_allclose(fb.restoring_lag_correlation(0.0, beta1, B3, [1, 3]), 0.0, atol=1e-15)
    # weights as the beta3-EMA of independent updates: the posts' closed form
    lr, wd, beta1 = 3e-3, 1.5, 0.9
    want = theory.adamw_weight_rms(lr, wd, beta1=beta1, method="exact-sums")
    assert fb.restoring_weight_rms(lr, wd, 0.0, beta1) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("beta1", [0.6, 0.9, 0.95])
def test_update_rms_falls_and_gain_rises_over_the_stationary_range(beta1):
    lo, hi = fb.stability_limits(beta1, B3)
    a = np.linspace(lo, hi, 4001)[1:-1]
    assert np.all(np.diff(fb.restoring_update_rms(a, beta1, B3)) < 0)
    assert np.all(np.diff(fb.restoring_gain(a, beta1, B3)) > 0)


def test_fit_and_feedback_invert_the_model():
    a = np.array([-2e-3, 0.01, 0.3, 3.0, 20.0])
    U = fb.restoring_update_rms(a, 0.9, B3)
    np.testing.assert_allclose(fb.restoring_fit(U, 0.9, B3), a, rtol=1e-7, atol=1e-10)
    k = fb.restoring_gain(a, 0.9, B3)
    np.testing.assert_allclose(fb.restoring_feedback(k, 0.9, B3), a, rtol=1e-9, atol=1e-12)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="update_rms must lie in"):
        fb.restoring_fit(1.2, 0.9, B3)
    with pytest.raises(ValueError, match="a must lie in"):
        fb.restoring_update_rms(50.0, 0.9, B3)
    with pytest.raises(ValueError, match="gain must lie in"):
        fb.restoring_feedback(1e9, 0.9, B3)
    with pytest.raises(ValueError, match="lags"):
        fb.restoring_lag_correlation(0.1, 0.9, B3, [0])
    with pytest.raises(ValueError, match="beta1"):
        fb.restoring_update_rms(0.1, 1.0, B3)

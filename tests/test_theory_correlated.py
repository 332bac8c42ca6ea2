"""AdamW at equilibrium with gradients correlated in time (theory.correlated).

Checked against the posts' independent case (the weight-RMS chapter's exact
double-EMA sums), against a simulation of the model itself (updates the EMA
of an AR(1) sequence, weights the decayed sum of the updates) and against
the small-angle limit of the angular update.
"""

import numpy as np
import pytest

from optstats import stats, theory
from optstats.theory import correlated


def test_independent_case_is_the_exact_double_ema():
    lr, wd = np.array([1e-3, 3e-3, 1e-2]), np.array([0.1, 1.0, 5.0])
    for beta1 in (0.0, 0.5, 0.9, 0.99):
        got = correlated.adamw_weight_rms_correlated(lr, wd, beta1, 1.0, 0.0, 0.0)
        want = theory.adamw_weight_rms(lr, wd, beta1=beta1, method="exact-sums")
        np.testing.assert_allclose(got, want, rtol=1e-10)
        u = correlated.adam_update_rms_correlated(beta1, 1.0, 0.0)
        assert u == pytest.approx(np.sqrt((1 - beta1) / (1 + beta1)), rel=1e-15)
        cos = correlated.cos_theta_u(lr, wd, u, got)
        np.testing.assert_allclose(cos, correlated.adamw_cos_theta_u_mean_field(lr, wd, beta1), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("rho", [0.5, -0.5, 0.98])
def test_ar1_normalised_gradient_against_simulation(rho):
    # h: stationary AR(1) with unit variance, C(k) = rho^k, so A(beta) = beta rho / (1 - beta rho)
    rng = np.random.default_rng(11)
    n, burn, steps, groups = 4000, 3000, 6000, 40
    lr, wd, beta1 = 0.01, 2.0, 0.9
    beta3 = 1 - lr * wd
    h = rng.standard_normal(n)
    u = np.zeros(n)
    theta = np.zeros(n)
    u2 = np.zeros(n)
    w2 = np.zeros(n)
    for t in range(burn + steps):
        h = rho * h + np.sqrt(1 - rho**2) * rng.standard_normal(n)
        u = beta1 * u + (1 - beta1) * h
        theta = beta3 * theta - lr * u
        if t >= burn:
            u2 += u * u
            w2 += theta * theta
    # coordinates are independent replicas: groups of them give the error bars
    u_est = stats.sqrt(stats.from_replicas((u2 / steps).reshape(groups, -1).mean(1), axis=0))
    w_est = stats.sqrt(stats.from_replicas((w2 / steps).reshape(groups, -1).mean(1), axis=0))

    def lag_sum(beta):
        return beta * rho / (1 - beta * rho)

    u_want = correlated.adam_update_rms_correlated(beta1, 1.0, lag_sum(beta1))
    w_want = correlated.adamw_weight_rms_correlated(lr, wd, beta1, 1.0, lag_sum(beta1), lag_sum(beta3))
    # 5 standard errors: t with 39 dof, a correct formula fails with p ~ 1e-5
    assert abs(stats.z_scores(u_est, u_want)) < 5
    assert abs(stats.z_scores(w_est, w_want)) < 5


def test_angle_small_step_limit():
    lr, wd, beta1 = 1e-6, 0.5, 0.9
    u = correlated.adam_update_rms_correlated(beta1, 1.0, 0.0)
    w = correlated.adamw_weight_rms_correlated(lr, wd, beta1, 1.0, 0.0, 0.0)
    c = correlated.adamw_cos_theta_u_mean_field(lr, wd, beta1)
    angle = correlated.angular_update(lr, wd, u, w, c)
    assert angle == pytest.approx(np.sqrt(2 * lr * wd * (1 - beta1) / (1 + beta1)), rel=1e-5)
    # an update along -theta does not rotate it
    assert correlated.angular_update(0.1, 0.1, 0.2, 1.0, -1.0) == 0.0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: correlated.adam_update_rms_correlated(1.0, 1.0, 0.0), "beta1"),
        (lambda: correlated.adam_update_rms_correlated(0.9, 0.0, 0.0), "power"),
        (lambda: correlated.adam_update_rms_correlated(0.9, 1.0, -0.6), "lag_sum_beta1"),
        (lambda: correlated.adamw_weight_rms_correlated(-1e-3, 1.0, 0.9, 1.0, 0.0, 0.0), "lr"),
        (lambda: correlated.adamw_weight_rms_correlated(1e-3, 0.0, 0.9, 1.0, 0.0, 0.0), "wd"),
        (lambda: correlated.adamw_weight_rms_correlated(0.5, 2.0, 0.9, 1.0, 0.0, 0.0), "lr \\* wd"),
        (lambda: correlated.adamw_weight_rms_correlated(0.1, 1.0, 0.9, 1.0, 0.0, 0.0), "beta1 must differ"),
        (lambda: correlated.adamw_weight_rms_correlated(1e-3, 1.0, 0.9, 1.0, 0.0, -0.7), "lag_sum_beta3"),
        (lambda: correlated.cos_theta_u(1e-3, 1.0, -0.2, 0.03), "update_rms"),
        (lambda: correlated.cos_theta_u(1e-3, 1.0, 0.2, 0.0), "weight_rms"),
        (lambda: correlated.angular_update(1e-3, 1.0, 0.2, 0.03, 1.5), "cos_theta_u"),
        (lambda: correlated.adamw_cos_theta_u_mean_field(1e-3, 1.0, -0.1), "beta1"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()

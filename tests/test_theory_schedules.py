"""theory.weight_rms_schedule against independent references: the recursion
stepped in a plain loop, the constant-rate solution of post 11307, a fine-step
integration of the ODE, and limits."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from optstats import schedules, theory

LR = schedules.wsd(3000, 2e-3, 300, 2000, floor=1e-4)


def loop_sum(lr, wd, rho0, var=1.0):
    rho, out = rho0, []
    for a, b in zip(lr, np.broadcast_to(wd, lr.shape)):
        rho = (1 - a * b) ** 2 * rho + var * a * a
        out.append(np.sqrt(rho))
    return np.array(out)


@pytest.mark.parametrize("var", [1.0, 0.97])
def test_sum_is_the_recursion(var):
    wd = np.linspace(0.5, 0.1, LR.size)
    got = theory.weight_rms_schedule(LR, wd, theta0_rms=0.03, long_run_variance=var)
    # the same recursion evaluated two ways in float64: rounding only
    np.testing.assert_allclose(got, loop_sum(LR, wd, 0.03**2, var), rtol=1e-12)


def test_sum_survives_a_long_run():
    # total decay kappa = 2000: the vectorised pieces must not overflow; the end is stationary
    lr = np.full(200_000, 0.1)
    got = theory.weight_rms_schedule(lr, 0.1, theta0_rms=1.0)
    # exact stationary value lr^2 / (1 - (1 - lr wd)^2); the start is forgotten (e^-4000); rounding only
    np.testing.assert_allclose(got[-1], np.sqrt(0.1**2 / (1 - 0.99**2)), rtol=1e-12)
    np.testing.assert_allclose(got[::5000], loop_sum(lr, 0.1, 1.0)[::5000], rtol=1e-10)


@pytest.mark.parametrize("method", ["ode", "closed-form"])
def test_constant_rates_give_the_posts_closed_form(method):
    lr, wd, th0 = 1e-3, 0.1, 0.05
    t = np.arange(1, 20_001)
    expected = np.sqrt(np.exp(-2 * lr * wd * t) * th0**2 + (1 - np.exp(-2 * lr * wd * t)) * lr / (2 * wd))
    got = theory.weight_rms_schedule(np.full(t.size, lr), wd, theta0_rms=th0, method=method)
    # both methods solve the constant-rate ODE exactly; rounding over 2e4 cumulative steps
    np.testing.assert_allclose(got, expected, rtol=1e-11)


def test_ode_against_numerical_integration():
    lr = schedules.cosine(400, 0.02, floor=0.002)
    wd = 2.0

    def rhs(s, rho):
        i = min(int(np.ceil(s)) - 1, lr.size - 1)  # step i + 1 occupies (i, i + 1]
        i = max(i, 0)
        return -2 * lr[i] * wd * rho + lr[i] ** 2

    # integrate step by step so that the piecewise-constant coefficients are honoured
    rho, ref = np.array([0.01]), []
    for i in range(lr.size):
        sol = solve_ivp(rhs, (i, i + 1), rho, method="DOP853", rtol=1e-13, atol=1e-18)
        rho = sol.y[:, -1]
        ref.append(np.sqrt(rho[0]))
    got = theory.weight_rms_schedule(lr, wd, theta0_rms=0.1, method="ode")
    # 400 steps at a per-step tolerance of 1e-13 (8th-order Dormand-Prince): 1e-9 is ample
    np.testing.assert_allclose(got, ref, rtol=1e-9)


def test_closed_form_solves_the_ode_when_wd_is_proportional_to_lr():
    lr = schedules.cosine(5000, 3e-3, floor=3e-4)
    wd = 40.0 * lr  # wd_t / lr_t constant: the AdamC-style choice
    ode = theory.weight_rms_schedule(lr, wd, theta0_rms=0.02, method="ode")
    closed = theory.weight_rms_schedule(lr, wd, theta0_rms=0.02, method="closed-form")
    # an identity (kappa = 40 nu), so rounding only
    np.testing.assert_allclose(closed, ode, rtol=1e-12)


def test_sum_and_ode_differ_at_order_lr_wd():
    wd = 0.1
    s = theory.weight_rms_schedule(LR, wd, theta0_rms=0.02)
    o = theory.weight_rms_schedule(LR, wd, theta0_rms=0.02, method="ode")
    # per step the two factors differ by (lr wd)^2 relative; rho differs by at most ~ lr wd / 2 relative
    assert np.max(np.abs(s / o - 1)) < np.max(LR) * wd


def test_no_weight_decay_is_a_random_walk():
    for method in ("sum", "ode", "closed-form"):
        got = theory.weight_rms_schedule(LR, 0.0, theta0_rms=0.1, method=method)
        np.testing.assert_allclose(got, np.sqrt(0.01 + np.cumsum(LR**2)), rtol=1e-13)  # exact; rounding only


def test_quasi_static_and_long_run_variance_scaling():
    qs = theory.weight_rms_schedule(LR, 0.1, theta0_rms=0.0, method="quasi-static", long_run_variance=0.9)
    np.testing.assert_allclose(qs, np.sqrt(0.9 * LR / 0.2), rtol=1e-15)  # the formula itself; rounding only
    # from theta_0 = 0 every method scales as sqrt(V)
    for method in ("sum", "ode", "closed-form"):
        a = theory.weight_rms_schedule(LR, 0.1, theta0_rms=0.0, method=method)
        b = theory.weight_rms_schedule(LR, 0.1, theta0_rms=0.0, method=method, long_run_variance=0.81)
        np.testing.assert_allclose(b, 0.9 * a, rtol=1e-14)  # exact scaling; rounding only


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(lr=np.ones((2, 3)) * 1e-3, wd=0.1), "lr"),
        (dict(lr=np.array([]), wd=0.1), "lr"),
        (dict(lr=np.array([1e-3, -1e-3]), wd=0.1), "lr"),
        (dict(lr=np.full(3, 1e-3), wd=np.full(4, 0.1)), "wd"),
        (dict(lr=np.full(3, 1e-3), wd=-0.1), "wd"),
        (dict(lr=np.array([1e-3, 2.0]), wd=0.5), "lr \\* wd"),
        (dict(lr=np.full(3, 1e-3), wd=0.1, theta0_rms=-1.0), "theta0_rms"),
        (dict(lr=np.full(3, 1e-3), wd=0.1, method="euler"), "method"),
        (dict(lr=np.full(3, 1e-3), wd=0.0, method="quasi-static"), "wd"),
        (dict(lr=np.full(3, 1e-3), wd=0.1, long_run_variance=-1.0), "long_run_variance"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, name):
    kwargs.setdefault("theta0_rms", 0.1)
    lr, wd = kwargs.pop("lr"), kwargs.pop("wd")
    with pytest.raises(ValueError, match=name):
        theory.weight_rms_schedule(lr, wd, **kwargs)


def kernel_direct(lr, wd, rho0, t, beta1, bias_correction, var=1.0):
    """The kernel sum of post 11404 (eq. w-rms-mu0) at step t, term by term in a loop."""
    p = np.cumprod(1 - lr * wd)
    total = 0.0
    for j in range(1, t + 1):
        k = 0.0
        for i in range(j, t + 1):
            b = lr[i - 1] / (1 - beta1**i) if bias_correction else lr[i - 1]
            k += p[t - 1] / p[i - 1] * beta1 ** (i - j) * b
        total += ((1 - beta1) * k) ** 2
    return np.sqrt(p[t - 1] ** 2 * rho0 + var * total)


@pytest.mark.parametrize("beta1", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("bias_correction", [False, True])
def test_kernel_against_the_double_sum(beta1, bias_correction):
    lr = schedules.wsd(120, 0.05, 20, 80, floor=0.005)
    wd = np.linspace(1.0, 3.0, lr.size)
    got = theory.weight_rms_schedule(lr, wd, theta0_rms=0.2, method="kernel", beta1=beta1,
                                     bias_correction=bias_correction, long_run_variance=0.9)
    ref = [kernel_direct(lr, wd, 0.04, t, beta1, bias_correction, 0.9) for t in (1, 2, 7, 20, 21, 60, 119, 120)]
    # the same double sum, by recursions and term by term: rounding only
    np.testing.assert_allclose(got[[0, 1, 6, 19, 20, 59, 118, 119]], ref, rtol=1e-12)


def test_kernel_without_momentum_is_the_sum():
    lr = schedules.cosine(500, 0.01)
    a = theory.weight_rms_schedule(lr, 0.5, theta0_rms=0.1, method="kernel", beta1=0.0)
    np.testing.assert_allclose(a, theory.weight_rms_schedule(lr, 0.5, theta0_rms=0.1), rtol=1e-13)  # identical sums


def test_kernel_needs_beta1():
    with pytest.raises(ValueError, match="beta1"):
        theory.weight_rms_schedule(LR, 0.1, theta0_rms=0.1, method="kernel")
    with pytest.raises(ValueError, match="beta1"):
        theory.weight_rms_schedule(LR, 0.1, theta0_rms=0.1, method="kernel", beta1=1.0)
    with pytest.raises(ValueError, match="bias_correction"):
        theory.weight_rms_schedule(LR, 0.1, theta0_rms=0.1, method="kernel", beta1=0.9, bias_correction="yes")


@pytest.mark.parametrize("method", ["sum", "ode", "closed-form", "quasi-static", "kernel"])
def test_decay_per_step_is_the_same_schedule_as_wd(method):
    wd = np.linspace(0.5, 0.1, LR.size)
    kw = dict(theta0_rms=0.03, method=method, beta1=0.9)
    by_wd = theory.weight_rms_schedule(LR, wd, **kw)
    by_decay = theory.weight_rms_schedule(LR, decay=LR * wd, **kw)
    # the same decay array enters both; quasi-static is written lr^2 / (2 decay): rounding only
    np.testing.assert_allclose(by_decay, by_wd, rtol=1e-14)


def test_decay_that_does_not_vanish_with_lr():
    # independent weight decay: the decay is 1e-3 at every step, also where lr reaches 0
    lr = schedules.cosine(2000, 1e-3, 0.0)
    assert lr[-1] == 0.0
    got = theory.weight_rms_schedule(lr, decay=1e-3, theta0_rms=0.02)
    rho, want = 0.02**2, []
    for a in lr:
        rho = (1 - 1e-3) ** 2 * rho + a * a
        want.append(np.sqrt(rho))
    np.testing.assert_allclose(got, want, rtol=1e-12)  # the same recursion two ways: rounding only


@pytest.mark.parametrize("kwargs, match", [
    (dict(wd=0.1, decay=1e-4), "one of wd and decay"),
    (dict(), "one of wd and decay"),
    (dict(decay=np.full(4, 1e-4)), "decay must be a scalar or have the shape"),
    (dict(decay=-1e-4), "decay"),
    (dict(decay=1.0), "decay must be < 1"),
    (dict(decay=0.0, method="quasi-static"), "decay must be > 0"),
])
def test_decay_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        theory.weight_rms_schedule(np.full(3, 1e-3), theta0_rms=0.1, **kwargs)

"""Simulation estimators against cases solved exactly by hand.

SGDM (u = m, a linear filter of the gradients) has exact stationary moments:
E[u^2] = mu^2 + s1 sigma^2 with s1 = (1 - b1)/(1 + b1), autocovariance
C(d) = s1 sigma^2 b1^|d|, hence with b3 = 1 - lr wd the stationary
E[theta^2] = lr^2 s1 sigma^2 (1 + b1 b3) / ((1 - b3^2)(1 - b1 b3)) + lr^2 mu^2 / (1 - b3)^2.
"""

import numpy as np
import pytest
from conftest import Z_TOL

from optstats import gradients, optimizers, simulate, stats, theory


def sgdm_weight_rms(lr, wd, b1, mu=0.0, sigma=1.0):
    b3 = 1 - lr * wd
    s1 = (1 - b1) / (1 + b1)
    return np.sqrt(
        lr**2 * s1 * sigma**2 * (1 + b1 * b3) / ((1 - b3**2) * (1 - b1 * b3)) + lr**2 * mu**2 / (1 - b3) ** 2
    )


def assert_within(est, exact):
    z = (np.asarray(est.value) - exact) / np.asarray(est.stderr)
    assert np.all(np.abs(z) < Z_TOL), f"estimate {est} vs exact {exact}: z = {z}"


@pytest.mark.parametrize("b1, mu", [(0.0, 0.0), (0.9, 0.0), (0.9, 0.5)])
def test_update_rms_of_sgdm_is_exact(rng, b1, mu):
    est = simulate.update_rms(
        optimizers.SGDM(b1), gradients.Gaussian(mean=mu), rng=rng, n_coords=4000, steps=2000, control_variate=False
    )
    assert_within(est, np.sqrt(mu**2 + (1 - b1) / (1 + b1)))


def test_update_moments_mean(rng):
    est = simulate.update_moments(
        optimizers.SGDM(0.5), gradients.Gaussian(mean=0.3), rng=rng, n_coords=4000, steps=1000, control_variate=False
    )
    assert_within(est["mean"], 0.3)


def test_update_moments_control_variate(rng):
    # exact for SGDM (u = m) ...
    est = simulate.update_moments(optimizers.SGDM(0.5), gradients.Gaussian(mean=0.3), rng=rng, n_coords=800, steps=500)
    assert est["mean"].value == pytest.approx(0.3, rel=1e-12)
    assert est["second"].value == pytest.approx(0.09 + 1 / 3, rel=1e-12)
    # ... and consistent with the raw estimator, with a smaller error, for Adam
    kw = dict(rng=rng, n_coords=4000, steps=2000)
    raw = simulate.update_moments(optimizers.Adam(0.9, 0.95), gradients.Gaussian(mean=0.3), control_variate=False, **kw)
    cv = simulate.update_moments(optimizers.Adam(0.9, 0.95), gradients.Gaussian(mean=0.3), **kw)
    for key in ("mean", "second"):
        z = (raw[key].value - cv[key].value) / np.hypot(raw[key].stderr, cv[key].stderr)
        assert abs(z) < Z_TOL, (key, z)
        assert cv[key].stderr < raw[key].stderr


def test_signsgdm_update_rms_is_one(rng):
    est = simulate.update_rms(optimizers.SignSGDM(0.9), gradients.Gaussian(), rng=rng, n_coords=400, steps=100)
    assert est.value == 1.0 and est.stderr == 0.0


def test_grid_of_hyperparameters_in_one_run(rng):
    b1 = np.array([[0.0], [0.5], [0.9]])
    est = simulate.update_rms(
        optimizers.SGDM(b1), gradients.Gaussian(), rng=rng, n_coords=4000, steps=2000, control_variate=False
    )
    assert est.value.shape == (3,)
    assert_within(est, np.sqrt((1 - b1[:, 0]) / (1 + b1[:, 0])))


def test_control_variate_on_a_grid_agrees_with_raw_estimator(rng):
    b1 = np.array([[0.0], [0.5], [0.9]])
    kw = dict(rng=rng, n_coords=4000, steps=2000)
    cv = simulate.update_rms(optimizers.Adam(b1, 0.95), gradients.Gaussian(mean=0.2), **kw)
    raw = simulate.update_rms(optimizers.Adam(b1, 0.95), gradients.Gaussian(mean=0.2), control_variate=False, **kw)
    assert cv.value.shape == (3,)
    assert np.all(np.abs(cv.value - raw.value) < Z_TOL * np.hypot(cv.stderr, raw.stderr))
    kw = dict(lr=0.01, wd=1.0, rng=rng, n_coords=4000)
    cv = simulate.weight_rms(optimizers.SignSGDM(b1), gradients.Gaussian(), **kw)
    raw = simulate.weight_rms(optimizers.SignSGDM(b1), gradients.Gaussian(), control_variate=False, **kw)
    assert cv.value.shape == (3,)
    assert np.all(np.abs(cv.value - raw.value) < Z_TOL * np.hypot(cv.stderr, raw.stderr))


def test_default_precision_of_update_rms(rng):
    # the target: stderr below 0.2% of the value with the defaults
    est = simulate.update_rms(optimizers.Adam(0.9, 0.95), gradients.Gaussian(), rng=rng)
    assert est.stderr / est.value < 2e-3


@pytest.mark.parametrize(
    "lr, wd, b1, mu",
    [(0.01, 1.0, 0.9, 0.0), (0.01, 1.0, 0.9, 0.3), (1e-3, 0.1, 0.9, 0.0), (0.05, 2.0, 0.5, 0.2)],
)
def test_weight_rms_of_sgdm_is_exact(rng, lr, wd, b1, mu):
    # the raw estimator (no control variate) against the exact SGDM value
    est = simulate.weight_rms(
        optimizers.SGDM(b1), gradients.Gaussian(mean=mu), lr=lr, wd=wd, rng=rng, n_coords=4000, control_variate=False
    )
    assert_within(est, sgdm_weight_rms(lr, wd, b1, mu))


def test_control_variate_is_exact_for_sgdm(rng):
    # u = m: the control variate removes all noise and leaves its exact value,
    # which must be the exact SGDM weight RMS up to the truncation e^-12
    est = simulate.weight_rms(optimizers.SGDM(0.9), gradients.Gaussian(mean=0.2), lr=0.01, wd=1.0, rng=rng, n_coords=800)
    assert est.value == pytest.approx(sgdm_weight_rms(0.01, 1.0, 0.9, 0.2), rel=1e-6)
    assert est.stderr < 1e-9 * est.value


@pytest.mark.parametrize("rule", [optimizers.SignSGDM(0.9), optimizers.Adam(0.9, 0.95)], ids=repr)
@pytest.mark.parametrize("mu", [0.0, 0.3])
def test_control_variate_agrees_with_raw_estimator(rng, rule, mu):
    kw = dict(lr=0.01, wd=1.0, n_coords=4000)
    raw = simulate.weight_rms(rule, gradients.Gaussian(mean=mu), rng=rng, control_variate=False, **kw)
    cv = simulate.weight_rms(rule, gradients.Gaussian(mean=mu), rng=rng, **kw)
    z = (raw.value - cv.value) / np.hypot(raw.stderr, cv.stderr)
    assert abs(z) < Z_TOL, z
    assert cv.stderr < raw.stderr


def test_weight_rms_with_coordinates_of_different_means(rng):
    mu = np.tile([0.0, 0.2, 0.4, 0.6], 1000)
    est = simulate.weight_rms(
        optimizers.SGDM(0.9), gradients.Gaussian(mean=mu), lr=0.01, wd=1.0, rng=rng, n_coords=4000, control_variate=False
    )
    exact = np.sqrt(np.mean(sgdm_weight_rms(0.01, 1.0, 0.9, mu) ** 2))
    assert_within(est, exact)


def test_default_precision_of_weight_rms(rng):
    est = simulate.weight_rms(optimizers.Adam(0.9, 0.95), gradients.Gaussian(), lr=1e-3, wd=0.1, rng=rng)
    assert est.stderr / est.value < 2e-3


def test_trajectory_first_step_and_stationary_end(rng):
    lr, wd, b1, theta0 = 0.01, 1.0, 0.9, 0.5
    est = simulate.weight_rms_trajectory(
        optimizers.SGDM(b1), gradients.Gaussian(), lr=lr, wd=wd, steps=[1, 3000], theta0_rms=theta0, rng=rng, n_coords=4000,
        control_variate=False,
    )
    # step 1: theta_1 = b3 theta_0 - lr (1 - b1) g_1, independent terms
    b3 = 1 - lr * wd
    assert_within(est[0], np.sqrt(b3**2 * theta0**2 + lr**2 * (1 - b1) ** 2))
    # after 3000 steps b3^3000 ~ 1e-13: stationary
    assert_within(est[1], sgdm_weight_rms(lr, wd, b1))


@pytest.mark.parametrize("mu", [0.0, 0.4])
def test_trajectory_control_variate_is_exact_for_sgdm(rng, mu):
    """For SGDM (u = m) the control weights are the weights, so the estimate is
    the exact moment recursion: checked against the first step and the stationary
    closed form (rounding only)."""
    lr, wd, b1, theta0 = 0.01, 1.0, 0.9, 0.5
    est = simulate.weight_rms_trajectory(
        optimizers.SGDM(b1), gradients.Gaussian(mean=mu), lr=lr, wd=wd, steps=[1, 5000], theta0_rms=theta0, rng=rng,
        n_coords=400,
    )
    b3 = 1 - lr * wd
    first = np.sqrt(b3**2 * theta0**2 + lr**2 * (1 - b1) ** 2 * (1 + mu**2))
    np.testing.assert_allclose(est.value, [first, sgdm_weight_rms(lr, wd, b1, mu)], rtol=1e-10)


def test_trajectory_control_variate_on_a_hyperparameter_grid(rng):
    """A beta1 grid (3, 1) and per-coordinate means (two blocks): the exact
    SGDM moments (control variate) against a raw simulation, grid point by point."""
    beta1 = np.array([[0.0], [0.5], [0.9]])
    mean = np.repeat([0.0, 0.5], 200)
    kw = dict(lr=0.05, wd=1.0, steps=[5, 40], theta0_rms=0.3, n_coords=400)
    exact = simulate.weight_rms_trajectory(optimizers.SGDM(beta1), gradients.Gaussian(mean=mean), rng=rng, **kw)
    raw = simulate.weight_rms_trajectory(optimizers.SGDM(beta1), gradients.Gaussian(mean=mean), rng=rng,
                                         control_variate=False, **kw)
    assert exact.value.shape == (3, 2)
    assert_within(raw, exact.value)


def test_trajectory_control_variate_agrees_without_it(rng):
    """Adam under a schedule: both estimators are unbiased, so they agree within
    their combined standard errors; the control variate is much tighter."""
    lr = np.concatenate([np.linspace(1e-3, 2e-2, 200), np.full(600, 2e-2), np.linspace(2e-2, 0, 200)])
    adam = optimizers.Adam(0.9, 0.95, bias_correction=True)
    kw = dict(lr=lr, wd=0.5, steps=[100, 500, 900, 1000], theta0_rms=0.05, n_coords=4000)
    with_cv = simulate.weight_rms_trajectory(adam, gradients.Gaussian(), rng=np.random.default_rng(5), **kw)
    without = simulate.weight_rms_trajectory(adam, gradients.Gaussian(), rng=np.random.default_rng(6), control_variate=False, **kw)
    z = (with_cv.value - without.value) / np.hypot(with_cv.stderr, without.stderr)
    assert np.all(np.abs(z) < Z_TOL), z
    # the bench measures about 8x; 3x leaves room for the spread of 40-group stderrs
    assert np.all(with_cv.stderr < without.stderr / 3)


def test_trajectory_reported_stderr_matches_spread_over_seeds():
    """Estimator honesty for the control-variate trajectory (the bounds are those
    of test_reported_stderr_matches_spread_over_seeds): 40 seeds of Adam at the
    end of a decaying schedule."""
    lr = np.linspace(2e-2, 2e-3, 300)
    adam = optimizers.Adam(0.9, 0.95, bias_correction=True)
    values, errors = [], []
    for seed in range(40):
        est = simulate.weight_rms_trajectory(adam, gradients.Gaussian(), lr=lr, wd=1.0, steps=[300], theta0_rms=0.1,
                                             rng=np.random.default_rng(seed), n_coords=400)
        values.append(est.value[0])
        errors.append(est.stderr[0])
    ratio = np.std(values, ddof=1) / np.mean(errors)
    assert 0.55 < ratio < 1.45, ratio


def test_trajectory_accepts_per_step_schedules(rng):
    lr = np.full(200, 0.01)
    lr[100:] = 0.0  # frozen weights after step 100
    est = simulate.weight_rms_trajectory(
        optimizers.SGDM(0.5), gradients.Gaussian(), lr=lr, wd=1.0, steps=[100, 200], theta0_rms=0.1, rng=rng, n_coords=400
    )
    assert est.value[0] == est.value[1]


def test_same_seed_same_estimate():
    run = lambda: simulate.update_rms(
        optimizers.Adam(0.9, 0.95), gradients.Gaussian(), rng=np.random.default_rng(3), n_coords=400, steps=300
    )
    a, b = run(), run()
    assert a.value == b.value and a.stderr == b.stderr


@pytest.mark.parametrize("control_variate", [False, True])
def test_reported_stderr_matches_spread_over_seeds(control_variate):
    """Estimator honesty: over 40 independent seeds the values scatter as the
    reported standard errors say. The ratio of the sample spread to the mean
    stderr has a relative standard deviation of about 1/sqrt(2*39) = 0.11; the
    bounds are about 4 of those."""
    values, errors = [], []
    for seed in range(40):
        est = simulate.update_rms(
            optimizers.Adam(0.9, 0.95), gradients.Gaussian(), rng=np.random.default_rng(seed), n_coords=800, steps=400,
            control_variate=control_variate,
        )
        values.append(est.value)
        errors.append(est.stderr)
    ratio = np.std(values, ddof=1) / np.mean(errors)
    assert 0.55 < ratio < 1.45, ratio


@pytest.mark.parametrize("control_variate", [False, True])
def test_weight_rms_stderr_matches_spread_over_seeds(control_variate):
    values, errors = [], []
    for seed in range(40):
        est = simulate.weight_rms(
            optimizers.SignSGDM(0.9), gradients.Gaussian(mean=0.1), lr=0.01, wd=1.0,
            rng=np.random.default_rng(seed), n_coords=800, steps=1000, control_variate=control_variate,
        )
        values.append(est.value)
        errors.append(est.stderr)
    ratio = np.std(values, ddof=1) / np.mean(errors)
    assert 0.55 < ratio < 1.45, ratio


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_coords": 1001}, "n_coords"),
        ({"n_coords": 0}, "n_coords"),
        ({"steps": 0}, "steps"),
        ({"burn_in": -1}, "burn_in"),
        ({"groups": 1}, "groups"),
    ],
)
def test_update_rms_bad_input(rng, kwargs, name):
    with pytest.raises(ValueError, match=name):
        simulate.update_rms(optimizers.SGDM(0.9), gradients.Gaussian(), rng=rng, **kwargs)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"lr": -1e-3, "wd": 0.1}, "lr"),
        ({"lr": 1e-3, "wd": 0.0}, "wd"),
        ({"lr": 2.0, "wd": 1.0}, "lr \\* wd"),
        ({"lr": 1e-3, "wd": 0.1, "steps": 10}, "steps"),  # too few for the lag window
    ],
)
def test_weight_rms_bad_input(rng, kwargs, name):
    with pytest.raises(ValueError, match=name):
        simulate.weight_rms(optimizers.SGDM(0.9), gradients.Gaussian(), rng=rng, n_coords=400, **kwargs)


def test_trajectory_bad_input(rng):
    kw = dict(lr=0.01, wd=1.0, theta0_rms=0.1, rng=rng, n_coords=400)
    with pytest.raises(ValueError, match="steps"):
        simulate.weight_rms_trajectory(optimizers.SGDM(0.9), gradients.Gaussian(), steps=[5, 3], **kw)
    with pytest.raises(ValueError, match="theta0_rms"):
        simulate.weight_rms_trajectory(optimizers.SGDM(0.9), gradients.Gaussian(), steps=[5], **{**kw, "theta0_rms": -1})
    with pytest.raises(ValueError, match="lr"):
        simulate.weight_rms_trajectory(optimizers.SGDM(0.9), gradients.Gaussian(), steps=[5], **{**kw, "lr": np.ones(3)})
    with pytest.raises(ValueError, match="rule"):
        simulate.update_rms("adam", gradients.Gaussian(), rng=rng)
    with pytest.raises(ValueError, match="rng"):
        simulate.update_rms(optimizers.SGDM(0.9), gradients.Gaussian(), rng=0)


@pytest.mark.parametrize("b1, mu", [(0.9, 0.0), (0.5, 0.7)])
def test_momentum_ratio_is_exact_in_the_limit(rng, b1, mu):
    """sum m^2 / sum g^2 -> (mu^2 + (1-b1)/(1+b1) sigma^2) / (mu^2 + sigma^2) over many coordinates."""
    est = simulate.momentum_ratio(optimizers.SGDM(b1), gradients.Gaussian(mean=mu, std=2.0), rng=rng, n_coords=4000, steps=1000)
    c = (1 - b1) / (1 + b1)
    assert_within(est, np.sqrt((mu**2 + 4 * c) / (mu**2 + 4)))


def test_update_rms_trajectory_from_step_one(rng):
    # bias-corrected Adam without eps: u_1 = g_1/|g_1| = +-1 exactly
    adam = optimizers.Adam(0.9, 0.95, bias_correction=True)
    est = simulate.update_rms_trajectory(adam, gradients.Gaussian(), steps=[1, 2], rng=rng, n_coords=400)
    assert est.value[0] == pytest.approx(1.0, abs=1e-15) and est.stderr[0] < 1e-15  # rounding of g/sqrt(g^2)
    # SGDM: u_t = m_t, whose second moment at every t is an EMA-chapter closed form
    steps = np.array([1, 3, 10, 60])
    est = simulate.update_rms_trajectory(optimizers.SGDM(0.8), gradients.Gaussian(mean=0.3), steps=steps, rng=rng, n_coords=8000)
    exact = np.sqrt(theory.ema_mean(0.8, steps, mean=0.3) ** 2 + theory.ema_variance(0.8, steps))
    assert_within(est, exact)


def test_new_estimators_bad_input(rng):
    with pytest.raises(ValueError, match="steps"):
        simulate.update_rms_trajectory(optimizers.SGDM(0.9), gradients.Gaussian(), steps=[0, 3], rng=rng, n_coords=400)
    with pytest.raises(ValueError, match="steps"):
        simulate.momentum_ratio(optimizers.SGDM(0.9), gradients.Gaussian(), steps=0, rng=rng, n_coords=400)
    with pytest.raises(ValueError, match="n_coords"):
        simulate.momentum_ratio(optimizers.SGDM(0.9), gradients.Gaussian(), rng=rng, n_coords=401)


# --- matrix rules (Muon): whole matrices are the replicas; several decays in one run


def test_muon_update_rms_is_exact_on_every_estimator(rng):
    # msign of a full-rank n x m matrix has RMS 1/sqrt(max(n, m)) at every step
    muon, g = optimizers.Muon(0.9), gradients.Gaussian()
    est = simulate.update_rms(muon, g, rng=rng, n_coords=8, groups=4, steps=50, matrix_shape=(3, 5))
    assert est.value == pytest.approx(5**-0.5, rel=1e-12) and est.stderr < 1e-12
    traj = simulate.update_rms_trajectory(muon, g, steps=[1, 7], rng=rng, n_coords=8, groups=4, matrix_shape=(6, 2))
    np.testing.assert_allclose(traj.value, 6**-0.5, rtol=1e-12)


def test_muon_replicas_are_matrices(rng):
    # a single matrix per group: the groups' means are per-matrix means, so
    # the momentum ratio's spread is that of whole matrices
    est = simulate.momentum_ratio(optimizers.Muon(0.9), gradients.Gaussian(), rng=rng, n_coords=16, groups=16,
                                  steps=400, matrix_shape=(8, 8))
    assert_within(est, np.sqrt(0.1 / 1.9))


def test_several_decays_equal_separate_runs():
    # the same seed draws the same gradients, so each decay of the vector run
    # is the scalar run's estimate up to rounding
    kw = dict(lr=0.01, n_coords=400, groups=20, steps=600)
    rule, g = optimizers.Adam(0.9, 0.95), gradients.Gaussian(mean=0.2)
    wd = np.array([0.5, 2.0, 8.0])
    both = simulate.weight_rms(rule, g, wd=wd, rng=np.random.default_rng(8), **kw)
    for i, w in enumerate(wd):
        one = simulate.weight_rms(rule, g, wd=w, rng=np.random.default_rng(8), **kw)
        assert both.value[i] == pytest.approx(one.value, rel=1e-12)
        assert both.stderr[i] == pytest.approx(one.stderr, rel=1e-9)


def test_weight_rms_of_sgdm_on_a_decay_vector(rng):
    wd = np.array([0.1, 1.0, 5.0])
    est = simulate.weight_rms(optimizers.SGDM(0.9), gradients.Gaussian(), lr=0.01, wd=wd, rng=rng, n_coords=2000,
                              control_variate=False)
    assert_within(est, sgdm_weight_rms(0.01, wd, 0.9))


def test_weight_update_products_angle_of_sgdm(rng):
    # SGDM's stationary angle: the balance cos(theta, u) and the exact U, W
    lr, wd, b1 = 0.02, 2.0, 0.9
    W = sgdm_weight_rms(lr, wd, b1)
    U = np.sqrt((1 - b1) / (1 + b1))
    est = simulate.weight_update_products(optimizers.SGDM(b1), gradients.Gaussian(), lr=lr, wd=wd, theta0_rms=W,
                                          rng=rng, n_coords=20_000, groups=20, steps=1500, burn_in=200)
    cos = theory.cos_theta_u(lr, wd, U, W)
    # the per-group angle of 1000 coordinates carries an O(1/1000) bias from
    # its norms' fluctuation, well below the stderr at this size
    assert_within(est["angle"], theory.angular_update(lr, wd, U, W, cos))


def test_matrix_rule_bad_input(rng):
    muon, g = optimizers.Muon(0.9), gradients.Gaussian()
    with pytest.raises(ValueError, match="matrix_shape"):
        simulate.update_rms(muon, g, rng=rng, n_coords=8, groups=4)
    with pytest.raises(ValueError, match="matrix_shape"):
        simulate.update_rms(muon, g, rng=rng, n_coords=8, groups=4, matrix_shape=(0, 3))
    with pytest.raises(ValueError, match="matrix_shape"):
        simulate.update_rms(optimizers.SGDM(0.9), g, rng=rng, n_coords=8, groups=4, matrix_shape=(2, 3))
    with pytest.raises(ValueError, match="scalars"):
        simulate.update_rms(muon, gradients.Gaussian(mean=np.array([0.0, 1.0])), rng=rng, n_coords=8, groups=4,
                            matrix_shape=(2, 3))
    with pytest.raises(ValueError, match="wd"):
        simulate.weight_rms(optimizers.SGDM(0.9), g, lr=0.01, wd=np.ones((2, 2)), rng=rng, n_coords=400)


def test_update_autocorrelation_of_sgdm_and_signsgdm(rng):
    # SGDM: u = m, an EMA, so R(d) = beta1^d exactly; SignSGDM: the arcsine law
    lags = np.arange(6)
    est = simulate.update_autocorrelation(optimizers.SGDM(0.8), gradients.Gaussian(), max_lag=5, rng=rng,
                                          n_coords=4000, steps=1500)
    assert est.value[0] == 1.0
    assert_within(stats.Estimate(est.value[1:], est.stderr[1:], est.dof), 0.8 ** lags[1:])
    est = simulate.update_autocorrelation(optimizers.SignSGDM(0.8), gradients.Gaussian(), max_lag=5, rng=rng,
                                          n_coords=4000, steps=1500)
    assert_within(stats.Estimate(est.value[1:], est.stderr[1:], est.dof), 2 / np.pi * np.arcsin(0.8 ** lags[1:]))
    with pytest.raises(ValueError, match="steps"):
        simulate.update_autocorrelation(optimizers.SGDM(0.8), gradients.Gaussian(), max_lag=5, rng=rng,
                                        n_coords=400, steps=5)

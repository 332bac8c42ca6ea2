"""The lab that trains: exact propagation, Monte Carlo, the search, bad input.

Exact references: for SGDM at K = 1 from the stationary momentum the loss
after one step is the one-step expansion, so the best learning rate is
``theory.optimal_lr_sgdm`` (exact); for SGD (beta1 = 0) K steps of
e <- (I - lr H) e - lr xi have a closed form per eigen-coordinate,
E[e_K] = (1 - lr h)^K e_0 and Var[e_K] = lr^2 s/B sum_k (1 - lr h)^(2k).
"""

import numpy as np
import pytest
from conftest import Z_TOL, correlated_problem

from optstats import optimizers, theory, training
from optstats.quadratic import NoisyQuadratic


def problem_d():
    g = np.logspace(-1, 0, 8) * np.tile([1.0, -1.0], 4)
    return NoisyQuadratic(g, np.diag(np.linspace(0.5, 2.0, 8)), 400.0 * np.eye(8))


def sgd_closed_form(lab, lr, k):
    """SGD from w_0 = 0 after k steps, in H's eigenbasis: the eigenvalues, the
    mean error r^k e_0 and the per-unit-batch variance, each (lr, d)."""
    lam, vecs = np.linalg.eigh(lab.H)
    e0 = vecs.T @ np.linalg.solve(lab.H, lab.g)
    s = np.diag(vecs.T @ lab.Sigma @ vecs)
    r = 1.0 - lr[:, None] * lam  # (lr, d)
    var = lr[:, None] ** 2 * s * (1 - r ** (2 * k)) / (1 - r**2)
    return lam, r**k * e0, var


def test_sgd_loss_matches_closed_form():
    lab = correlated_problem()
    lr, b, k = np.array([0.05, 0.3]), np.array([2.0, 50.0]), 37
    got = lab.training_loss(optimizers.SGDM(0.0), b, lr, k)
    lam, mean, var = sgd_closed_form(lab, lr, k)
    want = 0.5 * ((lam * mean**2).sum(-1)[:, None] + (lam * var).sum(-1)[:, None] / b)
    np.testing.assert_allclose(got.value, want, rtol=1e-12)
    assert np.all(got.stderr == 0)


def test_noise_scale_after_matches_closed_form_for_sgd():
    lab = correlated_problem()
    lr, b, k = np.array([0.05, 0.3]), np.array([2.0, 50.0]), 37
    got = training.noise_scale_after(lab, optimizers.SGDM(0.0), b, lr, k)
    lam, mean, var = sgd_closed_form(lab, lr, k)
    ghg = (lam**3 * mean**2).sum(-1)[:, None] + (lam**3 * var).sum(-1)[:, None] / b
    np.testing.assert_allclose(got, np.trace(lab.H @ lab.Sigma) / ghg, rtol=1e-12)
    # a vanishing step leaves w_0, whose noise scale is the lab's
    tiny = training.noise_scale_after(lab, optimizers.SGDM(0.9), 10.0, 1e-12, 1)
    np.testing.assert_allclose(tiny, lab.b_noise, rtol=1e-9)
    with pytest.raises(ValueError, match="method='exact'"):
        training.noise_scale_after(lab, optimizers.Adam(0.9, 0.95), 10.0, 0.1, 5)


@pytest.mark.parametrize("beta1", [0.0, 0.9])
def test_one_step_from_stationary_momentum_is_the_one_step_law(beta1):
    for lab in (problem_d(), correlated_problem()):
        b = np.geomspace(1, 1e5, 7)
        best = lab.optimal_lr_after(optimizers.SGDM(beta1), b, 1, momentum_start="stationary")
        np.testing.assert_allclose(best.value, theory.optimal_lr_sgdm(lab, b, beta1=beta1), rtol=1e-8)


def test_one_step_monte_carlo_matches_one_step_lab(rng):
    # Adam from its stationary state: one training step against the frozen-g lab
    lab = problem_d()
    b = np.array([3.0, 100.0, 3000.0])
    rule = optimizers.Adam(0.9, 0.95)
    after = lab.optimal_lr_after(rule, b, 1, rng=rng, momentum_start="stationary", replicas=512)
    lab_est = lab.optimal_lr(rule, b, rng=rng, chains=128, steps=1000)
    z = (after.value - lab_est.value) / np.hypot(after.stderr, lab_est.stderr)
    assert np.all(np.abs(z) < Z_TOL), z


@pytest.mark.parametrize("start", ["zero", "stationary"])
def test_exact_and_monte_carlo_agree_for_sgdm(rng, start):
    lab = correlated_problem()
    rule, b, lr, ks = optimizers.SGDM(0.8), np.array([1.0, 20.0]), np.array([0.02, 0.2]), [1, 5, 40]
    exact = lab.training_loss(rule, b, lr, ks, momentum_start=start)
    mc = lab.training_loss(rule, b, lr, ks, rng=rng, momentum_start=start, method="monte-carlo", replicas=2000)
    assert mc.value.shape == exact.value.shape == (3, 2, 2)
    z = (mc.value - exact.value) / mc.stderr
    assert np.all(np.abs(z) < Z_TOL), z
    best_exact = lab.optimal_lr_after(rule, b, ks, momentum_start=start)
    best_mc = lab.optimal_lr_after(rule, b, ks, rng=rng, momentum_start=start, method="monte-carlo")
    z = (best_mc.value - best_exact.value) / best_mc.stderr
    assert np.all(np.abs(z) < Z_TOL), z


def test_monte_carlo_search_settings_reach_half_a_percent(monkeypatch):
    # the Monte Carlo path's rounds, run on the exact losses, against the
    # exact path's longer search
    lab = problem_d()
    b, ks = np.geomspace(1, 1e5, 11), [1, 10, 100, 1000]
    for beta1 in (0.0, 0.9):
        ref = lab.optimal_lr_after(optimizers.SGDM(beta1), b, ks)
        monkeypatch.setattr(training, "ROUNDS_EXACT", training.ROUNDS)
        short = lab.optimal_lr_after(optimizers.SGDM(beta1), b, ks)
        monkeypatch.undo()
        assert np.max(np.abs(short.value / ref.value - 1)) < 0.005


def test_shapes_and_common_random_numbers(rng):
    lab = problem_d()
    rule = optimizers.SignSGDM(0.9)
    est = lab.training_loss(rule, np.array([1.0, 10.0, 100.0]), np.array([0.01, 0.02]), 5, rng=rng, replicas=64)
    assert est.value.shape == (2, 3) and est.dof == 31
    one = lab.training_loss(rule, 10.0, 0.01, [5, 2], rng=np.random.default_rng(3), replicas=64)
    two = lab.training_loss(rule, 10.0, 0.01, [5, 2], rng=np.random.default_rng(3), replicas=64)
    assert one.value.shape == (2,) and np.array_equal(one.value, two.value)


def test_bad_input(rng):
    lab = problem_d()
    rule = optimizers.SGDM(0.9)
    with pytest.raises(ValueError, match="steps"):
        lab.training_loss(rule, 10.0, 0.1, 0)
    with pytest.raises(ValueError, match="lr"):
        lab.training_loss(rule, 10.0, 0.0, 5)
    with pytest.raises(ValueError, match="lr"):
        lab.training_loss(rule, 10.0, [0.1, -0.1], 5)
    with pytest.raises(ValueError, match="momentum_start"):
        lab.training_loss(rule, 10.0, 0.1, 5, momentum_start="warm")
    with pytest.raises(ValueError, match="batch_size"):
        lab.optimal_lr_after(rule, 0.5, 5)
    with pytest.raises(ValueError, match="method"):
        lab.training_loss(optimizers.Adam(0.9, 0.95), 10.0, 0.1, 5, method="exact")
    with pytest.raises(ValueError, match="rng"):
        lab.training_loss(optimizers.Adam(0.9, 0.95), 10.0, 0.1, 5)
    with pytest.raises(ValueError, match="replicas"):
        lab.optimal_lr_after(optimizers.Adam(0.9, 0.95), 10.0, 5, rng=rng, replicas=100)
    with pytest.raises(ValueError, match="lr_range"):
        lab.optimal_lr_after(rule, 10.0, 5, lr_range=(1e-3, 2e-3))
    singular = NoisyQuadratic(np.array([1.0, 1.0]), np.diag([1.0, 0.0]), np.eye(2))
    with pytest.raises(ValueError, match="H must be invertible"):
        singular.training_loss(rule, 10.0, 0.1, 5)


def test_equilibrium_statistics_of_sgd_match_closed_form(rng):
    # SGD on a diagonal H: e_i <- (1 - lr h) e_i - lr xi_i, so at equilibrium
    # Var e = lr^2 s/B / (1 - r^2) with r = 1 - lr h, E[u^2] = h^2 Var e + s/B,
    # and Cov(g_t, g_{t-1}) = h^2 r Var e - h lr s/B (the noise that moved w)
    h, s, b = np.array([0.5, 1.0, 2.0]), 4.0, 2.0
    lab = NoisyQuadratic(np.array([0.3, -0.2, 0.1]), np.diag(h), s * np.eye(3))
    lr = np.array([0.05, 0.4])
    st = training.equilibrium_statistics(
        lab, optimizers.SGDM(0.0), b, lr, rng=rng, burn_in=400, steps=4000, replicas=64
    )
    r = 1 - lr[:, None] * h
    var_e = lr[:, None] ** 2 * (s / b) / (1 - r**2)
    u2 = (h**2 * var_e + s / b).mean(axis=1)
    cov1 = (h**2 * r * var_e - h * lr[:, None] * s / b).sum(axis=1)
    g2 = (h**2 * var_e + s / b).sum(axis=1)
    for key, want in (("update_rms", np.sqrt(u2)), ("gradient_lag1", cov1 / g2)):
        z = (st[key].value - want) / st[key].stderr
        assert np.all(np.abs(z) < Z_TOL), (key, z)
    # the restoring force shows: at lr = 0.4 the lag-one correlation is clearly negative
    assert st["gradient_lag1"].value[1] + Z_TOL * st["gradient_lag1"].stderr[1] < 0
    with pytest.raises(ValueError, match="burn_in"):
        training.equilibrium_statistics(lab, optimizers.SGDM(0.0), b, lr, rng=rng, burn_in=-1, steps=10)
    with pytest.raises(ValueError, match="batch_size"):
        training.equilibrium_statistics(lab, optimizers.SGDM(0.0), [1.0, 2.0], lr, rng=rng, burn_in=1, steps=10)

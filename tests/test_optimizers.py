import numpy as np
import pytest

from optstats import optimizers as opt

G = [np.array([1.0, -2.0]), np.array([-2.0, 0.5]), np.array([3.0, 1.0])]


def run(rule, grads):
    state = rule.init(grads[0].shape)
    return [rule.step(state, g).copy() for g in grads]


def test_sgdm_by_hand():
    # beta1 = 0.5: m1 = 0.5 g1; m2 = 0.5 m1 + 0.5 g2; m3 = 0.5 m2 + 0.5 g3
    u = run(opt.SGDM(0.5), G)
    np.testing.assert_allclose(u[0], [0.5, -1.0])
    np.testing.assert_allclose(u[1], [-0.75, -0.25])
    np.testing.assert_allclose(u[2], [1.125, 0.375])


def test_sgdm_beta_zero_is_sgd():
    for u, g in zip(run(opt.SGDM(0.0), G), G):
        np.testing.assert_array_equal(u, g)


def test_signsgdm_by_hand():
    u = run(opt.SignSGDM(0.5), G)
    np.testing.assert_array_equal(u[1], [-1.0, -1.0])
    np.testing.assert_array_equal(u[2], [1.0, 1.0])


def test_softsign_by_hand():
    u = run(opt.SoftSignSGDM(0.5, eps=0.75), G)
    m2 = np.array([-0.75, -0.25])
    np.testing.assert_allclose(u[1], m2 / np.sqrt(m2**2 + 0.5625))


def test_adam_without_bias_correction_by_hand():
    # beta1 = 0.5, beta2 = 0.75: v1 = 0.25 g1^2, v2 = 0.75 v1 + 0.25 g2^2
    u = run(opt.Adam(0.5, 0.75), G)
    np.testing.assert_allclose(u[0], [0.5 / np.sqrt(0.25), -1.0 / np.sqrt(1.0)])
    v2 = np.array([0.75 * 0.25 + 0.25 * 4.0, 0.75 * 1.0 + 0.25 * 0.25])
    np.testing.assert_allclose(u[1], np.array([-0.75, -0.25]) / np.sqrt(v2))


def test_adam_with_bias_correction_and_eps_by_hand():
    u = run(opt.Adam(0.5, 0.75, eps=0.1, bias_correction=True), G)
    # step 1: mhat = g1, vhat = g1^2, u = g1 / (|g1| + eps)
    np.testing.assert_allclose(u[0], G[0] / (np.abs(G[0]) + 0.1))
    v2 = np.array([0.75 * 0.25 + 0.25 * 4.0, 0.75 * 1.0 + 0.25 * 0.25])
    mhat = np.array([-0.75, -0.25]) / (1 - 0.25)
    vhat = v2 / (1 - 0.75**2)
    np.testing.assert_allclose(u[1], mhat / (np.sqrt(vhat) + 0.1))


def test_hyperparameters_broadcast_against_coordinates():
    betas = np.array([[0.0], [0.5], [0.9]])
    grads = [np.tile(g[:1], 4) * np.arange(1, 5) for g in G]  # 4 coordinates
    grid_rule = opt.Adam(betas, 0.75)
    state_grid = grid_rule.init((3, 4))
    for g in grads:
        u_grid = grid_rule.step(state_grid, g).copy()
    for row, b in enumerate(betas[:, 0]):
        np.testing.assert_allclose(u_grid[row], run(opt.Adam(b, 0.75), grads)[-1])


def test_update_is_a_state_buffer_of_float64():
    rule = opt.SGDM(0.9)
    state = rule.init((5,))
    u = rule.step(state, np.ones(5))
    assert u is state.u and u.dtype == np.float64 and state.t == 1


def test_timescale_is_the_longest_memory():
    assert opt.Adam(0.9, 0.99).timescale == pytest.approx(100.0)
    assert opt.SGDM([0.5, 0.75]).timescale == pytest.approx(4.0)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: opt.SGDM(1.0), "beta1"),
        (lambda: opt.SGDM(-0.1), "beta1"),
        (lambda: opt.SignSGDM(np.nan), "beta1"),
        (lambda: opt.Adam(0.9, 1.0), "beta2"),
        (lambda: opt.Adam(0.9, 0.99, eps=-1e-8), "eps"),
        (lambda: opt.Adam(0.9, 0.99, bias_correction="yes"), "bias_correction"),
        (lambda: opt.SoftSignSGDM(0.9, eps=-1.0), "eps"),
    ],
)
def test_bad_hyperparameters(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_init_rejects_shapes_that_do_not_hold_the_grid():
    with pytest.raises(ValueError, match="shape"):
        opt.SGDM(np.array([[0.1], [0.2]])).init((5,))

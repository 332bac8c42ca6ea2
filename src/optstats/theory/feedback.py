"""A restoring force in Adam's normalised gradient: the correlation in time
that the weights' own motion puts into it, from one number per tensor.

Chapter "The theory in real networks" (``book/real-network.ipynb``). The
posts' model has gradients independent in time. In training the gradient
follows the weights, and the simplest law for that is a restoring force:
near its optimum a tensor's loss is locally quadratic, so its gradient is its
displacement times a curvature c, plus the minibatch noise of variance
sigma^2 per coordinate. In Adam's normalised units (h = g / D, with D the
RMS of g, frozen over the momentum's memory as in the posts) and per
coordinate:

    h_t = y_{t-1} + s xi_t,                 xi_t iid N(0, 1)
    m_t = beta1 m_{t-1} + (1 - beta1) h_t,   u_t = m_t (bias correction spent)
    y_t = beta3 y_{t-1} - a u_t,             beta3 = 1 - lr wd

where y = c (theta - theta*) / D is the displacement in gradient units,
a = lr c / D the feedback per step and s = sigma / D the noise share. Adam's
normalisation makes E[h^2] = 1, so E[y^2] + s^2 = 1: given a (and the
betas) the process is fixed, and the update RMS, the lag correlation of h
and the long-run sums of u follow from its stationary covariance (a 2x2
discrete Lyapunov equation, solved exactly here and symbolically in the
chapter). a = 0 is the posts' model.

The number that carries over between runs is not a but the gain
k = a / s = lr c / sigma: curvature times learning rate over the noise. A
run with another learning rate has k' = k lr'/lr; another batch size
k' = k sqrt(B'/B) (the noise of a mean of B draws); another beta1 the same
k. The run's a' then solves a' = k' s(a'). The model neglects what the
chapter measures elsewhere: the mean gradient (an SNR), the denominator's
own fluctuation, couplings between tensors, and a curvature that moves with
the weights (a scale-invariant tensor's curvature goes as 1/|theta|^2).
"""

from __future__ import annotations

import numpy as np

from .. import _validate


def _system(a, beta1, beta3):
    """(A, b): the state z_t = (y_t, m_t) obeys z_t = A z_{t-1} + b xi_t at s = 1."""
    a, beta1, beta3 = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (a, beta1, beta3)))
    A = np.empty(a.shape + (2, 2))
    A[..., 0, 0] = beta3 - a * (1 - beta1)
    A[..., 0, 1] = -a * beta1
    A[..., 1, 0] = 1 - beta1
    A[..., 1, 1] = beta1
    b = np.stack([-a * (1 - beta1), 1 - beta1], axis=-1)
    return A, b


def stability_limits(beta1, beta3):
    """(a_min, a_max): the feedback a for which the process is stationary,
    -(1 - beta3) < a < (1 + beta1)(1 + beta3)/(1 - beta1) (Schur-Cohn on A:
    det A = beta1 beta3, and |trace A| < 1 + det A)."""
    beta1, beta3 = np.asarray(beta1, dtype=float), np.asarray(beta3, dtype=float)
    return -(1 - beta3), (1 + beta1) * (1 + beta3) / (1 - beta1)


def _check(a, beta1, beta3):
    beta1 = _validate.beta("beta1", beta1)
    beta3 = _validate.beta("beta3", beta3)
    a = _validate.finite("a", a)
    lo, hi = stability_limits(beta1, beta3)
    if np.any(a <= lo) or np.any(a >= hi):
        raise ValueError(f"a must lie in ({lo!r}, {hi!r}) (the stationary range for beta1={beta1!r}, "
                         f"beta3={beta3!r}), got {a!r}")
    return a, beta1, beta3


def restoring_covariance(a, beta1, beta3):
    """The stationary covariance of (y, m) per unit noise variance (s = 1):
    (P_yy, P_ym, P_mm), from P = A P A^T + b b^T solved exactly (vec form)."""
    a, beta1, beta3 = _check(a, beta1, beta3)
    A, b = _system(a, beta1, beta3)
    eye = np.eye(4)
    kron = np.einsum("...ij,...kl->...ikjl", A, A).reshape(A.shape[:-2] + (4, 4))
    rhs = np.einsum("...i,...j->...ij", b, b).reshape(b.shape[:-1] + (4,))
    P = np.linalg.solve(eye - kron, rhs[..., None])[..., 0].reshape(A.shape)
    return P[..., 0, 0], P[..., 0, 1], P[..., 1, 1]


def restoring_noise_share(a, beta1, beta3):
    """s, the noise's share of the normalised gradient: s^2 = 1 / (1 + P_yy)
    (E[h^2] = E[y^2] + s^2 = 1)."""
    p_yy, _, _ = restoring_covariance(a, beta1, beta3)
    return 1.0 / np.sqrt(1.0 + p_yy)


def restoring_update_rms(a, beta1, beta3):
    """Adam's update RMS under feedback a: U^2 = s^2 P_mm. At a = 0 it is the
    posts' sqrt((1 - beta1)/(1 + beta1))."""
    p_yy, _, p_mm = restoring_covariance(a, beta1, beta3)
    return np.sqrt(p_mm / (1.0 + p_yy))


def restoring_lag_correlation(a, beta1, beta3, lags):
    """rho(k) = E[h_t h_{t-k}] / E[h^2] for k in ``lags`` (>= 1) under
    feedback a: h_t = y_{t-1} + s xi_t, so C(k) = e_y^T A^(k-1) Cov(z, h),
    with Cov(z_t, h_t) = A P e_y + b (in units of s^2)."""
    a, beta1, beta3 = _check(a, beta1, beta3)
    lags = np.asarray(lags)
    if np.any(lags < 1) or not np.issubdtype(lags.dtype, np.integer):
        raise ValueError(f"lags must be whole numbers >= 1, got {lags!r}")
    A, b = _system(a, beta1, beta3)
    p_yy, p_ym, p_mm = restoring_covariance(a, beta1, beta3)
    P = np.stack([np.stack([p_yy, p_ym], -1), np.stack([p_ym, p_mm], -1)], -2)
    # Cov(z_t, h_t): z_t = A z_{t-1} + b xi_t and h_t = y_{t-1} + xi_t
    cross = np.einsum("...ij,...j->...i", A, P[..., :, 0]) + b
    out = []
    power = 1.0 + p_yy  # E[h^2] in units of s^2
    for k in np.atleast_1d(lags):
        v = cross
        for _ in range(int(k) - 1):
            v = np.einsum("...ij,...j->...i", A, v)
        out.append(v[..., 0] / power)
    return np.stack(out, axis=-1)


def restoring_update_lag_sum(a, beta1, beta3, beta):
    """sum_{k>=1} beta^k rho_u(k), the lag sum of the update u = m at scale
    ``beta``: E[m_t m_{t-k}] = e_m^T A^k P e_m, so the sum is
    e_m^T (beta A)(I - beta A)^{-1} P e_m / P_mm."""
    a, beta1, beta3 = _check(a, beta1, beta3)
    beta = _validate.beta("beta", beta)
    A, _ = _system(a, beta1, beta3)
    p_yy, p_ym, p_mm = restoring_covariance(a, beta1, beta3)
    P = np.stack([np.stack([p_yy, p_ym], -1), np.stack([p_ym, p_mm], -1)], -2)
    bA = beta[..., None, None] * A if np.ndim(beta) else beta * A
    M = np.linalg.solve(np.eye(2) - bA, bA @ P)
    return M[..., 1, 1] / p_mm


def restoring_weight_rms(lr, wd, a, beta1):
    """The weight RMS if the weights are the beta3-EMA of the updates, lr
    times (theta_t = beta3 theta_{t-1} - lr u_t, started long ago) and u the
    model's: W^2 = lr^2 U^2 (1 + 2 A_u(beta3)) / (1 - beta3^2), with A_u the
    update's lag sum at beta3 = 1 - lr wd. Only the fluctuation about the
    optimum: a tensor whose optimum theta* is far from 0 has W^2 + |theta*|^2."""
    lr = _validate.positive("lr", lr)
    wd = _validate.positive("wd", wd)
    beta3 = 1.0 - lr * wd
    U = restoring_update_rms(a, beta1, beta3)
    lag = restoring_update_lag_sum(a, beta1, beta3, beta3)
    return lr * U * np.sqrt((1.0 + 2.0 * lag) / (1.0 - beta3**2))


def _bisect(f, lo, hi, steps=200):
    """The root of f (increasing, f(lo) < 0 < f(hi)) per entry, to float precision."""
    lo, hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        up = f(mid) > 0
        hi = np.where(up, mid, hi)
        lo = np.where(up, lo, mid)
        if np.all(hi - lo <= 1e-15 * np.maximum(1.0, np.abs(hi))):
            break
    return 0.5 * (lo + hi)


def _range(beta1, beta3):
    """The open stationary range of a, shrunk by a relative 1e-9 at both ends."""
    lo, hi = stability_limits(beta1, beta3)
    return lo + 1e-9 * abs(lo) + 1e-15, hi * (1 - 1e-9)


def restoring_fit(update_rms, beta1, beta3):
    """The feedback a that gives the measured ``update_rms``: the inverse of
    :func:`restoring_update_rms`, which decreases over the whole stationary
    range (checked on a grid in the tests), from 1 at a -> a_min to its
    minimum at a -> a_max. A value outside cannot come from this model:
    ``ValueError``."""
    update_rms = _validate.finite("update_rms", update_rms)
    lo, hi = _range(beta1, beta3)
    u_lo, u_hi = restoring_update_rms(lo, beta1, beta3), restoring_update_rms(hi, beta1, beta3)
    if np.any(update_rms >= u_lo) or np.any(update_rms <= u_hi):
        raise ValueError(f"update_rms must lie in ({float(np.min(u_hi))!r}, {float(np.max(u_lo))!r}) "
                         f"(the model's range at beta1={beta1!r}), got {update_rms!r}")
    shape = np.shape(update_rms)
    return _bisect(lambda a: update_rms - restoring_update_rms(a, beta1, beta3),
                   np.full(shape, lo), np.full(shape, hi))


def restoring_gain(a, beta1, beta3):
    """k = a / s = lr c / sigma, the number that carries over to another run."""
    return np.asarray(a) / restoring_noise_share(a, beta1, beta3)


def restoring_feedback(gain, beta1, beta3):
    """The feedback a of a run whose gain is ``gain`` (k): the root of
    a = k s(a); a / s(a) increases over the stationary range (checked in the
    tests), so the root is unique. A gain beyond the range's end: ``ValueError``."""
    gain = _validate.finite("gain", gain)
    lo, hi = _range(beta1, beta3)
    k_lo, k_hi = restoring_gain(lo, beta1, beta3), restoring_gain(hi, beta1, beta3)
    if np.any(gain <= k_lo) or np.any(gain >= k_hi):
        raise ValueError(f"gain must lie in ({float(np.max(k_lo))!r}, {float(np.min(k_hi))!r}) "
                         f"(a stationary run at beta1={beta1!r}), got {gain!r}")
    shape = np.shape(gain)
    return _bisect(lambda a: a / restoring_noise_share(a, beta1, beta3) - gain,
                   np.full(shape, lo), np.full(shape, hi))

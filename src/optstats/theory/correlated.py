"""AdamW at equilibrium when the gradient is correlated in time.

Chapter "The theory in a real network" (``book/real-network.ipynb``). The
posts' model has gradients independent in time; in training they are not
(the weights move, and the gradient follows them). The model here keeps one
approximation of the posts, the denominator frozen over the momentum's
memory, and drops the independence:

- Adam's update is the beta1-EMA of the normalised gradient
  h_t = g_t / (sqrt(vhat_t) + eps) (the bias correction spent);
- h is stationary with autocovariance C(k) (per coordinate, averaged over a
  tensor), summarised by its power C(0) and the weighted lag sums
  A(beta) = sum_{k>=1} beta^k C(k) / C(0), so that the long-run sum at scale
  beta is G(beta) = C(0) (1 + 2 A(beta)).

Then (eq. rn-urms, rn-wrms of the chapter, derived there with sympy)

    U^2 = (1 - beta1) / (1 + beta1) G(beta1),
    W^2 = lr^2 / (1 - beta3^2) (1 - beta1) / (1 + beta1) [a G(beta1) + b G(beta3)],

with beta3 = 1 - lr wd, a = beta1 beta3 / (1 - beta1 beta3) + beta1 / (beta1 - beta3)
and b = beta1 beta3 / (1 - beta1 beta3) - beta3 / (beta1 - beta3): the weights
are the beta3-EMA of the updates, the updates the beta1-EMA of h, and the
two-sided kernel sum_k beta3^|k| beta1^|m - k| is exactly a beta1^|m| + b beta3^|m|.
Independent h (A = 0) gives back the posts' mean field.
"""

from __future__ import annotations

import numpy as np

from .. import _validate


def _long_run(name, lag_sum):
    lag_sum = _validate.finite(name, lag_sum)
    if np.any(lag_sum < -0.5):
        raise ValueError(f"{name} must be >= -1/2 (1 + 2 {name} is a long-run variance over C(0)), got {lag_sum!r}")
    return 1.0 + 2.0 * lag_sum


def adam_update_rms_correlated(beta1, power, lag_sum_beta1):
    """Adam's stationary update RMS, eq. (rn-urms): sqrt((1-beta1)/(1+beta1) C(0) (1 + 2 A(beta1))).

    ``power`` is C(0) = E[h^2] per coordinate (1 in the posts' mean field),
    ``lag_sum_beta1`` is A(beta1) = sum_{k>=1} beta1^k C(k) / C(0).
    """
    beta1 = _validate.beta("beta1", beta1)
    power = _validate.positive("power", power)
    return np.sqrt((1.0 - beta1) / (1.0 + beta1) * power * _long_run("lag_sum_beta1", lag_sum_beta1))


def adamw_weight_rms_correlated(lr, wd, beta1, power, lag_sum_beta1, lag_sum_beta3):
    """AdamW's stationary weight RMS, eq. (rn-wrms), for correlated normalised gradients.

    ``lag_sum_beta3`` is A(beta3) with beta3 = 1 - lr wd; beta1 must differ
    from beta3 (the formula's limit there needs dG/dbeta, which two lag sums
    do not give).
    """
    lr = _validate.positive("lr", lr)
    wd = _validate.positive("wd", wd)
    if np.any(lr * wd >= 1):
        raise ValueError(f"lr * wd must be < 1 (the decay per step), got lr={lr!r}, wd={wd!r}")
    beta1 = _validate.beta("beta1", beta1)
    power = _validate.positive("power", power)
    beta3 = 1.0 - lr * wd
    if np.any(beta1 == beta3):
        raise ValueError(f"beta1 must differ from beta3 = 1 - lr wd, got beta1={beta1!r}, beta3={beta3!r}")
    g1 = power * _long_run("lag_sum_beta1", lag_sum_beta1)
    g3 = power * _long_run("lag_sum_beta3", lag_sum_beta3)
    cross = beta1 * beta3 / (1.0 - beta1 * beta3)
    a = cross + beta1 / (beta1 - beta3)
    b = cross - beta3 / (beta1 - beta3)
    return np.sqrt(lr**2 / (1.0 - beta3**2) * (1.0 - beta1) / (1.0 + beta1) * (a * g1 + b * g3))


def cos_theta_u(lr, wd, update_rms, weight_rms):
    """cos(theta_{t-1}, u_t) that keeps the weight norm stationary (eq. rn-balance).

    It holds for any update rule under decoupled decay (AdamW, SGDM, Lion,
    Muon): only the stationarity of E|theta|^2 enters.

    From theta_t = beta3 theta_{t-1} - lr u_t and E|theta_t|^2 = E|theta_{t-1}|^2:
    (1 - beta3^2) W^2 = lr^2 U^2 - 2 beta3 lr E[theta_{t-1} . u_t] / n, so
    cos = (lr^2 U^2 - (1 - beta3^2) W^2) / (2 beta3 lr U W), with the cosine
    of the means standing for the mean cosine (the norms of a large tensor
    fluctuate little).
    """
    lr = _validate.positive("lr", lr)
    wd = _validate.positive("wd", wd)
    u = _validate.positive("update_rms", update_rms)
    w = _validate.positive("weight_rms", weight_rms)
    beta3 = 1.0 - lr * wd
    return (lr**2 * u**2 - (1.0 - beta3**2) * w**2) / (2.0 * beta3 * lr * u * w)


def adamw_cos_theta_u_mean_field(lr, wd, beta1):
    """The posts' model (h independent in time): cos(theta_{t-1}, u_t) = -beta1 sqrt((1-beta3^2)/(1-beta1^2 beta3^2)).

    Eq. (rn-balance) with eq. (rn-urms, rn-wrms) at A = 0; the chapter
    derives the simplification with sympy.
    """
    lr = _validate.positive("lr", lr)
    wd = _validate.positive("wd", wd)
    beta1 = _validate.beta("beta1", beta1)
    beta3 = 1.0 - lr * wd
    return -beta1 * np.sqrt((1.0 - beta3**2) / (1.0 - beta1**2 * beta3**2))


def angular_update(lr, wd, update_rms, weight_rms, cos_theta_u):
    """The angle between theta_{t-1} and theta_t = beta3 theta_{t-1} - lr u_t, in radians.

    With |theta_{t-1}| = W, |u_t| = U (per coordinate) and their cosine c:
    atan2(lr U sqrt(1 - c^2), beta3 W - lr U c). At beta3 -> 1, c -> 0 and
    the posts' U and W this is the familiar sqrt(2 lr wd (1-beta1)/(1+beta1)).
    """
    lr = _validate.positive("lr", lr)
    wd = _validate.positive("wd", wd)
    u = _validate.positive("update_rms", update_rms)
    w = _validate.positive("weight_rms", weight_rms)
    c = _validate.finite("cos_theta_u", cos_theta_u)
    if np.any(np.abs(c) > 1):
        raise ValueError(f"cos_theta_u must lie in [-1, 1], got {c!r}")
    beta3 = 1.0 - lr * wd
    return np.arctan2(lr * u * np.sqrt(1.0 - c**2), beta3 * w - lr * u * c)

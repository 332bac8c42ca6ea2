"""Weight RMS under learning-rate and weight-decay schedules (post 11404).

Chapter "Weight RMS under schedules" (``book/schedules.ipynb``). AdamW moves
theta_t = (1 - lr_t wd_t) theta_{t-1} - lr_t u_t; with updates that do not
depend on theta, zero mean and a long-run variance V per coordinate (1 in the
mean field, a little less for Adam with finite beta2), the second moment
rho_t = ||theta_t||^2_RMS obeys the recursions below. Step t of the arrays is
entry t - 1.
"""

from __future__ import annotations

import numpy as np

from .. import _validate
from .ema import _one_minus_pow

WEIGHT_RMS_SCHEDULE_METHODS = ("sum", "ode", "closed-form", "quasi-static", "kernel")
#: largest decay exp(-x) handled in one vectorised piece of a linear recursion:
#: exp(300 + 74) stays far below the float64 limit (one step decays by at most
#: (1 - lr wd)^2 >= (1.1e-16)^2, i.e. x <= 74).
_PIECE_DECAY = 300.0


def _linear_recursion(log_a, b, x0):
    """x_t = a_t x_{t-1} + b_t for t = 1..T, vectorised: x_t = A_t (x0 + sum_j b_j / A_j)
    with A_t = prod_{i<=t} a_i, taken in pieces over which A falls by at most e^-300."""
    level = -np.cumsum(log_a)  # -log A_t, nondecreasing
    out = np.empty_like(b)
    x_prev, base, start = x0, 0.0, 0
    n = b.size
    while start < n:
        stop = int(np.searchsorted(level, base + _PIECE_DECAY, side="right"))
        stop = max(stop, start + 1)
        rel = level[start:stop] - base  # -log(A_t / A_{start-1}) in [0, 300 + 74]
        out[start:stop] = np.exp(-rel) * (x_prev + np.cumsum(np.exp(rel) * b[start:stop]))
        x_prev, base, start = out[stop - 1], level[stop - 1], stop
    return out


def _one_minus_exp_over(x):
    """(1 - e^-x) / x for x >= 0, without cancellation, and 1 at x = 0."""
    positive = x > 0
    return np.where(positive, -np.expm1(-x) / np.where(positive, x, 1.0), 1.0)


def _kernel_update_part(lr, decay, beta1, bias_correction):
    """R_t = sum_{j<=t} k_j(t)^2 for the momentum kernel
    k_j(t) = (1 - beta1) sum_{i=j}^t (P_t / P_i) b_i beta1^(i-j), b_i = lr_i (or
    lr_i / (1 - beta1^i) with bias correction), in O(T) by two linear recursions:

        C_t = beta1 d_t C_{t-1} + c b_t E_t,   E_t = sum_{n<t} beta1^(2n),
        R_t = d_t^2 R_{t-1} + 2 beta1 d_t c b_t C_{t-1} + c^2 b_t^2 E_t,

    with d_t = 1 - lr_t wd_t, c = 1 - beta1 and C_t = sum_{j<=t} k_j(t) beta1^(t-j)."""
    steps = np.arange(1, lr.size + 1)
    c = 1.0 - beta1
    b = lr / _one_minus_pow(beta1, steps) if bias_correction else lr
    e = _one_minus_pow(beta1**2, steps) / (1.0 - beta1**2)
    d = 1.0 - decay
    if beta1 > 0:
        C = _linear_recursion(np.log(beta1) + np.log1p(-decay), c * b * e, 0.0)
        C_prev = np.concatenate(([0.0], C[:-1]))
    else:
        C_prev = np.zeros(lr.size)
    return _linear_recursion(2.0 * np.log1p(-decay), 2.0 * beta1 * d * c * b * C_prev + c**2 * b**2 * e, 0.0)


def weight_rms_schedule(lr, wd=None, *, theta0_rms, method="sum", long_run_variance=1.0, beta1=None,
                        bias_correction=True, decay=None):
    """RMS of the weights at every step of a schedule, from theta_0 with RMS ``theta0_rms``.

    ``lr`` is a 1-d array of per-step learning rates, ``wd`` a scalar or an
    array of the same length; lr * wd < 1 at every step. Instead of ``wd``,
    ``decay`` gives the decay per step lr_t wd_t itself (a scalar or one per
    step, each in [0, 1)): a decay that does not vanish with lr_t (independent
    weight decay, theta <- theta - lr_t u - wd theta) has no finite wd at a
    step with lr_t = 0. Give one of the two. ``long_run_variance``
    is V (1 in the mean field). Methods:

    - ``"sum"``: the discrete sum, rho_t = (1 - lr_t wd_t)^2 rho_{t-1} + V lr_t^2,
      i.e. rho_t = P_t^2 rho_0 + V sum_j (P_t / P_j)^2 lr_j^2 with P_t the
      product of the decay factors (the post writes exp(-kappa) for P; the
      difference is O(sum (lr wd)^2));
    - ``"ode"``: the exact solution of d rho/ds = -2 lr wd rho + V lr^2 with lr
      and wd constant within each step (step t is the interval (t-1, t]);
    - ``"closed-form"``: the post's mean-field closed form
      rho_t = e^{-2 kappa_t} rho_0 + (1 - e^{-2 kappa_t}) V nu_t / (2 kappa_t),
      kappa_t = sum_{i<=t} lr_i wd_i, nu_t = sum_{i<=t} lr_i^2 (nu_t when
      kappa_t = 0). It solves the ODE exactly when wd_t is proportional to lr_t
      (constant schedules included) and approximates it otherwise;
    - ``"quasi-static"``: sqrt(V lr_t / (2 wd_t)), the stationary value at the
      current rates (needs wd > 0; theta0_rms is not used);
    - ``"kernel"``: the post's mean-field kernel kept whole (eq. w-rms-mu0):
      u_i ~ m_i / sigma (``bias_correction=False``) or m_i / ((1 - beta1^i) sigma)
      (``True``, the default, as in AdamW), so gradient j enters theta_t with the
      weight k_j(t) = (1 - beta1) sum_{i=j}^t (P_t / P_i) beta1^(i-j) lr_i [/ (1 - beta1^i)],
      and rho_t = P_t^2 rho_0 + V sum_j k_j(t)^2. It keeps the momentum still
      "in flight" at step t and the start-up of the EMA, which the sum drops.
      Needs ``beta1``.
    """
    if method not in WEIGHT_RMS_SCHEDULE_METHODS:
        raise ValueError(f"method must be one of {WEIGHT_RMS_SCHEDULE_METHODS}, got {method!r}")
    lr = _validate.nonnegative("lr", lr)
    if lr.ndim != 1 or lr.size == 0:
        raise ValueError(f"lr must be a 1-d array with one learning rate per step, got shape {lr.shape}")
    if (wd is None) == (decay is None):
        raise ValueError(f"give one of wd and decay, got wd={wd!r} and decay={decay!r}")
    name = "wd" if decay is None else "decay"
    per_step = _validate.nonnegative(name, wd if decay is None else decay)
    if per_step.ndim == 0:
        per_step = np.full(lr.shape, float(per_step))
    elif per_step.shape != lr.shape:
        raise ValueError(f"{name} must be a scalar or have the shape of lr {lr.shape}, got shape {per_step.shape}")
    decay = lr * per_step if name == "wd" else per_step
    if np.any(decay >= 1):
        bad = int(np.argmax(decay >= 1))
        what = "lr * wd" if name == "wd" else "decay"
        raise ValueError(f"{what} must be < 1 at every step, got {decay[bad]!r} at step {bad + 1}")
    rho0 = _validate.scalar(_validate.nonnegative, "theta0_rms", theta0_rms) ** 2
    var = _validate.scalar(_validate.nonnegative, "long_run_variance", long_run_variance)
    if method == "kernel":
        if beta1 is None:
            raise ValueError("beta1 must be given for method='kernel' (a number in [0, 1))")
        beta1 = _validate.scalar(_validate.beta, "beta1", beta1)
        if not isinstance(bias_correction, (bool, np.bool_)):
            raise ValueError(f"bias_correction must be True or False, got {bias_correction!r}")
        update = _kernel_update_part(lr, decay, beta1, bool(bias_correction))
        decay_sq = np.exp(2.0 * np.cumsum(np.log1p(-decay)))
        return np.sqrt(decay_sq * rho0 + var * update)

    if method == "quasi-static":
        if np.any(per_step == 0):
            raise ValueError(f"{name} must be > 0 at every step for the quasi-static rule sqrt(lr / (2 wd))")
        # sqrt(V lr / (2 wd)) = sqrt(V lr^2 / (2 lr wd)) in terms of the decay
        return np.sqrt(var * lr / (2.0 * per_step)) if name == "wd" else np.sqrt(var * lr**2 / (2.0 * decay))
    if method == "sum":
        rho = _linear_recursion(2.0 * np.log1p(-decay), var * lr**2, rho0)
    elif method == "ode":
        # (1 - e^-x) / x: the share of a step's lr^2 that survives the same step's decay
        rho = _linear_recursion(-2.0 * decay, var * lr**2 * _one_minus_exp_over(2.0 * decay), rho0)
    else:
        two_kappa = 2.0 * np.cumsum(decay)
        rho = np.exp(-two_kappa) * rho0 + var * np.cumsum(lr**2) * _one_minus_exp_over(two_kappa)
    return np.sqrt(rho)

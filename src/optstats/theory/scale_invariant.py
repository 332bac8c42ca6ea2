"""SGDM with weight decay on a scale-invariant layer, at equilibrium.

Chapter "Muon, Lion and SGDM at equilibrium" (issue 17); the model and the two
forms of the optimizer are those of ``optstats.scale_invariant``. Mean field
in the dimension d: the norm |theta| = r fluctuates little, so E|g|^2 =
sigma^2 (d - 1) / r^2 at the current r.

For the book's form (EMA momentum, decoupled decay, beta3 = 1 - lr wd), the
gradient is orthogonal to the weights it was taken at, so the cross term
c = E<theta_{t-1}, m_t> obeys c = beta1 (beta3 c - lr E|m|^2), and the
stationary squared norm r^2 (1 - beta3^2) = lr^2 E|m|^2 - 2 beta3 lr c gives

    r^4 = lr^2 sigma^2 (d - 1) (1 - beta1)(1 + beta1 beta3)
          / ((1 + beta1)(1 - beta1 beta3)(1 - beta3^2)),

whose small-lr wd limit is Kosson et al.'s sqrt[4](lr sigma^2 (d-1) / (2 wd))
up to their momentum convention. The angle follows from the same balance as
for every rule with decoupled decay (``angular_update``).
"""

from __future__ import annotations

import numpy as np

from .. import _validate
from .correlated import angular_update, cos_theta_u
from .weight_rms import _lr_wd


def sgdm_scale_invariant_weight_rms(lr, wd, beta1, dim, noise_std=1.0):
    """Stationary RMS r/sqrt(d) of the book's SGDM (EMA momentum, decoupled decay) on a scale-invariant layer."""
    lr, wd = _lr_wd(lr, wd)
    beta1 = _validate.beta("beta1", beta1)
    dim = _validate.count("dim", dim, minimum=2)
    s2 = _validate.positive("noise_std", noise_std) ** 2
    beta3 = 1.0 - lr * wd
    r4 = (lr**2 * s2 * (dim - 1) * (1.0 - beta1) * (1.0 + beta1 * beta3)
          / ((1.0 + beta1) * (1.0 - beta1 * beta3) * (1.0 - beta3**2)))
    return r4**0.25 / np.sqrt(dim)


def sgdm_scale_invariant_angle(lr, wd, beta1, dim, noise_std=1.0):
    """Stationary angle between theta_{t-1} and theta_t for that SGDM (radians):
    the balance cos(theta, u) and ``angular_update`` with U = RMS of m."""
    w = sgdm_scale_invariant_weight_rms(lr, wd, beta1, dim, noise_std)
    lr, wd = _lr_wd(lr, wd)
    beta1 = _validate.beta("beta1", beta1)
    # E|m|^2 per coordinate: (1-beta1)/(1+beta1) E|g|^2 / d, E|g|^2 = s^2 (d-1)/r^2
    u = np.sqrt((1.0 - beta1) / (1.0 + beta1) * noise_std**2 * (dim - 1) / (dim * w**2 * dim))
    return angular_update(lr, wd, u, w, cos_theta_u(lr, wd, u, w))


def kosson_sgdm_angle(lr, wd, momentum):
    """Kosson et al.'s expected angular update of SGDM in their (torch) form,
    heavy-ball momentum with the decay inside: sqrt(2 lr wd / (1 + momentum)),
    as their code sets it (epfml/REQ, ``RotationalSGD``)."""
    lr, wd = _lr_wd(lr, wd)
    momentum = _validate.beta("momentum", momentum)
    return np.sqrt(2.0 * lr * wd / (1.0 + momentum))


def sgdm_scale_invariant_mean_square(lr, wd, beta1, dim, *, steps, theta0_rms, noise_std=1.0):
    """E|theta_t|^2 / d of the book's SGDM on a scale-invariant layer at the
    step numbers ``steps`` (increasing, >= 1), from |theta_0|^2 = d theta0_rms^2
    and m_0 = 0: the mean-field map (mean field in d, as above) of
    x = |theta|^2, c = <theta_{t-1}, m_t>, q = |m|^2,

        c_t = beta1 (beta3 c_{t-1} - lr q_{t-1}),
        q_t = beta1^2 q_{t-1} + (1 - beta1)^2 sigma^2 (d - 1) / x_{t-1},
        x_t = beta3^2 x_{t-1} - 2 beta3 lr c_t + lr^2 q_t.

    It keeps what ``relaxation_time(scale_invariant=True)`` drops: the
    momentum's delay, which shortens the approach to equilibrium by the order of
    beta1/(1 - beta1) lr wd of the time. A loop over steps on scalars."""
    lr, wd = _lr_wd(lr, wd)
    beta1 = float(_validate.beta("beta1", beta1))
    dim = _validate.count("dim", dim, minimum=2)
    s2 = float(_validate.positive("noise_std", noise_std)) ** 2
    theta0_rms = float(_validate.positive("theta0_rms", theta0_rms))
    steps_arr = _validate.step_numbers("steps", steps)
    lr, wd = float(lr), float(wd)
    beta3 = 1.0 - lr * wd
    x, c, q = dim * theta0_rms**2, 0.0, 0.0
    out = np.empty(int(steps_arr[-1]))
    for t in range(out.size):
        c = beta1 * (beta3 * c - lr * q)
        q = beta1**2 * q + (1.0 - beta1) ** 2 * s2 * (dim - 1) / x
        x = beta3**2 * x - 2.0 * beta3 * lr * c + lr**2 * q
        out[t] = x / dim
    return out[steps_arr - 1]

"""Lion's stationary weight RMS under decoupled weight decay.

Chapter "Muon, Lion and SGDM at equilibrium" (issue 17). Lion's update is
u_t = sign(c_t) with the pre-sign mix c_t = beta1 m_{t-1} + (1 - beta1) g_t
and m the beta2 EMA of the gradients; the weights follow
theta_t = beta3 theta_{t-1} - lr u_t with beta3 = 1 - lr wd. Gradients are
iid N(0, sigma^2) per coordinate (pure noise).
"""

from __future__ import annotations

import numpy as np

from .. import _validate
from .weight_rms import _lr_wd

LION_METHODS = ("arcsine", "kosson")
#: lags summed in the arcsine series: the terms fall like (beta2 beta3)^d,
#: and the tail after d lags is below (beta2 beta3)^d / (1 - beta2 beta3)
#: <= 1e-17 once d >= 40 / (1 - beta2 beta3)
_DECADES = 40.0


def lion_presign_correlation(beta1, beta2, lag):
    """corr(c_t, c_{t+lag}) of Lion's pre-sign mix for iid zero-mean Gaussian gradients.

    With V = (1 - beta2)/(1 + beta2) the stationary variance of m (sigma = 1):
    Var c = beta1^2 V + (1 - beta1)^2, and for lag >= 1
    Cov(c_t, c_{t+lag}) = beta1 beta2^(lag-1) (beta1 beta2 V + (1 - beta1)(1 - beta2))
    (g_{t+lag} is independent of c_t, and m carries c_t's gradients forward
    with weight beta2 per step). lag = 0 gives 1.
    """
    beta1 = _validate.beta("beta1", beta1)
    beta2 = _validate.beta("beta2", beta2)
    lag = np.asarray(lag)
    if np.any(lag < 0) or not np.all(np.equal(np.mod(lag, 1), 0)):
        raise ValueError(f"lag must hold whole numbers >= 0, got {lag!r}")
    var_m = (1.0 - beta2) / (1.0 + beta2)
    var_c = beta1**2 * var_m + (1.0 - beta1) ** 2
    cov = beta1 * beta2 ** np.maximum(lag - 1, 0) * (beta1 * beta2 * var_m + (1.0 - beta1) * (1.0 - beta2))
    return np.where(lag == 0, 1.0, cov / var_c)


def lion_weight_rms(lr, wd, beta1, beta2, *, method="arcsine"):
    """Stationary RMS of Lion's weights under theta <- theta - lr (u + wd theta), pure Gaussian noise.

    ``"arcsine"`` (exact for this model): c_t is Gaussian, so the sign's
    autocorrelation is R(d) = (2/pi) arcsin(corr(c_t, c_{t+d})) (the arcsine
    law), and E[theta^2] = lr^2/(1 - beta3^2) (1 + 2 sum_{d>=1} beta3^d R(d)).

    ``"kosson"``: the norm implied by Kosson et al.'s expected angular update
    for Lion, as their released code (epfml/REQ, ``RotationalLion``) sets it:
    angle = sqrt(pi/2) sqrt(2 lr wd) sqrt((1-beta1)^2 + beta1^2 (1-beta2)/(1+beta2)),
    and RMS = lr * RMS(u) / angle with RMS(u) = 1 (a sign update); it assumes
    the update orthogonal to the weights on average (rotational equilibrium).
    """
    if method not in LION_METHODS:
        raise ValueError(f"method must be one of {LION_METHODS}, got {method!r}")
    lr, wd = _lr_wd(lr, wd)
    beta1 = _validate.beta("beta1", beta1)
    beta2 = _validate.beta("beta2", beta2)
    if method == "kosson":
        k = (1.0 - beta1) ** 2 + beta1**2 * (1.0 - beta2) / (1.0 + beta2)
        angle = np.sqrt(np.pi / 2.0) * np.sqrt(2.0 * lr * wd) * np.sqrt(k)
        return lr / angle
    lr, wd, beta1, beta2 = np.broadcast_arrays(lr, wd, beta1, beta2)
    beta3 = 1.0 - lr * wd
    n = int(np.ceil(_DECADES / (1.0 - np.max(beta2 * beta3)))) + 1
    d = np.arange(1, n + 1).reshape((n,) + (1,) * lr.ndim)
    rho = lion_presign_correlation(beta1, beta2, d)
    series = 1.0 + 2.0 * np.sum(beta3**d * (2.0 / np.pi) * np.arcsin(rho), axis=0)
    out = np.sqrt(lr**2 / (1.0 - beta3**2) * series)
    return out[()] if out.ndim == 0 else out

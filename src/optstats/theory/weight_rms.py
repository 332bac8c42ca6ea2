"""Weight RMS under decoupled weight decay: AdamW and SignSGDM-W (post 11307).

Chapter "The weight RMS of AdamW" (``book/weight-rms.ipynb``). The weights
follow theta_t = beta3 theta_{t-1} - lr u_t with beta3 = 1 - lr wd, an EMA of
-u/wd. Gradients are N(mu, sigma^2) per coordinate, snr = mu^2/sigma^2.
"""

from __future__ import annotations

import numpy as np

from .. import _validate
from .ema import _one_minus_pow, _steps, double_ema_mean, double_ema_variance

SIGNSGDMW_METHODS = ("mean-field", "arcsine")
#: lags summed in the arcsine series: the terms fall like (beta1 beta3)^d, and
#: the tail after d lags is below (beta1 beta3)^d / (1 - beta1 beta3) <= 1e-17
#: once d >= 40 / (1 - beta1 beta3) (the count is chosen per point).
_ARCSINE_DECADES = 40.0


def _lr_wd(lr, wd):
    lr = _validate.positive("lr", lr)
    wd = _validate.positive("wd", wd)
    if np.any(lr * wd >= 1):
        raise ValueError(f"lr * wd must be < 1 (the decay per step), got lr={lr!r}, wd={wd!r}")
    return lr, wd


def weight_rms_quick_estimate(lr, wd, beta1):
    """The post's quick estimate sqrt((1-beta1)/(1+beta1) * lr / (2 wd)).

    It squares the weight recursion and drops the cross term theta_{t-1} . u_t;
    the chapter measures what that costs (momentum makes the cross term large).
    """
    lr, wd = _lr_wd(lr, wd)
    beta1 = _validate.beta("beta1", beta1)
    return np.sqrt((1 - beta1) / (1 + beta1) * lr / (2 * wd))


def adamw_weight_rms(lr, wd, *, beta1=0.9, t=None, theta0_rms=0.0, snr=0.0):
    """The post's eq. theta-rms: RMS of AdamW's weights at step t (t=None: t -> infinity).

    ||theta_t||^2 = beta3^(2t) theta0^2 + (1 - beta3^t)^2 E[mbar_t^2] / (wd^2 (snr + 1)),
    in units sigma = 1, with E[mbar_t^2] = E[mbar_t]^2 + Var[mbar_t] from the
    double-EMA sums of the EMA chapter, and the post's E[vbar_t] = mu^2 + sigma^2.
    The sums are taken exactly (they depend on beta1); the post's printed form
    replaces them by mu^2 + (1-beta3)(1+beta3^t)/(2(1-beta3^t)), equal to first
    order in lr*wd (the EMA chapter measures the difference). Stationary, mu = 0:
    sqrt(lr/(2 wd)) up to that first-order factor.
    """
    lr, wd = _lr_wd(lr, wd)
    beta1 = _validate.beta("beta1", beta1)
    theta0_rms = _validate.nonnegative("theta0_rms", theta0_rms)
    snr = _validate.nonnegative("snr", snr)
    t = _steps("t", t)
    beta3 = 1.0 - lr * wd
    mu = np.sqrt(snr)
    mean = double_ema_mean(beta3, beta1, t, mean=1.0) * mu
    m2 = mean**2 + double_ema_variance(beta3, beta1, t)
    ubar2 = m2 / (snr + 1.0)
    if t is None:  # the initial weights are forgotten
        shape = np.broadcast_shapes(ubar2.shape, np.shape(wd), theta0_rms.shape)
        return np.broadcast_to(np.sqrt(ubar2) / wd, shape) * 1.0
    decay = beta3**t
    return np.sqrt(decay**2 * theta0_rms**2 + _one_minus_pow(beta3, t) ** 2 * ubar2 / wd**2)


def signsgdmw_weight_rms(lr, wd, beta1, *, method="mean-field"):
    """Stationary weight RMS of SignSGDM with decoupled weight decay, zero-mean gradients.

    ``"mean-field"``: the post's result with its typo corrected (it prints the
    squared RMS equal to a square root): sqrt(lr/(2 wd) (1+beta1)/(1-beta1)).
    ``"arcsine"``: exact for this model. u = sign(m) does not depend on theta, so
    E[theta^2] = lr^2/(1-beta3^2) sum_d beta3^|d| R(d), and for a stationary
    Gaussian EMA corr(m_t, m_{t+d}) = beta1^|d|, so by the arcsine law
    R(d) = (2/pi) arcsin(beta1^|d|).
    """
    if method not in SIGNSGDMW_METHODS:
        raise ValueError(f"method must be one of {SIGNSGDMW_METHODS}, got {method!r}")
    lr, wd = _lr_wd(lr, wd)
    beta1 = _validate.beta("beta1", beta1)
    if method == "mean-field":
        return np.sqrt(lr / (2 * wd) * (1 + beta1) / (1 - beta1))
    lr, wd, beta1 = np.broadcast_arrays(lr, wd, beta1)
    beta3 = 1.0 - lr * wd
    out = np.empty(lr.shape)
    for idx in np.ndindex(lr.shape):
        b1, b3 = beta1[idx], beta3[idx]
        n = int(np.ceil(_ARCSINE_DECADES / (1.0 - b1 * b3))) + 1
        d = np.arange(1, n + 1)
        series = 1.0 + 2.0 * np.sum(b3**d * (2 / np.pi) * np.arcsin(b1**d))
        out[idx] = np.sqrt(lr[idx] ** 2 / (1.0 - b3**2) * series)
    return out[()] if out.ndim == 0 else out

"""Weight RMS under decoupled weight decay: AdamW and SignSGDM-W (post 11307).

Chapter "The weight RMS of AdamW" (``book/weight-rms.ipynb``). The weights
follow theta_t = beta3 theta_{t-1} - lr u_t with beta3 = 1 - lr wd, an EMA of
-u/wd. Gradients are N(mu, sigma^2) per coordinate, snr = mu^2/sigma^2.
"""

from __future__ import annotations

import numpy as np

from .. import _validate
from .ema import _one_minus_pow, _steps, double_ema_variance

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


ADAMW_METHODS = ("mean-field", "exact-sums")


def adamw_weight_rms(lr, wd, *, beta1=0.9, t=None, theta0_rms=0.0, snr=0.0, method="mean-field"):
    """RMS of AdamW's weights at step t (t=None: the stationary limit t -> infinity).

    Units sigma = 1, snr = mu^2/sigma^2, beta3 = 1 - lr wd. Two methods:

    ``"mean-field"`` (default): the post's eq. theta-rms as printed,
    ||theta_t||^2 = beta3^(2t) theta0^2
                    + (1-beta3^t)^2 (snr + (1-beta3)(1+beta3^t)/(2(1-beta3^t))) / (wd^2 (snr+1)),
    defined at every t >= 1. It is the mean field of bias-corrected updates
    (at t = 1 it gives lr sqrt((1+beta3)/2), the exact lr up to O(lr wd)); it
    ignores the start-up of Adam's EMAs, so between t = 1 and a few memories
    1/(1-beta2) of v it is off by up to ~20% (the chapter measures it).

    ``"exact-sums"``: the stationary limit only (t must be None), with the
    double-EMA sums of the EMA chapter taken exactly in beta3 and beta1 and
    E[vbar] = mu^2 + sigma^2: ||theta||^2 = (mu^2 + Var[mbar]) / (wd^2 (snr+1)).
    At snr = 0 this is Wen et al.'s exact-in-alpha norm with U^2 =
    (1-beta1)/(1+beta1). Not offered at finite t: there it would mix the
    variance of an uncorrected momentum at step t with a stationary v, which
    is 10x low at t = 1 (a review found this; the finite-t mean field is the
    method above, and the bias-corrected kernel is
    ``theory.weight_rms_schedule(..., method="kernel")``).
    """
    if method not in ADAMW_METHODS:
        raise ValueError(f"method must be one of {ADAMW_METHODS}, got {method!r}")
    lr, wd = _lr_wd(lr, wd)
    beta1 = _validate.beta("beta1", beta1)
    theta0_rms = _validate.nonnegative("theta0_rms", theta0_rms)
    snr = _validate.nonnegative("snr", snr)
    t = _steps("t", t)
    beta3 = 1.0 - lr * wd
    if method == "exact-sums":
        if t is not None:
            raise ValueError(f"t must be None (the stationary limit) with method='exact-sums', got t={t!r}")
        ubar2 = (snr + double_ema_variance(beta3, beta1)) / (snr + 1.0)
        shape = np.broadcast_shapes(ubar2.shape, np.shape(wd), theta0_rms.shape)
        return np.broadcast_to(np.sqrt(ubar2) / wd, shape) * 1.0
    if t is None:  # the initial weights are forgotten and beta3^t -> 0
        ubar2 = (snr + (1.0 - beta3) / 2.0) / (snr + 1.0)
        shape = np.broadcast_shapes(ubar2.shape, beta1.shape, theta0_rms.shape)
        return np.broadcast_to(np.sqrt(ubar2) / wd, shape) * 1.0
    decay = beta3**t
    rest = _one_minus_pow(beta3, t)
    ubar2 = (snr + (1.0 - beta3) * (1.0 + decay) / (2.0 * rest)) / (snr + 1.0)
    return np.sqrt(decay**2 * theta0_rms**2 + rest**2 * ubar2 / wd**2)


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


def relaxation_time(lr, wd, *, scale_invariant=False):
    """The e-folding time, in steps, of the weights' approach to equilibrium
    (of the deviation of their mean square from its stationary value); beta3 = 1 - lr wd.

    Updates that do not depend on the weights (AdamW, SGDM, Lion, Muon under
    the posts' noise): E[theta_t^2] - W^2 = (E[theta_0^2] - W^2) beta3^(2t)
    up to the momentum's start-up, so the time is -1/(2 ln beta3), about
    1/(2 lr wd).

    ``scale_invariant``: SGDM on a scale-invariant layer, whose update scales
    as 1/|theta|: with x = |theta|^2, x_{t+1} = beta3^2 x_t + K/x_t, so in the
    continuous limit x^2 - x_inf^2 decays like exp(-2 (1 - beta3^2) t) and the
    time is 1/(2 (1 - beta3^2)), about 1/(4 lr wd): twice as fast, since a
    too-small norm gets larger updates. Momentum delays the restoring force
    and shortens this time by the order of beta1/(1 - beta1) lr wd of it (1.2% at
    beta1 = 0.9, lr wd = 1e-3; ``sgdm_scale_invariant_mean_square`` keeps
    it); from far below equilibrium it also adds a start-up kick.
    """
    lr, wd = _lr_wd(lr, wd)
    beta3 = 1.0 - lr * wd
    if scale_invariant:
        return 1.0 / (2.0 * (1.0 - beta3**2))
    return -1.0 / (2.0 * np.log(beta3))

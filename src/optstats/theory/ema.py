"""EMA sums: mean and variance of an EMA and of an EMA of an EMA, at finite t and stationary.

EMA conventions (chapter "The EMA toolkit", ``book/ema.ipynb``):
m_t = beta m_{t-1} + (1 - beta) x_t with m_0 = 0, the x_t iid with mean mu and
standard deviation sigma.
"""

from __future__ import annotations

import numpy as np

from .. import _validate

#: direct summation is used for finite t up to this many terms; beyond it the
#: closed forms, whose cancellation error is below ~1e-13 for t (1 - beta) > 1e-3
#: (the only way to reach smaller t (1 - beta) past this t is beta within
#: 2.5e-7 of 1).
_DIRECT_SUM_MAX_T = 4096
#: the double-EMA closed forms divide by (beta3 - beta1)^2; below this gap,
#: relative to 1 - max(beta), they lose digits and Gauss-Legendre quadrature of
#: the divided difference takes over (see _double_ema_sums).
_NEAR_EQUAL_GAP = 0.05
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(24)


def _steps(name, t):
    """t as a float array of whole numbers >= 1 (or None for t -> infinity)."""
    if t is None:
        return None
    arr = _validate.finite(name, t)
    if np.any(arr < 1) or np.any(arr != np.round(arr)):
        raise ValueError(f"{name} must be a whole number >= 1 (or None for the stationary limit), got {t!r}")
    return arr


def _one_minus_pow(beta, t):
    """1 - beta^t without cancellation for beta near 1 (beta = 0 gives 1)."""
    with np.errstate(divide="ignore"):
        return -np.expm1(t * np.log(beta))


def ema_mean(beta, t=None, mean=1.0, *, bias_correction=False):
    """E[m_t] = (1 - beta^t) mu (EMA chapter, eq. ema-mean); -> mu as t -> inf.

    With bias correction (m_t / (1 - beta^t)) the mean is mu at every t.
    """
    beta = _validate.beta("beta", beta)
    mean = _validate.finite("mean", mean)
    t = _steps("t", t)
    if t is None or bias_correction:
        return np.broadcast_to(mean, np.broadcast_shapes(beta.shape, mean.shape, () if t is None else t.shape)) * 1.0
    return _one_minus_pow(beta, t) * mean


def ema_variance(beta, t=None, std=1.0, *, bias_correction=False):
    """Var[m_t] = (1-beta)^2 (1 - beta^(2t)) / (1 - beta^2) sigma^2 (EMA chapter, eq. ema-var).

    Stationary limit (t=None): (1 - beta)/(1 + beta) sigma^2. With bias correction
    the variance of m_t / (1 - beta^t): (1-beta)(1+beta^t) / ((1+beta)(1-beta^t)) sigma^2.
    """
    beta = _validate.beta("beta", beta)
    std = _validate.nonnegative("std", std)
    t = _steps("t", t)
    stationary = (1.0 - beta) / (1.0 + beta) * std**2
    if t is None:
        return stationary
    if bias_correction:
        return stationary * (1.0 + beta**t) / _one_minus_pow(beta, t)
    return stationary * _one_minus_pow(beta, 2.0 * t)


def double_ema_kernel(beta3, beta1, k):
    """(beta3^k - beta1^k) / (beta3 - beta1), with the limit k beta^(k-1) at beta3 = beta1.

    The weight of x_{t-k+1} in sum_i beta3^(t-i) sum_j beta1^(i-j) x_j (EMA
    chapter, eq. double-sum; post 11307, step two). Evaluated without
    cancellation as b^(k-1) expm1(k r)/expm1(r), b = max, r = log(min/max).
    """
    beta3 = _validate.beta("beta3", beta3)
    beta1 = _validate.beta("beta1", beta1)
    k = _validate.nonnegative("k", k)
    if np.any(k != np.round(k)):
        raise ValueError(f"k must be a whole number >= 0, got {k!r}")
    hi, lo = np.maximum(beta3, beta1), np.minimum(beta3, beta1)
    hi, lo, k = np.broadcast_arrays(hi, lo, k)
    out = np.empty(hi.shape)
    both_zero = hi == 0
    out[both_zero] = (k[both_zero] == 1).astype(float)
    live = ~both_zero
    h, l, kk = hi[live], lo[live], k[live]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log(l / h)
        ratio = np.where(r == 0, kk, np.expm1(kk * r) / np.expm1(r))
        out[live] = np.where(kk == 0, 0.0, h ** np.maximum(kk - 1, 0) * ratio)
    return out[()] if out.ndim == 0 else out


def _geometric_partial(x, t):
    """A(x) = sum_{k=1..t} x^k."""
    return x * _one_minus_pow(x, t) / (1.0 - x)


def _double_ema_sums(beta3, beta1, t):
    """S1 = sum_{k=1..t} K(k) and S2 = sum_{k=1..t} K(k)^2, K the double-EMA kernel."""
    b3, b1, t = np.broadcast_arrays(beta3, beta1, t)
    s1 = np.empty(b3.shape)
    s2 = np.empty(b3.shape)
    direct = t <= _DIRECT_SUM_MAX_T
    if np.any(direct):
        kmax = int(t[direct].max())
        k = np.arange(1, kmax + 1)
        kern = double_ema_kernel(b3[direct][:, None], b1[direct][:, None], k)
        kern = np.where(k <= t[direct][:, None], kern, 0.0)
        s1[direct] = kern.sum(axis=1)
        s2[direct] = (kern**2).sum(axis=1)
    far = ~direct
    if np.any(far):
        a, b, n = b3[far], b1[far], t[far]
        gap = np.abs(a - b) / (1.0 - np.maximum(a, b))
        out1 = np.empty(a.shape)
        out2 = np.empty(a.shape)
        closed = gap > _NEAR_EQUAL_GAP
        with np.errstate(divide="ignore", invalid="ignore"):
            c1 = (_geometric_partial(a, n) - _geometric_partial(b, n)) / (a - b)
            c2 = (_geometric_partial(a * a, n) + _geometric_partial(b * b, n) - 2 * _geometric_partial(a * b, n)) / (a - b) ** 2
        out1[closed], out2[closed] = c1[closed], c2[closed]
        near = ~closed
        if np.any(near):
            # K(k) = int_0^1 k x(s)^(k-1) ds with x(s) = b + s (a - b), so
            # S1 = int A'(x(s)) ds and S2 = int int P(x(s) x(r)) ds dr with
            # P(y) = sum_k k^2 y^(k-1); Gauss-Legendre on [0, 1].
            an, bn, nn = a[near][:, None], b[near][:, None], n[near][:, None]
            s = 0.5 * (_GL_NODES + 1.0)
            w = 0.5 * _GL_WEIGHTS
            x = bn + s * (an - bn)
            out1[near] = (w * _dgeometric(x, nn)).sum(axis=1)
            y = x[:, :, None] * x[:, None, :]
            out2[near] = (w[:, None] * w[None, :] * _sum_k2(y, nn[:, :, None])).sum(axis=(1, 2))
        s1[far], s2[far] = out1, out2
    return s1, s2


def _dgeometric(x, t):
    """A'(x) = sum_{k=1..t} k x^(k-1) = [(1 - x^t)/(1 - x) - t x^t] / (1 - x)."""
    xt = x**t
    return (_one_minus_pow(x, t) / (1.0 - x) - t * xt) / (1.0 - x)


def _sum_k2(y, t):
    """P(y) = sum_{k=1..t} k^2 y^(k-1) (closed form, y < 1)."""
    yt = y**t
    num = 1.0 + y - (t + 1) ** 2 * yt + (2 * t * t + 2 * t - 1) * yt * y - t * t * yt * y * y
    return num / (1.0 - y) ** 3


def double_ema_mean(beta3, beta1, t=None, mean=1.0):
    """E[mbar_t] for mbar_t = (1-beta3)/(1-beta3^t) sum_i beta3^(t-i) m_i (EMA chapter, eq. dema-mean).

    = (1-beta3)(1-beta1)/(1-beta3^t) S1(t) mu, S1 = sum_{k=1..t} K(k); -> mu as t -> inf.
    """
    beta3 = _validate.beta("beta3", beta3)
    beta1 = _validate.beta("beta1", beta1)
    mean = _validate.finite("mean", mean)
    t = _steps("t", t)
    if t is None:
        return np.broadcast_to(mean, np.broadcast_shapes(beta3.shape, beta1.shape, mean.shape)) * 1.0
    s1, _ = _double_ema_sums(beta3, beta1, t)
    return (1.0 - beta3) * (1.0 - beta1) / _one_minus_pow(beta3, t) * s1 * mean


def double_ema_variance(beta3, beta1, t=None, std=1.0):
    """Var[mbar_t] (EMA chapter, eq. dema-var; post 11307, step four, before its approximation).

    = [(1-beta3)(1-beta1)/(1-beta3^t)]^2 S2(t) sigma^2, S2 = sum_{k=1..t} K(k)^2.
    Stationary limit: (1-beta1)(1-beta3)(1+beta1 beta3) / ((1+beta1)(1+beta3)(1-beta1 beta3)) sigma^2.
    """
    beta3 = _validate.beta("beta3", beta3)
    beta1 = _validate.beta("beta1", beta1)
    std = _validate.nonnegative("std", std)
    t = _steps("t", t)
    if t is None:
        return (
            (1 - beta1) * (1 - beta3) * (1 + beta1 * beta3) / ((1 + beta1) * (1 + beta3) * (1 - beta1 * beta3)) * std**2
        )
    _, s2 = _double_ema_sums(beta3, beta1, t)
    return ((1.0 - beta3) * (1.0 - beta1) / _one_minus_pow(beta3, t)) ** 2 * s2 * std**2


def double_ema_variance_post(beta3, t, std=1.0):
    """The post's approximation of Var[mbar_t] (11307, step four, last line):

    (1 - beta3)(1 + beta3^t) / (2 (1 - beta3^t)) sigma^2, from dropping beta1^t
    terms and setting beta3 -> 1 where it stands alone. Note it does not depend
    on beta1: the EMA chapter measures what that costs.
    """
    beta3 = _validate.beta("beta3", beta3)
    std = _validate.nonnegative("std", std)
    t = _steps("t", t)
    return (1.0 - beta3) * (1.0 + beta3**t) / (2.0 * _one_minus_pow(beta3, t)) * std**2

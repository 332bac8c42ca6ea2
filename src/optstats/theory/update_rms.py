"""Adam's stationary update statistics, E[u^2] and E[u], and the SNR read back from them.

Chapter "Adam's update RMS" (``book/update-rms.ipynb``, post 11267). Setting:
gradients g_i iid N(mu, sigma^2), units with sigma = 1 (Adam's update is
invariant to the scale of g when eps = 0), t -> infinity, eps = 0, so that
u = m / sqrt(v) with

    m = sum_k a_k g_{-k},  a_k = (1 - beta1) beta1^k,
    v = sum_k b_k g_{-k}^2, b_k = (1 - beta2) beta2^k.

Three methods:

``"mean-field"``   the post's E[m^2] / E[v] and E[m] / sqrt(E[v]);
``"second-order"`` the delta method: the mean-field ratio corrected by the
                   covariance of numerator and denominator and the variance of v,
                   from the exact second and fourth moments of the Gaussian sums;
``"exact"``        a one-dimensional integral: 1/v = int_0^inf exp(-s v) ds and
                   v^(-1/2) = pi^(-1/2) int_0^inf s^(-1/2) exp(-s v) ds turn the
                   expectations into integrals over s of Gaussian moment-
                   generating functions (see ``_exact_integrals``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

from .. import _validate

METHODS = ("mean-field", "second-order", "exact")

#: trapezoid step in x = log s. Every singularity of the integrand (in x) lies
#: on Im x = +-pi (where 1 + 2 s b_k = 0), but for beta2 -> 1 the integrand tends
#: to exp(-e^x), which is bounded only for |Im x| <= pi/2; the trapezoid error is
#: then about exp(-2 pi (pi/2) / h) = exp(-pi^2 / h), 7e-18 at h = 0.25.
_STEP = 0.25
#: start of the grid in x = log s; the neglected part of the integral below it
#: is at most 2 sqrt(s_lo) ~ 2e-13 of the first moment (1e-26 of the second).
_X_LOW = -60.0
#: nodes per chunk of the x grid; chunks are added until the integrand has
#: fallen e^-45 below its peak.
_CHUNK = 16
_DECAY = 45.0
#: direct terms k are those with x_k = 2 s b_k > 1/2; the rest are summed as
#: power series in x_K <= 1/2, truncated after 60 terms (error 2^-60 ~ 1e-18).
_SERIES_TERMS = 60


def _method(method, beta2):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method != "mean-field" and beta2 is None:
        raise ValueError(f"beta2 is required for method={method!r} (the mean-field result alone ignores it)")


def _betas(beta1, beta2, method):
    beta1 = _validate.beta("beta1", beta1)
    if beta2 is None:
        return beta1, None
    if method == "mean-field":
        return beta1, _validate.beta("beta2", beta2)
    # beta2 = 0 makes v = g^2 and E[m^2 / g^2] infinite whenever beta1 > 0
    return beta1, _validate.open_unit("beta2", beta2)


def _moment_terms(beta1, beta2, mu):
    """The Gaussian moments the delta method needs (sigma = 1):

    E[m] = mu, E[m^2] = mu^2 + (1-beta1)/(1+beta1), E[v] = mu^2 + 1,
    Var[v] = (4 mu^2 + 2)(1-beta2)/(1+beta2),
    Cov[m, v] = 2 mu sum a_k b_k,
    Cov[m^2, v] = 4 mu^2 sum a_k b_k + 2 sum a_k^2 b_k.
    """
    ab = (1 - beta1) * (1 - beta2) / (1 - beta1 * beta2)
    aab = (1 - beta1) ** 2 * (1 - beta2) / (1 - beta1**2 * beta2)
    mu2 = mu * mu
    return {
        "m2": mu2 + (1 - beta1) / (1 + beta1),
        "v": mu2 + 1.0,
        "var_v": (4 * mu2 + 2) * (1 - beta2) / (1 + beta2),
        "cov_m_v": 2 * mu * ab,
        "cov_m2_v": 4 * mu2 * ab + 2 * aab,
    }


def _log_sums(s, beta1, beta2, mu):
    """For each s: L = -log E[exp(-s v)], P = sum a_k/(1+x_k), Q = sum a_k^2/(1+x_k).

    x_k = 2 s b_k. Under the weight exp(-s b_k g^2) the Gaussian g_k stays
    Gaussian with variance 1/(1+x_k) and mean mu/(1+x_k), and its normaliser is
    (1+x_k)^(-1/2) exp(-mu^2 x_k / (2 (1+x_k))). Terms with x_k > 1/2 are summed
    directly; the tail k >= K is a geometric series in k for every power of x_K.
    """
    c2 = 1.0 - beta2
    log_b2 = math.log(beta2)
    with np.errstate(divide="ignore"):
        first = np.log(4.0 * s * c2) / -log_b2
    K = np.maximum(0, np.ceil(first)).astype(int)
    # guard the rounding of ceil: x_K must be <= 1/2
    xK = 2.0 * s * c2 * np.exp(K * log_b2)
    K = K + (xK > 0.5)
    xK = 2.0 * s * c2 * np.exp(K * log_b2)
    kmax = int(K.max())
    L = np.zeros_like(s)
    P = np.zeros_like(s)
    Q = np.zeros_like(s)
    if kmax:
        k = np.arange(kmax)
        live = k[None, :] < K[:, None]
        x = 2.0 * s[:, None] * c2 * beta2 ** k[None, :]
        a = (1.0 - beta1) * beta1 ** k[None, :]
        inv = np.where(live, 1.0 / (1.0 + x), 0.0)
        L += np.where(live, 0.5 * np.log1p(x) + 0.5 * mu * mu * x * inv, 0.0).sum(axis=1)
        P += (a * inv).sum(axis=1)
        Q += (a * a * inv).sum(axis=1)
    n = np.arange(_SERIES_TERMS)
    powers = (-xK[:, None]) ** n[None, :]  # (-x_K)^n, n = 0, 1, ...
    one_minus_b2n = -np.expm1(n[1:] * log_b2)
    # log1p(x) + mu^2 x/(1+x) = sum_{n>=1} (-1)^(n+1) x^n (1/n + mu^2)
    L -= 0.5 * (powers[:, 1:] * (1.0 / n[1:] + mu * mu) / one_minus_b2n).sum(axis=1)
    b1K = beta1 ** K
    P += (1.0 - beta1) * b1K * (powers / (1.0 - beta1 * beta2 ** n)).sum(axis=1)
    Q += (1.0 - beta1) ** 2 * b1K * b1K * (powers / (1.0 - beta1**2 * beta2 ** n)).sum(axis=1)
    return L, P, Q


def _exact_integrals(beta1, beta2, mu):
    """(E[m / sqrt(v)], E[m^2 / v]) for one parameter point, sigma = 1.

    E[m^2/v] = int_0^inf E[m^2 exp(-s v)] ds and E[m/sqrt v] = pi^(-1/2) int
    s^(-1/2) E[m exp(-s v)] ds, with E[m^2 exp(-s v)] = exp(-L)(mu^2 P^2 + Q) and
    E[m exp(-s v)] = exp(-L) mu P (``_log_sums``). Trapezoid rule in x = log s.
    """
    x0 = _X_LOW - math.log1p(mu * mu)
    first = second = 0.0
    peak = -np.inf
    chunk = 0
    while True:
        x = x0 + _STEP * (chunk * _CHUNK + np.arange(_CHUNK))
        s = np.exp(x)
        L, P, Q = _log_sums(s, beta1, beta2, mu)
        log_weight = x - L
        f2 = np.exp(log_weight) * (mu * mu * P * P + Q)
        f1 = np.exp(0.5 * x - L) * mu * P / math.sqrt(math.pi)
        second += f2.sum()
        first += f1.sum()
        top = float(np.max(np.log(np.maximum(f2, 1e-300))))
        peak = max(peak, top)
        chunk += 1
        if top < peak - _DECAY and np.all(np.diff(np.log(np.maximum(f2, 1e-300))) <= 0):
            break
        if chunk > 2500:  # x beyond 10^4: the integrand cannot still be alive
            raise RuntimeError(f"quadrature did not converge at beta1={beta1}, beta2={beta2}, mu={mu}")
    return first * _STEP, second * _STEP


def _exact(beta1, beta2, mu):
    b1, b2, m = np.broadcast_arrays(beta1, beta2, mu)
    first = np.empty(b1.shape)
    second = np.empty(b1.shape)
    points = np.stack([b1.ravel(), b2.ravel(), m.ravel()], axis=1)
    unique, inverse = np.unique(points, axis=0, return_inverse=True)
    results = np.array([_exact_integrals(*p) for p in unique]).reshape(-1, 2)
    first.ravel()[:] = results[inverse.ravel(), 0]
    second.ravel()[:] = results[inverse.ravel(), 1]
    return first, second


def adam_update_rms(beta1, beta2=None, snr=0.0, *, method="mean-field", eps_over_sigma=0.0):
    """Stationary RMS of Adam's update for N(mu, sigma^2) gradients, snr = mu^2/sigma^2.

    ``"mean-field"`` is the post's sqrt((snr + (1-beta1)/(1+beta1)) / (snr + 1))
    (update-RMS chapter, eq. rms-mean-field); ``"second-order"`` and ``"exact"``
    need beta2 in (0, 1) (eqs. rms-second-order and rms-exact). All three are
    for eps = 0. With ``eps_over_sigma`` = e > 0 each is multiplied by
    sqrt(1 + snr) / (sqrt(1 + snr) + e), the mean field of the denominator
    sqrt(v) + eps; the epsilon chapter measures this against simulated Adam at
    beta = (0.9, 0.95), snr = 0, e <= 3 (its "bridge" table), and no method is
    exact once e > 0.
    """
    _method(method, beta2)
    beta1, beta2 = _betas(beta1, beta2, method)
    snr = _validate.nonnegative("snr", snr)
    eps = _validate.nonnegative("eps_over_sigma", eps_over_sigma)
    mu = np.sqrt(snr)
    if method == "mean-field":
        out = np.sqrt((snr + (1 - beta1) / (1 + beta1)) / (snr + 1))
        if beta2 is not None:
            out = np.broadcast_to(out, np.broadcast_shapes(out.shape, beta2.shape)) * 1.0
    elif method == "second-order":
        q = _moment_terms(beta1, beta2, mu)
        second = q["m2"] / q["v"] - q["cov_m2_v"] / q["v"] ** 2 + q["m2"] * q["var_v"] / q["v"] ** 3
        out = np.sqrt(second)
    else:
        out = np.sqrt(_exact(beta1, beta2, mu)[1])
    if np.any(eps > 0):
        root = np.sqrt(1.0 + snr)
        out = out * root / (root + eps)
    return out


def adam_update_mean(beta1, beta2=None, mu_over_sigma=0.0, *, method="mean-field"):
    """Stationary E[u] of Adam's update (eps = 0) in units where sigma = 1.

    ``"mean-field"``: mu / sqrt(mu^2 + 1) (no beta1 or beta2 dependence);
    ``"second-order"``: the delta method for m / sqrt(v); ``"exact"``: the
    integral (update-RMS chapter, eqs. mean-mean-field, mean-second-order,
    mean-exact). Odd in mu.
    """
    _method(method, beta2)
    beta1, beta2 = _betas(beta1, beta2, method)
    mu = _validate.finite("mu_over_sigma", mu_over_sigma)
    if method == "mean-field":
        shape = np.broadcast_shapes(beta1.shape, mu.shape, () if beta2 is None else beta2.shape)
        return np.broadcast_to(mu / np.sqrt(mu * mu + 1), shape) * 1.0
    if method == "second-order":
        q = _moment_terms(beta1, beta2, mu)
        return mu / q["v"] ** 0.5 - 0.5 * q["cov_m_v"] / q["v"] ** 1.5 + 0.375 * mu * q["var_v"] / q["v"] ** 2.5
    # the integrand is odd in mu: integrate at |mu| and restore the sign
    first, _ = _exact(beta1, beta2, np.abs(mu))
    return np.sign(mu) * first


def _inverse(name, value, beta1):
    beta1 = _validate.beta("beta1", beta1)
    value = _validate.unit_fraction(name, value)
    c = (1 - beta1) / (1 + beta1)
    return (value**2 - c) / (1 - value**2)


def snr_from_update_rms(rms, beta1, beta2=None, *, method="mean-field"):
    """The gradient SNR ||mu||^2/||sigma||^2 read from Adam's update RMS.

    ``"mean-field"`` inverts the post's mean field: (rms^2 - (1-beta1)/(1+beta1))
    / (1 - rms^2). A value below the noise floor sqrt((1-beta1)/(1+beta1))
    gives a negative estimate, returned as is (it says the measured RMS is
    below what pure noise gives in the mean field); the update-RMS chapter
    measures its bias. ``"exact"`` (needs beta2, scalars) solves
    ``adam_update_rms(beta1, beta2, snr, method="exact") = rms`` for snr >= 0;
    an rms below the exact pure-noise value has no solution and raises
    ValueError. Both assume gradients independent in time (the chapter shows
    what correlation does).
    """
    if method == "mean-field":
        return _inverse("rms", rms, beta1)
    if method != "exact":
        raise ValueError(f"method must be 'mean-field' or 'exact', got {method!r}")
    if beta2 is None:
        raise ValueError("beta2 is required for method='exact' (a number in (0, 1))")
    rms = _validate.scalar(_validate.unit_fraction, "rms", rms)
    beta1 = _validate.scalar(_validate.beta, "beta1", beta1)
    beta2 = _validate.scalar(_validate.open_unit, "beta2", beta2)

    def gap(snr):
        return float(adam_update_rms(beta1, beta2, snr, method="exact")) - rms

    floor = float(adam_update_rms(beta1, beta2, 0.0, method="exact"))
    if rms < floor:
        raise ValueError(
            f"rms={rms!r} is below Adam's exact pure-noise update RMS {floor:.4f} at beta1={beta1!r}, "
            f"beta2={beta2!r}: no SNR >= 0 gives it"
        )
    if rms == floor:
        return 0.0
    # the RMS rises monotonically with the SNR towards 1 (update-RMS chapter)
    high = 1.0
    while gap(high) < 0:
        high *= 10.0
        if high > 1e12:
            raise ValueError(f"rms={rms!r} needs an SNR above 1e12: too close to one to invert")
    return brentq(gap, 0.0, high, xtol=1e-12, rtol=1e-10)


def snr_from_momentum_ratio(ratio, beta1):
    """The gradient SNR ||mu||^2/||sigma||^2 from ||m_t|| / ||g_t|| of any EMA-momentum optimizer.

    Same inversion as ``snr_from_update_rms`` with the ratio in place of the
    RMS; negative estimates are returned as is.
    """
    return _inverse("ratio", ratio, beta1)


def noise_std_from_exp_avg_sq(exp_avg_sq, snr=0.0):
    """The gradient noise's std sigma of one coordinate, read from Adam's second moment.

    For gradients iid N(mu, sigma^2) in time, v is an EMA of g^2 whose
    stationary mean is mu^2 + sigma^2 = sigma^2 (1 + snr) (update-RMS chapter,
    the moments of v), so sigma = sqrt(v / (1 + snr)); at snr = 0 this is
    sqrt(v). ``exp_avg_sq`` is torch's state of that name, v_t without bias
    correction: it equals vhat_t = v_t / (1 - beta2^t) once beta2^t << 1
    (t >> 1 / (1 - beta2)). One coordinate's v is one draw: at snr = 0 its
    relative std is sqrt(2 (1 - beta2) / (1 + beta2)) (0.23 at beta2 = 0.95),
    and sigma's about half that; a mean of v over coordinates of one scale
    removes it. With eps / sigma from here, the factor of ``adam_update_rms``,
    sqrt(1 + snr) / (sqrt(1 + snr) + eps / sigma), is sqrt(v) / (sqrt(v) + eps).
    """
    v = _validate.positive("exp_avg_sq", exp_avg_sq)
    snr = _validate.nonnegative("snr", snr)
    return np.sqrt(v / (1.0 + snr))

"""SoftSign: Adam's epsilon in the learning-rate / batch-size law (post 10563,
chapter "Adam's epsilon and the scaling law").

SoftSignSGD updates by softsign(g_B, eps) = g_B / sqrt(g_B^2 + eps^2), a
stand-in for Adam with epsilon, on a minibatch gradient g_B = g + sigma z / sqrt(B)
(z standard normal). With a = g sqrt(B) / sigma and b = eps sqrt(B) / sigma,
:func:`softsign_moments` gives E[u] and E[u^2] by three methods:

``"exact"``     a one-dimensional Laplace integral (below), to ~1e-13;
``"clip-erf"``  the post's closed form: softsign replaced by clip(x / eps, -1, 1)
                and integrated against the Gaussian (erf terms);
``"approx"``    the post's final approximations a / sqrt(a^2 + b^2 + pi/2) and
                1 - b^2 / (a^2 + b^2 + pi/2).

The exact method writes 1/sqrt(y) and 1/y as Laplace integrals,
x / sqrt(x^2 + b^2) = pi^(-1/2) int_0^oo t^(-1/2) x exp(-t (x^2 + b^2)) dt and
x^2 / (x^2 + b^2) = int_0^oo x^2 exp(-t (x^2 + b^2)) dt, takes the Gaussian
expectation inside (closed form), and integrates the remaining smooth
positive function of s = ln t with the trapezoid rule, whose error decays
like exp(-2 pi^2 / h) for a function analytic in the strip |Im s| < pi.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .. import _validate
from .batch_size import _assemble, _check_method, _problem

METHODS = ("exact", "clip-erf", "approx")
LR_METHODS = ("post", "approx", "clip-erf", "exact")

#: trapezoid grid in s = ln t (units where the noise std is 1): the integrands
#: vanish like exp(s/2) on the left and like exp(-s/2) or faster on the right
_S_GRID = np.arange(-90.0, 90.0 + 1e-9, 0.2)
_T_GRID = np.exp(_S_GRID)
_H = 0.2


def softsign(x, eps):
    """x / sqrt(x^2 + eps^2); eps = 0 gives sign(x) (0 at x = 0)."""
    x = _validate.finite("x", x)
    eps = _validate.nonnegative("eps", eps)
    denom = np.sqrt(x**2 + eps**2)
    return np.divide(x, denom, out=np.zeros(np.broadcast(x, denom).shape), where=denom > 0)


def _exact(a, b):
    """E[u], E[u^2] for X ~ N(a, 1), u = X / sqrt(X^2 + b^2)."""
    a = a[..., None]
    b2 = (b**2)[..., None]
    t = _T_GRID
    q = 1.0 + 2.0 * t
    gauss = np.exp(-t * b2 - t * a**2 / q)  # exp(-t b^2) E-part of exp(-t X^2), without q^(-1/2)
    # E[X exp(-t X^2)] = a q^(-3/2) exp(-t a^2 / q);  dt = t ds
    mean_terms = np.sqrt(t) * a * q**-1.5 * gauss / np.sqrt(np.pi)
    # E[X^2 exp(-t X^2)] = q^(-1/2) exp(-t a^2/q) (1/q + a^2/q^2)
    second_terms = t * q**-0.5 * (1.0 / q + a**2 / q**2) * gauss
    mean = _H * mean_terms.sum(axis=-1)
    second = _H * second_terms.sum(axis=-1)
    # b = 0: u = sign(X), E[u^2] = 1 exactly (the integral converges too slowly)
    second = np.where(b[...] == 0, 1.0, second)
    return mean, second


def _clip_erf(a, b):
    """The post's clip stand-in integrated exactly: E[clip((a + z)/b, -1, 1)^k]."""
    ep, em = special.erf((a + b) / np.sqrt(2)), special.erf((a - b) / np.sqrt(2))
    gp, gm = np.exp(-((a + b) ** 2) / 2), np.exp(-((a - b) ** 2) / 2)
    root = np.sqrt(2 * np.pi)
    mean = 0.5 * (ep + em) + a / (2 * b) * (ep - em) + (gp - gm) / (b * root)
    # second moment: 1 - P(|a + z| < b) + E[(a + z)^2 / b^2; |a + z| < b]
    inside = 0.5 * (ep - em)
    second = (
        1.0
        - inside
        + ((a**2 + 1) * inside + ((a - b) * gp - (a + b) * gm) / root) / b**2
    )
    return mean, second


def softsign_moments(g, sigma, eps, batch_size, *, method="exact"):
    """(E[u], E[u^2]) of u = softsign(g + sigma z / sqrt(B), eps), z ~ N(0, 1).

    Arguments broadcast. ``sigma`` > 0 is the per-sample noise standard
    deviation, ``eps`` >= 0, ``batch_size`` >= 1. ``"clip-erf"`` needs eps > 0
    (the clip stand-in has slope 1/eps); ``"approx"`` at eps = 0 gives the
    post's SignSGD limit a / sqrt(a^2 + pi/2).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    g = _validate.finite("g", g)
    sigma = _validate.positive("sigma", sigma)
    eps = _validate.nonnegative("eps", eps)
    b_size = _validate.at_least_one("batch_size", batch_size)
    scale = np.sqrt(b_size) / sigma
    a, b = np.broadcast_arrays(g * scale, eps * scale)
    if method == "exact":
        return _exact(np.asarray(a, float), np.asarray(b, float))
    if method == "clip-erf":
        if np.any(b == 0):
            raise ValueError(f"eps must be > 0 for method='clip-erf', got {eps!r}")
        return _clip_erf(a, b)
    denom = a**2 + b**2 + np.pi / 2
    return a / np.sqrt(denom), 1.0 - b**2 / denom


def optimal_lr_softsign(problem, batch_size, *, eps, method="post"):
    """eta*(B) of SoftSignSGD with ``eps`` on ``problem`` (a NoisyQuadratic).

    ``"post"``: the post's law eta* = beta sum_i u_i g_i / (beta^2 u^T H u +
    (1 - beta^2) tr H) with u_i = softsign(g_i, eps) and beta = (1 + pi kappa^2
    / 2B)^(-1/2), where the post's "some average" kappa^2 of sigma_i^2 / (g_i^2 +
    eps^2) is taken as the ratio of sums tr(Sigma) / sum_i (g_i^2 + eps^2) (at
    eps = 0 this is B_simple). The per-coordinate methods assemble
    softsign_moments with independent coordinates (``"exact"`` requires a
    diagonal Sigma, where that assembly is exact).
    """
    problem = _problem(problem)
    b = _validate.at_least_one("batch_size", batch_size)
    eps = float(_validate.nonnegative("eps", eps))
    _check_method(method, LR_METHODS, problem, None)
    g = problem.g
    if method == "post":
        u = softsign(g, eps)
        kappa2 = float(np.trace(problem.Sigma)) / float(np.sum(g**2 + eps**2))
        beta2 = 1.0 / (1.0 + np.pi * kappa2 / (2.0 * b))
        tr_h = float(np.trace(problem.H))
        return np.sqrt(beta2) * float(u @ g) / (beta2 * float(u @ problem.H @ u) + (1.0 - beta2) * tr_h)
    mean, second = softsign_moments(g, problem.sigma, eps, b[..., None], method=method)
    return _assemble(problem, mean, second)

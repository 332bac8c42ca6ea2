"""The optimal learning rate against the batch size (post 11301, chapter
"Momentum and the learning-rate / batch-size law").

Every function takes the problem as an :class:`optstats.quadratic.NoisyQuadratic`
(gradient g, Hessian H, per-sample covariance Sigma) and a batch size B (a
number or an array; the result has B's shape), and assembles

    eta*(B) = E[phi]^T g / tr(E[phi phi^T] H)

from approximations of the update's first two moments. With kappa =
(1 - beta1) / (1 + beta1), the variance factor of an EMA in steady state:

- SGDM: E[m] = g and Cov[m] = kappa Sigma / B exactly in steady state, so
  eta* = eta_max / (1 + kappa B_noise / B) is exact for this problem;
- SignSGDM and Adam, ``method``:

  ``"post"``          the post's formulas: the SNR averaged over coordinates
                      into B_simple (beta = (1 + kappa B_simple/B)^(-1/2) for
                      SignSGDM, (1 + B_simple/B)^(-1/2) for Adam);
  ``"mean-field"``    the same mean-field moments, per coordinate, with
                      E[phi_i phi_j] = E[phi_i] E[phi_j] for i != j;
  ``"second-order"``  (Adam) the per-coordinate delta-method moments of the
                      update-RMS chapter (needs beta2 and a diagonal Sigma);
  ``"exact"``         per-coordinate exact moments: erf for SignSGDM (m is
                      Gaussian), the exact integral of the update-RMS chapter
                      for Adam (needs beta2); both need a diagonal Sigma, where
                      coordinates are independent and the assembly is exact.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .. import _validate
from .update_rms import adam_update_mean, adam_update_rms

SIGN_METHODS = ("post", "mean-field", "exact")
ADAM_METHODS = ("post", "mean-field", "second-order", "exact")


def _problem(problem):
    # imported here: theory imports nothing of ours at load time (the lab's
    # module pulls in the simulator, which the formulas do not need)
    from ..quadratic import NoisyQuadratic

    if not isinstance(problem, NoisyQuadratic):
        raise ValueError(f"problem must be an optstats.quadratic.NoisyQuadratic, got {type(problem).__name__}")
    return problem


def _kappa(beta1) -> float:
    beta1 = float(_validate.beta("beta1", beta1))
    return (1.0 - beta1) / (1.0 + beta1)


def _scalar(name, value):
    arr = np.asarray(value)
    if arr.ndim:
        raise ValueError(f"{name} must be a single number here (the problem sets the coordinates), got shape {arr.shape}")
    return value


def _check_method(method, allowed, problem, beta2):
    if method not in allowed:
        raise ValueError(f"method must be one of {allowed}, got {method!r}")
    if method in ("second-order", "exact") and not problem.diagonal_noise:
        raise ValueError(f"method={method!r} needs independent coordinates (a diagonal Sigma)")
    if method in ("second-order", "exact") and beta2 is None and allowed == ADAM_METHODS:
        raise ValueError(f"beta2 is required for method={method!r} (the mean-field result alone ignores it)")


def _assemble(problem, mean, second):
    """eta* from per-coordinate E[phi_i] (..., d) and E[phi_i^2] (..., d),
    with E[phi_i phi_j] = E[phi_i] E[phi_j] off the diagonal."""
    H, g = problem.H, problem.g
    h_diag = np.diag(H)
    gain = mean @ g
    curv = np.einsum("...i,ij,...j->...", mean, H, mean) + (second - mean**2) @ h_diag
    return gain / curv


def _post_sign_form(problem, beta, kappa):
    """The post's eta* for a sign-like update with E[phi] = beta sign(g) and
    E[phi phi^T] = E[phi]E[phi]^T + kappa diag(1 - E[phi]^2)."""
    s = np.sign(problem.g)
    tr_h = float(np.trace(problem.H))
    aligned = float(s @ problem.H @ s)
    return np.abs(problem.g).sum() / (kappa * tr_h / beta + beta * (aligned - kappa * tr_h))


def optimal_lr_sgdm(problem, batch_size, *, beta1=0.0):
    """eta*(B) = eta_max / (1 + kappa B_noise / B); beta1 = 0 is SGD."""
    problem = _problem(problem)
    b = _validate.at_least_one("batch_size", batch_size)
    kappa = _kappa(_scalar("beta1", beta1))
    return problem.eta_max / (1.0 + kappa * problem.b_noise / b)


def optimal_lr_signsgdm(problem, batch_size, *, beta1=0.0, method="post"):
    """eta*(B) of SignSGDM (beta1 = 0: SignSGD); see the module docstring."""
    problem = _problem(problem)
    b = _validate.at_least_one("batch_size", batch_size)
    kappa = _kappa(_scalar("beta1", beta1))
    _check_method(method, SIGN_METHODS, problem, None)
    if method == "post":
        beta = 1.0 / np.sqrt(1.0 + kappa * problem.b_simple / b)
        # sign(m) squared is 1: the diagonal term carries no kappa
        return _post_sign_form(problem, beta, 1.0)
    g = problem.g
    noise_var = kappa * problem.sigma**2 / b[..., None]  # Var[m_i] in steady state
    if method == "mean-field":
        mean = g / np.sqrt(g**2 + noise_var)
    else:
        mean = special.erf(g / np.sqrt(2.0 * noise_var))
    return _assemble(problem, mean, np.ones_like(mean))


def optimal_lr_adam(problem, batch_size, *, beta1, beta2=None, method="post"):
    """eta*(B) of Adam (eps = 0, t -> infinity); see the module docstring.

    ``"post"`` is the post's eq. for a general Hessian,
    eta* = sum|g| / ((kappa/beta) tr H + beta (s^T H s - kappa tr H)), with
    s = sign(g), beta = (1 + B_simple/B)^(-1/2).
    """
    problem = _problem(problem)
    b = _validate.at_least_one("batch_size", batch_size)
    kappa = _kappa(_scalar("beta1", beta1))
    _check_method(method, ADAM_METHODS, problem, beta2)
    if method == "post":
        beta = 1.0 / np.sqrt(1.0 + problem.b_simple / b)
        return _post_sign_form(problem, beta, kappa)
    g = problem.g
    noise_var = problem.sigma**2 / b[..., None]  # Var of one minibatch gradient
    if method == "mean-field":
        mean = g / np.sqrt(g**2 + noise_var)
        second = (g**2 + kappa * noise_var) / (g**2 + noise_var)
        return _assemble(problem, mean, second)
    mu_over_sigma = g / np.sqrt(noise_var)
    mean = adam_update_mean(beta1, beta2, mu_over_sigma, method=method)
    second = adam_update_rms(beta1, beta2, mu_over_sigma**2, method=method) ** 2
    return _assemble(problem, mean, second)


def adam_surge_threshold(beta1):
    """The post's surge threshold of B / B_simple for Adam under a diagonal
    Hessian, (1 - beta1) / (3 beta1 - 1), or ``None`` when beta1 <= 1/3 (no
    surge: eta* grows with B all the way)."""
    beta1 = float(_validate.beta("beta1", _scalar("beta1", beta1)))
    if beta1 <= 1.0 / 3.0:
        return None
    return (1.0 - beta1) / (3.0 * beta1 - 1.0)

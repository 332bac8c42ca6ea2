"""Muon's update RMS, the factor that matches it to Adam's, and Muon's weight RMS.

Chapter "Muon, Lion and SGDM at equilibrium" (issue 17). Muon's update is
msign(M) of its momentum M (an n x m matrix), whose singular values are all
one at full rank, so its RMS is fixed by the shape; practice rescales it to
Adam's update RMS ("match Adam's update RMS", post 10739; Moonlight), to
reuse AdamW's learning rate and weight decay.

The weight RMS needs the correlation in time of msign(M_t). For iid
Gaussian gradients the momentum is a stationary Gaussian matrix whose
entries are iid, and M_{t+d} = beta1^d M_t + (an independent Gaussian part),
so (M_t, M_{t+d}) is distributed like (A, rho A + sqrt(1 - rho^2) Z) with A,
Z standard Gaussian n x m matrices and rho = beta1^d. The lag-d correlation
of the update is therefore a function of rho and the shape alone,

    R(rho) = E<msign(A), msign(rho A + sqrt(1 - rho^2) Z)> / min(n, m),

the matrix analogue of the arcsine law (for a 1 x 1 matrix msign is the
sign and R(rho) = (2/pi) arcsin(rho)).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.interpolate import CubicSpline

from .. import _validate
from ..optimizers import msign
from .update_rms import adam_update_rms
from .weight_rms import _lr_wd

MATCHING_METHODS = ("exact", "mean-field")
MSIGN_METHODS = ("matrix", "arcsine", "linear")
#: nodes of R in phi = arcsin(rho), equally spaced on [0, pi/2]: R is smooth
#: in phi (linear for a 1 x 1 matrix, sin(phi) for a long vector)
_NODES = 33
#: the Monte Carlo pairs of the "matrix" method, by default
#: 2^17 / (n m) (at least 64): a pair of larger matrices averages more
#: singular directions, so fewer pairs give the same error
_PAIR_BUDGET = 2**17
#: lags summed in the weight-RMS series: the terms fall like (beta1 beta3)^d
#: (R(rho) <= rho), so the tail after d lags is below e^-40
_DECADES = 40.0


def _shape(shape):
    if isinstance(shape, (str, bytes)) or np.ndim(shape) != 1 or len(shape) != 2:
        raise ValueError(f"shape must be two positive integers (n, m), got {shape!r}")
    n, m = shape
    for value in (n, m):
        if isinstance(value, bool) or not float(value).is_integer() or value < 1:
            raise ValueError(f"shape must be two positive integers (n, m), got {shape!r}")
    return int(n), int(m)


def muon_update_rms(shape):
    """RMS of msign(M) for a full-rank n x m matrix: sqrt(min(n, m) / (n m)) = 1/sqrt(max(n, m))."""
    n, m = _shape(shape)
    return 1.0 / np.sqrt(max(n, m))


def adam_matching_scale(beta1, beta2, shape, *, method="exact"):
    """The factor that gives Muon's update (msign, no scale) the update RMS of Adam.

    ``"exact"``: Adam's stationary update RMS for pure Gaussian noise
    (``adam_update_rms(method="exact")``, chapter "Adam's update RMS") over
    :func:`muon_update_rms`; ``"mean-field"``: sqrt((1-beta1)/(1+beta1)) sqrt(max(n, m)).
    Moonlight's rule 0.2 sqrt(max(n, m)) is the mean field with 0.2 in place
    of Adam's RMS.
    """
    if method not in MATCHING_METHODS:
        raise ValueError(f"method must be one of {MATCHING_METHODS}, got {method!r}")
    n, m = _shape(shape)
    beta1 = _validate.beta("beta1", beta1)
    beta2 = _validate.beta("beta2", beta2)
    if method == "mean-field":
        return np.sqrt((1.0 - beta1) / (1.0 + beta1)) * np.sqrt(max(n, m))
    return adam_update_rms(beta1, beta2, method="exact") / muon_update_rms((n, m))


#: published scale factors for Muon's msign(M) of an n x m weight (n = fan-out,
#: the rows of a PyTorch weight), as functions of (n, m)
MUON_SCALE_CONVENTIONS = {
    # Keller Jordan's Muon (modded-nanogpt): max(1, rows / cols)^(1/2)
    "keller-jordan": lambda n, m: np.sqrt(max(1.0, n / m)),
    # Moonlight (Liu et al. 2025): 0.2 sqrt(max(n, m)), "match AdamW's RMS"
    "moonlight": lambda n, m: 0.2 * np.sqrt(max(n, m)),
    # the spectral condition (Yang, Simon and Bernstein): |update|_2 = sqrt(fan-out / fan-in)
    "spectral": lambda n, m: np.sqrt(n / m),
    # an update of RMS one, like a sign update's
    "unit-rms": lambda n, m: np.sqrt(max(n, m)),
}


def muon_scale_conventions(shape):
    """The scale factor of each published convention (``MUON_SCALE_CONVENTIONS``)
    for an n x m weight, n its fan-out; the update's RMS is the factor times
    :func:`muon_update_rms`."""
    n, m = _shape(shape)
    return {name: float(rule(n, m)) for name, rule in MUON_SCALE_CONVENTIONS.items()}


@functools.lru_cache(maxsize=32)
def _matrix_nodes(n, m, pairs, seed):
    """R at the nodes phi_i, by Monte Carlo over ``pairs`` matrix pairs.

    Variance reduction, all exact in expectation: the same (A, Z) at every
    node (a smooth curve); antithetic Z and -Z (cancels the odd part in Z);
    control variates with known means, fitted by least squares per node:
    |Z|^2/(nm) - 1, |A|^2/(nm) - 1, <msign A, Z>^2/k - 1 and <A, Z>^2/(nm) - 1
    (Z is independent of A, so E<X, Z>^2 = |X|^2)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((pairs, n, m))
    z = rng.standard_normal((pairs, n, m))
    ua = msign(a)
    k, nm = min(n, m), n * m

    def dot(x, y):
        return np.einsum("sij,sij->s", x, y)

    controls = np.stack(
        [dot(z, z) / nm - 1.0, dot(a, a) / nm - 1.0, dot(ua, z) ** 2 / k - 1.0, dot(a, z) ** 2 / nm - 1.0], axis=1
    )
    centred = controls - controls.mean(axis=0)
    phi = np.linspace(0.0, np.pi / 2.0, _NODES)
    r = np.empty(_NODES)
    r[0], r[-1] = 0.0, 1.0  # independent matrices; the same matrix
    for i in range(1, _NODES - 1):
        s, c = np.sin(phi[i]), np.cos(phi[i])
        x = 0.5 * (dot(ua, msign(s * a + c * z)) + dot(ua, msign(s * a - c * z))) / k
        coef, *_ = np.linalg.lstsq(centred, x - x.mean(), rcond=None)
        r[i] = np.mean(x - controls @ coef)
    return phi, r


def msign_correlation(rho, shape, *, method="matrix", pairs=None, seed=0):
    """Correlation R(rho) of msign(A) and msign(B) for n x m Gaussian matrices
    whose entries have correlation ``rho`` (see the module docstring).

    ``"matrix"`` (the default): Monte Carlo over ``pairs`` pairs (default
    2^17/(n m), at least 64) at 33 nodes in arcsin(rho), a cubic spline
    between them; deterministic for a given ``seed``. Its error is measured
    in the chapter and the tests from the spread over seeds. ``"arcsine"``:
    (2/pi) arcsin(rho), the 1 x 1 law. ``"linear"``: rho, the assumption that
    the update is correlated like its momentum.
    """
    if method not in MSIGN_METHODS:
        raise ValueError(f"method must be one of {MSIGN_METHODS}, got {method!r}")
    n, m = _shape(shape)
    rho = _validate.finite("rho", rho)
    if np.any(np.abs(rho) > 1):
        raise ValueError(f"rho must lie in [-1, 1], got {rho!r}")
    if method == "linear":
        return rho * 1.0
    if method == "arcsine":
        return 2.0 / np.pi * np.arcsin(rho)
    if pairs is None:
        pairs = max(64, _PAIR_BUDGET // (n * m))
    pairs = _validate.count("pairs", pairs, minimum=8)
    seed = _validate.count("seed", seed, minimum=0)
    phi, r = _matrix_nodes(n, m, pairs, seed)
    out = np.sign(rho) * CubicSpline(phi, r)(np.arcsin(np.abs(rho)))
    return out[()] if np.ndim(out) == 0 else out


def muon_weight_rms(lr, wd, beta1, shape, *, method="matrix", pairs=None, seed=0):
    """Stationary weight RMS of Muon (update msign(M), no scale factor) under
    theta <- theta - lr (u + wd theta), for iid Gaussian gradients.

    The long-run identity of the weight-RMS chapter, exact for updates that do
    not depend on theta: E[theta^2] = lr^2 U^2 / (1 - beta3^2) (1 + 2 sum_d
    beta3^d R(beta1^d)), with U = 1/sqrt(max(n, m)) and R the update's lag
    correlation from :func:`msign_correlation` with this ``method``.
    ``"linear"`` (R = beta1^d, as Wen et al. and post 11307's argument
    assume) sums to (1 + beta1 beta3)/(1 - beta1 beta3).
    """
    if method not in MSIGN_METHODS:
        raise ValueError(f"method must be one of {MSIGN_METHODS}, got {method!r}")
    shape = _shape(shape)
    lr, wd = _lr_wd(lr, wd)
    beta1 = _validate.beta("beta1", beta1)
    lr, wd, beta1 = np.broadcast_arrays(lr, wd, beta1)
    beta3 = 1.0 - lr * wd
    if method == "linear":
        series = (1.0 + beta1 * beta3) / (1.0 - beta1 * beta3)
    else:
        n_lags = int(np.ceil(_DECADES / (1.0 - np.max(beta1 * beta3)))) + 1
        d = np.arange(1, n_lags + 1).reshape((n_lags,) + (1,) * lr.ndim)
        r = msign_correlation(beta1**d, shape, method=method, pairs=pairs, seed=seed)
        series = 1.0 + 2.0 * np.sum(beta3**d * r, axis=0)
    out = muon_update_rms(shape) * np.sqrt(lr**2 / (1.0 - beta3**2) * series)
    return out[()] if out.ndim == 0 else out


#: torch.optim.Muon's adjust_lr_fn values (torch 2.13, torch/optim/_muon.py,
#: ``_adjust_lr``): None is "original"; the constructor refuses other names
TORCH_ADJUST_LR_FNS = (None, "original", "match_rms_adamw")


def torch_muon_lr(lr, shape, adjust_lr_fn=None):
    """The learning rate torch.optim.Muon steps by (its ``_adjust_lr``) for a
    weight of ``shape`` = (A, B) = (rows, columns): lr sqrt(max(1, A/B)) for
    ``None`` or ``"original"`` (Keller Jordan's), lr 0.2 sqrt(max(A, B)) for
    ``"match_rms_adamw"`` (Moonlight's). torch decays by lr * weight_decay
    with the lr *before* this adjustment (see :func:`torch_muon_weight_rms`)."""
    if adjust_lr_fn not in TORCH_ADJUST_LR_FNS:
        raise ValueError(f"adjust_lr_fn must be one of {TORCH_ADJUST_LR_FNS}, got {adjust_lr_fn!r}")
    a, b = _shape(shape)
    lr = _validate.nonnegative("lr", lr)
    if adjust_lr_fn == "match_rms_adamw":
        return lr * 0.2 * np.sqrt(max(a, b))
    return lr * np.sqrt(max(1.0, a / b))

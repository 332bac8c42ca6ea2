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
from scipy.interpolate import CubicSpline, PchipInterpolator

from .. import _validate
from ..optimizers import msign
from .update_rms import adam_update_rms
from .weight_rms import _lr_wd

MATCHING_METHODS = ("exact", "mean-field")
MSIGN_METHODS = ("table", "matrix", "arcsine", "linear")
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


#: the scale factor each library multiplies msign(M) of a weight by, as a
#: function of (n, m) = (fan-out, fan-in) of the layer, each read in that
#: library's code (file and function below; the stored versions read for issue
#: 28, in the chapter's table of conventions). Libraries store weights in
#: different layouts: PyTorch's nn.Linear weight is (fan-out, fan-in); Keras's
#: Dense kernel and Flax/JAX's Dense kernel are (fan-in, fan-out).
MUON_SCALE_CONVENTIONS = {
    # torch.optim.Muon, torch/optim/_muon.py::_adjust_lr, adjust_lr_fn None
    # or "original": sqrt(max(1, A/B)), (A, B) = param.shape[:2]
    "torch-original": lambda n, m: np.sqrt(max(1.0, n / m)),
    # the same function, "match_rms_adamw": 0.2 sqrt(max(A, B))
    "torch-match_rms_adamw": lambda n, m: 0.2 * np.sqrt(max(n, m)),
    # KellerJordan/Muon, muon.py::muon_update: max(1, size(-2)/size(-1))^0.5
    "keller-jordan": lambda n, m: np.sqrt(max(1.0, n / m)),
    # MoonshotAI/Moonlight, examples/toy_train.py::Muon.adjust_lr_for_muon:
    # 0.2 sqrt(max(A, B)), (A, B) = param_shape[:2]
    "moonlight": lambda n, m: 0.2 * np.sqrt(max(n, m)),
    # NVIDIA-NeMo/Emerging-Optimizers, emerging_optimizers/orthogonalized_
    # optimizers/muon.py::get_muon_scale_factor(size_out, size_in, mode), times
    # extra_scale_factor (default 1.0)
    "nemo-shape_scaling": lambda n, m: np.sqrt(max(1.0, n / m)),
    "nemo-spectral": lambda n, m: np.sqrt(max(n, m)),
    "nemo-unit_rms_norm": lambda n, m: np.sqrt(n / m),
    # google-deepmind/optax, optax/contrib/_muon.py::scale_by_muon:
    # sqrt(max(1, x.shape[-1] / x.shape[-2])) on a (fan-in, fan-out) kernel
    "optax": lambda n, m: np.sqrt(max(1.0, n / m)),
    # keras-team/keras, keras/src/optimizers/muon.py::Muon._muon_update_step:
    # max(1, shape[0] / shape[1])^0.5 on a (fan-in, fan-out) kernel
    "keras": lambda n, m: np.sqrt(max(1.0, m / n)),
}

#: how each library treats a 4-D (convolution) weight (out, in, kh, kw), read
#: in the same code: None = refused, with the reason; else the matrix it
#: orthogonalises and the shape its scale factor is computed from
CONV_HANDLING = {
    "torch-original": "refused: torch.optim.Muon.__init__ raises for a parameter with p.ndim != 2",
    "torch-match_rms_adamw": "refused: torch.optim.Muon.__init__ raises for a parameter with p.ndim != 2",
    "moonlight": "refused: Moonlight's Muon.__init__ asserts p.ndim == 2 for its Muon parameters",
    "nemo-shape_scaling": "refused: NeMo's Muon requires all its parameters to be 2-D (its docstring)",
    "nemo-spectral": "refused: NeMo's Muon requires all its parameters to be 2-D (its docstring)",
    "nemo-unit_rms_norm": "refused: NeMo's Muon requires all its parameters to be 2-D (its docstring)",
    "optax": "refused: optax.contrib.muon sends every parameter with ndim != 2 to its Adam",
    "keras": "refused: keras's Muon._should_use_adamw sends every variable with ndim >= 4 to AdamW",
    # muon_update views the update as (out, in kh kw) for Newton-Schulz but
    # takes the factor from the 4-D gradient's last two sizes, kh and kw
    "keller-jordan": None,
}


def conv_matrix(shape, convention):
    """For a weight ``shape`` (2 or 4 whole numbers) under ``convention``:
    (the n x m matrix the library orthogonalises, the scale factor it uses).
    A 4-D shape (out, in, kh, kw) is flattened as the library does, or a
    ValueError says why the library refuses it (:data:`CONV_HANDLING`)."""
    if convention not in MUON_SCALE_CONVENTIONS:
        raise ValueError(f"convention must be one of {tuple(MUON_SCALE_CONVENTIONS)}, got {convention!r}")
    if isinstance(shape, (str, bytes)) or np.ndim(shape) != 1 or len(shape) not in (2, 4):
        raise ValueError(f"shape must be two or four positive integers, got {shape!r}")
    for value in shape:
        if isinstance(value, bool) or not float(value).is_integer() or value < 1:
            raise ValueError(f"shape must be positive integers, got {shape!r}")
    shape = tuple(int(v) for v in shape)
    if len(shape) == 2:
        return shape, float(MUON_SCALE_CONVENTIONS[convention](*shape))
    if CONV_HANDLING[convention] is not None:
        raise ValueError(f"a 4-D shape {shape} under {convention}: {CONV_HANDLING[convention]}")
    out, inp, kh, kw = shape
    # Keller Jordan's muon_update: max(1, grad.size(-2) / grad.size(-1))^0.5 on the 4-D gradient
    return (out, inp * kh * kw), float(np.sqrt(max(1.0, kh / kw)))


def muon_scale_conventions(shape):
    """The scale factor of each library's convention (``MUON_SCALE_CONVENTIONS``)
    for an n x m weight, n its fan-out; the update's RMS is the factor times
    :func:`muon_update_rms`."""
    n, m = _shape(shape)
    return {name: float(rule(n, m)) for name, rule in MUON_SCALE_CONVENTIONS.items()}


#: _gram_msign hands a matrix to the SVD when its Gram matrix's eigenvalues
#: span more than 1/_GRAM_COND (condition number of the matrix above 1e4)
_GRAM_COND = 1e-8


def _gram_msign(x):
    """msign of a stack of matrices, as optimizers.msign(x) (exact, by SVD),
    computed as (y y^T)^(-1/2) y from the eigendecomposition of the smaller
    Gram matrix y y^T (y = x, or x^T when x is tall): 1.4 (16 x 16) to 3
    (4 x 64) times faster than the SVD for the Monte Carlo's small Gaussian
    matrices (one thread). eigh's eigenvalues err by ~eps lambda_max, so the direction of
    the smallest singular value errs by ~eps kappa^2 / 2; matrices with
    kappa^2 > 1/_GRAM_COND (about 3 in 1000 Gaussian 16 x 16 matrices) go to the SVD, so
    the result is within ~1e-8 of the SVD's (measured in the tests)."""
    tall = x.shape[-2] > x.shape[-1]
    y = np.swapaxes(x, -1, -2) if tall else x
    lam, v = np.linalg.eigh(y @ np.swapaxes(y, -1, -2))
    well = lam[..., 0] > _GRAM_COND * lam[..., -1]
    inv_sqrt = 1.0 / np.sqrt(np.where(well[..., None], lam, 1.0))
    out = (v * inv_sqrt[..., None, :]) @ (np.swapaxes(v, -1, -2) @ y)
    if not np.all(well):
        out[~well] = msign(y[~well])
    return np.swapaxes(out, -1, -2) if tall else out


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
    ua = _gram_msign(a)
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
        x = 0.5 * (dot(ua, _gram_msign(s * a + c * z)) + dot(ua, _gram_msign(s * a - c * z))) / k
        coef, *_ = np.linalg.lstsq(centred, x - x.mean(), rcond=None)
        r[i] = np.mean(x - controls @ coef)
    return phi, r


@functools.lru_cache(maxsize=1)
def _table():
    from .msign_table import PATH

    with np.load(PATH) as data:
        return {key: data[key] for key in ("aspects", "sizes", "phi", "r", "se")}


def _table_nodes(n, m):
    """R at the 33 nodes in arcsin(rho) for an n x m matrix, from the shipped
    table (``msign_table``): linear in 1/k between the tabulated sizes k =
    min(n, m) of each aspect ratio, and past the largest one the 1/k law fitted
    to the two largest (R -> R_inf as k -> inf); then linear in the aspect
    ratio q = min/max as R = rho - q f(q), f monotone-cubic between the
    tabulated ratios and constant below the smallest (R -> rho as q -> 0). Also returns the
    table's Monte Carlo standard error carried the same way."""
    tab = _table()
    k, q = min(n, m), min(n, m) / max(n, m)
    inv_k = 1.0 / tab["sizes"]
    rows, ses = [], []
    for r, se in zip(tab["r"], tab["se"]):
        ok = np.isfinite(r[:, 1])
        x, y, e = inv_k[ok][::-1], r[ok][::-1], se[ok][::-1]
        # the k -> inf point from the 1/k law through the two largest sizes
        slope = (y[1] - y[0]) / (x[1] - x[0])
        x = np.concatenate([[0.0], x])
        y = np.concatenate([y[:1] - slope * x[1], y])
        e = np.concatenate([e[:1] + np.abs(x[1] / (x[2] - x[1])) * (e[0] + e[1]), e])
        rows.append([np.interp(1.0 / k, x, y[:, i]) for i in range(y.shape[1])])
        ses.append([np.interp(1.0 / k, x, e[:, i]) for i in range(e.shape[1])])
    # across aspect ratios: R = sin(phi) - q f(q) (R -> rho as q -> 0, with a
    # deficit linear in q at small q, measured), f monotone-cubic (PCHIP)
    # between the tabulated ratios and constant below the smallest
    order = np.argsort(tab["aspects"])
    aspects = tab["aspects"][order]
    phi = tab["phi"]
    deficit = (np.sin(phi)[None, :] - np.array(rows)[order]) / aspects[:, None]
    f = PchipInterpolator(aspects, deficit, axis=0, extrapolate=False)(max(q, aspects[0]))
    r = np.sin(phi) - q * f
    se = np.array([np.interp(q, aspects, np.array(ses)[order][:, i]) for i in range(len(phi))])
    r[0], r[-1] = 0.0, 1.0
    return phi, r, se


def msign_correlation(rho, shape, *, method="table", pairs=None, seed=0):
    """Correlation R(rho) of msign(A) and msign(B) for n x m Gaussian matrices
    whose entries have correlation ``rho`` (see the module docstring).

    ``"table"`` (the default): the table shipped with the package
    (``optstats.theory.msign_table``, Monte Carlo over a grid of sizes and
    aspect ratios, made by ``make msign-table``), interpolated to this shape
    and carried to large shapes by the 1/k law (:func:`_table_nodes`); the
    same answer in microseconds at any shape, its error against simulation
    measured in the chapter and the tests. ``"matrix"``: Monte Carlo of this
    very shape over ``pairs`` pairs (default 2^17/(n m), at least 64) at 33
    nodes in arcsin(rho); its cost grows with the shape (SVDs of n x m
    matrices), so it is for checks at small shapes. Both use a cubic spline
    in arcsin(rho) between the nodes. ``"arcsine"``: (2/pi) arcsin(rho), the
    1 x 1 law. ``"linear"``: rho, the assumption that the update is
    correlated like its momentum.
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
    if method == "table":
        if pairs is not None:
            raise ValueError(f"pairs is for method='matrix', got pairs={pairs!r} with method='table'")
        phi, r, _ = _table_nodes(n, m)
    else:
        if pairs is None:
            pairs = max(64, _PAIR_BUDGET // (n * m))
        pairs = _validate.count("pairs", pairs, minimum=8)
        seed = _validate.count("seed", seed, minimum=0)
        phi, r = _matrix_nodes(n, m, pairs, seed)
    out = np.sign(rho) * CubicSpline(phi, r)(np.arcsin(np.abs(rho)))
    return out[()] if np.ndim(out) == 0 else out


def momentum_lag_correlation(beta1, lag, *, nesterov=False):
    """Correlation in time, at ``lag`` steps, of each entry of the matrix Muon
    orthogonalises, for iid gradients at equilibrium.

    EMA momentum m_t: beta1^lag. Nesterov's input x_t = beta1 m_t + (1 - beta1)
    g_t = (1 - beta1^2) g_t + sum_{k>=1} (1 - beta1) beta1^(k+1) g_{t-k}, a
    linear filter of the iid gradient whose lag-d autocorrelation is
    c beta1^d for d >= 1, c = beta1 (1 + beta1 - beta1^2) / (1 + 2 beta1 -
    2 beta1^3) (:func:`nesterov_lag_factor`; derived with sympy in the
    chapter and the tests). Lag 0 gives 1 for both.
    """
    beta1 = _validate.beta("beta1", beta1)
    lag = np.asarray(lag)
    if np.any(lag < 0) or np.any(lag != np.round(lag)):
        raise ValueError(f"lag must be whole numbers >= 0, got {lag!r}")
    if not nesterov:
        return beta1**lag * 1.0
    c = nesterov_lag_factor(beta1)
    return np.where(lag == 0, 1.0, c * beta1**lag)


def nesterov_lag_factor(beta1):
    """c in corr(x_t, x_{t+d}) = c beta1^d (d >= 1) for Nesterov's input (see
    :func:`momentum_lag_correlation`); c < 1, so Nesterov's input forgets
    faster than the momentum at the first lag and then at the same rate."""
    b = _validate.beta("beta1", beta1)
    return b * (1.0 + b - b**2) / (1.0 + 2.0 * b - 2.0 * b**3)


def _series(lr, wd, beta1, shape, nesterov, method, pairs, seed):
    """S = 1 + 2 sum_d beta3^d R(corr(d)), the update's correlation sum."""
    beta3 = 1.0 - lr * wd
    c = nesterov_lag_factor(beta1) if nesterov else 1.0
    if method == "linear":
        return 1.0 + 2.0 * c * beta1 * beta3 / (1.0 - beta1 * beta3)
    n_lags = int(np.ceil(_DECADES / (1.0 - np.max(beta1 * beta3)))) + 1
    d = np.arange(1, n_lags + 1).reshape((n_lags,) + (1,) * np.ndim(lr))
    if np.ndim(beta1) and np.all(beta1 == beta1.flat[0]):
        # one beta1 over a grid of lr, wd (the usual call): R once per lag, the same values broadcast
        b = beta1.flat[0]
        r = msign_correlation(c.flat[0] * b**d if np.ndim(c) else c * b**d, shape, method=method, pairs=pairs,
                              seed=seed)
    else:
        r = msign_correlation(c * beta1**d, shape, method=method, pairs=pairs, seed=seed)
    return 1.0 + 2.0 * np.sum(beta3**d * r, axis=0)


def _muon_inputs(lr, wd, beta1, shape, nesterov, method):
    if method not in MSIGN_METHODS:
        raise ValueError(f"method must be one of {MSIGN_METHODS}, got {method!r}")
    if not isinstance(nesterov, (bool, np.bool_)):
        raise ValueError(f"nesterov must be True or False, got {nesterov!r}")
    shape = _shape(shape)
    lr, wd = _lr_wd(lr, wd)
    beta1 = _validate.beta("beta1", beta1)
    lr, wd, beta1 = np.broadcast_arrays(lr, wd, beta1)
    return lr, wd, beta1, shape


def muon_update_correlation_sum(lr, wd, beta1, shape, *, nesterov=False, method="table", pairs=None, seed=0):
    """S = 1 + 2 sum_d beta3^d R(rho_d) of Muon's update msign(x_t), rho_d the
    lag correlation of x_t (:func:`momentum_lag_correlation`); the weight
    RMS, the angle and cos(theta, u) all follow from S."""
    lr, wd, beta1, shape = _muon_inputs(lr, wd, beta1, shape, nesterov, method)
    out = _series(lr, wd, beta1, shape, nesterov, method, pairs, seed)
    return out[()] if np.ndim(out) == 0 else out


def muon_weight_rms(lr, wd, beta1, shape, *, nesterov=False, method="table", pairs=None, seed=0):
    """Stationary weight RMS of Muon (update msign(x), no scale factor) under
    theta <- theta - lr (u + wd theta), for iid Gaussian gradients; x is the
    EMA momentum, or Nesterov's input with ``nesterov=True``.

    The long-run identity of the weight-RMS chapter, exact for updates that do
    not depend on theta: E[theta^2] = lr^2 U^2 / (1 - beta3^2) S, with
    U = 1/sqrt(max(n, m)) and S = 1 + 2 sum_d beta3^d R(rho_d)
    (:func:`muon_update_correlation_sum`), R from :func:`msign_correlation`
    with this ``method`` ("table" answers at any shape at once). ``"linear"``
    (R = rho, as Wen et al. and post 11307's argument assume) sums to
    (1 + beta1 beta3)/(1 - beta1 beta3) without Nesterov. For torch.optim.Muon's
    convention see :func:`torch_muon_weight_rms`.
    """
    lr, wd, beta1, shape = _muon_inputs(lr, wd, beta1, shape, nesterov, method)
    beta3 = 1.0 - lr * wd
    series = _series(lr, wd, beta1, shape, nesterov, method, pairs, seed)
    out = muon_update_rms(shape) * np.sqrt(lr**2 / (1.0 - beta3**2) * series)
    return out[()] if out.ndim == 0 else out


def muon_angular_update(lr, wd, beta1, shape, *, nesterov=False, method="table"):
    """The angle (radians) between theta_{t-1} and theta_t at equilibrium:
    eq. ba-angle, cos(phi) = beta3 + (1 - beta3^2)(S - 1)/(2 beta3 S), about
    sqrt(2 lr wd / S) when lr wd S << 1; the same for any update scale (the
    weight norm follows the scale), so it depends on lr wd and S only."""
    lr, wd, beta1, shape = _muon_inputs(lr, wd, beta1, shape, nesterov, method)
    beta3 = 1.0 - lr * wd
    s = _series(lr, wd, beta1, shape, nesterov, method, None, 0)
    out = np.arccos(np.clip(beta3 + (1.0 - beta3**2) * (s - 1.0) / (2.0 * beta3 * s), -1.0, 1.0))
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


def torch_muon_weight_rms(lr, weight_decay, momentum, shape, *, nesterov=True, adjust_lr_fn=None, method="table"):
    """Stationary weight RMS of torch.optim.Muon (exact msign for its
    Newton-Schulz) under iid Gaussian gradients, in torch's convention:
    theta <- (1 - lr weight_decay) theta - lr_adj O with lr_adj =
    :func:`torch_muon_lr` (the decay uses the lr *before* adjustment). That is
    the book's theta <- theta - eta (u + lambda theta) with eta = lr_adj and
    lambda = lr weight_decay / lr_adj, so this is :func:`muon_weight_rms` at
    those; defaults as torch's (nesterov=True, adjust_lr_fn=None =
    "original"). Newton-Schulz's update RMS differs from msign's by the
    ratio the chapter tabulates over sizes; multiply by it for torch's NS5."""
    eta = torch_muon_lr(lr, shape, adjust_lr_fn)
    lr, weight_decay = _lr_wd(lr, weight_decay)
    return muon_weight_rms(eta, lr * weight_decay / eta, momentum, shape, nesterov=nesterov, method=method)
